package xtls

import (
	"crypto/rsa"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"fmt"
)

// PinSource is the part of a TrustStore the TLS verification needs.
type PinSource interface {
	Pins(peer string) ([]Pin, error)
}

// ClientConfig returns the tls.Config of the Jingle initiator, which is the TLS client
// (XTLS-3), for a session with the bare JID peer using method (MethodX509 or MethodSRP):
// TLS 1.3 only, no session resumption, our certificate, and, because peers use self-signed
// certificates, InsecureSkipVerify together with a VerifyConnection that does the real check
// (GO-5, GO-6):
//
//   - x509: the peer's certificate must be one of the fingerprints pinned for peer in pins,
//     compared in constant time (XTLS-D4); otherwise the handshake fails with a *PinError.
//   - srp: any single, self-signed Ed25519 / ECDSA P-256 certificate is accepted for now; it is
//     available afterwards from PeerFingerprint, and XSRP (ClientXSRP) decides whether it is
//     trusted (XTLS-D6). Nothing may be read from or written to the connection before XSRP
//     succeeded.
//
// GO-7: a TLS 1.3 client's Handshake returns before the server has checked the client's
// certificate. The initiator knows the transport is secured only after it has read something
// authenticated from the responder: the XSRP server proof (srp) or the responder's first
// application bytes (x509).
func ClientConfig(id *Identity, peer, method string, pins PinSource) (*tls.Config, error) {
	c, err := baseConfig(id, peer, method, pins)
	if err != nil {
		return nil, err
	}
	c.InsecureSkipVerify = true // only together with verifyPeer in VerifyConnection
	return c, nil
}

// ServerConfig returns the tls.Config of the Jingle responder, the TLS server (XTLS-3). It
// sends a CertificateRequest and requires a client certificate (XTLS-4) without chain
// validation (RequireAnyClientCert); VerifyConnection applies the same per-method policy as
// ClientConfig.
func ServerConfig(id *Identity, peer, method string, pins PinSource) (*tls.Config, error) {
	c, err := baseConfig(id, peer, method, pins)
	if err != nil {
		return nil, err
	}
	c.ClientAuth = tls.RequireAnyClientCert
	return c, nil
}

func baseConfig(id *Identity, peer, method string, pins PinSource) (*tls.Config, error) {
	bare, err := BareJID(peer)
	if err != nil {
		return nil, err
	}
	switch method {
	case MethodX509:
		if pins == nil {
			return nil, fmt.Errorf("xtls: x509 needs a pin source")
		}
	case MethodSRP:
	default:
		return nil, fmt.Errorf("xtls: unsupported method %.32q", method)
	}
	return &tls.Config{
		MinVersion:             tls.VersionTLS13, // XTLS-D5
		MaxVersion:             tls.VersionTLS13,
		Certificates:           []tls.Certificate{id.Certificate()},
		SessionTicketsDisabled: true,
		Renegotiation:          tls.RenegotiateNever,
		VerifyConnection: func(cs tls.ConnectionState) error {
			return verifyPeer(cs, bare, method, pins)
		},
	}, nil
}

// verifyPeer is the VerifyConnection policy for both roles.
func verifyPeer(cs tls.ConnectionState, peer, method string, pins PinSource) error {
	if cs.Version != tls.VersionTLS13 {
		return fmt.Errorf("xtls: TLS version %#x, want TLS 1.3", cs.Version)
	}
	if cs.DidResume {
		return fmt.Errorf("xtls: session resumption is not allowed")
	}
	_, fp, err := peerCertificate(cs)
	if err != nil {
		return err
	}
	switch method {
	case MethodSRP:
		// XSRP decides (XTLS-D6); it checks the certificate with PeerFingerprint.
		return nil
	case MethodX509:
		list, err := pins.Pins(peer)
		if err != nil {
			return err
		}
		if !pinned(list, fp) {
			return &PinError{Peer: peer, Fingerprint: fp, Changed: len(list) > 0}
		}
		// The certificate is byte for byte one that was pinned, and CertificateVerify proved
		// the peer holds its key; checking its self-signature again would add a signature
		// verification to every handshake and no authentication (XSRP and the first pinning
		// check it, PeerFingerprint).
		return nil
	}
	return fmt.Errorf("xtls: unsupported method %.32q", method)
}

// pinned compares fp against every pin without an early exit.
func pinned(list []Pin, fp Fingerprint) bool {
	found := 0
	for _, p := range list {
		same := subtle.ConstantTimeCompare(p.Fingerprint.digest[:], fp.digest[:])
		if p.Fingerprint.algo != SHA256 {
			same = 0
		}
		found |= same
	}
	return found == 1
}

// PeerFingerprint returns the SHA-256 fingerprint of the single certificate the peer
// presented in cs. It fails with ErrCertificate unless the peer sent exactly one certificate,
// self-signed, with an Ed25519, ECDSA P-256 or RSA (at least 2048 bits, as other XTLS clients
// generate) key.
func PeerFingerprint(cs tls.ConnectionState) (Fingerprint, error) {
	c, fp, err := peerCertificate(cs)
	if err != nil {
		return Fingerprint{}, err
	}
	if err := selfSigned(c); err != nil {
		return Fingerprint{}, err
	}
	return fp, nil
}

// peerCertificate is PeerFingerprint without the signature check: exactly one certificate
// with an acceptable key, and its fingerprint.
func peerCertificate(cs tls.ConnectionState) (*x509.Certificate, Fingerprint, error) {
	if len(cs.PeerCertificates) != 1 {
		return nil, Fingerprint{}, fmt.Errorf("%w: %d certificates, want one", ErrCertificate, len(cs.PeerCertificates))
	}
	c := cs.PeerCertificates[0]
	if k, ok := c.PublicKey.(*rsa.PublicKey); ok {
		if k.N.BitLen() < 2048 {
			return nil, Fingerprint{}, fmt.Errorf("%w: RSA key of %d bits", ErrCertificate, k.N.BitLen())
		}
	} else if err := checkKey(c); err != nil {
		return nil, Fingerprint{}, err
	}
	return c, FingerprintOf(c.Raw), nil
}

func selfSigned(c *x509.Certificate) error {
	if err := c.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature); err != nil {
		return fmt.Errorf("%w: not self-signed: %v", ErrCertificate, err)
	}
	return nil
}
