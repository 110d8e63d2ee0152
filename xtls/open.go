package xtls

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/xtlsjingle/xtlsjingle/disco"
	"github.com/xtlsjingle/xtlsjingle/ibb"
	"github.com/xtlsjingle/xtlsjingle/jingle"
	"github.com/xtlsjingle/xtlsjingle/socks5"
)

func randomToken() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Open starts an XTLS session with the full JID peer as the Jingle initiator (TLS client,
// XTLS-3) and returns it once the end-to-end stream is open and secured (XTLS-D6, GO-7):
//
//  1. disco#info of peer (through the caps cache): without urn:xmpp:jingle:security:xtls:0 it
//     fails with ErrNotSupported, or ErrDowngrade when certificates of the peer are pinned
//     (XTLS-1, XTLS-2, XTLS-25);
//  2. session-initiate with the xmlstream content, the transport (SOCKS5 unless the policy or
//     the peer says IBB, XS-9) and <security/> with our fingerprint and methods x509 and srp
//     (XTLS-9);
//  3. the method choice of XTLS-D3 on the peer's session-accept, sent as security-info with
//     exactly one method (XTLS-17); a session-accept without <security/> ends the session with
//     <security-error/> (XTLS-15);
//  4. the bytestream, replaced by IBB when SOCKS5 fails on both sides (JS5B-14);
//  5. TLS 1.3, XSRP for srp (pinning the peer's certificate, XSRP-8), the stream headers.
//
// Every failure ends the Jingle session (with <security-error/> and a text for security
// failures) and returns an *Error; there is no plaintext fallback. When the peer initiated a
// session towards us at the same moment and won the tie-break (J-34), Open fails with an error
// matching jingle.ErrTieBreak; the peer's session then arrives through Accept.
func (c *Client) Open(ctx context.Context, peer string, opts *OpenOptions) (*Session, error) {
	return c.open(ctx, peer, &xmlstreamApp, opts)
}

// open runs Open for the application app (xmlstream, or one of OpenConn).
func (c *Client) open(ctx context.Context, peer string, app *application, opts *OpenOptions) (*Session, error) {
	start := time.Now()
	if opts == nil {
		opts = &OpenOptions{}
	}
	ctx, leave, err := c.enter(ctx)
	if err != nil {
		return nil, err
	}
	defer leave()
	bare, err := BareJID(peer)
	if err != nil {
		return nil, fmt.Errorf("xtls: bad peer JID: %w", err)
	}
	// 1. XTLS-2: discover support first.
	info, err := c.peerInfo(ctx, peer)
	if err != nil {
		return nil, err
	}
	if !info.Supports(NS) || !info.Supports(app.ns) {
		pins, perr := c.cfg.Trust.Pins(bare)
		if perr == nil && len(pins) > 0 {
			return nil, fmt.Errorf("%w: %s", ErrDowngrade, peer)
		}
		return nil, fmt.Errorf("%w: %s", ErrNotSupported, peer)
	}
	if opts.Password != "" {
		if err := c.backoffCheck(bare); err != nil {
			return nil, err
		}
	}
	// 2. session-initiate.
	t, policy, err := c.initiatorTransport(peer, info, opts)
	if err != nil {
		return nil, err
	}
	offer := t.Element()
	ours := &Security{Fingerprint: c.cfg.Identity.Fingerprint(), Methods: []string{MethodX509, MethodSRP}}
	js, err := c.mgr.Initiate(ctx, peer, []jingle.Content{{
		Creator:     jingle.CreatorInitiator,
		Name:        app.content,
		Senders:     app.senders,
		Description: app.desc,
		Transport:   offer,
		Security:    ours.Element(),
	}}, map[string]jingle.Transport{app.content: t})
	if err != nil {
		_ = t.Close()
		return nil, fmt.Errorf("xtls: session-initiate to %s: %w", peer, err)
	}
	s := &Session{c: c, js: js, Peer: peer, SID: js.SID(), Initiator: true, app: app, done: make(chan struct{})}
	s.s5b, s.isS5B = t.(*socks5.JingleTransport)
	if err := c.openSession(ctx, s, ours, offer, opts.Password, policy == TransportAuto); err != nil {
		return nil, err
	}
	s.SetupTime = time.Since(start)
	if app.conn {
		return s, nil // the application owns the Jingle session from here (conn.go)
	}
	s.wg.Add(1)
	go s.watch()
	if !c.track(s) {
		_ = s.Close()
		return nil, ErrClientClosed
	}
	return s, nil
}

func (c *Client) openSession(ctx context.Context, s *Session, ours *Security, offer []byte, password string, fallback bool) error {
	js := s.js
	bare, _ := BareJID(s.Peer)
	// 3. the answer.
	ev, err := waitEvent(ctx, js, jingle.SessionAccept)
	if err != nil {
		var e *Error
		if errors.As(err, &e) && !e.Remote {
			return terminate(js, &Error{Peer: s.Peer, Condition: jingle.Cancel, Text: "gave up waiting", Err: err})
		}
		return err
	}
	var answer jingle.Content
	for _, ct := range ev.Contents {
		if ct.Name == s.contentName() {
			answer = ct
		}
	}
	if answer.Security == nil {
		// XTLS-15 DECIDE: no encryption, no stream.
		return terminate(js, secErr(s.Peer, "the peer answered without XTLS — unencrypted streams are refused", nil))
	}
	theirs, err := ParseSecurity(answer.Security)
	if err != nil {
		return terminate(js, secErr(s.Peer, "malformed <security/> in session-accept", err))
	}
	pinned, others, err := c.isPinned(s.Peer, theirs.Fingerprint)
	if err != nil {
		return terminate(js, &Error{Peer: s.Peer, Condition: jingle.GeneralError, Text: "trust store failure", Err: err})
	}
	leap := false
	if !pinned && !others && password == "" && c.cfg.LeapOfFaith && !theirs.Fingerprint.IsZero() && theirs.Has(MethodX509) {
		if err := c.cfg.Trust.Pin(bare, theirs.Fingerprint, LeapOfFaith, time.Now()); err == nil {
			pinned, leap = true, true
		}
	}
	method := chooseMethod(ours, theirs, pinned, password)
	if method == "" {
		var text string
		switch {
		case !theirs.Fingerprint.IsZero() && others:
			text = "certificate of " + bare + " changed — session refused"
		case password != "" && !theirs.Has(MethodSRP):
			text = "the peer does not offer password authentication"
		case theirs.Fingerprint.IsZero():
			text = bare + " does not recognise our certificate; a shared password is needed"
		default:
			text = "certificate of " + bare + " is not pinned and no password was given"
		}
		return terminate(js, secErr(s.Peer, text, ErrNoMethod))
	}
	s.Method = method
	if leap {
		s.Pinned = true
	}
	fail := func(e *Error) error {
		if leap {
			_ = c.cfg.Trust.Unpin(bare, theirs.Fingerprint)
			s.Pinned = false
		}
		if r, byPeer := js.Reason(); byPeer && r != nil {
			return &Error{Peer: s.Peer, Condition: r.Condition, Text: r.Text, Remote: true, Err: e}
		}
		return terminate(js, e)
	}
	// XTLS-17: announce the choice before the first TLS byte. The announcement is sent before
	// the bytestream is set up, but its acknowledgement is not waited for: the responder waits
	// for the method before it reads any TLS byte, so the round trip overlaps the transport's.
	// A refusal cancels the set-up.
	choice := &Security{Methods: []string{method}}
	siCtx, siCancel := context.WithCancel(ctx)
	defer siCancel()
	siDone := make(chan error, 1)
	go func() {
		err := js.Send(ctx, jingle.SecurityInfo, []jingle.Content{{Creator: jingle.CreatorInitiator, Name: s.contentName(), Security: choice.Element()}}, nil)
		if err != nil {
			siCancel()
		}
		siDone <- err
	}()
	siFailed := func(err error) error {
		if js.State() == jingle.StateEnded {
			return fail(asErr(s.Peer, endedErr(js)))
		}
		return fail(secErr(s.Peer, "the peer refused our method choice "+method, err))
	}
	// The TLS client starts now on a bytestream that is still being negotiated, so the
	// ClientHello and its key shares are computed while the transport round trips run; its
	// first byte is written once the bytestream is ready (JIBB-10, JS5B-20).
	lc := newLateConn()
	s.cork = newCorkConn(lc)
	early, earlyDone := c.startClientHandshake(siCtx, bare, method, s.cork)
	defer func() { <-earlyDone }()
	// 4. bytestream.
	conn, kind, err := c.establish(siCtx, s, fallback, c.proxyAddrs(offer, answer.Transport))
	if err != nil {
		_ = lc.Close()
		select {
		case siErr := <-siDone:
			if siErr != nil {
				return siFailed(siErr)
			}
		default:
		}
		return fail(asErr(s.Peer, err))
	}
	s.Transport = kind
	lc.set(conn)
	s.raw = lc
	// 5. TLS, XSRP, stream.
	stop := closeOnEnd(js, lc)
	err = c.secure(siCtx, s, lc, method, password, early)
	stop()
	if siErr := <-siDone; siErr != nil {
		_ = lc.Close()
		return siFailed(siErr)
	}
	if err != nil {
		if e := peerVerdict(s, err); e != nil {
			if leap {
				_ = c.cfg.Trust.Unpin(bare, theirs.Fingerprint)
				s.Pinned = false
			}
			return e
		}
		return fail(asErr(s.Peer, err))
	}
	return nil
}

// enter registers a running Open with the client and returns its context, which Client.Close
// cancels, and the function that ends it; ErrClientClosed when the client is closed.
func (c *Client) enter(ctx context.Context) (context.Context, func(), error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, nil, ErrClientClosed
	}
	c.wg.Add(1)
	c.mu.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(c.ctx, cancel)
	return ctx, func() { stop(); cancel(); c.wg.Done() }, nil
}

// startClientHandshake runs the TLS client handshake of method on conn in the background and
// returns the connection (nil when the configuration cannot be built; secure then reports
// why) and a channel closed when that handshake attempt has returned. secure's own handshake
// call waits for it and returns its result.
func (c *Client) startClientHandshake(ctx context.Context, bare, method string, conn net.Conn) (*tls.Conn, <-chan struct{}) {
	done := make(chan struct{})
	cfg, err := ClientConfig(c.cfg.Identity, bare, method, c.cfg.Trust)
	if err != nil {
		close(done)
		return nil, done
	}
	tc := tls.Client(conn, cfg)
	go func() {
		defer close(done)
		_ = tc.HandshakeContext(ctx)
	}()
	return tc, done
}

// asErr returns err as *Error (wrapping it when it is not one).
func asErr(peer string, err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Peer: peer, Condition: jingle.GeneralError, Text: err.Error(), Err: err}
}

// peerVerdict returns the peer's reason when the peer ended the session because of a failure
// that we only saw as a broken bytestream or TLS alert (the peer knows why, e.g. it rejected our
// certificate, GO-7). Unless our own error is a clear verdict (pin mismatch, XSRP failure), it
// waits briefly for the peer's session-terminate. It returns nil when the peer did not end the
// session.
func peerVerdict(s *Session, err error) *Error {
	var pe *PinError
	if !errors.As(err, &pe) && !errors.Is(err, ErrXSRPFailed) {
		t := time.NewTimer(2 * time.Second)
		select {
		case <-s.js.Done():
		case <-t.C:
		}
		t.Stop()
	}
	r, byPeer := s.js.Reason()
	if !byPeer || r == nil {
		return nil
	}
	return &Error{Peer: s.Peer, Condition: r.Condition, Text: r.Text, Remote: true, Err: err}
}

// initiatorTransport builds the transport we offer to peer in session-initiate: SOCKS5 when
// the policy (opts.Transports, else Config.Transports) allows it and info advertises it,
// otherwise IBB (XS-9, JS5B-14). It also returns the policy.
func (c *Client) initiatorTransport(peer string, info *disco.Info, opts *OpenOptions) (jingle.Transport, TransportPolicy, error) {
	policy := c.cfg.Transports
	if opts.Transports != nil {
		policy = *opts.Transports
	}
	s5bOK := info.Supports(socks5.NSJingleS5B)
	if policy == TransportS5B && !s5bOK {
		return nil, policy, fmt.Errorf("xtls: %s does not support SOCKS5 bytestreams and the policy forbids IBB", peer)
	}
	if policy != TransportIBB && s5bOK {
		t, err := c.newS5B(peer, nil)
		if err != nil {
			return nil, policy, fmt.Errorf("xtls: SOCKS5 transport: %w", err)
		}
		return t, policy, nil
	}
	t, err := ibb.NewJingleTransport(c.ibb, peer, newIBBSID(), 0)
	if err != nil {
		return nil, policy, fmt.Errorf("xtls: IBB transport: %w", err)
	}
	return t, policy, nil
}

// peerInfo returns the disco#info of peer (through the caps cache). A peer that refuses
// disco#info with a stanza error advertises nothing: XTLS-2 then treats it as a peer without
// XTLS. Other failures (timeouts, a closed link) are errors.
func (c *Client) peerInfo(ctx context.Context, peer string) (*disco.Info, error) {
	info, err := c.caps.Info(ctx, c.link, peer)
	if err == nil {
		return info, nil
	}
	var se interface {
		StanzaError() (typ, condition string, app xml.Name, text string)
	}
	if !errors.As(err, &se) {
		return nil, fmt.Errorf("xtls: disco#info of %s: %w", peer, err)
	}
	return &disco.Info{}, nil
}
