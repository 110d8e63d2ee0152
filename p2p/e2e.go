package p2p

import (
	"bytes"
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"slices"
)

// NSE2E is the namespace of the <e2e/> presence element of seed 000, which publishes the
// publisher's end-to-end public keys.
const NSE2E = "urn:nf:iot:e2e:1.0"

// Key algorithms of <e2e/> children (seed 000) with the size of their public key, so that a
// key of a known algorithm with another size is refused.
var keySizes = map[string][2]int{ // min, max bytes
	"x25519":  {32, 32},
	"x448":    {56, 56},
	"ed25519": {32, 32},
	"ed448":   {57, 57},
	"p192":    {48, 49},   // X‖Y, or SEC1 uncompressed 04‖X‖Y
	"p224":    {56, 57},   //
	"p256":    {64, 65},   //
	"p384":    {96, 97},   //
	"p521":    {132, 133}, //
	"rsa":     {64, 1100}, // modulus (and exponent) of up to 8192 bits
}

// Key is one published public key: its algorithm (the child's name, e.g. "ed25519", "p256")
// and the decoded pub attribute.
type Key struct {
	Alg string
	Pub []byte
}

// E2E is <e2e xmlns='urn:nf:iot:e2e:1.0'> with one child per key algorithm, e.g.
// <ed25519 pub='base64'/>. For an ed25519 key Pub is the 32-byte public key; for p256 (and
// the other NIST curves) we publish the SEC1 uncompressed point 04‖X‖Y and accept X‖Y as well,
// since the seed does not say which it means.
//
// A published key is a hint to show next to the fingerprint of the certificate a peer
// presented in TLS ([E2E.Matches]), never verification: the server can change presence.
type E2E struct {
	Keys []Key
}

// ParseE2E decodes an <e2e/> element strictly: at most 16 KiB and 16 children, each child in
// the same namespace with exactly one attribute pub in strict base64 (padding required, no
// white space), a known algorithm's key of its exact size (for the NIST curves X‖Y, or
// 04‖X‖Y with that prefix), no algorithm twice. Children with
// unknown names are skipped (the seed lists algorithms we do not use), but count toward the
// bound. Errors are *ParseError (errors.Is ErrMalformed).
func ParseE2E(b []byte) (E2E, error) {
	bad := func(attr, reason string) (E2E, error) {
		return E2E{}, &ParseError{Element: "e2e", Attr: attr, Reason: reason}
	}
	e, err := parseFlat(b, maxE2ESize, maxE2EKeys)
	if err != nil {
		return bad("", err.Error())
	}
	if e.name.Space != NSE2E || e.name.Local != "e2e" {
		return bad("", "not {"+NSE2E+"}e2e")
	}
	if len(e.attrs) != 0 {
		return bad(e.attrs[0].Name.Local, "unknown attribute")
	}
	var out E2E
	for _, c := range e.children {
		if c.name.Space != NSE2E {
			return bad(c.name.Local, "child in another namespace")
		}
		size, known := keySizes[c.name.Local]
		if !known {
			continue
		}
		if len(c.attrs) != 1 || c.attrs[0].Name.Local != "pub" {
			return bad(c.name.Local, "needs exactly the attribute pub")
		}
		pub, err := strictBase64(c.attrs[0].Value)
		if err != nil {
			return bad(c.name.Local, "pub is not strict base64")
		}
		if len(pub) < size[0] || len(pub) > size[1] {
			return bad(c.name.Local, "public key of the wrong size")
		}
		if nistPoint(c.name.Local) && len(pub) == size[1] && pub[0] != 4 {
			return bad(c.name.Local, "not a SEC1 uncompressed point (04‖X‖Y)")
		}
		if out.Key(c.name.Local) != nil {
			return bad(c.name.Local, "algorithm listed twice")
		}
		out.Keys = append(out.Keys, Key{Alg: c.name.Local, Pub: pub})
	}
	return out, nil
}

// nistPoint reports whether alg is a NIST curve, whose key is X‖Y or 04‖X‖Y.
func nistPoint(alg string) bool {
	switch alg {
	case "p192", "p224", "p256", "p384", "p521":
		return true
	}
	return false
}

// Key returns the published key of algorithm alg, or nil.
func (e E2E) Key(alg string) []byte {
	for _, k := range e.Keys {
		if k.Alg == alg {
			return k.Pub
		}
	}
	return nil
}

// Marshal returns the <e2e/> element. Keys must be of known algorithms and sizes, once each.
func (e E2E) Marshal() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString("<e2e xmlns='" + NSE2E + "'>")
	var seen []string
	for _, k := range e.Keys {
		size, ok := keySizes[k.Alg]
		if !ok || len(k.Pub) < size[0] || len(k.Pub) > size[1] || slices.Contains(seen, k.Alg) {
			return nil, &ParseError{Element: "e2e", Attr: k.Alg, Reason: "unknown algorithm, wrong key size or listed twice"}
		}
		seen = append(seen, k.Alg)
		b.WriteString("<" + k.Alg + " pub='" + base64.StdEncoding.EncodeToString(k.Pub) + "'/>")
	}
	b.WriteString("</e2e>")
	return b.Bytes(), nil
}

// ErrUnsupportedKey: KeyOf got a public key that has no <e2e/> form here.
var ErrUnsupportedKey = errors.New("p2p: public key type has no <e2e/> form (only Ed25519 and ECDSA P-256)")

// KeyOf returns the <e2e/> key of a certificate's public key: ed25519 (32 bytes) or p256
// (SEC1 uncompressed point).
func KeyOf(pub crypto.PublicKey) (Key, error) {
	switch k := pub.(type) {
	case ed25519.PublicKey:
		return Key{Alg: "ed25519", Pub: bytes.Clone(k)}, nil
	case *ecdsa.PublicKey:
		ek, err := k.ECDH()
		if err != nil || ek.Curve() != ecdh.P256() {
			return Key{}, ErrUnsupportedKey
		}
		return Key{Alg: "p256", Pub: ek.Bytes()}, nil
	}
	return Key{}, ErrUnsupportedKey
}

// KeyHint compares published keys with the public key of the certificate a peer presented.
type KeyHint int

// Results of E2E.Matches.
const (
	KeyHintNone    KeyHint = iota // nothing published for the certificate's algorithm
	KeyHintMatches                // the published key is the certificate's key
	KeyHintDiffers                // a key of the certificate's algorithm is published, but another
)

// String returns "none", "matches" or "differs".
func (h KeyHint) String() string {
	switch h {
	case KeyHintMatches:
		return "matches"
	case KeyHintDiffers:
		return "differs"
	}
	return "none"
}

// Matches compares e with the certificate public key pub (a hint only: the server can change
// presence; the TLS session's pins or XSRP are what authenticate).
func (e E2E) Matches(pub crypto.PublicKey) KeyHint {
	k, err := KeyOf(pub)
	if err != nil {
		return KeyHintNone
	}
	got := e.Key(k.Alg)
	switch {
	case got == nil:
		return KeyHintNone
	case bytes.Equal(got, k.Pub), k.Alg == "p256" && bytes.Equal(got, k.Pub[1:]):
		return KeyHintMatches
	}
	return KeyHintDiffers
}

// strictBase64 decodes standard base64 with padding, refusing every byte outside the alphabet
// (Go's Strict decoder still skips CR and LF).
func strictBase64(s string) ([]byte, error) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '+' || c == '/' || c == '=') {
			return nil, errors.New("byte outside the base64 alphabet")
		}
	}
	return base64.StdEncoding.Strict().DecodeString(s)
}
