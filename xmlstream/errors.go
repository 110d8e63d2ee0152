package xmlstream

import (
	"bytes"
	"encoding/xml"
	"errors"
	"github.com/xtlsjingle/xtlsjingle/internal/xmltree"
	"unicode/utf8"
)

// Errors returned by Stream methods.
var (
	// ErrClosed: the stream was closed (by Close, by the peer's </stream:stream>, or after a
	// stream error); nothing more can be sent.
	ErrClosed = errors.New("xmlstream: stream closed")
	// ErrCloseTimeout: Close sent </stream:stream> but the peer's did not arrive in time; both
	// streams are void (CORE-8).
	ErrCloseTimeout = errors.New("xmlstream: peer did not close the stream in time")
	// ErrInvalidStanza: Send was given something that is not one message, presence or iq
	// element in jabber:client, or is larger than the stanza size limit.
	ErrInvalidStanza = errors.New("xmlstream: invalid stanza")
	// ErrQueueFull: too many answers are waiting to be written because the peer does not read.
	errQueueFull = errors.New("xmlstream: write queue full")
)

// Stream error conditions (RFC 6120 §4.9.3) this package sends or expects (CORE-7).
const (
	BadFormat             = "bad-format"
	ConnectionTimeout     = "connection-timeout"
	HostUnknown           = "host-unknown"
	InvalidFrom           = "invalid-from"
	InvalidNamespace      = "invalid-namespace"
	NotWellFormed         = "not-well-formed"
	PolicyViolation       = "policy-violation"
	RestrictedXML         = "restricted-xml"
	UnsupportedEncoding   = "unsupported-encoding"
	UnsupportedStanzaType = "unsupported-stanza-type"
	UnsupportedVersion    = "unsupported-version"
	UndefinedCondition    = "undefined-condition"
)

// StreamError is an RFC 6120 stream error: fatal for the stream. Remote reports whether the
// peer sent it (<stream:error/> received) or this side detected the violation and sent it.
type StreamError struct {
	Condition string // e.g. "invalid-from"
	Text      string // optional human-readable detail
	Remote    bool
}

// Error implements error.
func (e *StreamError) Error() string {
	s := "xmlstream: stream error " + e.Condition
	if e.Remote {
		s = "xmlstream: peer sent stream error " + e.Condition
	}
	if e.Text != "" {
		s += ": " + e.Text
	}
	return s
}

// Is reports whether target is a *StreamError with the same condition (an empty condition in
// target matches any), so errors.Is(err, &StreamError{Condition: InvalidFrom}) works.
func (e *StreamError) Is(target error) bool {
	t, ok := target.(*StreamError)
	return ok && (t.Condition == "" || t.Condition == e.Condition)
}

// marshal returns <stream:error><COND xmlns='…streams'/>[<text/>]</stream:error>.
func (e *StreamError) marshal() []byte {
	var b bytes.Buffer
	b.WriteString("<stream:error><")
	b.WriteString(e.Condition)
	b.WriteString(" xmlns='" + NSStreamErrors + "'/>")
	if e.Text != "" {
		b.WriteString("<text xmlns='" + NSStreamErrors + "' xml:lang='en'>")
		escText(&b, e.Text)
		b.WriteString("</text>")
	}
	b.WriteString("</stream:error>")
	return b.Bytes()
}

func streamErr(cond, text string) *StreamError { return &StreamError{Condition: cond, Text: text} }

// StanzaError is an RFC 6120 stanza error (CORE-10) received in answer to Request, or returned
// by an IQ handler to be sent. It has the StanzaError behaviour the link adapters use.
type StanzaError struct {
	Type      string   // auth, cancel, continue, modify, wait
	Condition string   // e.g. service-unavailable
	App       xml.Name // application-specific condition; zero when none
	Text      string
}

// Error implements error.
func (e *StanzaError) Error() string {
	s := "xmlstream: stanza error " + e.Type + " " + e.Condition
	if e.App.Local != "" {
		s += " (" + e.App.Space + " " + e.App.Local + ")"
	}
	if e.Text != "" {
		s += ": " + e.Text
	}
	return s
}

// StanzaError reports the error's type, condition, application condition and text.
func (e *StanzaError) StanzaError() (typ, condition string, app xml.Name, text string) {
	return e.Type, e.Condition, e.App, e.Text
}

type stanzaErrorer interface {
	StanzaError() (typ, condition string, app xml.Name, text string)
}

// toStanzaError maps a handler's error: through the StanzaError behaviour, else
// internal-server-error without the text (which may hold internals).
func toStanzaError(err error) *StanzaError {
	var se stanzaErrorer
	if errors.As(err, &se) {
		typ, cond, app, text := se.StanzaError()
		if !validName(cond) {
			cond = UndefinedCondition
		}
		switch typ {
		case "auth", "cancel", "continue", "modify", "wait":
		default:
			typ = "cancel"
		}
		if app.Local != "" && (!validName(app.Local) || app.Space == "") {
			app = xml.Name{}
		}
		return &StanzaError{Type: typ, Condition: cond, App: app, Text: text}
	}
	return &StanzaError{Type: "wait", Condition: "internal-server-error"}
}

// marshal returns the <error/> element (CORE-10).
func (e *StanzaError) marshal() []byte {
	var b bytes.Buffer
	b.WriteString("<error type='")
	b.WriteString(e.Type)
	b.WriteString("'><")
	b.WriteString(e.Condition)
	b.WriteString(" xmlns='" + NSStanzaErrors + "'/>")
	if e.Text != "" && validChars(e.Text) {
		b.WriteString("<text xmlns='" + NSStanzaErrors + "'>")
		escText(&b, e.Text)
		b.WriteString("</text>")
	}
	if e.App.Local != "" {
		b.WriteString("<" + e.App.Local + " xmlns='")
		escAttr(&b, e.App.Space)
		b.WriteString("'/>")
	}
	b.WriteString("</error>")
	return b.Bytes()
}

// validName reports whether s is a plain XML NCName made of ASCII letters, digits, '-', '_'
// and '.' (all defined conditions are).
func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r == '_':
		case i > 0 && (r >= '0' && r <= '9' || r == '-' || r == '.'):
		default:
			return false
		}
	}
	return true
}

// validChars reports whether s holds only characters XML 1.0 allows.
func validChars(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !(r == 0x09 || r == 0x0A || r == 0x0D || r >= 0x20 && r <= 0xD7FF ||
			r >= 0xE000 && r <= 0xFFFD || r >= 0x10000 && r <= 0x10FFFF) {
			return false
		}
	}
	return true
}

// escAttr writes s escaped for a single-quoted attribute value.
func escAttr(b *bytes.Buffer, s string) { xmltree.EscAttr(b, s) }

// escText writes s escaped as character data.
func escText(b *bytes.Buffer, s string) { _ = xml.EscapeText(b, []byte(s)) }
