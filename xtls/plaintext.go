package xtls

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/xtlsjingle/xtlsjingle/disco"
	"github.com/xtlsjingle/xtlsjingle/ibb"
	"github.com/xtlsjingle/xtlsjingle/jingle"
	"github.com/xtlsjingle/xtlsjingle/socks5"
)

// This file is the one way this package carries an application's bytes unencrypted: a
// session of an Application (never xmlstream, XTLS-15) with a peer that does not advertise
// XTLS at all (XTLS-10: it answers without <security/>), opened or accepted only on the
// caller's explicit request for that one session. XTLS-15 lets the initiator proceed
// unencrypted when it asked the user; these are its rules here:
//
//   - a peer that advertises XTLS is never spoken to in plaintext: OpenPlaintext refuses with
//     ErrPeerHasXTLS, and an offer without <security/> from such a peer is refused with
//     <security-error/> (something stripped the precondition on the way);
//   - a peer with pinned certificates is never spoken to in plaintext either: OpenPlaintext
//     refuses with ErrDowngrade, and its offers without <security/> are refused with
//     <security-error/> (XTLS-25: support that disappears may be an attacker's doing);
//   - nothing happens by default: OpenConn never falls back (it returns ErrNotSupported, which
//     is the caller's cue to ask the user), and an incoming offer without <security/> is
//     declined (<decline/>, J-8, J-23) unless Application.Plaintext accepts it.

// ErrPeerHasXTLS is returned by OpenPlaintext for a peer that advertises XTLS: its sessions
// are always secured (use OpenConn); a failed XTLS session never becomes a plaintext one.
var ErrPeerHasXTLS = errors.New("xtls: the peer supports XTLS, so its sessions are never unencrypted (use OpenConn)")

// PlaintextHandler receives the incoming sessions of an Application that a peer offered
// without <security/>: a peer without XTLS (XTLS-10), such as Libervia or a client that has
// no end-to-end encryption for Jingle. Such an offer is only ever accepted when Decide says
// so for that offer; the library declines it on its own (Decide is not asked) when the
// peer's certificates are pinned or the peer advertises XTLS (see ErrDowngrade).
type PlaintextHandler struct {
	// Decide decides on one offer. It runs on a goroutine of its own and may ask the user;
	// it must set AcceptPlaintext only after the user allowed this one session unencrypted.
	// nil declines every offer.
	Decide func(ctx context.Context, in *PlaintextOffer) PlaintextDecision
	// Ready is given every accepted session once its bytestream is open. The application
	// owns conn.Jingle from then on and must end it (Terminate).
	Ready func(conn *PlaintextConn)
}

// PlaintextOffer is an incoming session of an Application without <security/>: whatever
// flows in it is readable by the servers on the way and anyone who can watch the bytestream.
type PlaintextOffer struct {
	// Peer is the initiator's full JID and SID the Jingle session id.
	Peer, SID string
	// Content is the offered content (its Description is the application's offer).
	Content jingle.Content
}

// PlaintextDecision is the application's answer to a PlaintextOffer. The zero value declines.
type PlaintextDecision struct {
	// AcceptPlaintext accepts the session without end-to-end encryption.
	AcceptPlaintext bool
	// Description is the <description/> of session-accept; nil answers with the offered one.
	Description []byte
}

// PlaintextConn is the UNENCRYPTED bytestream of a Jingle session of an Application with a
// peer that does not support XTLS, opened by OpenPlaintext or accepted through
// Application.Plaintext. It is a *PlaintextConn, not a Conn, so that code written for
// secured sessions cannot receive it by accident. Close closes the bytestream; the Jingle
// session belongs to the caller (Terminate).
type PlaintextConn struct {
	net.Conn
	// Jingle is the session; Content the name of its one content.
	Jingle  *jingle.Session
	Content string
	// Peer is the peer's full JID and SID the Jingle session id.
	Peer, SID string
	// Initiator reports whether we initiated the session.
	Initiator bool
	// Transport is one of the TransportName values.
	Transport string
	// SetupTime is the time from OpenPlaintext (or session-initiate) to the open bytestream.
	SetupTime time.Duration
}

// Terminate ends the Jingle session of conn with reason (nil: <success/>) after closing the
// bytestream.
func (conn *PlaintextConn) Terminate(ctx context.Context, reason *jingle.Reason) error {
	_ = conn.Conn.Close()
	if reason == nil {
		reason = &jingle.Reason{Condition: jingle.Success}
	}
	return conn.Jingle.Terminate(ctx, reason)
}

// OpenPlaintext opens a session of an Application of Config.Applications with the full JID
// peer WITHOUT end-to-end encryption, for a peer that does not support XTLS, and returns its
// bytestream. Call it only after OpenConn failed with ErrNotSupported and the user allowed
// this one transfer unencrypted. It checks again and refuses with
//
//   - ErrPeerHasXTLS when the peer advertises XTLS (so a failed or refused XTLS session never
//     turns into a plaintext one), or answers with <security/> after all (the session then
//     ends with <security-error/>),
//   - ErrDowngrade when certificates of the peer are pinned (XTLS-25),
//   - an error when the peer does not advertise the application.
//
// Otherwise it offers content (as OpenConn: Description required, Name and Senders
// optional) without <security/>, with the transport of opts.Transports or Config.Transports
// (S5B falling back to IBB, JS5B-14); opts.Password is not used. Every failure ends the
// session and returns an *Error.
func (c *Client) OpenPlaintext(ctx context.Context, peer string, content jingle.Content, opts *OpenOptions) (*PlaintextConn, error) {
	start := time.Now()
	ns := jingle.Namespace(content.Description)
	if c.cfg.application(ns) == nil {
		return nil, fmt.Errorf("xtls: OpenPlaintext: the description's namespace %q is not in Config.Applications", ns)
	}
	if opts == nil {
		opts = &OpenOptions{}
	}
	ctx, leave, err := c.enter(ctx)
	if err != nil {
		return nil, err
	}
	defer leave()
	info, err := c.plaintextAllowed(ctx, peer)
	if err != nil {
		return nil, err
	}
	if !info.Supports(ns) {
		return nil, fmt.Errorf("xtls: %s does not advertise %s", peer, ns)
	}
	t, policy, err := c.initiatorTransport(peer, info, opts)
	if err != nil {
		return nil, err
	}
	name := content.Name
	if name == "" {
		name = connContent
	}
	offer := t.Element()
	js, err := c.mgr.Initiate(ctx, peer, []jingle.Content{{
		Creator:     jingle.CreatorInitiator,
		Name:        name,
		Senders:     content.Senders,
		Description: content.Description,
		Transport:   offer,
	}}, map[string]jingle.Transport{name: t})
	if err != nil {
		_ = t.Close()
		return nil, fmt.Errorf("xtls: session-initiate to %s: %w", peer, err)
	}
	s := &Session{c: c, js: js, Peer: peer, SID: js.SID(), Initiator: true,
		app: &application{ns: ns, content: name}, done: make(chan struct{})}
	_, s.isS5B = t.(*socks5.JingleTransport)
	ev, err := waitEvent(ctx, js, jingle.SessionAccept)
	if err != nil {
		var e *Error
		if errors.As(err, &e) && !e.Remote {
			return nil, terminate(js, &Error{Peer: peer, Condition: jingle.Cancel, Text: "gave up waiting", Err: err})
		}
		return nil, err
	}
	var answer []byte
	for _, ct := range ev.Contents {
		if ct.Security != nil {
			// Only a peer with XTLS answers with <security/> (XTLS-11): its disco#info was
			// stripped or stale, and a peer with XTLS is never spoken to in plaintext.
			return nil, terminate(js, secErr(peer, "the peer answered with <security/>: it supports XTLS, so nothing goes unencrypted", fmt.Errorf("%w: %s", ErrPeerHasXTLS, peer)))
		}
		if ct.Name == name {
			answer = ct.Transport
		}
	}
	conn, kind, err := c.establish(ctx, s, policy == TransportAuto, c.proxyAddrs(offer, answer))
	if err != nil {
		e := asErr(peer, err)
		if e.Remote {
			return nil, e
		}
		return nil, terminate(js, e)
	}
	return &PlaintextConn{Conn: conn, Jingle: js, Content: name, Peer: peer, SID: s.SID, Initiator: true,
		Transport: kind, SetupTime: time.Since(start)}, nil
}

// plaintextAllowed returns the disco#info of peer when a plaintext session with it may
// happen at all: it does not advertise XTLS and none of its certificates are pinned.
func (c *Client) plaintextAllowed(ctx context.Context, peer string) (*disco.Info, error) {
	bare, err := BareJID(peer)
	if err != nil {
		return nil, fmt.Errorf("xtls: bad peer JID: %w", err)
	}
	pins, err := c.cfg.Trust.Pins(bare)
	if err != nil {
		return nil, fmt.Errorf("xtls: trust store: %w", err)
	}
	if len(pins) > 0 {
		return nil, fmt.Errorf("%w: %s", ErrDowngrade, peer)
	}
	info, err := c.peerInfo(ctx, peer)
	if err != nil {
		return nil, err
	}
	if info.Supports(NS) {
		return nil, fmt.Errorf("%w: %s", ErrPeerHasXTLS, peer)
	}
	return info, nil
}

// plaintextOffer returns the content of js that carries an Application without <security/>
// and that application, or nil.
func (c *Client) plaintextOffer(js *jingle.Session) (jingle.Content, *Application) {
	for _, ct := range js.Contents() {
		if a := c.cfg.application(jingle.Namespace(ct.Description)); a != nil && ct.Security == nil {
			return ct, a
		}
	}
	return jingle.Content{}, nil
}

// handlePlaintext runs the responder of a session-initiate whose content carries the
// Application h without <security/> (HandleJingle).
func (c *Client) handlePlaintext(ctx context.Context, js *jingle.Session, offered jingle.Content, h *Application, start time.Time) {
	conn, err := c.acceptPlaintext(ctx, js, offered, h)
	if err != nil {
		var e *Error
		if errors.As(err, &e) && e.Condition == jingle.Decline && !e.Remote {
			return // declined by the application (or by default): nothing failed
		}
		if h.Failed != nil {
			h.Failed(js.Peer(), js.SID(), err)
		} else if c.cfg.OnError != nil {
			c.cfg.OnError(js.Peer(), err)
		}
		return
	}
	conn.SetupTime = time.Since(start)
	go h.Plaintext.Ready(conn)
}

func (c *Client) acceptPlaintext(ctx context.Context, js *jingle.Session, offered jingle.Content, h *Application) (*PlaintextConn, error) {
	peer := js.Peer()
	if h.Plaintext == nil || h.Plaintext.Decide == nil || h.Plaintext.Ready == nil {
		return nil, terminate(js, &Error{Peer: peer, Condition: jingle.Decline, Text: "end-to-end encryption (XTLS) is required"})
	}
	if _, err := c.plaintextAllowed(ctx, peer); err != nil {
		if errors.Is(err, ErrDowngrade) || errors.Is(err, ErrPeerHasXTLS) {
			return nil, terminate(js, secErr(peer, "offer without end-to-end encryption from a peer that uses XTLS — refused", err))
		}
		return nil, terminate(js, &Error{Peer: peer, Condition: jingle.GeneralError, Text: "cannot check the peer's features", Err: err})
	}
	ns := jingle.Namespace(offered.Transport)
	if ns != ibb.NSJingle && ns != socks5.NSJingleS5B {
		return nil, terminate(js, &Error{Peer: peer, Condition: jingle.UnsupportedTransports, Text: "only IBB and SOCKS5 are supported"})
	}
	d := h.Plaintext.Decide(ctx, &PlaintextOffer{Peer: peer, SID: js.SID(), Content: offered})
	if !d.AcceptPlaintext {
		return nil, terminate(js, &Error{Peer: peer, Condition: jingle.Decline, Text: "declined: the offer has no end-to-end encryption"})
	}
	if d.Description == nil {
		d.Description = offered.Description
	}
	s := &Session{c: c, js: js, Peer: peer, SID: js.SID(), app: &application{ns: jingle.Namespace(offered.Description), content: offered.Name}, done: make(chan struct{})}
	var t jingle.Transport
	var err error
	if ns == ibb.NSJingle {
		t, err = ibb.NewJingleResponder(c.ibb, peer, offered.Transport)
	} else {
		s.isS5B = true
		t, err = c.newS5B(peer, offered.Transport)
	}
	if err != nil {
		return nil, terminate(js, &Error{Peer: peer, Condition: jingle.FailedTransport, Text: "cannot use the offered transport", Err: err})
	}
	answer := t.Element()
	if err := js.Accept(ctx, []jingle.Content{{Creator: offered.Creator, Name: offered.Name, Senders: offered.Senders,
		Description: d.Description, Transport: answer}}, map[string]jingle.Transport{offered.Name: t}); err != nil {
		_ = t.Close()
		return nil, terminate(js, &Error{Peer: peer, Condition: jingle.GeneralError, Text: "session-accept failed", Err: err})
	}
	conn, kind, err := c.establish(ctx, s, true, c.proxyAddrs(offered.Transport, answer))
	if err != nil {
		e := asErr(peer, err)
		if e.Remote {
			return nil, e
		}
		return nil, terminate(js, e)
	}
	return &PlaintextConn{Conn: conn, Jingle: js, Content: offered.Name, Peer: peer, SID: js.SID(), Transport: kind}, nil
}
