package main

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"

	"github.com/xtlsjingle/xtlsjingle/gosrcxmpp"
	"github.com/xtlsjingle/xtlsjingle/xtls"
)

// Exit codes (documented in the help text; scripts rely on them).
const (
	exitOK       = 0
	exitUsage    = 1 // bad flags, missing password source, unusable config directory
	exitConnect  = 2 // cannot connect or log in to the XMPP server, or lost it
	exitSecurity = 3 // security failure: certificate changed, wrong shared password, attack
	exitPeer     = 4 // the peer declined, is offline, or does not support XTLS
	exitSession  = 5 // the session failed after it was set up, or timed out
)

// exitError carries an exit code and a hint that says what to do next.
type exitError struct {
	code int
	err  error
	hint string
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usageErr(err error) error { return &exitError{code: exitUsage, err: err} }

func usagef(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

// exitCode maps an error to the exit status of xtlschat.
func exitCode(err error) int {
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	var pe *xtls.PinError
	var xe *xtls.Error
	switch {
	case errors.As(err, &xe) && xe.Condition == "security-error":
		return exitSecurity
	case errors.As(err, &pe), errors.Is(err, xtls.ErrXSRPFailed), errors.Is(err, xtls.ErrDowngrade),
		errors.Is(err, xtls.ErrCertificate), errors.Is(err, xtls.ErrPeerHasXTLS):
		return exitSecurity
	case errors.Is(err, xtls.ErrNotSupported), errors.Is(err, xtls.ErrNoMethod), errors.Is(err, xtls.ErrBackoff):
		return exitPeer
	case errors.Is(err, gosrcxmpp.ErrDisconnected), errors.Is(err, gosrcxmpp.ErrClosed):
		return exitConnect
	case errors.Is(err, context.DeadlineExceeded):
		return exitSession
	}
	if errors.As(err, &xe) {
		switch xe.Condition {
		case "decline", "busy", "unsupported-applications", "unsupported-transports", "incompatible-parameters":
			return exitPeer
		}
		return exitSession
	}
	if sc := stanzaCondition(err); sc != "" {
		switch sc {
		case "service-unavailable", "item-not-found", "recipient-unavailable", "remote-server-not-found", "feature-not-implemented", "forbidden", "not-acceptable":
			return exitPeer
		}
	}
	return exitSession
}

// describe turns an error into a sentence for people, with the security meaning spelled out.
// Errors can carry text from peers (a session-terminate reason), so the result is escaped for
// the terminal.
func describe(err error) string { return escapeTerminal(describeRaw(err)) }

func describeRaw(err error) string {
	var pe *xtls.PinError
	switch {
	case errors.As(err, &pe) && pe.Changed:
		return fmt.Sprintf("certificate of %s changed — session refused (it presented %s, which you have not pinned; if %s really has a new certificate, compare it out of band and /verify it)", pe.Peer, pe.Fingerprint.Groups(), pe.Peer)
	case errors.As(err, &pe):
		return fmt.Sprintf("%s is not verified yet — session refused (open it with a shared password: --method srp, or compare its fingerprint out of band and /verify it)", pe.Peer)
	case errors.Is(err, xtls.ErrXSRPFailed):
		return "password check failed: wrong shared password or an attack — session refused, nothing was pinned"
	}
	var pn *plaintextNeeded
	if errors.As(err, &pn) {
		return pn.peer + " has no end-to-end encryption: its client does not support XTLS (or it is offline: use its full JID). " +
			"The file was not sent. To send this one file unencrypted anyway — readable by the servers in between — " + pn.how
	}
	var xe *xtls.Error
	if errors.As(err, &xe) && xe.Condition == "security-error" && xe.Text != "" {
		by := ""
		if xe.Remote {
			by = " (reported by the peer)"
		}
		return "security error with " + xe.Peer + by + ": " + xe.Text
	}
	switch {
	case errors.Is(err, xtls.ErrNoMethod):
		return "this peer is not verified yet: agree on a one-time shared password with it (out of band) and open with --method srp, or /verify its fingerprint"
	case errors.Is(err, xtls.ErrNotSupported):
		return "the peer's client does not support XTLS end-to-end sessions (or is offline: use its full JID, e.g. juliet@example.org/phone)"
	case errors.Is(err, xtls.ErrDowngrade):
		return "the peer no longer advertises XTLS although you have pinned it before — possible downgrade attack; session refused (nothing is ever sent unencrypted to a pinned peer, even with --allow-plaintext)"
	case errors.Is(err, xtls.ErrPeerHasXTLS):
		return "the peer supports XTLS, so nothing is sent to it unencrypted; fix the XTLS problem instead"
	}
	var ee *exitError
	if errors.As(err, &ee) && ee.hint != "" {
		return ee.err.Error() + " — " + ee.hint
	}
	return err.Error()
}

// stanzaCondition returns the RFC 6120 condition of a stanza error in err's chain, or "".
func stanzaCondition(err error) string {
	var se interface {
		StanzaError() (typ, condition string, app xml.Name, text string)
	}
	if errors.As(err, &se) {
		_, cond, _, _ := se.StanzaError()
		return cond
	}
	return ""
}
