package xtls

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"hash"
	"io"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"
)

type xsrpResult struct {
	fp  Fingerprint
	err error
}

// xsrpPair runs a full TLS 1.3 + XSRP exchange between Romeo (initiator, TLS client) and
// Juliet (responder, TLS server) over a and b, with the given passwords and the identities
// each side claims as its own (normally the ones in its TLS config).
func xsrpPair(t *testing.T, a, b net.Conn, romeo, juliet, romeoClaims, julietClaims *Identity, pwC, pwS string) (c, s *tls.Conn, cr, sr xsrpResult) {
	t.Helper()
	ccfg, scfg := mustConfigs(t, romeo, juliet, MethodSRP, nil, nil)
	c, s = tls.Client(a, ccfg), tls.Server(b, scfg)
	t.Cleanup(func() { a.Close(); b.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		cr.fp, cr.err = ClientXSRP(ctx, c, romeoClaims, "romeo@montague.lit/orchard", pwC)
	}()
	go func() {
		defer wg.Done()
		sr.fp, sr.err = ServerXSRP(ctx, s, julietClaims, "Romeo@montague.lit", pwS)
	}()
	wg.Wait()
	return c, s, cr, sr
}

// XSRP-10 (2): happy path over net.Pipe + tls.Client/Server; each side learns the other's
// certificate fingerprint for pinning (XSRP-8), and application data flows afterwards.
func TestXSRP10_2_HappyPath(t *testing.T) {
	checkGoroutines(t)
	romeo, juliet := newIDs(t)
	a, b := net.Pipe()
	c, s, cr, sr := xsrpPair(t, a, b, romeo, juliet, romeo, juliet, "correct horse battery staple", "correct horse battery staple")
	if cr.err != nil || sr.err != nil {
		t.Fatalf("client %v, server %v", cr.err, sr.err)
	}
	if !cr.fp.Equal(juliet.Fingerprint()) || !sr.fp.Equal(romeo.Fingerprint()) {
		t.Fatal("wrong peer fingerprints")
	}
	// XSRP-8: pin, then a later x509 session with those pins works.
	rp, jp := NewMemoryStore(), NewMemoryStore()
	if err := rp.Pin("juliet@capulet.lit", cr.fp, VerifiedSRP, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := jp.Pin("romeo@montague.lit", sr.fp, VerifiedSRP, time.Now()); err != nil {
		t.Fatal(err)
	}
	go s.Write([]byte("<stream:stream>"))
	buf := make([]byte, len("<stream:stream>"))
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatal(err)
	}
	ccfg, scfg := mustConfigs(t, romeo, juliet, MethodX509, rp, jp)
	_, _, cdone, sdone := handshakePair(t, ccfg, scfg)
	if err := <-cdone; err != nil {
		t.Fatal(err)
	}
	if err := <-sdone; err != nil {
		t.Fatal(err)
	}
	// The PRECIS OpaqueString profile makes equivalent passwords equal (XSRP-3):
	// U+2000 (EN QUAD) maps to U+0020 SPACE.
	a2, b2 := net.Pipe()
	_, _, cr, sr = xsrpPair(t, a2, b2, romeo, juliet, romeo, juliet, "two\u2000words", "two words")
	if cr.err != nil || sr.err != nil {
		t.Fatalf("PRECIS-equivalent passwords: %v %v", cr.err, sr.err)
	}
}

// XSRP-10 (3): a wrong password fails on both sides with ErrXSRPFailed.
func TestXSRP10_3_WrongPassword(t *testing.T) {
	checkGoroutines(t)
	romeo, juliet := newIDs(t)
	a, b := net.Pipe()
	_, _, cr, sr := xsrpPair(t, a, b, romeo, juliet, romeo, juliet, "password1", "password2")
	if !errors.Is(cr.err, ErrXSRPFailed) || !errors.Is(sr.err, ErrXSRPFailed) {
		t.Fatalf("client %v, server %v", cr.err, sr.err)
	}
	if !cr.fp.IsZero() || !sr.fp.IsZero() {
		t.Fatal("fingerprint returned on failure")
	}
	_, _, cr, _ = xsrpPair(t, nil2(t), nil2(t), romeo, juliet, romeo, juliet, "", "x")
	if !errors.Is(cr.err, ErrEmptyPassword) {
		t.Fatalf("empty password: %v", cr.err)
	}
}

// nil2 returns a closed connection for runs that must fail before any I/O.
func nil2(t *testing.T) net.Conn {
	a, b := net.Pipe()
	b.Close()
	return a
}

// XSRP-10 (4): a man in the middle who terminates TLS on both sides with its own
// certificate and relays the XSRP messages between the two sessions is detected (different
// tls-exporter values and certificates), even though both ends use the right password.
func TestXSRP10_4_MITMSplice(t *testing.T) {
	checkGoroutines(t)
	romeo, juliet := newIDs(t)
	mallory, _ := NewIdentity("mallory@evil.lit", KeyEd25519)
	c1, m1 := net.Pipe() // Romeo ↔ Mallory
	m2, s2 := net.Pipe() // Mallory ↔ Juliet
	defer func() { c1.Close(); m1.Close(); m2.Close(); s2.Close() }()
	ccfg, _ := mustConfigs(t, romeo, mallory, MethodSRP, nil, nil)
	mcli, _ := mustConfigs(t, mallory, juliet, MethodSRP, nil, nil)
	_, msrv := mustConfigs(t, romeo, mallory, MethodSRP, nil, nil)
	_, scfg := mustConfigs(t, romeo, juliet, MethodSRP, nil, nil)
	romeoTLS := tls.Client(c1, ccfg)
	malloryAsServer := tls.Server(m1, msrv)
	malloryAsClient := tls.Client(m2, mcli)
	julietTLS := tls.Server(s2, scfg)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	var wg sync.WaitGroup
	// Mallory: both handshakes, then relays plaintext both ways at the XSRP layer.
	wg.Add(1)
	go func() {
		defer wg.Done()
		var hs sync.WaitGroup
		hs.Add(2)
		go func() { defer hs.Done(); malloryAsServer.HandshakeContext(ctx) }()
		go func() { defer hs.Done(); malloryAsClient.HandshakeContext(ctx) }()
		hs.Wait()
		var relay sync.WaitGroup
		relay.Add(2)
		go func() { defer relay.Done(); io.Copy(malloryAsClient, malloryAsServer); m2.Close() }()
		go func() { defer relay.Done(); io.Copy(malloryAsServer, malloryAsClient); m1.Close() }()
		relay.Wait()
	}()
	var cerr, serr error
	wg.Add(2)
	go func() {
		defer wg.Done()
		_, cerr = ClientXSRP(ctx, romeoTLS, romeo, "romeo@montague.lit", "shared secret")
		c1.Close()
	}()
	go func() {
		defer wg.Done()
		_, serr = ServerXSRP(ctx, julietTLS, juliet, "romeo@montague.lit", "shared secret")
		s2.Close()
	}()
	wg.Wait()
	if !errors.Is(serr, ErrXSRPFailed) {
		t.Errorf("responder: %v", serr)
	}
	t.Logf("initiator: %v; responder: %v", cerr, serr)
	if !errors.Is(cerr, ErrXSRPFailed) {
		t.Errorf("initiator: %v", cerr)
	}
}

// XSRP-10 (6): if either side binds a different certificate than the one seen in the TLS
// session (fpC/fpS swapped or substituted), the proofs fail on both sides.
func TestXSRP10_6_SwappedCertificate(t *testing.T) {
	checkGoroutines(t)
	romeo, juliet := newIDs(t)
	other, _ := NewIdentity("romeo@montague.lit", KeyEd25519)
	cases := []struct {
		name         string
		romeo, julie *Identity
	}{
		{"client claims another certificate", other, juliet},
		{"server claims another certificate", romeo, other},
		{"both swapped", juliet, romeo},
	}
	for _, tc := range cases {
		a, b := net.Pipe()
		_, _, cr, sr := xsrpPair(t, a, b, romeo, juliet, tc.romeo, tc.julie, "pw", "pw")
		if !errors.Is(sr.err, ErrXSRPFailed) || !errors.Is(cr.err, ErrXSRPFailed) {
			t.Errorf("%s: client %v, server %v", tc.name, cr.err, sr.err)
		}
	}
}

// rogueRun sets up TLS (srp policy) between a real XSRP party and a rogue peer that speaks
// raw XSRP messages. It returns the rogue's connection and the party's result channel.
func rogueRun(t *testing.T, grp *srpGroup, realIsClient bool) (*tls.Conn, chan error) {
	t.Helper()
	romeo, juliet := newIDs(t)
	a, b := tcpPipe(t)
	t.Cleanup(func() { a.Close(); b.Close() })
	ccfg, scfg := mustConfigs(t, romeo, juliet, MethodSRP, nil, nil)
	c, s := tls.Client(a, ccfg), tls.Server(b, scfg)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	res := make(chan error, 1)
	rogue := c
	go func() {
		if realIsClient {
			_, err := runXSRP(ctx, c, grp, romeo, "romeo@montague.lit", "pw", true)
			res <- err
		} else {
			_, err := runXSRP(ctx, s, grp, juliet, "romeo@montague.lit", "pw", false)
			res <- err
		}
	}()
	if realIsClient {
		rogue = s
	}
	if err := rogue.HandshakeContext(ctx); err != nil {
		t.Fatal(err)
	}
	return rogue, res
}

// readFailure reads the next XSRP message and checks it is a failure with the given code.
func expectFailure(t *testing.T, conn *tls.Conn, grp *srpGroup, skip byte, code byte) {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		var hdr [3]byte
		if _, err := io.ReadFull(conn, hdr[:]); err != nil {
			t.Fatalf("reading failure message: %v", err)
		}
		body := make([]byte, int(hdr[1])<<8|int(hdr[2]))
		if _, err := io.ReadFull(conn, body); err != nil {
			t.Fatal(err)
		}
		if hdr[0] == skip {
			continue
		}
		if hdr[0] != xsrpFailure || len(body) != 1 || body[0] != code {
			t.Fatalf("got message %#x %x, want failure %d", hdr[0], body, code)
		}
		return
	}
}

func frame(typ byte, body []byte) []byte { return xsrpMessage{typ: typ, body: body}.append(nil) }

// XSRP-10 (5) / XSRP-6 / SRP-10: the server rejects A = 0, A = N, A > N; the client rejects
// B = 0, B = N (the only multiple of N that fits PAD length), B > N; both reject u = 0.
func TestXSRP10_5_IllegalValues(t *testing.T) {
	checkGoroutines(t)
	grp := rfc5054Group3072
	N := grp.pad(grp.nBig.Bytes())
	nPlus1 := grp.pad(new(big.Int).Add(grp.nBig, big.NewInt(1)).Bytes())
	allFF := bytes.Repeat([]byte{0xff}, grp.size)
	zero := make([]byte, grp.size)
	for _, bad := range [][]byte{zero, N, nPlus1, allFF} {
		rogue, res := rogueRun(t, grp, false)
		rogue.Write(frame(xsrpA, bad))
		expectFailure(t, rogue, grp, 0, xsrpFailParameter)
		if err := <-res; !errors.Is(err, ErrXSRPFailed) {
			t.Errorf("server accepted A=%x…: %v", bad[:4], err)
		}
	}
	for _, bad := range [][]byte{zero, N, nPlus1, allFF} {
		rogue, res := rogueRun(t, grp, true)
		salt := make([]byte, xsrpSaltLen)
		if _, err := readXSRP(rogue, grp, xsrpA); err != nil {
			t.Fatal(err)
		}
		rogue.Write(frame(xsrpSaltB, append(salt, bad...)))
		expectFailure(t, rogue, grp, 0, xsrpFailParameter)
		if err := <-res; !errors.Is(err, ErrXSRPFailed) {
			t.Errorf("client accepted B=%x…: %v", bad[:4], err)
		}
	}
	// u == 0: a group whose hash is constantly zero makes u = 0 on both sides.
	zg := newSRPGroup(grp.nBig.Text(16), 5, func() hash.Hash { return zeroHash{} })
	one := grp.pad([]byte{1})
	rogue, res := rogueRun(t, zg, false)
	rogue.Write(frame(xsrpA, one))
	expectFailure(t, rogue, zg, 0, xsrpFailParameter)
	if err := <-res; !errors.Is(err, ErrXSRPFailed) {
		t.Errorf("server accepted u=0: %v", err)
	}
	rogue, res = rogueRun(t, zg, true)
	if _, err := readXSRP(rogue, zg, xsrpA); err != nil {
		t.Fatal(err)
	}
	rogue.Write(frame(xsrpSaltB, append(make([]byte, xsrpSaltLen), grp.pad([]byte{2})...)))
	expectFailure(t, rogue, zg, 0, xsrpFailParameter)
	if err := <-res; !errors.Is(err, ErrXSRPFailed) {
		t.Errorf("client accepted u=0: %v", err)
	}
}

// XSRP-5: unknown types, wrong lengths and out-of-order messages end the run with a
// malformed-message failure.
func TestXSRP5_Malformed(t *testing.T) {
	checkGoroutines(t)
	grp := rfc5054Group3072
	for _, msg := range [][]byte{
		{0x05, 0x00, 0x01, 0x00},        // unknown type
		{xsrpA, 0x00, 0x01, 0x00},       // A too short
		frame(xsrpM1, make([]byte, 32)), // M1 before A
		{xsrpA, 0xff, 0xff},             // huge length
	} {
		rogue, res := rogueRun(t, grp, false)
		rogue.Write(msg)
		expectFailure(t, rogue, grp, 0, xsrpFailMalformed)
		err := <-res
		var pe *ParseError
		if !errors.As(err, &pe) {
			t.Errorf("%x: %v", msg[:3], err)
		}
	}
	// The peer's failure message ends the run with ErrXSRPFailed.
	rogue, res := rogueRun(t, grp, true)
	if _, err := readXSRP(rogue, grp, xsrpA); err != nil {
		t.Fatal(err)
	}
	rogue.Write(frame(xsrpFailure, []byte{xsrpFailProof}))
	if err := <-res; !errors.Is(err, ErrXSRPFailed) {
		t.Errorf("peer failure: %v", err)
	}
}

// The context bounds the run: a peer that never answers does not hang the caller.
func TestXSRP_ContextDeadline(t *testing.T) {
	checkGoroutines(t)
	romeo, juliet := newIDs(t)
	a, b := tcpPipe(t)
	defer a.Close()
	defer b.Close()
	ccfg, scfg := mustConfigs(t, romeo, juliet, MethodSRP, nil, nil)
	s := tls.Server(b, scfg)
	go s.Handshake() // handshakes, then never speaks XSRP
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := ClientXSRP(ctx, tls.Client(a, ccfg), romeo, "romeo@montague.lit", "pw")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v", err)
	}
	b.Close()
}

type zeroHash struct{}

func (zeroHash) Write(p []byte) (int, error) { return len(p), nil }
func (zeroHash) Sum(b []byte) []byte         { return append(b, make([]byte, 32)...) }
func (zeroHash) Reset()                      {}
func (zeroHash) Size() int                   { return 32 }
func (zeroHash) BlockSize() int              { return 64 }

// FuzzParseXSRPMessage: the XSRP framing parser never panics, accepts only exact lengths and
// re-encodes what it accepts byte for byte.
func FuzzParseXSRPMessage(f *testing.F) {
	grp := rfc5054Group3072
	f.Add(frame(xsrpA, make([]byte, grp.size)))
	f.Add(frame(xsrpSaltB, make([]byte, xsrpSaltLen+grp.size)))
	f.Add(frame(xsrpM1, make([]byte, 32)))
	f.Add(frame(xsrpM2, make([]byte, 32)))
	f.Add(frame(xsrpFailure, []byte{3}))
	f.Add([]byte{0x05, 0x00, 0x01, 0x00})
	f.Add([]byte{0x01, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		m, n, err := parseXSRPMessage(grp, data)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if len(m.body) != xsrpBodyLen(grp, m.typ) {
			t.Fatalf("accepted length %d for type %#x", len(m.body), m.typ)
		}
		if !bytes.Equal(m.append(nil), data[:n]) {
			t.Fatal("re-encoding differs")
		}
		// readXSRP on the same bytes agrees.
		if m.typ != xsrpFailure {
			body, err := readXSRP(bytes.NewReader(data), grp, m.typ)
			if err != nil || !bytes.Equal(body, m.body) {
				t.Fatalf("readXSRP: %v", err)
			}
		}
	})
}
