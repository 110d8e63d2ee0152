package xtls

import (
	"encoding/xml"
	"errors"
	"fmt"
)

// ParseError reports malformed peer input: a <security/> element, a fingerprint, an ni URI or
// an XSRP message. As an IQ error it is modify/bad-request (StanzaError); inside the TLS
// tunnel it ends the session with <security-error/>.
type ParseError struct {
	Msg string
}

func (e *ParseError) Error() string { return "xtls: " + e.Msg }

// StanzaError maps the error to the XMPP stanza error modify/bad-request.
func (e *ParseError) StanzaError() (typ, condition string, app xml.Name, text string) {
	return "modify", "bad-request", xml.Name{}, e.Msg
}

func parseErrorf(format string, args ...any) error {
	return &ParseError{Msg: fmt.Sprintf(format, args...)}
}

// PinError reports that a peer's TLS certificate is not one of the fingerprints pinned for
// its bare JID (XTLS-D4). Changed is true when other fingerprints are pinned for that JID
// (the peer's certificate changed, or an attacker sits in between), false when nothing is
// pinned at all.
type PinError struct {
	Peer        string      // bare JID of the peer
	Fingerprint Fingerprint // what the peer presented
	Changed     bool
}

func (e *PinError) Error() string {
	if e.Changed {
		return fmt.Sprintf("xtls: certificate of %s changed: %s is not pinned (possible attack)", e.Peer, e.Fingerprint.NI())
	}
	return fmt.Sprintf("xtls: certificate %s of %s is not pinned", e.Fingerprint.NI(), e.Peer)
}

// ErrCertificate reports a peer certificate this package cannot use at all: none, more than
// one, unparsable, not self-signed where one is required, or a key type other than Ed25519 /
// ECDSA P-256.
var ErrCertificate = errors.New("xtls: unusable peer certificate")

// ErrTrustStoreCorrupt is wrapped by errors a TrustStore returns when its backing file is not
// a valid store. The file is left untouched for the user to inspect; it is never reset.
var ErrTrustStoreCorrupt = errors.New("xtls: trust store corrupt")
