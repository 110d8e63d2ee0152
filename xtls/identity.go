package xtls

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/text/secure/precis"
	"golang.org/x/text/unicode/norm"
)

// KeyType selects the key algorithm of a new Identity.
type KeyType int

// Key types. Ed25519 is the default (C2C-7 asks for a self-signed certificate per client;
// Ed25519 gives small, fast, deterministic signatures). ECDSA P-256 is for peers whose TLS
// stacks lack Ed25519 certificates.
const (
	KeyEd25519 KeyType = iota
	KeyECDSAP256
)

// identityValidity is how long a generated certificate is valid. Trust comes from pins, not
// from expiry; the long life avoids silent re-keying, which would break every pin.
const identityValidity = 20 * 365 * 24 * time.Hour

var (
	oidSubjectAltName = asn1.ObjectIdentifier{2, 5, 29, 17}
	oidXMPPAddr       = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 8, 5} // id-on-xmppAddr, RFC 6120 §13.7.1.4
)

// Identity is a client's long-term TLS identity: a self-signed certificate that names the
// user's bare JID as id-on-xmppAddr (otherName, UTF8String, RFC 6120 §13.7.1.4) and as the URI
// SAN "xmpp:<bare JID>", with its private key (XTLS-24, C2C-7).
type Identity struct {
	cert tls.Certificate // Leaf is set
	jid  string
}

// NewIdentity creates a fresh self-signed identity for the bare JID (a full JID is reduced to
// its bare part).
func NewIdentity(jid string, kt KeyType) (*Identity, error) {
	bare, err := BareJID(jid)
	if err != nil {
		return nil, err
	}
	var (
		priv crypto.Signer
		pub  crypto.PublicKey
	)
	switch kt {
	case KeyEd25519:
		p, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		pub, priv = p, k
	case KeyECDSAP256:
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		pub, priv = &k.PublicKey, k
	default:
		return nil, fmt.Errorf("xtls: unknown key type %d", kt)
	}
	san, err := xmppSAN(bare)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: bare},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(identityValidity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		ExtraExtensions:       []pkix.Extension{{Id: oidSubjectAltName, Value: san}},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &Identity{cert: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv, Leaf: leaf}, jid: bare}, nil
}

// xmppSAN encodes GeneralNames { otherName id-on-xmppAddr UTF8String, uniformResourceIdentifier "xmpp:" JID }.
func xmppSAN(bare string) ([]byte, error) {
	utf8, err := asn1.MarshalWithParams(bare, "utf8")
	if err != nil {
		return nil, err
	}
	oid, err := asn1.Marshal(oidXMPPAddr)
	if err != nil {
		return nil, err
	}
	explicit, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: utf8})
	if err != nil {
		return nil, err
	}
	other := asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: append(oid, explicit...)}
	uri := asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 6, Bytes: []byte("xmpp:" + bare)}
	return asn1.Marshal([]asn1.RawValue{other, uri})
}

// CertificateJIDs returns the id-on-xmppAddr names of cert (RFC 6120 §13.7.1.4), in order.
// Malformed SAN entries are skipped.
func CertificateJIDs(cert *x509.Certificate) []string {
	var out []string
	for _, ext := range cert.Extensions {
		if !ext.Id.Equal(oidSubjectAltName) {
			continue
		}
		var names []asn1.RawValue
		if rest, err := asn1.Unmarshal(ext.Value, &names); err != nil || len(rest) != 0 {
			continue
		}
		for _, n := range names {
			if n.Class != asn1.ClassContextSpecific || n.Tag != 0 || !n.IsCompound {
				continue
			}
			var oid asn1.ObjectIdentifier
			rest, err := asn1.Unmarshal(n.Bytes, &oid)
			if err != nil || !oid.Equal(oidXMPPAddr) {
				continue
			}
			var explicit asn1.RawValue
			if r, err := asn1.Unmarshal(rest, &explicit); err != nil || len(r) != 0 || explicit.Tag != 0 {
				continue
			}
			var s string
			if r, err := asn1.UnmarshalWithParams(explicit.Bytes, &s, "utf8"); err != nil || len(r) != 0 {
				continue
			}
			out = append(out, s)
		}
	}
	return out
}

// JID returns the bare JID the identity belongs to.
func (id *Identity) JID() string { return id.jid }

// Certificate returns the certificate and key for tls.Config.Certificates.
func (id *Identity) Certificate() tls.Certificate { return id.cert }

// Fingerprint returns the SHA-256 fingerprint of the certificate (XTLS-D1), the value that
// goes into <fingerprint/> and that peers pin.
func (id *Identity) Fingerprint() Fingerprint { return FingerprintOf(id.cert.Certificate[0]) }

// MarshalPEM returns the certificate ("CERTIFICATE") followed by the PKCS #8 private key
// ("PRIVATE KEY"). The output is secret: store it with mode 0600.
func (id *Identity) MarshalPEM() ([]byte, error) {
	key, err := x509.MarshalPKCS8PrivateKey(id.cert.PrivateKey)
	if err != nil {
		return nil, err
	}
	out := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: id.cert.Certificate[0]})
	return append(out, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key})...), nil
}

// LoadIdentity parses what MarshalPEM wrote. It checks that the key matches the certificate,
// that the key is Ed25519 or ECDSA P-256 and that the certificate names exactly one
// id-on-xmppAddr.
func LoadIdentity(data []byte) (*Identity, error) {
	cert, err := tls.X509KeyPair(data, data)
	if err != nil {
		return nil, fmt.Errorf("xtls: identity: %w", err)
	}
	if len(cert.Certificate) != 1 {
		return nil, errors.New("xtls: identity: want exactly one certificate")
	}
	leaf := cert.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, err
		}
		cert.Leaf = leaf
	}
	if err := checkKey(leaf); err != nil {
		return nil, err
	}
	jids := CertificateJIDs(leaf)
	if len(jids) != 1 {
		return nil, errors.New("xtls: identity: certificate must name exactly one id-on-xmppAddr")
	}
	return &Identity{cert: cert, jid: jids[0]}, nil
}

// checkKey accepts the key types this package generates.
func checkKey(c *x509.Certificate) error {
	switch k := c.PublicKey.(type) {
	case ed25519.PublicKey:
		return nil
	case *ecdsa.PublicKey:
		if k.Curve == elliptic.P256() {
			return nil
		}
	}
	return fmt.Errorf("%w: key type %T", ErrCertificate, c.PublicKey)
}

// BareJID returns the bare JID (localpart@domainpart, or domainpart) of jid, normalised so
// that both ends of a session compute the same SRP identity (XSRP-3): the resource is dropped,
// the localpart goes through the PRECIS UsernameCaseMapped profile (RFC 7622 §3.3), the
// domainpart is NFC-normalised, lowercased and loses a trailing dot. Full IDNA2008 mapping of
// domainparts is left to the XMPP server, which hands out JIDs already in canonical form.
func BareJID(jid string) (string, error) {
	if len(jid) > 3*1023+2 || !utf8.ValidString(jid) {
		return "", parseErrorf("jid: too long or not UTF-8")
	}
	if i := strings.IndexByte(jid, '/'); i >= 0 {
		jid = jid[:i]
	}
	local, domain, hasLocal := strings.Cut(jid, "@")
	if !hasLocal {
		local, domain = "", jid
	}
	domain = strings.TrimSuffix(strings.ToLower(norm.NFC.String(domain)), ".")
	if domain == "" || len(domain) > 1023 || strings.ContainsAny(domain, "@/ \t\r\n") ||
		strings.HasPrefix(domain, ".") || strings.HasSuffix(domain, ".") || strings.Contains(domain, "..") {
		return "", parseErrorf("jid: bad domainpart")
	}
	if !hasLocal {
		return domain, nil
	}
	l, err := precis.UsernameCaseMapped.String(local)
	if err != nil || l == "" || len(l) > 1023 || strings.ContainsAny(l, "\"&'/:<>@") {
		return "", parseErrorf("jid: bad localpart")
	}
	return l + "@" + domain, nil
}
