package xtls

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"time"

	"github.com/xtlsjingle/xtlsjingle/ibb"
	"github.com/xtlsjingle/xtlsjingle/jingle"
	"github.com/xtlsjingle/xtlsjingle/socks5"
	"github.com/xtlsjingle/xtlsjingle/xmlstream"
)

// description is the empty <description/> of the xmlstream application (XS-11).
var description = []byte("<description xmlns='" + NSXMLStream + "'/>")

// isPinned reports whether fp is pinned for the bare JID of peer.
func (c *Client) isPinned(peer string, fp Fingerprint) (pinned, others bool, err error) {
	bare, err := BareJID(peer)
	if err != nil {
		return false, false, err
	}
	pins, err := c.cfg.Trust.Pins(bare)
	if err != nil {
		return false, false, err
	}
	for _, p := range pins {
		if !fp.IsZero() && p.Fingerprint.Equal(fp) {
			pinned = true
		} else {
			others = true
		}
	}
	return pinned, others, nil
}

// responderMethods implements the responder half of XTLS-D3: x509 (with our fingerprint) only
// when the initiator's announced fingerprint is pinned for its bare JID (XTLS-12), srp only with
// a password (XTLS-13/14). It returns the <security/> to send in session-accept.
func responderMethods(offer *Security, trusted bool, password string, own Fingerprint) *Security {
	sec := &Security{}
	if trusted && offer.Has(MethodX509) {
		sec.Fingerprint = own
		sec.Methods = append(sec.Methods, MethodX509)
	}
	if password != "" && offer.Has(MethodSRP) {
		sec.Methods = append(sec.Methods, MethodSRP)
	}
	return sec
}

// chooseMethod implements the initiator half of XTLS-D3: x509 iff the responder sent a
// fingerprint pinned for its bare JID and both listed x509; else srp iff both listed srp and a
// password was given; else "" (terminate with <security-error/>).
func chooseMethod(ours, theirs *Security, responderPinned bool, password string) string {
	if responderPinned && !theirs.Fingerprint.IsZero() && ours.Has(MethodX509) && theirs.Has(MethodX509) {
		return MethodX509
	}
	if password != "" && ours.Has(MethodSRP) && theirs.Has(MethodSRP) {
		return MethodSRP
	}
	return ""
}

// secure runs TLS 1.3 over conn with us as the client (initiator) or server (responder)
// (XTLS-3), then XSRP for srp (§18.4), then the end-to-end stream (XS-13). It returns when the
// transport is secured (XTLS-D6; for the initiator GO-7: the responder's stream header, or M2,
// was read). On failure everything it opened is closed and a *Error with a human text is
// returned.
func (c *Client) secure(ctx context.Context, s *Session, conn net.Conn, method, password string, early *tls.Conn) error {
	bare, err := BareJID(s.Peer)
	if err != nil {
		return secErr(s.Peer, "bad peer JID", err)
	}
	var cfg *tls.Config
	switch {
	case early != nil:
		// The initiator's handshake already started on conn (startClientHandshake).
	case s.Initiator:
		cfg, err = ClientConfig(c.cfg.Identity, bare, method, c.cfg.Trust)
	default:
		cfg, err = ServerConfig(c.cfg.Identity, bare, method, c.cfg.Trust)
	}
	if err != nil {
		_ = conn.Close()
		return secErr(s.Peer, "TLS setup failed", err)
	}
	var tc *tls.Conn
	switch {
	case early != nil:
		tc = early
	case s.Initiator:
		tc = tls.Client(conn, cfg)
	default:
		tc = tls.Server(conn, cfg)
	}
	s.tls = tc
	fail := func(err error) error {
		_ = tc.Close()
		return describe(s.Peer, bare, err)
	}
	var fp Fingerprint
	switch method {
	case MethodSRP:
		if s.Initiator {
			fp, err = ClientXSRP(ctx, tc, c.cfg.Identity, c.link.LocalJID(), password)
		} else {
			fp, err = ServerXSRP(ctx, tc, c.cfg.Identity, s.Peer, password)
		}
		c.backoffRecord(bare, err == nil)
		if err != nil {
			return fail(err)
		}
		// XSRP-8: the password proved the peer; pin the certificate it presented.
		if err := c.cfg.Trust.Pin(bare, fp, VerifiedSRP, time.Now()); err != nil {
			return fail(fmt.Errorf("pinning the peer certificate: %w", err))
		}
		s.Pinned = true
	default:
		if err := tc.HandshakeContext(ctx); err != nil {
			return fail(err)
		}
		// VerifyConnection checked the certificate and its pin during the handshake.
		_, fp, err = peerCertificate(tc.ConnectionState())
		if err != nil {
			return fail(err)
		}
		// It is pinned already (VerifyConnection checked): refresh LastSeen only; Seen keeps
		// how it was verified (a leap-of-faith pin must not be upgraded by use).
		_ = c.cfg.Trust.Seen(bare, fp, time.Now())
	}
	s.PeerFingerprint = fp
	if cs := tc.ConnectionState(); len(cs.PeerCertificates) == 1 {
		s.KeyHint = c.keyHint(s.Peer, cs.PeerCertificates[0].PublicKey)
	}
	if s.app != nil && s.app.conn {
		return s.connSecured() // conn.go: no xmlstream, the application's bytes follow
	}
	var st *xmlstream.Stream
	var sc net.Conn = tc
	var nc *nudgeConn
	if s.Transport == TransportNameS5BProxy {
		nc = newNudgeConn(tc) // proxy65 hold-back cure (see nudge.go)
		sc = nc
	}
	if s.Initiator {
		// GO-7: with x509, reading the responder's header is what proves the responder
		// accepted our certificate; Initiate returns only after it.
		st, err = xmlstream.Initiate(ctx, sc, c.link.LocalJID(), s.Peer, c.cfg.Stream)
	} else {
		st, err = xmlstream.Respond(ctx, sc, c.link.LocalJID(), s.Peer, c.cfg.Stream)
	}
	if err != nil {
		return fail(err)
	}
	if s.cork != nil {
		// Nothing is held back any more (Initiate ended by reading, which flushed); from now
		// on every write goes out at once.
		_ = s.cork.uncork()
	}
	s.Stream = st
	if nc != nil {
		s.wg.Add(1)
		go s.nudge(nc)
	}
	s.servePubkeys()
	return nil
}

// secErr is a security-error with text.
func secErr(peer, text string, err error) *Error {
	return &Error{Peer: peer, Condition: jingle.SecurityError, Text: text, Err: err}
}

// describe turns a failure of TLS, XSRP or the stream into a text a person can act on.
func describe(peer, bare string, err error) *Error {
	var pe *PinError
	var ae tls.AlertError
	var se *xmlstream.StreamError
	switch {
	case errors.As(err, &pe) && pe.Changed:
		return secErr(peer, "certificate of "+bare+" changed — session refused", err)
	case errors.As(err, &pe):
		return secErr(peer, "certificate of "+bare+" is not trusted — session refused", err)
	case errors.Is(err, ErrXSRPFailed):
		return secErr(peer, "wrong password or attack", err)
	case errors.Is(err, ErrCertificate):
		return secErr(peer, "unusable certificate from "+bare, err)
	case errors.As(err, &ae):
		return secErr(peer, "TLS failed: "+ae.Error(), err)
	case errors.As(err, &se):
		if se.Remote {
			return secErr(peer, "peer ended the end-to-end stream: "+se.Condition, err)
		}
		return secErr(peer, "end-to-end stream violation: "+se.Condition, err)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return &Error{Peer: peer, Condition: jingle.Timeout, Text: "timed out while securing the session", Err: err}
	}
	if oe := (*net.OpError)(nil); errors.As(err, &oe) && oe.Op == "remote error" {
		// crypto/tls reports an alert from the peer as a *net.OpError "remote error".
		return secErr(peer, "the peer refused the TLS session ("+oe.Err.Error()+")", err)
	}
	return secErr(peer, "TLS or stream failure: "+err.Error(), err)
}

// newS5B builds our SOCKS5 transport: the initiator's (offer == nil) or the responder's.
func (c *Client) newS5B(peer string, offer []byte) (*socks5.JingleTransport, error) {
	cfg := socks5.Config{
		Link:           c.link,
		PeerJID:        peer,
		Listener:       c.cfg.S5B.Listener,
		Hosts:          c.cfg.S5B.Hosts,
		Extra:          c.cfg.S5B.Extra,
		Proxies:        c.cfg.S5B.Proxies,
		ConnectTimeout: c.cfg.S5B.ConnectTimeout,
		Order:          c.s5bOrder(peer),
	}
	if offer == nil {
		return socks5.NewJingleTransport(cfg)
	}
	return socks5.AcceptJingleTransport(cfg, offer)
}

// proxyAddrs returns the host:port of every proxy among our configuration and the SOCKS5
// <transport/> elements given (the peer's candidates), to tell a proxied bytestream from a
// direct one.
func (c *Client) proxyAddrs(elems ...[]byte) []string {
	var out []string
	for _, p := range c.cfg.S5B.Proxies {
		out = append(out, net.JoinHostPort(p.Host, strconv.Itoa(portOr1080(p.Port))))
	}
	for _, e := range elems {
		t, err := socks5.ParseTransport(e)
		if err != nil {
			continue
		}
		for _, cd := range t.Candidates {
			if cd.Type == socks5.Proxy {
				out = append(out, net.JoinHostPort(cd.Host, strconv.Itoa(portOr1080(cd.Port))))
			}
		}
	}
	return out
}

func portOr1080(p int) int {
	if p == 0 {
		return 1080
	}
	return p
}

// s5bKind names a SOCKS5 bytestream: through a proxy when its remote end is one of the proxies.
func s5bKind(conn net.Conn, proxies []string) string {
	if ra := conn.RemoteAddr(); ra != nil && slices.Contains(proxies, ra.String()) {
		return TransportNameS5BProxy
	}
	return TransportNameS5BDirect
}

// newIBBSID returns a fresh IBB sid (IBB-2).
func newIBBSID() string { return "x" + randomToken() }

// waitEvent reads the session's events until one of want (or session-terminate) arrives.
func waitEvent(ctx context.Context, js *jingle.Session, want ...jingle.Action) (jingle.Event, error) {
	for {
		select {
		case ev, ok := <-js.Events():
			if !ok {
				return jingle.Event{}, endedErr(js)
			}
			if ev.Action == jingle.SessionTerminate {
				return ev, remoteErr(js.Peer(), ev.Reason)
			}
			if slices.Contains(want, ev.Action) {
				return ev, nil
			}
		case <-ctx.Done():
			return jingle.Event{}, &Error{Peer: js.Peer(), Condition: jingle.Timeout, Text: "no answer from the peer in time", Err: ctx.Err()}
		}
	}
}

func endedErr(js *jingle.Session) error {
	r, byPeer := js.Reason()
	if byPeer {
		return remoteErr(js.Peer(), r)
	}
	if r != nil {
		return &Error{Peer: js.Peer(), Condition: r.Condition, Text: r.Text, Err: jingle.ErrEnded}
	}
	return &Error{Peer: js.Peer(), Condition: jingle.Gone, Text: "session ended", Err: jingle.ErrEnded}
}

func remoteErr(peer string, r *jingle.Reason) error {
	if r == nil {
		return &Error{Peer: peer, Condition: jingle.GeneralError, Remote: true, Text: "terminated without a reason"}
	}
	return &Error{Peer: peer, Condition: r.Condition, Text: r.Text, Remote: true}
}

// terminate ends js with a failure and returns fail, enriched with the peer's reason text if the
// peer's session-terminate came first.
func terminate(js *jingle.Session, fail *Error) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = js.Terminate(ctx, &jingle.Reason{Condition: fail.Condition, Text: fail.Text})
	if r, byPeer := js.Reason(); byPeer && r != nil && r.Text != "" && r.Text != fail.Text {
		fail.Text += " (peer: " + r.Text + ")"
	}
	return fail
}

// establish opens the bytestream of content on js; with fallback the initiator replaces a failed
// SOCKS5 transport by IBB (JS5B-14) and the responder accepts such a replacement.
func (c *Client) establish(ctx context.Context, s *Session, fallback bool, proxies []string) (net.Conn, string, error) {
	conn, err := s.js.Establish(ctx, s.contentName())
	kind := TransportNameIBB
	if err == nil {
		s.Path = PathIBB
		if s.isS5B {
			kind = s5bKind(conn, proxies)
			s.Path = c.s5bPath(s, conn, kind)
		}
		return conn, kind, nil
	}
	if !s.isS5B || !errors.Is(err, socks5.ErrNoConnection) {
		return nil, "", &Error{Peer: s.Peer, Condition: jingle.ConnectivityError, Text: "bytestream failed: " + err.Error(), Err: err}
	}
	if s.Initiator {
		if !fallback {
			return nil, "", &Error{Peer: s.Peer, Condition: jingle.ConnectivityError, Text: "no SOCKS5 candidate reachable", Err: err}
		}
		t, err := ibb.NewJingleTransport(c.ibb, s.Peer, newIBBSID(), 0)
		if err != nil {
			return nil, "", &Error{Peer: s.Peer, Condition: jingle.FailedTransport, Text: "IBB setup failed", Err: err}
		}
		if err := s.js.Bind(s.contentName(), t); err != nil {
			_ = t.Close()
			return nil, "", endedErr(s.js)
		}
		s.isS5B = false
		if err := s.js.Send(ctx, jingle.TransportReplace, []jingle.Content{{Creator: jingle.CreatorInitiator, Name: s.contentName(), Transport: t.Element()}}, nil); err != nil {
			return nil, "", &Error{Peer: s.Peer, Condition: jingle.FailedTransport, Text: "transport-replace refused", Err: err}
		}
		ev, err := waitEvent(ctx, s.js, jingle.TransportAccept, jingle.TransportReject)
		if err != nil {
			return nil, "", err
		}
		if ev.Action == jingle.TransportReject {
			return nil, "", &Error{Peer: s.Peer, Condition: jingle.FailedTransport, Text: "the peer rejected the IBB fallback"}
		}
	} else {
		// JS5B-14: the initiator replaces the transport; wait for it.
		ev, err := waitEvent(ctx, s.js, jingle.TransportReplace)
		if err != nil {
			return nil, "", err
		}
		var offer []byte
		for _, ct := range ev.Contents {
			if ct.Name == s.contentName() {
				offer = ct.Transport
			}
		}
		if jingle.Namespace(offer) != ibb.NSJingle {
			_ = s.js.Send(ctx, jingle.TransportReject, stripContents(ev.Contents), nil)
			return nil, "", &Error{Peer: s.Peer, Condition: jingle.FailedTransport, Text: "unsupported replacement transport"}
		}
		t, err := ibb.NewJingleResponder(c.ibb, s.Peer, offer)
		if err != nil {
			_ = s.js.Send(ctx, jingle.TransportReject, stripContents(ev.Contents), nil)
			return nil, "", &Error{Peer: s.Peer, Condition: jingle.FailedTransport, Text: "bad IBB offer", Err: err}
		}
		if err := s.js.Bind(s.contentName(), t); err != nil {
			_ = t.Close()
			return nil, "", endedErr(s.js)
		}
		s.isS5B = false
		if err := s.js.Send(ctx, jingle.TransportAccept, []jingle.Content{{Creator: jingle.CreatorInitiator, Name: s.contentName(), Transport: t.Element()}}, nil); err != nil {
			return nil, "", &Error{Peer: s.Peer, Condition: jingle.FailedTransport, Text: "transport-accept failed", Err: err}
		}
	}
	conn, err = s.js.Establish(ctx, s.contentName())
	if err != nil {
		return nil, "", &Error{Peer: s.Peer, Condition: jingle.ConnectivityError, Text: "IBB fallback failed: " + err.Error(), Err: err}
	}
	s.Path = PathIBB
	return conn, TransportNameIBB, nil
}

// stripContents keeps creator and name of contents (for transport-reject).
func stripContents(cs []jingle.Content) []jingle.Content {
	out := make([]jingle.Content, 0, len(cs))
	for _, ct := range cs {
		out = append(out, jingle.Content{Creator: ct.Creator, Name: ct.Name, Transport: ct.Transport})
	}
	return out
}

// closeOnEnd closes conn when js ends before stop is called (a peer's session-terminate
// during the TLS handshake), so nothing blocks on a dead bytestream.
func closeOnEnd(js *jingle.Session, conn net.Conn) (stop func()) {
	ch := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		select {
		case <-js.Done():
			_ = conn.Close()
		case <-ch:
		}
	}()
	return func() { close(ch); <-done }
}
