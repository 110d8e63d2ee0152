package main

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/xtlsjingle/xtlsjingle/p2p"
	"github.com/xtlsjingle/xtlsjingle/xmlstream"
	"github.com/xtlsjingle/xtlsjingle/xtls"
)

// maxShownText bounds how much of one peer message is printed.
const maxShownText = 16 << 10

// chatMessage is a one-to-one chat message inside the end-to-end stream.
type chatMessage struct {
	XMLName xml.Name `xml:"jabber:client message"`
	Type    string   `xml:"type,attr,omitempty"`
	Body    string   `xml:"body"`
}

// sendChat sends text as a chat message over the session's end-to-end stream.
func sendChat(ctx context.Context, s *xtls.Session, text string) error {
	return s.Stream.Encode(ctx, chatMessage{Type: "chat", Body: text})
}

// recvChat returns the body of the next chat message from the peer, skipping presences and
// messages without a body. It returns io.EOF when the peer closed the stream in order.
func recvChat(ctx context.Context, s *xtls.Session) (string, error) {
	for {
		st, err := s.Stream.Next(ctx)
		if err != nil {
			return "", err
		}
		if st.Name.Local != "message" {
			continue
		}
		var m chatMessage
		if err := st.Decode(&m); err != nil || m.Body == "" {
			continue
		}
		if len(m.Body) > maxShownText {
			m.Body = m.Body[:maxShownText] + "…"
		}
		return m.Body, nil
	}
}

// openOptions are the per-session choices of /open and "xtlschat open".
type openOptions struct {
	peer, transport, method, password string
	timeout                           time.Duration
}

// errNotPinned: --method x509 for a peer whose certificate is not pinned.
var errNotPinned = errors.New("x509 needs the peer's certificate pinned")

// openSession opens a session as o asks: method x509 never sends a password (so only a
// pinned certificate gets through); srp and auto give the shared password to xtls, which uses
// x509 anyway when the peer is pinned and its certificate matches (XTLS-D3).
func openSession(ctx context.Context, eng engine, st *store, o openOptions) (*xtls.Session, error) {
	xo, err := xtlsOpenOptions(st, o)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	return eng.Open(ctx, o.peer, xo)
}

// xtlsOpenOptions turns the choices of o into the options of Open (and OpenConn, files.go).
func xtlsOpenOptions(st *store, o openOptions) (*xtls.OpenOptions, error) {
	bare, err := xtls.BareJID(o.peer)
	if err != nil {
		return nil, usagef("%q is not a JID: %v", o.peer, err)
	}
	pins, err := st.trust.Pins(bare)
	if err != nil {
		return nil, err
	}
	var xo xtls.OpenOptions
	tp := transportPolicy(o.transport)
	xo.Transports = &tp
	switch o.method {
	case xtls.MethodX509:
		if len(pins) == 0 {
			return nil, &exitError{code: exitPeer, err: fmt.Errorf("%s: %w", bare, errNotPinned),
				hint: "verify the peer first: open with --method srp and a shared password, or compare its fingerprint and /verify it"}
		}
	case xtls.MethodSRP:
		if o.password == "" {
			return nil, usagef("--method srp needs a shared password: $%s or --shared-password-file", envSharedPassword)
		}
		xo.Password = o.password
	default:
		xo.Password = o.password
	}
	return &xo, nil
}

// sessionEvent describes an established session for the scriptable output and the UI.
func sessionEvent(st *store, s *xtls.Session) (session event, pinned *event) {
	session, pinned = securedEvent(st, s.Peer, s.Method, s.Transport, s.PeerFingerprint, s.Pinned)
	return withPath(session, s.Path, s.KeyHint), pinned
}

// withPath adds which candidate won and the published-key hint to a session event.
func withPath(e event, path string, hint p2p.KeyHint) event {
	e.Route, e.KeyHint = path, hint.String()
	return e
}

// pathText describes a Session.Path for the terminal.
func pathText(path string) string {
	switch path {
	case xtls.PathDirectLocal:
		return "direct, local network"
	case xtls.PathDirectExternal:
		return "direct, across the Internet"
	case xtls.PathProxy:
		return "via the server's SOCKS5 proxy"
	case xtls.PathIBB:
		return "in-band through the servers"
	}
	return path
}

// keyHintText describes a published-key hint for the terminal (never a verification).
func keyHintText(h p2p.KeyHint) string {
	switch h {
	case p2p.KeyHintMatches:
		return "the key published in its presence matches the TLS certificate (a hint, not a verification)"
	case p2p.KeyHintDiffers:
		return "the key published in its presence DIFFERS from the TLS certificate (the pin or password decides; the server can change presence)"
	}
	return "no key published in its presence"
}

// securedEvent describes a secured session or transfer (sessionEvent, files.go).
func securedEvent(st *store, peer, method, transport string, fp xtls.Fingerprint, isPinned bool) (session event, pinned *event) {
	bare, _ := xtls.BareJID(peer)
	session = event{
		Event:       evSession,
		Peer:        peer,
		Method:      method,
		Transport:   transport,
		Fingerprint: fp.Groups(),
		NI:          fp.NI(),
		Verified:    string(verification(st, bare, fp)),
	}
	if isPinned {
		pinned = &event{Event: evPinned, Peer: bare, Fingerprint: session.Fingerprint, NI: session.NI, Verified: session.Verified}
	}
	return session, pinned
}

// verification returns how fp is pinned for bare ("" when it is not).
func verification(st *store, bare string, fp xtls.Fingerprint) xtls.Verification {
	pins, _ := st.trust.Pins(bare)
	for _, p := range pins {
		if p.Fingerprint.Equal(fp) {
			return p.Verified
		}
	}
	return ""
}

// sessionOutcome returns why s ended after recvChat failed with recvErr: nil for an orderly
// close by either side. The session's own verdict (Err) wins; it is awaited briefly because
// the stream can report its end before the session has recorded why.
func sessionOutcome(s *xtls.Session, recvErr error) error {
	select {
	case <-s.Done():
		return s.Err()
	case <-time.After(2 * time.Second):
	}
	s.Close()
	if err := s.Err(); err != nil {
		return err
	}
	if errors.Is(recvErr, io.EOF) || errors.Is(recvErr, xmlstream.ErrClosed) {
		return nil
	}
	return recvErr
}

// closeReason describes how a session ended.
func closeReason(err error) string {
	if err == nil || errors.Is(err, io.EOF) {
		return "success"
	}
	return describe(err)
}
