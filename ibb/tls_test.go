package ibb_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"sync"
	"testing"
	"time"

	"github.com/xtlsjingle/xtlsjingle/internal/xmpptest"
)

func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "juliet"},
		DNSNames:     []string{"juliet"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

// JIBB-10, ERR-12: TLS 1.3 runs over a pair of ibb.Conns on a reordering network: both
// handshakes complete concurrently (neither side's writes block on the other's reads), data
// flows both ways, and close_notify plus <close/> end the stream cleanly.
func TestJIBB10_TLSOverConn(t *testing.T) {
	w := newWorld(t, 12, nil, nil)
	a, b := w.pair(t, "tls", 4096)
	w.net.SetFaults("", "", xmpptest.Faults{Delay: 0.5, MaxDelay: 2 * time.Millisecond})
	cert, pool := selfSigned(t)
	client := tls.Client(a, &tls.Config{RootCAs: pool, ServerName: "juliet", MinVersion: tls.VersionTLS13})
	server := tls.Server(b, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13})
	msg := randomBytes(12, 300<<10)
	var wg sync.WaitGroup
	var serverGot []byte
	var serverErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		if serverErr = server.Handshake(); serverErr != nil {
			return
		}
		serverGot = make([]byte, len(msg))
		if _, serverErr = io.ReadFull(server, serverGot); serverErr != nil {
			return
		}
		_, serverErr = server.Write(serverGot) // echo
	}()
	if err := client.Handshake(); err != nil {
		t.Fatalf("client handshake: %v", err)
	}
	go client.Write(msg)
	echo := make([]byte, len(msg))
	if _, err := io.ReadFull(client, echo); err != nil {
		t.Fatalf("client read: %v", err)
	}
	wg.Wait()
	if serverErr != nil {
		t.Fatalf("server: %v", serverErr)
	}
	sameBytes(t, msg, serverGot)
	sameBytes(t, msg, echo)
	if err := client.Close(); err != nil {
		t.Fatalf("client close: %v", err)
	}
	if _, err := server.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("server read after close_notify: %v; want io.EOF", err)
	}
	server.Close()
}
