package socks5

import (
	"encoding/xml"
	"errors"
	"fmt"
)

// Error is a protocol error of this package that maps to an XMPP stanza error: a malformed or
// unacceptable element from a peer, or a refusal. It satisfies the StanzaError behaviour that
// the link turns into an IQ error.
type Error struct {
	Type      string // auth, cancel, continue, modify or wait
	Condition string // RFC 6120 defined condition, e.g. bad-request
	Text      string // human-readable detail (sent to the peer)
}

func (e *Error) Error() string {
	if e.Text == "" {
		return "socks5: " + e.Condition
	}
	return "socks5: " + e.Condition + ": " + e.Text
}

// StanzaError reports the stanza error the link sends for e.
func (e *Error) StanzaError() (typ, condition string, app xml.Name, text string) {
	return e.Type, e.Condition, xml.Name{}, e.Text
}

func badRequest(format string, args ...any) *Error {
	return &Error{Type: "modify", Condition: "bad-request", Text: fmt.Sprintf(format, args...)}
}

// ReplyError is a SOCKS5 reply with a non-zero REP field (RFC 1928 §6): the streamhost refused
// the CONNECT request.
type ReplyError struct {
	Code byte // REP: 1 general failure, 2 not allowed, 3 network unreachable, 4 host unreachable, 5 refused, …
}

func (e *ReplyError) Error() string {
	return fmt.Sprintf("socks5: streamhost replied %d (%s)", e.Code, replyText(e.Code))
}

func replyText(code byte) string {
	switch code {
	case 1:
		return "general failure"
	case 2:
		return "connection not allowed by ruleset"
	case 3:
		return "network unreachable"
	case 4:
		return "host unreachable"
	case 5:
		return "connection refused"
	case 6:
		return "TTL expired"
	case 7:
		return "command not supported"
	case 8:
		return "address type not supported"
	}
	return "unassigned"
}

// ErrProtocol is wrapped by every error about malformed SOCKS5 bytes from the other side.
var ErrProtocol = errors.New("socks5: protocol violation")

// ErrNoConnection is wrapped by the error of JingleTransport.Establish when neither side could
// connect to a candidate of the other (both sent <candidate-error/>, JS5B-11 a), or when the
// nominated proxy could not be used (<proxy-error/>, JS5B-13). The initiator then replaces the
// transport (transport-replace to IBB) or terminates with <connectivity-error/> (JS5B-14).
var ErrNoConnection = errors.New("socks5: no usable candidate")
