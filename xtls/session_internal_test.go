package xtls

import (
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/xtlsjingle/xtlsjingle/jingle"
)

// TestXTLS5_DescribeFailures: the texts a person sees for the failures of TLS and XSRP
// (XTLS-5, XSRP-8): a changed pin, an alert from the peer, a wrong password.
func TestXTLS5_DescribeFailures(t *testing.T) {
	romeo, _ := NewIdentity("romeo@montague.lit", KeyEd25519)
	juliet, _ := NewIdentity("juliet@capulet.lit", KeyEd25519)
	old, _ := NewIdentity("romeo@montague.lit", KeyEd25519)
	jpins := NewMemoryStore() // juliet has an old certificate of romeo pinned
	_ = jpins.Pin("romeo@montague.lit", old.Fingerprint(), VerifiedSRP, time.Now())
	rpins := NewMemoryStore()
	_ = rpins.Pin("juliet@capulet.lit", juliet.Fingerprint(), VerifiedSRP, time.Now())
	cc, err := ClientConfig(romeo, "juliet@capulet.lit", MethodX509, rpins)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := ServerConfig(juliet, "romeo@montague.lit", MethodX509, jpins)
	if err != nil {
		t.Fatal(err)
	}
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	srvErr := make(chan error, 1)
	go func() {
		s := tls.Server(b, sc)
		srvErr <- s.Handshake()
		_ = s.Close()
	}()
	c := tls.Client(a, cc)
	_ = c.Handshake() // GO-7: may succeed; the rejection arrives on the next read
	_, rerr := c.Read(make([]byte, 1))
	if rerr == nil {
		t.Fatal("read succeeded after the server rejected our certificate")
	}
	e := describe("juliet@capulet.lit/balcony", "juliet@capulet.lit", rerr)
	if e.Condition != jingle.SecurityError || !strings.Contains(e.Text, "the peer refused the TLS session") {
		t.Errorf("client side: %q (%v)", e.Text, rerr)
	}
	se := describe("romeo@montague.lit/orchard", "romeo@montague.lit", <-srvErr)
	if !strings.Contains(se.Text, "certificate of romeo@montague.lit changed") {
		t.Errorf("server side: %q", se.Text)
	}
	if e := describe("p", "p", ErrXSRPFailed); e.Text != "wrong password or attack" {
		t.Errorf("xsrp: %q", e.Text)
	}
	if e := describe("p", "p", errors.Join(errors.New("x"), ErrCertificate)); !strings.Contains(e.Text, "unusable certificate") {
		t.Errorf("certificate: %q", e.Text)
	}
}

// TestXTLSD3_MethodChoice: the decision table of XTLS-D3 for both roles.
func TestXTLSD3_MethodChoice(t *testing.T) {
	id, _ := NewIdentity("juliet@capulet.lit", KeyEd25519)
	fp := id.Fingerprint()
	both := &Security{Fingerprint: fp, Methods: []string{MethodX509, MethodSRP}}
	for _, tc := range []struct {
		trusted  bool
		password string
		want     []string
		withFP   bool
	}{
		{true, "", []string{MethodX509}, true},
		{true, "pw", []string{MethodX509, MethodSRP}, true},
		{false, "pw", []string{MethodSRP}, false}, // XTLS-13: no fingerprint when not trusted
		{false, "", nil, false},
	} {
		got := responderMethods(both, tc.trusted, tc.password, fp)
		if strings.Join(got.Methods, ",") != strings.Join(tc.want, ",") || got.Fingerprint.IsZero() == tc.withFP {
			t.Errorf("responder trusted=%v pw=%q: %+v", tc.trusted, tc.password, got)
		}
	}
	ours := &Security{Fingerprint: fp, Methods: []string{MethodX509, MethodSRP}}
	for _, tc := range []struct {
		theirs   *Security
		pinned   bool
		password string
		want     string
	}{
		{&Security{Fingerprint: fp, Methods: []string{MethodX509, MethodSRP}}, true, "pw", MethodX509},
		{&Security{Fingerprint: fp, Methods: []string{MethodX509}}, false, "pw", ""},
		{&Security{Methods: []string{MethodSRP}}, false, "pw", MethodSRP},
		{&Security{Methods: []string{MethodSRP}}, false, "", ""},
		{&Security{Methods: []string{MethodX509}}, true, "", ""}, // no fingerprint sent: no x509
		{&Security{Fingerprint: fp, Methods: []string{"openpgp"}}, true, "pw", ""},
	} {
		if got := chooseMethod(ours, tc.theirs, tc.pinned, tc.password); got != tc.want {
			t.Errorf("initiator %+v pinned=%v pw=%q: %q, want %q", tc.theirs, tc.pinned, tc.password, got, tc.want)
		}
	}
}
