package ibb

import (
	"encoding/xml"
	"errors"
)

// Error is an XEP-0047 protocol error: the stanza error condition (RFC 6120 §8.3) that is, or
// would be, answered to the peer, with a human-readable reason. It is what the IQ handlers
// return to the link, and what Read and Write report when the peer broke the protocol.
//
// errors.Is matches two *Error values by Condition, so errors.Is(err, ibb.ErrUnexpectedRequest)
// holds for every unexpected-request, whatever its text; a target with a Text also compares
// the text.
type Error struct {
	Type      string // cancel, modify, wait, auth
	Condition string // e.g. bad-request, item-not-found, unexpected-request
	Text      string
}

// Sentinel errors, one per condition this package answers (IBB-4, IBB-12, IBB-16, JIBB-3).
var (
	ErrBadRequest         = &Error{Type: "cancel", Condition: "bad-request"}
	ErrItemNotFound       = &Error{Type: "cancel", Condition: "item-not-found"}
	ErrUnexpectedRequest  = &Error{Type: "cancel", Condition: "unexpected-request"}
	ErrResourceConstraint = &Error{Type: "modify", Condition: "resource-constraint"}
	ErrNotAcceptable      = &Error{Type: "cancel", Condition: "not-acceptable"}
	ErrNotImplemented     = &Error{Type: "cancel", Condition: "feature-not-implemented"}
)

// Local stream failures. They are reported by Read and Write (wrapped) after the bytestream
// was closed because of them (IBB-14); errors.Is also matches the condition sent to the peer.
var (
	// ErrDuplicateSeq: a seq arrived that was already used (IBB-12: unexpected-request).
	ErrDuplicateSeq = &Error{Type: "cancel", Condition: "unexpected-request", Text: "seq already used"}
	// ErrSeqGap: a seq arrived further ahead than the receive window (IBB-14).
	ErrSeqGap = &Error{Type: "cancel", Condition: "unexpected-request", Text: "seq gap wider than the receive window"}
	// ErrGapTimeout: a missing seq did not arrive within Config.ReorderTimeout (IBB-14).
	ErrGapTimeout = errors.New("ibb: missing block did not arrive in time")
	// ErrUnexpectedClose: the peer closed the bytestream while blocks were missing.
	ErrUnexpectedClose = errors.New("ibb: closed by peer with blocks missing")
)

func (e *Error) Error() string {
	s := "ibb: " + e.Condition
	if e.Text != "" {
		s += ": " + e.Text
	}
	return s
}

// Is reports whether target is an *Error with the same condition and, when target has a
// Text (ErrDuplicateSeq, ErrSeqGap), the same text.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Condition == e.Condition && (t.Text == "" || t.Text == e.Text)
}

// StanzaError reports the stanza error sent to the peer (the link's error behaviour).
func (e *Error) StanzaError() (typ, condition string, app xml.Name, text string) {
	return e.Type, e.Condition, xml.Name{}, e.Text
}

func badRequest(text string) *Error {
	return &Error{Type: "cancel", Condition: "bad-request", Text: text}
}

func withText(e *Error, text string) *Error {
	return &Error{Type: e.Type, Condition: e.Condition, Text: text}
}

// stanzaErrorer is the behaviour of stanza errors returned by the link.
type stanzaErrorer interface {
	StanzaError() (typ, condition string, app xml.Name, text string)
}

// RemoteError is a stanza error the peer (or its server) answered to one of our requests.
type RemoteError struct {
	Op  string // "open", "data" or "close"
	Err error  // the link's error; it has a StanzaError method
}

func (e *RemoteError) Error() string { return "ibb: peer rejected " + e.Op + ": " + e.Err.Error() }

// Unwrap returns the link's error.
func (e *RemoteError) Unwrap() error { return e.Err }

// Is matches an *Error with the same condition as the peer's stanza error.
func (e *RemoteError) Is(target error) bool {
	t, ok := target.(*Error)
	if !ok {
		return false
	}
	var se stanzaErrorer
	if !errors.As(e.Err, &se) {
		return false
	}
	_, cond, _, _ := se.StanzaError()
	return cond == t.Condition
}
