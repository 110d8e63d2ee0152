package xtls

import (
	"context"
	"errors"
	"time"

	"github.com/xtlsjingle/xtlsjingle/ibb"
	"github.com/xtlsjingle/xtlsjingle/jingle"
	"github.com/xtlsjingle/xtlsjingle/socks5"
)

// HandleJingle takes a session a peer initiated (the jingle.Config.Incoming callback of the
// manager the client created, or of the application's manager when Config.Jingle is set). It
// returns false without touching the session when it is neither an XTLS xmlstream session nor
// a session of one of Config.Applications (with <security/>, or without it: then it goes to
// Application.Plaintext or is declined, see OpenPlaintext), so that the application can route
// it elsewhere; otherwise it runs the responder side until the stream is open (delivered through
// Accept; for an Application the secured Conn goes to Application.Secured) or the session
// failed (Config.OnError or Application.Failed), and returns true.
func (c *Client) HandleJingle(js *jingle.Session) bool {
	offered, app, found := c.match(js)
	var plain *Application // an Application offered without <security/> (plaintext.go)
	if !found {
		offered, plain = c.plaintextOffer(js)
	}
	if !found && plain == nil {
		if c.ownJ {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_ = js.Terminate(ctx, &jingle.Reason{Condition: jingle.UnsupportedApplications})
			cancel()
		}
		return false
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_ = js.Terminate(ctx, &jingle.Reason{Condition: jingle.Gone})
		cancel()
		return true
	}
	c.wg.Add(1)
	c.mu.Unlock()
	defer c.wg.Done()
	start := time.Now()
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.SetupTimeout)
	defer cancel()
	if plain != nil {
		c.handlePlaintext(ctx, js, offered, plain, start)
		return true
	}
	s := &Session{c: c, js: js, Peer: js.Peer(), SID: js.SID(), app: app, done: make(chan struct{})}
	if err := c.acceptSession(ctx, s, offered); err != nil {
		c.failed(s, err)
		return true
	}
	s.SetupTime = time.Since(start)
	if app.conn {
		c.deliver(s) // conn.go
		return true
	}
	s.wg.Add(1)
	go s.watch()
	if !c.track(s) {
		_ = s.Close()
		return true
	}
	select {
	case c.accepted <- s:
	default:
		s.end(&Error{Peer: s.Peer, Condition: jingle.Busy, Text: "too many sessions waiting to be accepted"}, false)
		if c.cfg.OnError != nil {
			c.cfg.OnError(s.Peer, s.err)
		}
	}
	return true
}

func (c *Client) acceptSession(ctx context.Context, s *Session, offered jingle.Content) error {
	js := s.js
	bare, err := BareJID(s.Peer)
	if err != nil {
		return terminate(js, secErr(s.Peer, "bad initiator JID", err))
	}
	if offered.Security == nil {
		// An xmlstream without encryption makes no sense (XTLS-15, XS-8).
		return terminate(js, secErr(s.Peer, "XTLS is required for end-to-end streams", nil))
	}
	offer, err := ParseSecurity(offered.Security)
	if err != nil {
		return terminate(js, secErr(s.Peer, "malformed <security/> in session-initiate", err))
	}
	ns := jingle.Namespace(offered.Transport)
	if ns != ibb.NSJingle && ns != socks5.NSJingleS5B {
		return terminate(js, &Error{Peer: s.Peer, Condition: jingle.UnsupportedTransports, Text: "only IBB and SOCKS5 are supported"})
	}
	trusted, others, err := c.isPinned(s.Peer, offer.Fingerprint)
	if err != nil {
		return terminate(js, &Error{Peer: s.Peer, Condition: jingle.GeneralError, Text: "trust store failure", Err: err})
	}
	in := &Incoming{Peer: s.Peer, SID: s.SID, Fingerprint: offer.Fingerprint, Trusted: trusted, Changed: others && !trusted && !offer.Fingerprint.IsZero(), Methods: append([]string(nil), offer.Methods...)}
	d, answerDesc := c.decide(ctx, s, in, offered)
	if d.Decline {
		return terminate(js, &Error{Peer: s.Peer, Condition: jingle.Decline, Text: "declined"})
	}
	backedOff := false
	if d.Password != "" {
		if err := c.backoffCheck(bare); err != nil {
			d.Password, backedOff = "", true // SRP-14
		}
	}
	leap := false
	if !trusted && !others && d.Password == "" && c.cfg.LeapOfFaith && !offer.Fingerprint.IsZero() && offer.Has(MethodX509) {
		if err := c.cfg.Trust.Pin(bare, offer.Fingerprint, LeapOfFaith, time.Now()); err == nil {
			trusted, leap = true, true
		}
	}
	fail := func(e *Error) error {
		if leap {
			_ = c.cfg.Trust.Unpin(bare, offer.Fingerprint)
		}
		if r, byPeer := js.Reason(); byPeer && r != nil {
			return &Error{Peer: s.Peer, Condition: r.Condition, Text: r.Text, Remote: true, Err: e}
		}
		return terminate(js, e)
	}
	ours := responderMethods(offer, trusted, d.Password, c.cfg.Identity.Fingerprint())
	if len(ours.Methods) == 0 {
		text := "certificate of " + bare + " is not pinned and no password was given"
		switch {
		case backedOff:
			text = "too many failed password attempts from " + bare + ", try again later"
		case others && !offer.Fingerprint.IsZero():
			text = "certificate of " + bare + " changed — session refused"
		}
		return fail(secErr(s.Peer, text, ErrNoMethod))
	}

	// The transport answer.
	var t jingle.Transport
	if ns == ibb.NSJingle {
		t, err = ibb.NewJingleResponder(c.ibb, s.Peer, offered.Transport)
	} else {
		s.isS5B = true
		if s.s5b, err = c.newS5B(s.Peer, offered.Transport); err == nil {
			t = s.s5b
		}
	}
	if err != nil {
		return fail(&Error{Peer: s.Peer, Condition: jingle.FailedTransport, Text: "cannot use the offered transport", Err: err})
	}
	answer := t.Element()
	if err := js.Accept(ctx, []jingle.Content{{
		Creator:     jingle.CreatorInitiator,
		Name:        offered.Name,
		Senders:     offered.Senders,
		Description: answerDesc,
		Transport:   answer,
		Security:    ours.Element(),
	}}, map[string]jingle.Transport{offered.Name: t}); err != nil {
		_ = t.Close()
		return fail(&Error{Peer: s.Peer, Condition: jingle.GeneralError, Text: "session-accept failed", Err: err})
	}

	// XTLS-17: wait for the method choice before any TLS byte.
	ev, err := waitEvent(ctx, js, jingle.SecurityInfo)
	if err != nil {
		var e *Error
		if errors.As(err, &e) && e.Remote {
			if leap {
				_ = c.cfg.Trust.Unpin(bare, offer.Fingerprint)
			}
			return e
		}
		return fail(asErr(s.Peer, err))
	}
	method := ""
	for _, ct := range ev.Contents {
		if ct.Name != offered.Name || ct.Security == nil {
			continue
		}
		choice, err := ParseSecurity(ct.Security)
		if err != nil {
			return fail(secErr(s.Peer, "malformed security-info", err))
		}
		if len(choice.Methods) != 1 {
			return fail(secErr(s.Peer, "security-info must name exactly one method", nil))
		}
		method = choice.Methods[0]
	}
	if method == "" {
		return fail(secErr(s.Peer, "security-info without a method", nil))
	}
	if !ours.Has(method) {
		// XTLS-D3: a method we did not offer.
		return fail(secErr(s.Peer, "the initiator chose "+truncate(method)+", which we did not offer", nil))
	}
	s.Method = method
	if leap {
		s.Pinned = true
	}

	conn, kind, err := c.establish(ctx, s, true, c.proxyAddrs(offered.Transport, answer))
	if err != nil {
		e := asErr(s.Peer, err)
		if e.Remote {
			return e
		}
		return fail(e)
	}
	s.Transport = kind
	s.raw = conn
	stop := closeOnEnd(js, conn)
	err = c.secure(ctx, s, conn, method, d.Password, nil)
	stop()
	if err != nil {
		if e := peerVerdict(s, err); e != nil {
			if leap {
				_ = c.cfg.Trust.Unpin(bare, offer.Fingerprint)
			}
			return e
		}
		return fail(asErr(s.Peer, err))
	}
	return nil
}

func truncate(s string) string {
	if len(s) > 32 {
		return s[:32] + "…"
	}
	return s
}
