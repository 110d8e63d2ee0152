package jingle

import (
	"encoding/xml"
	"errors"
)

// Error is an XMPP stanza error (RFC 6120 §8.3) with an optional Jingle application condition
// of urn:xmpp:jingle:errors:1. The manager answers IQs with it (through the StanzaError method
// that the link maps to an IQ error), and errors received from the peer are converted to it, so
// errors.Is(err, ErrUnknownSession) works on both sides.
type Error struct {
	Type      string // cancel, modify, wait, auth or continue
	Condition string // RFC 6120 defined condition, e.g. "item-not-found"
	App       string // Jingle error condition in NSErrors, e.g. "unknown-session"; empty for none
	Text      string
}

// The Jingle error conditions with the stanza condition XEP-0166 pairs them with (J-37, J-41,
// ERR-1).
var (
	// ErrOutOfOrder: the request cannot be handled in the session's current state.
	ErrOutOfOrder = &Error{Type: "wait", Condition: "unexpected-request", App: "out-of-order"}
	// ErrTieBreak: the request lost a tie-break (J-34, J-35).
	ErrTieBreak = &Error{Type: "cancel", Condition: "conflict", App: "tie-break"}
	// ErrUnknownSession: the session is unknown or ended (J-25, J-38).
	ErrUnknownSession = &Error{Type: "cancel", Condition: "item-not-found", App: "unknown-session"}
	// ErrUnsupportedInfo: an informational payload is not understood (J-28).
	ErrUnsupportedInfo = &Error{Type: "modify", Condition: "feature-not-implemented", App: "unsupported-info"}
	// ErrSecurityRequired: information arrived over the unsecured channel (J-41, XTLS-20).
	ErrSecurityRequired = &Error{Type: "cancel", Condition: "not-acceptable", App: "security-required"}
	// ErrBadRequest: the element is malformed or violates XEP-0166 (J-7, J-12, J-13, J-19).
	ErrBadRequest = &Error{Type: "cancel", Condition: "bad-request"}
)

// Error implements error.
func (e *Error) Error() string {
	s := "jingle: " + e.Condition
	if e.App != "" {
		s += " (" + e.App + ")"
	}
	if e.Text != "" {
		s += ": " + e.Text
	}
	return s
}

// StanzaError reports the parts of the IQ error: the behaviour the link maps to a stanza error.
func (e *Error) StanzaError() (typ, condition string, app xml.Name, text string) {
	if e.App != "" {
		app = xml.Name{Space: NSErrors, Local: e.App}
	}
	return e.Type, e.Condition, app, e.Text
}

// Is reports whether target is an *Error with the same condition and application condition;
// empty fields of target match anything, and Type and Text are never compared (SPEC §3.4:
// never branch on the error type).
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	if !ok {
		return false
	}
	return (t.Condition == "" || t.Condition == e.Condition) && (t.App == "" || t.App == e.App)
}

func (e *Error) with(text string) *Error {
	c := *e
	c.Text = text
	return &c
}

func badRequest(text string) *Error { return ErrBadRequest.with(text) }

func outOfOrder(text string) *Error { return ErrOutOfOrder.with(text) }

type stanzaErrorer interface {
	StanzaError() (typ, condition string, app xml.Name, text string)
}

// peerError converts an error returned by Link.Request that carries a stanza error into an
// *Error (wrapped so that the original stays reachable); other errors are returned unchanged.
func peerError(err error) error {
	var se stanzaErrorer
	if err == nil || !errors.As(err, &se) {
		return err
	}
	if _, ok := se.(*Error); ok {
		return err
	}
	typ, cond, app, text := se.StanzaError()
	e := &Error{Type: typ, Condition: cond, Text: text}
	if app.Space == NSErrors {
		e.App = app.Local
	}
	return &wrapped{e: e, orig: err}
}

type wrapped struct {
	e    *Error
	orig error
}

func (w *wrapped) Error() string   { return w.e.Error() }
func (w *wrapped) Unwrap() []error { return []error{w.e, w.orig} }
