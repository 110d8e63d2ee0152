// Package socks5 implements XEP-0065: SOCKS5 Bytestreams and XEP-0260: Jingle SOCKS5
// Bytestreams Transport Method, ending in a plain net.Conn.
//
// # Wire
//
// [Query] is the http://jabber.org/protocol/bytestreams <query/> (streamhosts,
// streamhost-used, activate); [Transport] is the urn:xmpp:jingle:transports:s5b:1
// <transport/> (candidates, candidate-used, candidate-error, activated, proxy-error). Their
// parsers are strict and bounded and return *[Error], which carries the XMPP error condition.
//
// # SOCKS5
//
// Only the subset XEP-0065 uses (S5B-13): no authentication, CONNECT, ATYP 3 with
// DST.ADDR = [DstAddr](sid, requester, target), port 0. [Dial] and [Connect] are the client;
// [Listener] is the server for our direct candidates, shared by all sessions: it accepts a
// connection only if its DST.ADDR was registered with [Listener.Expect] and closes anything
// else (wrong hash, garbage, a handshake slower than its timeout) without touching other
// connections.
//
// # Proxies
//
// [DiscoverProxies] finds the server's proxies (disco#items, disco#info for
// proxy/bytestreams, the bytestreams query; S5B-2), replacing a host name that does not
// resolve by a configured address; [Activate] activates a bytestream at a proxy (S5B-8).
//
// # Jingle
//
// [JingleTransport] implements the jingle package's Transport interface (structurally; this
// package does not import jingle). The initiator builds it with [NewJingleTransport], the
// responder with [AcceptJingleTransport] from the offered element. Establish returns a
// connection once both sides know the nominated candidate (JS5B-20), so the initiator can
// start TLS at once. When no candidate works it returns an error wrapping [ErrNoConnection]
// after the candidate-error exchange; the initiator then sends transport-replace with the
// in-band transport (XEP-0261) and the responder answers transport-accept from that
// transport's element (JS5B-14), closing this one.
//
// Candidates are tried in descending priority (JS5B-7) unless [Config].Order says otherwise:
// a hint the transport cannot know, such as the same-network rule of package xtls's
// Config.P2P, may reorder them and add aliases (another address of a candidate's listener,
// reported with the candidate's cid).
//
// A proxy relays only after activation, and Prosody 0.12's mod_proxy65 may hold back up to
// 4096 bytes of a burst until its sender writes again (see
// internal/integration/socks5_test.go, TestS5BProxyEcho): request/response protocols
// over a proxied connection should send a keep-alive after a burst.
//
// [Offer] and [HandleRequests] speak plain XEP-0065 (without Jingle) as requester and target.
package socks5
