package xtls

import (
	"context"
	"crypto/tls"
	"fmt"
	"slices"
	"time"

	"github.com/xtlsjingle/xtlsjingle/disco"
	"github.com/xtlsjingle/xtlsjingle/jingle"
	"github.com/xtlsjingle/xtlsjingle/p2p"
)

// This file lets XTLS secure the bytestream of Jingle applications other than xmlstream, such
// as XEP-0234 file transfer: the same disco check (XTLS-1/2/25), the same <security/> offer
// and method choice (XTLS-9, XTLS-D3, XTLS-17), the same transports (S5B direct or proxy, then
// IBB, JS5B-14), the same TLS 1.3 and XSRP (XTLS-D6) and the same <security-error/> failures
// as Open and HandleJingle — they run the same code. What differs is the end: instead of an
// end-to-end XML stream the application gets the *tls.Conn and the Jingle session, and speaks
// its own protocol on them (file bytes on the conn, session-info on the session).

// connContent is the content name OpenConn uses when the caller names none.
const connContent = "content"

// application is the Jingle application of a session: xmlstream (Open, HandleJingle) or one
// registered in Config.Applications (OpenConn, incoming sessions routed to Application).
type application struct {
	ns      string // namespace of the <description/>
	content string // content name
	senders jingle.Senders
	desc    []byte // the <description/> of session-initiate
	conn    bool   // hand out the *tls.Conn instead of starting an xmlstream
	handler *Application
}

var xmlstreamApp = application{ns: NSXMLStream, content: contentName, desc: description}

// contentName returns the name of the session's one content.
func (s *Session) contentName() string {
	if s.app == nil {
		return contentName
	}
	return s.app.content
}

// Application routes incoming XTLS sessions whose content carries the application of
// Namespace (e.g. urn:xmpp:jingle:apps:file-transfer:5) to the application, and enables
// OpenConn for it. The client advertises Namespace and Features in disco#info (unless
// Config.NoDisco) and lets its Jingle manager understand session-info payloads of Namespace
// and InfoNamespaces (unless Config.Jingle is set: then that manager's configuration must).
type Application struct {
	// Namespace is the namespace of the content's <description/>.
	Namespace string
	// Features are further disco#info features the application needs advertised (e.g.
	// urn:xmpp:hashes:2 next to file transfer).
	Features []string
	// InfoNamespaces are further namespaces of session-info payloads the application reads.
	InfoNamespaces []string
	// Decide decides on an incoming session offering this application with <security/>: like
	// Config.OnIncoming, plus the <description/> to answer with. It runs on a goroutine of its
	// own and may ask the user. nil declines every session.
	Decide func(ctx context.Context, in *IncomingConn) ConnDecision
	// Secured is given every incoming session of this application once its bytestream is
	// secured (XTLS-D6), on a goroutine of its own. The application owns conn.Jingle from then
	// on: it reads its events and must end it (Terminate).
	Secured func(conn *Conn)
	// Failed, if set, is told about incoming sessions of this application that failed after
	// Decide accepted them (wrong password, changed certificate, no transport); otherwise
	// Config.OnError is. It must not block.
	Failed func(peer, sid string, err error)
	// Plaintext, if set, is offered the incoming sessions of this application that come
	// without <security/> from a peer without XTLS (plaintext.go); nil declines them all
	// with <decline/>.
	Plaintext *PlaintextHandler
}

// IncomingConn describes an incoming session of an Application for Application.Decide.
type IncomingConn struct {
	Incoming
	// Content is the offered content (its Description is the application's offer).
	Content jingle.Content
}

// ConnDecision is the application's answer to an IncomingConn.
type ConnDecision struct {
	Decision
	// Description is the <description/> of session-accept; nil answers with the offered one.
	Description []byte
}

// Conn is the secured bytestream of an XTLS session of an Application (XTLS-D6): TLS 1.3,
// with x509 or srp exactly as for Open, over S5B or IBB. Its Read and Write carry the
// application's bytes; Close sends close_notify and closes the bytestream but does not end
// the Jingle session, which belongs to the caller (it must Terminate it). The session's
// events (session-info, session-terminate) are unread when the Conn is handed out.
//
// GO-7: with x509 a TLS 1.3 client's handshake completes before the server checked the
// client certificate, so the initiator learns that the responder refused it only from the
// responder's session-terminate (<security-error/>) or a failing read; the data it wrote is
// encrypted to the verified, pinned responder either way. With srp the initiator has read
// the responder's proof before OpenConn returns.
type Conn struct {
	*tls.Conn
	// Jingle is the session; Content the name of its one content.
	Jingle  *jingle.Session
	Content string
	// Peer is the peer's full JID and SID the Jingle session id.
	Peer, SID string
	// Initiator reports whether we initiated the session.
	Initiator bool
	// Method is MethodX509 or MethodSRP; Transport one of the TransportName values.
	Method, Transport string
	// Path is which kind of candidate won (PathDirectLocal, …; see Session.Path).
	Path string
	// PeerFingerprint is the fingerprint of the certificate the peer presented in TLS.
	PeerFingerprint Fingerprint
	// KeyHint compares the key the peer published in presence with its certificate (see
	// Session.KeyHint): a hint, never verification.
	KeyHint p2p.KeyHint
	// Pinned reports whether this session pinned PeerFingerprint (srp or leap of faith).
	Pinned bool
	// SetupTime is the time from OpenConn (or session-initiate) to the secured bytestream.
	SetupTime time.Duration
}

// OpenConn starts an XTLS session with the full JID peer whose one content carries an
// application of Config.Applications, and returns its secured bytestream. content gives the
// application's Description (required) and optionally Name (default "content") and Senders;
// OpenConn fills in creator, transport and <security/>. Everything else is Open: the peer
// must advertise XTLS and the application (else ErrNotSupported, or ErrDowngrade when
// certificates of it are pinned), the method is chosen by XTLS-D3 with opts.Password for srp,
// the transport follows opts.Transports or Config.Transports, and every failure ends the
// session (<security-error/> for security failures) and returns an *Error. There is no
// plaintext fallback: for a peer without XTLS (ErrNotSupported) the caller may ask the user
// and then call OpenPlaintext for this one session.
func (c *Client) OpenConn(ctx context.Context, peer string, content jingle.Content, opts *OpenOptions) (*Conn, error) {
	ns := jingle.Namespace(content.Description)
	app := c.cfg.application(ns)
	if app == nil {
		return nil, fmt.Errorf("xtls: OpenConn: the description's namespace %q is not in Config.Applications", ns)
	}
	name := content.Name
	if name == "" {
		name = connContent
	}
	s, err := c.open(ctx, peer, &application{ns: ns, content: name, senders: content.Senders, desc: content.Description, conn: true, handler: app}, opts)
	if err != nil {
		return nil, err
	}
	return s.asConn(), nil
}

func (s *Session) asConn() *Conn {
	return &Conn{Conn: s.tls, Jingle: s.js, Content: s.contentName(), Peer: s.Peer, SID: s.SID, Initiator: s.Initiator,
		Method: s.Method, Transport: s.Transport, PeerFingerprint: s.PeerFingerprint, Pinned: s.Pinned, SetupTime: s.SetupTime,
		Path: s.Path, KeyHint: s.KeyHint}
}

// connSecured ends secure for an Application's session: the bytestream is secured and the
// application's bytes follow (instead of the stream headers).
func (s *Session) connSecured() error {
	if s.cork != nil {
		// The initiator's Finished may still be held back (x509: nothing was read yet).
		if err := s.cork.uncork(); err != nil {
			_ = s.tls.Close()
			return describe(s.Peer, s.Peer, err)
		}
	}
	return nil
}

// application returns the registered application of namespace ns, or nil.
func (cfg *Config) application(ns string) *Application {
	if ns == "" || ns == NSXMLStream {
		return nil
	}
	for i := range cfg.Applications {
		if cfg.Applications[i].Namespace == ns {
			return &cfg.Applications[i]
		}
	}
	return nil
}

// infoNamespaces returns the session-info namespaces of the registered applications.
func (cfg *Config) infoNamespaces() []string {
	var out []string
	for _, a := range cfg.Applications {
		out = append(out, a.Namespace)
		out = append(out, a.InfoNamespaces...)
	}
	return out
}

// DiscoInfo returns the disco#info the client serves (unless NoDisco): disco.ClientInfo()
// plus the namespaces and features of Applications. An application that serves disco itself
// or announces caps (XEP-0115) should use it so both agree.
func (cfg *Config) DiscoInfo() *disco.Info {
	info := disco.ClientInfo()
	for _, a := range cfg.Applications {
		for _, f := range append([]string{a.Namespace}, a.Features...) {
			if !slices.Contains(info.Features, f) {
				info.Features = append(info.Features, f)
			}
		}
	}
	return info
}

// match finds the content of js that the client handles: xmlstream, or an application of
// Config.Applications offered with <security/>. Offers of an application without
// <security/> (a peer without XTLS) are not matched: they go to Application.Plaintext or
// are declined (plaintext.go).
func (c *Client) match(js *jingle.Session) (jingle.Content, *application, bool) {
	for _, ct := range js.Contents() {
		ns := jingle.Namespace(ct.Description)
		if ns == NSXMLStream {
			app := xmlstreamApp
			app.content = ct.Name
			return ct, &app, true
		}
		if h := c.cfg.application(ns); h != nil && ct.Security != nil {
			return ct, &application{ns: ns, content: ct.Name, senders: ct.Senders, desc: ct.Description, conn: true, handler: h}, true
		}
	}
	return jingle.Content{}, nil, false
}

// decide asks the application (Config.OnIncoming for xmlstream, Application.Decide otherwise)
// and returns its decision and the <description/> for session-accept.
func (c *Client) decide(ctx context.Context, s *Session, in *Incoming, offered jingle.Content) (Decision, []byte) {
	if s.app == nil || !s.app.conn {
		var d Decision
		if c.cfg.OnIncoming != nil {
			d = c.cfg.OnIncoming(ctx, in)
		}
		return d, description
	}
	if s.app.handler.Decide == nil {
		return Decision{Decline: true}, nil
	}
	d := s.app.handler.Decide(ctx, &IncomingConn{Incoming: *in, Content: offered})
	if d.Description == nil {
		d.Description = offered.Description
	}
	return d.Decision, d.Description
}

// failed reports an incoming session that failed after it was taken.
func (c *Client) failed(s *Session, err error) {
	if s.app != nil && s.app.handler != nil && s.app.handler.Failed != nil {
		s.app.handler.Failed(s.Peer, s.SID, err)
		return
	}
	if c.cfg.OnError != nil {
		c.cfg.OnError(s.Peer, err)
	}
}

// deliver hands a secured incoming session to its application.
func (c *Client) deliver(s *Session) {
	h := s.app.handler
	conn := s.asConn()
	if h.Secured == nil {
		_ = conn.Close()
		c.failed(s, terminate(s.js, &Error{Peer: s.Peer, Condition: jingle.FailedApplication, Text: "the application takes no sessions"}))
		return
	}
	go h.Secured(conn)
}

// Terminate ends the Jingle session of conn with reason (nil: <success/>) after closing the
// bytestream; for applications that do not end the session themselves.
func (conn *Conn) Terminate(ctx context.Context, reason *jingle.Reason) error {
	_ = conn.Conn.Close()
	if reason == nil {
		reason = &jingle.Reason{Condition: jingle.Success}
	}
	return conn.Jingle.Terminate(ctx, reason)
}
