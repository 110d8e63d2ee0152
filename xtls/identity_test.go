package xtls

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/x509"
	"strings"
	"testing"
)

// XTLS-24 / C2C-7: a self-signed certificate per client naming the bare JID as
// id-on-xmppAddr (RFC 6120 §13.7.1.4) and as URI SAN xmpp:; PEM round trip keeps the
// fingerprint.
func TestXTLS24_IdentityCertificate(t *testing.T) {
	for _, kt := range []KeyType{KeyEd25519, KeyECDSAP256} {
		id, err := NewIdentity("Romeo@Montague.LIT/orchard", kt)
		if err != nil {
			t.Fatal(err)
		}
		if id.JID() != "romeo@montague.lit" {
			t.Errorf("JID = %q", id.JID())
		}
		leaf := id.Certificate().Leaf
		switch kt {
		case KeyEd25519:
			if _, ok := leaf.PublicKey.(ed25519.PublicKey); !ok {
				t.Errorf("key %T", leaf.PublicKey)
			}
		case KeyECDSAP256:
			if _, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok {
				t.Errorf("key %T", leaf.PublicKey)
			}
		}
		if got := CertificateJIDs(leaf); len(got) != 1 || got[0] != "romeo@montague.lit" {
			t.Errorf("id-on-xmppAddr = %q", got)
		}
		if len(leaf.URIs) != 1 || leaf.URIs[0].String() != "xmpp:romeo@montague.lit" {
			t.Errorf("URI SAN = %v", leaf.URIs)
		}
		if err := selfSigned(leaf); err != nil {
			t.Errorf("not self-signed: %v", err)
		}
		// The otherName must be a UTF8String (tag 12) inside [0] EXPLICIT.
		if !bytes.Contains(leaf.Raw, append([]byte{0xa0, byte(2 + len("romeo@montague.lit")), 0x0c, byte(len("romeo@montague.lit"))}, "romeo@montague.lit"...)) {
			t.Error("id-on-xmppAddr is not [0] EXPLICIT UTF8String")
		}
		pemData, err := id.MarshalPEM()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(pemData), "BEGIN PRIVATE KEY") {
			t.Error("no PKCS#8 key")
		}
		back, err := LoadIdentity(pemData)
		if err != nil {
			t.Fatal(err)
		}
		if !back.Fingerprint().Equal(id.Fingerprint()) || back.JID() != id.JID() {
			t.Error("PEM round trip changed the identity")
		}
		if fp := id.Fingerprint(); !fp.Equal(FingerprintOf(leaf.Raw)) || fp.Algo() != SHA256 {
			t.Error("fingerprint is not SHA-256 over DER")
		}
	}
	other, _ := NewIdentity("juliet@capulet.lit", KeyEd25519)
	a, _ := NewIdentity("romeo@montague.lit", KeyEd25519)
	pa, _ := a.MarshalPEM()
	po, _ := other.MarshalPEM()
	// Certificate of one identity with the key of another must not load.
	mixed := append(pa[:bytes.Index(pa, []byte("-----BEGIN PRIVATE KEY"))], po[bytes.Index(po, []byte("-----BEGIN PRIVATE KEY")):]...)
	if _, err := LoadIdentity(mixed); err == nil {
		t.Error("mismatched key accepted")
	}
	if _, err := LoadIdentity([]byte("garbage")); err == nil {
		t.Error("garbage accepted")
	}
	if _, err := x509.ParseCertificate(a.Certificate().Certificate[0]); err != nil {
		t.Error(err)
	}
}

func TestBareJID(t *testing.T) {
	good := map[string]string{
		"romeo@montague.lit":           "romeo@montague.lit",
		"Romeo@Montague.Lit/Orchard":   "romeo@montague.lit",
		"montague.lit":                 "montague.lit",
		"montague.lit.":                "montague.lit",
		"juliet@capulet.lit/a/b@c":     "juliet@capulet.lit",
		"\u00c9lodie@example.com/r":    "\u00e9lodie@example.com",
		"E\u0301lodie@example.com/res": "\u00e9lodie@example.com",
	}
	for in, want := range good {
		if got, err := BareJID(in); err != nil || got != want {
			t.Errorf("BareJID(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "@example.com", "a@", "a b@example.com", "a@b@c", "/res", strings.Repeat("a", 4000)} {
		if got, err := BareJID(in); err == nil {
			t.Errorf("BareJID(%q) = %q, want error", in, got)
		}
	}
}

// FuzzBareJID: no panic; normalisation is idempotent, so both ends of XSRP agree on I.
func FuzzBareJID(f *testing.F) {
	for _, s := range []string{"romeo@montague.lit/orchard", "Romeo@Montague.LIT", "E\u0301lodie@example.com/r", "montague.lit.", "a@b@c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := BareJID(s)
		if err != nil {
			return
		}
		b2, err := BareJID(b)
		if err != nil || b2 != b {
			t.Fatalf("BareJID(%q) = %q, then %q, %v", s, b, b2, err)
		}
	})
}
