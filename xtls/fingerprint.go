package xtls

import (
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"strings"
)

// HashAlgo names the hash function of a Fingerprint.
type HashAlgo uint8

// Hash algorithms a Fingerprint can carry. SHA256 is the only one this package emits
// (XTLS-D1, HASH-5); SHA1 is accepted on input because the 2009 draft used it (CONF-5).
const (
	SHA256 HashAlgo = 1
	SHA1   HashAlgo = 2
)

// String returns the IANA "Hash Function Textual Name" of a (XEP-0300), e.g. "sha-256".
func (a HashAlgo) String() string {
	switch a {
	case SHA256:
		return "sha-256"
	case SHA1:
		return "sha-1"
	}
	return ""
}

// Size returns the digest length of a in bytes (0 for an unknown algorithm).
func (a HashAlgo) Size() int {
	switch a {
	case SHA256:
		return sha256.Size
	case SHA1:
		return sha1.Size
	}
	return 0
}

// Fingerprint is the hash of a peer's DER-encoded X.509 certificate (XTLS-D1). It is a small
// comparable value; the zero value means "no fingerprint". Use Equal to compare fingerprints
// received from a peer against pinned ones (constant time).
type Fingerprint struct {
	algo   HashAlgo
	digest [sha256.Size]byte // SHA-1 digests use the first 20 bytes
}

// FingerprintOf returns the SHA-256 fingerprint of a DER-encoded certificate.
func FingerprintOf(der []byte) Fingerprint {
	return Fingerprint{algo: SHA256, digest: sha256.Sum256(der)}
}

// FingerprintFromDigest builds a fingerprint from a raw digest; its length must match algo.
func FingerprintFromDigest(algo HashAlgo, digest []byte) (Fingerprint, error) {
	if algo.Size() == 0 || len(digest) != algo.Size() {
		return Fingerprint{}, parseErrorf("fingerprint: digest length %d does not match %s", len(digest), algo)
	}
	var f Fingerprint
	f.algo = algo
	copy(f.digest[:], digest)
	return f, nil
}

// IsZero reports whether f is the zero value (no fingerprint).
func (f Fingerprint) IsZero() bool { return f.algo == 0 }

// Algo returns the hash algorithm of f.
func (f Fingerprint) Algo() HashAlgo { return f.algo }

// Digest returns a copy of the raw digest.
func (f Fingerprint) Digest() []byte {
	return append([]byte(nil), f.digest[:f.algo.Size()]...)
}

// Equal reports whether f and g have the same algorithm and digest. The digest comparison
// takes constant time.
func (f Fingerprint) Equal(g Fingerprint) bool {
	same := subtle.ConstantTimeCompare(f.digest[:], g.digest[:])
	return same == 1 && f.algo == g.algo && f.algo != 0
}

// String returns the wire form of XTLS-D1: lowercase hex without separators.
func (f Fingerprint) String() string {
	return hex.EncodeToString(f.digest[:f.algo.Size()])
}

// Groups returns the digest for people to read aloud or compare: uppercase hex in groups of
// four characters separated by spaces, e.g. "9F86 D081 8848 …".
func (f Fingerprint) Groups() string {
	h := strings.ToUpper(f.String())
	var b strings.Builder
	for i := 0; i < len(h); i += 4 {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(h[i:min(i+4, len(h))])
	}
	return b.String()
}

// NI returns f as an RFC 6920 named-information URI without authority,
// "ni:///sha-256;<base64url without padding>" (NI-1, NI-6). SHA-1 has no ni suite; for a SHA-1
// fingerprint NI returns "".
func (f Fingerprint) NI() string {
	if f.algo != SHA256 {
		return ""
	}
	return "ni:///sha-256;" + base64.RawURLEncoding.EncodeToString(f.digest[:])
}

// maxFingerprintText bounds the text form accepted by ParseFingerprint: 64 hex digits plus 31
// colons, with some room for surrounding whitespace.
const maxFingerprintText = 128

// ParseFingerprint parses the value of a <fingerprint/> element. algo is the value of its algo
// attribute: "sha-256", "sha-1" or the draft's "sha1" (case-insensitive); when empty (Gajim and
// the protoXEP send no attribute) the algorithm is inferred from the length, 64 hex digits =
// SHA-256, 40 = SHA-1. The value is hex, upper- or lowercase, optionally colon-separated in
// pairs ("95:28:C0:…"); surrounding XML whitespace is ignored (XTLS-D1).
func ParseFingerprint(algo, value string) (Fingerprint, error) {
	if len(value) > maxFingerprintText {
		return Fingerprint{}, parseErrorf("fingerprint: value too long")
	}
	v := strings.Trim(value, " \t\r\n")
	if strings.Contains(v, ":") {
		// Colon form: exactly two hex digits between colons.
		parts := strings.Split(v, ":")
		for _, p := range parts {
			if len(p) != 2 {
				return Fingerprint{}, parseErrorf("fingerprint: malformed colon-separated hex")
			}
		}
		v = strings.Join(parts, "")
	}
	d, err := hex.DecodeString(v)
	if err != nil || len(v) == 0 {
		return Fingerprint{}, parseErrorf("fingerprint: not hex")
	}
	var a HashAlgo
	switch strings.ToLower(algo) {
	case "sha-256":
		a = SHA256
	case "sha-1", "sha1":
		a = SHA1
	case "":
		switch len(d) {
		case sha256.Size:
			a = SHA256
		case sha1.Size:
			a = SHA1
		default:
			return Fingerprint{}, parseErrorf("fingerprint: cannot infer algorithm from %d bytes", len(d))
		}
	default:
		return Fingerprint{}, parseErrorf("fingerprint: unsupported algo %.20q", algo)
	}
	return FingerprintFromDigest(a, d)
}

// ParseNI parses an RFC 6920 URI "ni://[authority]/sha-256;<base64url>" into a SHA-256
// fingerprint. The authority and any query are ignored (NI-3); the value must be unpadded
// base64url of exactly 32 bytes (NI-1).
func ParseNI(s string) (Fingerprint, error) {
	if len(s) > 512 {
		return Fingerprint{}, parseErrorf("ni: too long")
	}
	rest, ok := strings.CutPrefix(s, "ni://")
	if !ok {
		return Fingerprint{}, parseErrorf("ni: missing ni:// scheme")
	}
	slash := strings.IndexByte(rest, '/')
	if slash < 0 {
		return Fingerprint{}, parseErrorf("ni: missing path")
	}
	rest = rest[slash+1:]
	if q := strings.IndexByte(rest, '?'); q >= 0 {
		rest = rest[:q]
	}
	alg, val, ok := strings.Cut(rest, ";")
	if !ok || strings.ToLower(alg) != "sha-256" {
		return Fingerprint{}, parseErrorf("ni: only sha-256 is supported")
	}
	d, err := base64.RawURLEncoding.Strict().DecodeString(val)
	if err != nil {
		return Fingerprint{}, parseErrorf("ni: bad base64url value")
	}
	return FingerprintFromDigest(SHA256, d)
}

// ParseFingerprintText parses a fingerprint typed or pasted by a person: an ni URI, or hex in
// any form ParseFingerprint accepts, optionally in groups separated by spaces (as Groups
// prints it). Only SHA-256 is accepted here, as pins are SHA-256 (XTLS-D2).
func ParseFingerprintText(s string) (Fingerprint, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "ni:") {
		return ParseNI(s)
	}
	if len(s) > 3*maxFingerprintText {
		return Fingerprint{}, parseErrorf("fingerprint: value too long")
	}
	s = strings.Join(strings.Fields(s), "")
	f, err := ParseFingerprint("sha-256", s)
	if err != nil {
		return Fingerprint{}, err
	}
	return f, nil
}
