package xtls

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"
)

// checkGoroutines fails the test if goroutines started during it are still running at
// cleanup (after a short grace period).
func checkGoroutines(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(3 * time.Second)
		for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > before {
			buf := make([]byte, 1<<16)
			buf = buf[:runtime.Stack(buf, true)]
			t.Errorf("goroutine leak: %d before, %d after\n%s", before, n, buf)
		}
	})
}

type result struct {
	err error
}

// tcpPipe returns the two ends of a loopback TCP connection (127.0.0.1:0). Unlike net.Pipe
// it is buffered, which failure-path tests need: crypto/tls writes an alert while the peer is
// still writing its own flight, and over the unbuffered net.Pipe both block (ERR-12).
func tcpPipe(t testing.TB) (net.Conn, net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			acc <- nil
			return
		}
		acc <- c
	}()
	a, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b := <-acc
	if b == nil {
		t.Fatal("accept failed")
	}
	return a, b
}

// handshakePair starts both TLS handshakes concurrently over a buffered loopback connection
// and returns the connections and channels with each side's handshake result. The
// connections are closed at cleanup.
func handshakePair(t *testing.T, ccfg, scfg *tls.Config) (c, s *tls.Conn, cdone, sdone chan error) {
	t.Helper()
	a, b := tcpPipe(t)
	return handshakeOver(t, a, b, ccfg, scfg)
}

// handshakeOver is handshakePair over given connections (e.g. net.Pipe for happy paths).
func handshakeOver(t *testing.T, a, b net.Conn, ccfg, scfg *tls.Config) (c, s *tls.Conn, cdone, sdone chan error) {
	t.Helper()
	c, s = tls.Client(a, ccfg), tls.Server(b, scfg)
	// Close the raw connections: tls.Conn.Close would try to send close_notify.
	t.Cleanup(func() { a.Close(); b.Close() })
	cdone, sdone = make(chan error, 1), make(chan error, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	go func() { cdone <- c.HandshakeContext(ctx) }()
	go func() { sdone <- s.HandshakeContext(ctx) }()
	return c, s, cdone, sdone
}

func newIDs(t testing.TB) (romeo, juliet *Identity) {
	t.Helper()
	var err error
	if romeo, err = NewIdentity("romeo@montague.lit", KeyEd25519); err != nil {
		t.Fatal(err)
	}
	if juliet, err = NewIdentity("juliet@capulet.lit", KeyECDSAP256); err != nil {
		t.Fatal(err)
	}
	return romeo, juliet
}

func mustConfigs(t testing.TB, romeo, juliet *Identity, method string, romeoPins, julietPins PinSource) (c, s *tls.Config) {
	t.Helper()
	var err error
	if c, err = ClientConfig(romeo, "juliet@capulet.lit", method, romeoPins); err != nil {
		t.Fatal(err)
	}
	if s, err = ServerConfig(juliet, "romeo@montague.lit/orchard", method, julietPins); err != nil {
		t.Fatal(err)
	}
	return c, s
}

// XTLS-3/4, XTLS-D4, XTLS-D5, GO-6: pinned x509 both ways succeeds with TLS 1.3, mutual
// certificates, no resumption; data flows.
func TestXTLS_D4_PinnedX509(t *testing.T) {
	checkGoroutines(t)
	romeo, juliet := newIDs(t)
	rp, jp := NewMemoryStore(), NewMemoryStore()
	rp.Pin("juliet@capulet.lit", juliet.Fingerprint(), VerifiedSRP, time.Now())
	jp.Pin("romeo@montague.lit", romeo.Fingerprint(), VerifiedManual, time.Now())
	ccfg, scfg := mustConfigs(t, romeo, juliet, MethodX509, rp, jp)
	if !ccfg.InsecureSkipVerify || ccfg.VerifyConnection == nil || scfg.ClientAuth != tls.RequireAnyClientCert ||
		ccfg.MinVersion != tls.VersionTLS13 || !scfg.SessionTicketsDisabled || !ccfg.SessionTicketsDisabled {
		t.Fatal("profile")
	}
	pa, pb := net.Pipe()
	c, s, cdone, sdone := handshakeOver(t, pa, pb, ccfg, scfg)
	if err := <-cdone; err != nil {
		t.Fatal(err)
	}
	// GO-7: the initiator needs one authenticated read from the responder.
	go func() { s.Write([]byte("hello")) }()
	buf := make([]byte, 5)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("read: %v", err)
	}
	if err := <-sdone; err != nil {
		t.Fatal(err)
	}
	cs := c.ConnectionState()
	if cs.Version != tls.VersionTLS13 || cs.DidResume {
		t.Error("not a fresh TLS 1.3 session")
	}
	if fp, err := PeerFingerprint(cs); err != nil || !fp.Equal(juliet.Fingerprint()) {
		t.Errorf("client sees %v %v", fp, err)
	}
	if fp, err := PeerFingerprint(s.ConnectionState()); err != nil || !fp.Equal(romeo.Fingerprint()) {
		t.Errorf("server sees %v %v", fp, err)
	}
}

// XTLS-D4/XTLS-5: a certificate that is not pinned fails the handshake with a *PinError;
// Changed tells "other pins exist" from "nothing pinned".
func TestXTLS_D4_UnpinnedOrChanged(t *testing.T) {
	checkGoroutines(t)
	romeo, juliet := newIDs(t)
	mallory, _ := NewIdentity("juliet@capulet.lit", KeyEd25519)
	rp := NewMemoryStore()
	rp.Pin("juliet@capulet.lit", juliet.Fingerprint(), VerifiedSRP, time.Now())
	ccfg, _ := mustConfigs(t, romeo, juliet, MethodX509, rp, NewMemoryStore())
	// Mallory answers as the server with her own certificate (srp policy on her side).
	_, mcfg := mustConfigs(t, romeo, mallory, MethodSRP, nil, nil)
	_, _, cdone, sdone := handshakePair(t, ccfg, mcfg)
	err := <-cdone
	var pe *PinError
	if !errors.As(err, &pe) || !pe.Changed || !pe.Fingerprint.Equal(mallory.Fingerprint()) || pe.Peer != "juliet@capulet.lit" {
		t.Fatalf("client error %v", err)
	}
	if !strings.Contains(pe.Error(), "changed") {
		t.Errorf("message %q", pe.Error())
	}
	if <-sdone == nil {
		t.Error("server handshake succeeded although the client aborted")
	}

	// Nothing pinned: Changed is false.
	ccfg2, _ := mustConfigs(t, romeo, juliet, MethodX509, NewMemoryStore(), NewMemoryStore())
	_, _, cdone, sdone = handshakePair(t, ccfg2, mcfg)
	if err := <-cdone; !errors.As(err, &pe) || pe.Changed {
		t.Fatalf("client error %v", err)
	}
	<-sdone
}

// GO-7: a TLS 1.3 client's Handshake returns nil before the server has checked the client
// certificate; the server's rejection reaches the client only as an alert on its next read.
func TestGO7_ClientHandshakeReturnsBeforeServerVerifies(t *testing.T) {
	checkGoroutines(t)
	romeo, juliet := newIDs(t)
	rp := NewMemoryStore()
	rp.Pin("juliet@capulet.lit", juliet.Fingerprint(), VerifiedSRP, time.Now())
	// Juliet has no pin for Romeo: she rejects his certificate.
	ccfg, scfg := mustConfigs(t, romeo, juliet, MethodX509, rp, NewMemoryStore())
	c, _, cdone, sdone := handshakePair(t, ccfg, scfg)
	if err := <-cdone; err != nil {
		t.Fatalf("client Handshake: %v (GO-7 says it returns nil here)", err)
	}
	// ERR-12: read concurrently so the server's alert can be delivered over net.Pipe.
	readErr := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 1))
		readErr <- err
	}()
	var pe *PinError
	if err := <-sdone; !errors.As(err, &pe) || pe.Peer != "romeo@montague.lit" {
		t.Fatalf("server: %v", err)
	}
	if err := <-readErr; err == nil {
		t.Fatal("client read succeeded after the server rejected its certificate")
	}
}

// XTLS-D5: a peer limited to TLS 1.2 cannot connect.
func TestXTLS_D5_TLS13Only(t *testing.T) {
	checkGoroutines(t)
	romeo, juliet := newIDs(t)
	ccfg, scfg := mustConfigs(t, romeo, juliet, MethodSRP, nil, nil)
	old := &tls.Config{MaxVersion: tls.VersionTLS12, InsecureSkipVerify: true, Certificates: []tls.Certificate{romeo.Certificate()}}
	_, _, cdone, sdone := handshakePair(t, old, scfg)
	if <-sdone == nil || <-cdone == nil {
		t.Fatal("TLS 1.2 client accepted")
	}
	old2 := &tls.Config{MaxVersion: tls.VersionTLS12, Certificates: []tls.Certificate{juliet.Certificate()}, ClientAuth: tls.RequireAnyClientCert}
	_, _, cdone, sdone = handshakePair(t, ccfg, old2)
	if <-cdone == nil || <-sdone == nil {
		t.Fatal("TLS 1.2 server accepted")
	}
	if _, err := ClientConfig(romeo, "juliet@capulet.lit", "openpgp", nil); err == nil {
		t.Error("unsupported method accepted")
	}
	if _, err := ClientConfig(romeo, "juliet@capulet.lit", MethodX509, nil); err == nil {
		t.Error("x509 without pins accepted")
	}
}

// XTLS-4: a client without a certificate is rejected by the server.
func TestXTLS4_ClientCertificateRequired(t *testing.T) {
	checkGoroutines(t)
	romeo, juliet := newIDs(t)
	ccfg, scfg := mustConfigs(t, romeo, juliet, MethodSRP, nil, nil)
	ccfg.Certificates = nil
	c, _, cdone, sdone := handshakePair(t, ccfg, scfg)
	<-cdone
	go c.Read(make([]byte, 1))
	if err := <-sdone; err == nil {
		t.Fatal("server accepted a client without certificate")
	}
}

// A.7 / EXP-3 / CB-1: on one TLS 1.3 connection the tls-exporter values of both ends are
// equal and nil ≡ empty context; two connections give different values (MITM splice); on
// TLS 1.2 nil and empty contexts differ (so XSRP always passes []byte{}).
func TestA7_TLSExporterProperties(t *testing.T) {
	checkGoroutines(t)
	romeo, juliet := newIDs(t)
	ekm := func(ccfg, scfg *tls.Config) (c, s tls.ConnectionState) {
		cc, ss, cdone, sdone := handshakePair(t, ccfg, scfg)
		if err := <-cdone; err != nil {
			t.Fatal(err)
		}
		if err := <-sdone; err != nil {
			t.Fatal(err)
		}
		return cc.ConnectionState(), ss.ConnectionState()
	}
	ccfg, scfg := mustConfigs(t, romeo, juliet, MethodSRP, nil, nil)
	c1, s1 := ekm(ccfg, scfg)
	e := func(cs tls.ConnectionState, ctx []byte) []byte {
		v, err := cs.ExportKeyingMaterial(cbLabel, ctx, 32)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	if !bytes.Equal(e(c1, []byte{}), e(s1, []byte{})) {
		t.Error("client and server exporters differ")
	}
	if !bytes.Equal(e(c1, nil), e(c1, []byte{})) {
		t.Error("TLS 1.3: nil and empty context differ")
	}
	c2, _ := ekm(ccfg, scfg)
	if bytes.Equal(e(c1, []byte{}), e(c2, []byte{})) {
		t.Error("two connections share an exporter value")
	}
	old := &tls.Config{MaxVersion: tls.VersionTLS12, InsecureSkipVerify: true}
	oldS := &tls.Config{MaxVersion: tls.VersionTLS12, Certificates: []tls.Certificate{juliet.Certificate()}}
	c3, _ := ekm(old, oldS)
	if c3.Version != tls.VersionTLS12 {
		t.Fatal("not TLS 1.2")
	}
	if bytes.Equal(e(c3, nil), e(c3, []byte{})) {
		t.Error("TLS 1.2: nil and empty context give the same value")
	}
}

// PeerFingerprint accepts one self-signed certificate with an Ed25519, P-256 or RSA ≥ 2048
// key (other XTLS clients use RSA); it rejects short RSA keys, chains and certificates not
// signed by their own key.
func TestPeerFingerprintCertificateChecks(t *testing.T) {
	mk := func(key crypto.Signer, parent *x509.Certificate, parentKey crypto.Signer) *x509.Certificate {
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "x"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
		if parent == nil {
			parent, parentKey = tmpl, key
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
		if err != nil {
			t.Fatal(err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	rsa2048, _ := rsa.GenerateKey(rand.Reader, 2048)
	rsa1024, _ := rsa.GenerateKey(rand.Reader, 1024)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	good := mk(rsa2048, nil, nil)
	if fp, err := PeerFingerprint(tls.ConnectionState{PeerCertificates: []*x509.Certificate{good}}); err != nil || !fp.Equal(FingerprintOf(good.Raw)) {
		t.Errorf("RSA-2048 self-signed: %v", err)
	}
	bad := map[string][]*x509.Certificate{
		"RSA-1024":          {mk(rsa1024, nil, nil)},
		"P-384":             {mk(p384, nil, nil)},
		"signed by another": {mk(ed, good, rsa2048)},
		"chain of two":      {good, good},
		"none":              nil,
	}
	for name, certs := range bad {
		if _, err := PeerFingerprint(tls.ConnectionState{PeerCertificates: certs}); !errors.Is(err, ErrCertificate) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
