// Package pubkeys implements the certificate exchange of XEP-0189: Public Key Publishing in
// the data model of its versions 0.8/0.9 (<pubkeys/> with <keyinfo><name/><x509cert/></keyinfo>),
// as draft-meyer-xmpp-e2e-encryption uses it to learn a peer's certificates over an
// authenticated end-to-end stream (XTLS-19, XTLS-21).
//
// We emit namespace urn:xmpp:tmp:pubkey (PK-11) and accept urn:xmpp:pubkey:0 (0.9) and the
// urn:xmpp:pubkey:2 request/answer shape that Gajim sends (same elements, not the 0.14 model).
// The exchange must only ever run inside the end-to-end stream (PK-1, XTLS-20): [Serve] and
// [Fetch] take the stream's IQ methods, and [Refuse] installs the answer for the same request
// arriving over the server connection. [VerifyPeer] applies PK-12: the returned client
// certificate must be the one the peer presented in the TLS handshake of this session.
package pubkeys

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Namespaces.
const (
	NS       = "urn:xmpp:tmp:pubkey" // what we emit (PK-11, CONF-4)
	NSv0     = "urn:xmpp:pubkey:0"   // XEP-0189 0.9, accepted on input
	NSGajim  = "urn:xmpp:pubkey:2"   // Gajim's request/answer (same shape), accepted on input
	NSJingle = "urn:xmpp:jingle:errors:1"
)

// Bounds on peer input.
const (
	MaxCertSize = 16 << 10 // DER bytes per certificate
	MaxKeys     = 8        // <keyinfo/> elements per answer
	maxFPs      = 8        // <fingerprint/> elements per request
	maxName     = 256      // <name/> characters
	maxJID      = 3071     // RFC 7622 bound on a JID
)

var pkLimits = limits{MaxBytes: 256 << 10, MaxDepth: 5, MaxElems: 256, MaxAttrs: 8}

// KeyInfo is one <keyinfo/>: an X.509 certificate and its name.
type KeyInfo struct {
	// JID is set when the key does not belong to the providing client itself, e.g. the user
	// certificate (PK-3, PK-4); empty for the client's own certificate.
	JID string
	// Name is the <name/>: on output the lowercase hex SHA-256 of Cert (PK-11; filled in by
	// MarshalKeys when empty); on input as received (Gajim sends "CertificateHash").
	Name string
	// Cert is the DER certificate (PK-3).
	Cert []byte
}

// Fingerprint selects a key in a request (PK-6): algo "sha-256" (or "sha-1"/"sha1") and the hex
// digest of the DER certificate.
type Fingerprint struct {
	Algo  string
	Value string
}

// Request is a <pubkeys/> IQ-get payload.
type Request struct {
	Space        string // namespace; empty = NS
	JID          string // optional jid attribute
	Fingerprints []Fingerprint
}

// Keys is a <pubkeys/> answer.
type Keys struct {
	Space string // namespace; empty = NS
	JID   string // optional jid attribute
	Keys  []KeyInfo
}

// Name returns the <name/> we give a certificate: lowercase hex SHA-256 of its DER (PK-11).
func Name(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// Error is a pubkeys failure that maps to an XMPP stanza error.
type Error struct {
	Type      string
	Condition string
	App       xml.Name
	Text      string
}

// Error implements error.
func (e *Error) Error() string {
	s := "pubkeys: " + e.Condition
	if e.App.Local != "" {
		s += " (" + e.App.Local + ")"
	}
	if e.Text != "" {
		s += ": " + e.Text
	}
	return s
}

// StanzaError reports the XMPP error type, condition, application condition and text.
func (e *Error) StanzaError() (typ, condition string, app xml.Name, text string) {
	return e.Type, e.Condition, e.App, e.Text
}

func badRequest(format string, args ...any) *Error {
	return &Error{Type: "modify", Condition: "bad-request", Text: fmt.Sprintf(format, args...)}
}

// ErrSecurityRequired is the answer to a pubkeys request over the server connection (XTLS-20,
// J-41): <not-acceptable/> with <security-required xmlns='urn:xmpp:jingle:errors:1'/>.
var ErrSecurityRequired = &Error{Type: "cancel", Condition: "not-acceptable",
	App: xml.Name{Space: NSJingle, Local: "security-required"}, Text: "certificates are only exchanged inside the end-to-end stream"}

// ErrPeerMismatch: no returned certificate equals the TLS peer certificate (PK-12).
var ErrPeerMismatch = errors.New("pubkeys: no returned certificate matches the TLS peer certificate")

func knownSpace(s string) bool { return s == NS || s == NSv0 || s == NSGajim }

func space(s string) (string, error) {
	if s == "" {
		return NS, nil
	}
	if !knownSpace(s) {
		return "", fmt.Errorf("pubkeys: unknown namespace %q", s)
	}
	return s, nil
}

// MarshalRequest returns the <pubkeys/> request element.
func MarshalRequest(r Request) ([]byte, error) {
	ns, err := space(r.Space)
	if err != nil {
		return nil, err
	}
	if len(r.Fingerprints) > maxFPs {
		return nil, fmt.Errorf("pubkeys: more than %d fingerprints", maxFPs)
	}
	var b bytes.Buffer
	b.WriteString("<pubkeys xmlns='" + ns + "'")
	if err := checkText(r.JID, maxJID); err != nil {
		return nil, err
	}
	attr(&b, "jid", r.JID)
	if len(r.Fingerprints) == 0 {
		b.WriteString("/>")
		return b.Bytes(), nil
	}
	b.WriteByte('>')
	for _, f := range r.Fingerprints {
		if _, err := hex.DecodeString(f.Value); err != nil || f.Value == "" {
			return nil, fmt.Errorf("pubkeys: fingerprint %q is not hex", f.Value)
		}
		if err := checkText(f.Algo, 32); err != nil {
			return nil, err
		}
		b.WriteString("<fingerprint")
		attr(&b, "algo", f.Algo)
		b.WriteByte('>')
		b.WriteString(f.Value)
		b.WriteString("</fingerprint>")
	}
	b.WriteString("</pubkeys>")
	return b.Bytes(), nil
}

// ParseRequest decodes a <pubkeys/> request in any accepted namespace: optional jid, up to 8
// <fingerprint algo> children with hex values (PK-6), nothing else.
func ParseRequest(p []byte) (Request, error) {
	root, err := parse(p, limits{MaxBytes: 8 << 10, MaxDepth: 2, MaxElems: 1 + maxFPs, MaxAttrs: 4})
	if err != nil {
		return Request{}, err
	}
	if root.Name.Local != "pubkeys" || !knownSpace(root.Name.Space) {
		return Request{}, badRequest("not a pubkeys request")
	}
	r := Request{Space: root.Name.Space}
	r.JID, _ = root.AttrValue("", "jid")
	if len(r.JID) > maxJID {
		return Request{}, badRequest("jid too long")
	}
	for _, k := range root.Kids {
		if k.Name != (xml.Name{Space: root.Name.Space, Local: "fingerprint"}) || len(k.Kids) != 0 {
			return Request{}, badRequest("unexpected element in pubkeys request")
		}
		var f Fingerprint
		f.Algo, _ = k.AttrValue("", "algo")
		f.Value = strings.Trim(k.Text.String(), " \t\r\n")
		if len(f.Algo) > 32 || len(f.Value) > 128 || f.Value == "" {
			return Request{}, badRequest("bad fingerprint")
		}
		if _, err := hex.DecodeString(strings.ReplaceAll(f.Value, ":", "")); err != nil {
			return Request{}, badRequest("fingerprint is not hex")
		}
		r.Fingerprints = append(r.Fingerprints, f)
	}
	return r, nil
}

// MarshalKeys returns the <pubkeys/> answer element. Empty names are filled in with Name(Cert).
func MarshalKeys(k Keys) ([]byte, error) {
	ns, err := space(k.Space)
	if err != nil {
		return nil, err
	}
	if len(k.Keys) > MaxKeys {
		return nil, fmt.Errorf("pubkeys: more than %d keys", MaxKeys)
	}
	if err := checkText(k.JID, maxJID); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString("<pubkeys xmlns='" + ns + "'")
	attr(&b, "jid", k.JID)
	if len(k.Keys) == 0 {
		b.WriteString("/>")
		return b.Bytes(), nil
	}
	b.WriteByte('>')
	for _, ki := range k.Keys {
		if len(ki.Cert) == 0 || len(ki.Cert) > MaxCertSize {
			return nil, fmt.Errorf("pubkeys: certificate of %d bytes", len(ki.Cert))
		}
		name := ki.Name
		if name == "" {
			name = Name(ki.Cert)
		}
		if err := checkText(ki.JID, maxJID); err != nil {
			return nil, err
		}
		if err := checkText(name, maxName); err != nil {
			return nil, err
		}
		b.WriteString("<keyinfo")
		attr(&b, "jid", ki.JID)
		b.WriteString("><name>")
		escText(&b, name)
		b.WriteString("</name><x509cert>")
		b.WriteString(base64.StdEncoding.EncodeToString(ki.Cert))
		b.WriteString("</x509cert></keyinfo>")
	}
	b.WriteString("</pubkeys>")
	return b.Bytes(), nil
}

// ParseKeys decodes a <pubkeys/> answer in any accepted namespace. Each <keyinfo/> needs one
// <x509cert/> holding strict Base64 (XML whitespace stripped first, anything else outside the
// alphabet rejected, ERR-5) of a DER certificate of at most 16 KiB that crypto/x509 parses;
// <name/> is optional and kept as received; <signature/> is ignored; a <keyinfo/> with
// <pgpdata/> instead of a certificate is skipped (OpenPGP is not supported). At most 8
// <keyinfo/> elements.
func ParseKeys(p []byte) (Keys, error) {
	root, err := parse(p, pkLimits)
	if err != nil {
		return Keys{}, err
	}
	if root.Name.Local != "pubkeys" || !knownSpace(root.Name.Space) {
		return Keys{}, badRequest("not a pubkeys answer")
	}
	ns := root.Name.Space
	k := Keys{Space: ns}
	k.JID, _ = root.AttrValue("", "jid")
	if len(k.JID) > maxJID {
		return Keys{}, badRequest("jid too long")
	}
	if len(root.Kids) > MaxKeys {
		return Keys{}, badRequest("more than %d keyinfo elements", MaxKeys)
	}
	for _, kn := range root.Kids {
		if kn.Name != (xml.Name{Space: ns, Local: "keyinfo"}) {
			return Keys{}, badRequest("unexpected element in pubkeys")
		}
		var (
			ki           KeyInfo
			certs, names int
			pgp          bool
		)
		ki.JID, _ = kn.AttrValue("", "jid")
		if len(ki.JID) > maxJID {
			return Keys{}, badRequest("jid too long")
		}
		for _, c := range kn.Kids {
			if c.Name.Space != ns {
				return Keys{}, badRequest("unexpected element in keyinfo")
			}
			switch c.Name.Local {
			case "name":
				names++
				if len(c.Kids) != 0 || c.Text.Len() > maxName {
					return Keys{}, badRequest("bad name")
				}
				ki.Name = strings.Trim(c.Text.String(), " \t\r\n")
			case "x509cert":
				certs++
				if len(c.Kids) != 0 {
					return Keys{}, badRequest("x509cert with children")
				}
				der, err := decodeBase64(c.Text.String(), MaxCertSize)
				if err != nil {
					return Keys{}, err
				}
				if _, err := x509.ParseCertificate(der); err != nil {
					return Keys{}, badRequest("x509cert is not a certificate")
				}
				ki.Cert = der
			case "pgpdata":
				pgp = true
			case "signature":
				// XEP-0189 0.9 signatures over the key; not used (trust comes from XTLS).
			default:
				return Keys{}, badRequest("unexpected element in keyinfo")
			}
		}
		if names > 1 || certs > 1 || certs == 0 && !pgp || certs == 1 && pgp {
			return Keys{}, badRequest("keyinfo needs exactly one x509cert or pgpdata")
		}
		if certs == 1 {
			k.Keys = append(k.Keys, ki)
		}
	}
	return k, nil
}

// decodeBase64 strips XML whitespace (SP, TAB, CR, LF) and decodes the rest as strict padded
// Base64 (RFC 4648 §4), at most max bytes; anything else is rejected (ERR-5).
func decodeBase64(s string, max int) ([]byte, error) {
	if len(s) > (max/3+1)*4*2 {
		return nil, badRequest("base64 data too long")
	}
	clean := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '+', c == '/', c == '=':
			clean = append(clean, c)
		default:
			return nil, badRequest("character outside the base64 alphabet")
		}
	}
	if len(clean) == 0 || len(clean)%4 != 0 {
		return nil, badRequest("base64 length")
	}
	der, err := base64.StdEncoding.Strict().DecodeString(string(clean))
	if err != nil {
		return nil, badRequest("bad base64")
	}
	if len(der) > max {
		return nil, badRequest("certificate larger than %d bytes", max)
	}
	return der, nil
}

func checkText(s string, max int) error {
	if len(s) > max {
		return fmt.Errorf("pubkeys: value too long")
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("pubkeys: invalid UTF-8")
	}
	for _, r := range s {
		if !(r == 0x09 || r == 0x0A || r == 0x0D || r >= 0x20 && r <= 0xD7FF ||
			r >= 0xE000 && r <= 0xFFFD || r >= 0x10000 && r <= 0x10FFFF) {
			return fmt.Errorf("pubkeys: character %U not allowed in XML", r)
		}
	}
	return nil
}

// matches reports whether der is selected by f (PK-6); hex is compared case-insensitively,
// colons ignored.
func matches(f Fingerprint, der []byte) bool {
	v := strings.ToLower(strings.ReplaceAll(f.Value, ":", ""))
	switch strings.ToLower(f.Algo) {
	case "sha-256", "":
		sum := sha256.Sum256(der)
		return v == hex.EncodeToString(sum[:])
	case "sha-1", "sha1":
		return v == sha1Hex(der)
	}
	return false
}
