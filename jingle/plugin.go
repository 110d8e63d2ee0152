package jingle

import (
	"context"
	"net"
)

// Transport is one streaming transport method (XEP-0260 SOCKS5 Bytestreams, XEP-0261 In-Band
// Bytestreams) negotiated for one content of a session. The bytestream packages implement it
// without importing jingle: every method uses standard types only.
//
// Elements are raw XML: exactly one <transport/> element in the transport's namespace.
//
// Life cycle, for both roles:
//  1. The initiator builds its transport (e.g. socks5.NewJingleTransport, ibb.NewJingleTransport)
//     and puts Element() into session-initiate. The responder builds its transport from the
//     offered element and puts its own Element() (the answer, e.g. a lowered block-size or its
//     own candidates) into session-accept. The initiator then passes the responder's element to
//     HandleAccept.
//  2. Every transport-info the peer sends for this content is passed to HandleInfo, serialised
//     per session, before the IQ acknowledgement goes out; a returned error that has a
//     StanzaError method becomes the IQ error.
//  3. After session-accept has been acknowledged, both sides call Establish. It sends
//     transport-info elements through sendInfo (which blocks until the peer acknowledged them)
//     and returns the open bytestream once both sides know it is usable (XTLS-7: JIBB-10, JS5B-20).
//     A transport that cannot connect returns an error (after telling the peer, e.g.
//     candidate-error), after which the initiator may replace it (transport-replace, JS5B-14).
//  4. Close releases everything not handed out by Establish (listeners, losing connections).
//     It is safe to call more than once and concurrently with Establish, which it unblocks.
//
// How the jingle package drives it: a Transport is bound to a content with the transports
// argument of Manager.Initiate or Session.Accept, or with Session.Bind (e.g. before sending or
// accepting transport-replace). The manager then calls HandleAccept with the peer's
// <transport/> from session-accept (initiator side) or transport-accept (the side that sent
// transport-replace), and HandleInfo for each transport-info of that content; both run on the
// session's serial executor, so they must return promptly and must not wait for another Jingle
// action of the same session (Establish may). Session.Establish calls Establish with a sendInfo
// that sends transport-info for the content. The manager calls Close when the content is
// removed or rejected, when another Transport is bound to it, and when the session ends.
type Transport interface {
	// Namespace returns the namespace of the <transport/> element, e.g.
	// "urn:xmpp:jingle:transports:ibb:1".
	Namespace() string
	// Element returns this side's <transport/> element.
	Element() []byte
	// HandleAccept gives the initiator's transport the responder's <transport/> element from
	// session-accept or transport-accept.
	HandleAccept(transport []byte) error
	// HandleInfo processes the <transport/> element of a transport-info from the peer.
	HandleInfo(transport []byte) error
	// Establish opens the bytestream; see the life cycle above.
	Establish(ctx context.Context, sendInfo func(ctx context.Context, transport []byte) error) (net.Conn, error)
	// Close releases the transport's resources.
	Close() error
}
