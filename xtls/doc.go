// Package xtls implements XTLS, the Jingle security precondition of draft-meyer-xmpp-e2e-encryption
// and protoXEP jingle-xtls 0.0.4 (namespace urn:xmpp:jingle:security:xtls:0), with TLS 1.3 and
// a password bootstrap called XSRP.
//
// # Layering
//
// One end-to-end session is built bottom to top:
//
//	Jingle precondition   <security/> in session-initiate / session-accept / security-info:
//	                      fingerprints (hints only, XTLS-9) and the method, x509 or srp (XTLS-D3)
//	transport             a bytestream negotiated by Jingle (IBB or SOCKS5) that ends as a net.Conn
//	TLS 1.3               initiator = TLS client, responder = TLS server requiring a client
//	                      certificate (XTLS-3/4); ClientConfig / ServerConfig
//	XSRP (srp only)       SRP-6a inside the tunnel, bound to the tls-exporter and both
//	                      certificate fingerprints; ClientXSRP / ServerXSRP
//	xmlstream             the end-to-end XML stream, started only once the layer below is secured
//
// The transport counts as secured (XTLS-7, XTLS-D6) when, for x509, the handshake succeeded and
// the peer's certificate is pinned for its bare JID (XTLS-D4), and for srp, additionally XSRP
// succeeded, after which each side pins the other's certificate (XSRP-8) so that later sessions
// use x509. Because a TLS 1.3 client finishes its handshake before the server has checked the
// client certificate (GO-7), the initiator knows the session is secured only after one
// authenticated read from the responder: the XSRP proof M2, or the responder's stream header.
//
// Over a SOCKS5 proxy the session nudges the relay: Prosody's mod_proxy65 holds back up to
// 4096 bytes of a burst larger than 4096 bytes until the same sender writes again, which would
// stall request/response traffic, so after more than 1 KiB written and 20 ms idle each side
// sends one whitespace keepalive inside TLS (CORE-11), whose record releases the tail.
//
// # Pieces
//
//   - Security, ParseSecurity: the wire element. Fingerprints are emitted as algo='sha-256'
//     lowercase hex; input also accepts sha-1/sha1, uppercase, colon-separated hex and Gajim's
//     form without algo (XTLS-D1).
//   - Fingerprint: SHA-256 of the DER certificate, with constant-time Equal and display as hex
//     groups or RFC 6920 ni:///sha-256;… (NI-6).
//   - Identity: the client's long-term self-signed certificate (Ed25519 or ECDSA P-256) naming
//     the bare JID as id-on-xmppAddr and xmpp: URI; PEM persistence.
//   - TrustStore, FileStore, MemoryStore: bare JID → pinned fingerprints with how they were
//     verified (XTLS-D2).
//   - ClientConfig, ServerConfig, PeerFingerprint: the TLS profile (GO-6).
//   - ClientXSRP, ServerXSRP: the password step.
//   - Client.Open/Accept: sessions of the xmlstream application. Client.OpenConn and
//     Config.Applications: the same negotiation for another Jingle application (XEP-0234 file
//     transfer in xtlschat), which gets the secured *tls.Conn and the Jingle session (Conn).
//   - Client.OpenPlaintext and Application.Plaintext: the only unencrypted sessions, of an
//     Application with a peer that does not advertise XTLS, each one only on the caller's
//     explicit request (XTLS-15); never with a peer that advertises XTLS or whose certificates
//     are pinned (ErrPeerHasXTLS, ErrDowngrade, XTLS-25), never for xmlstream.
//   - PresenceLink, Config.P2P, Client.PresencePayloads: contacts' presence feeds the caps
//     cache and a table of what they publish (seed 000's <p2p/> and <e2e/>); the same-network
//     rule orders a peer's SOCKS5 candidates; Session.Path names the route that won and
//     Session.KeyHint compares a published key with the TLS certificate. All of it is hints:
//     an address or a published key never authenticates anyone (SPEC SEED-1).
//
// # Deviation from RFC 5054 (SPEC §18.3)
//
// The draft's srp method means TLS-SRP (RFC 5054) cipher suites. Those exist only for TLS ≤ 1.2
// with CBC/HMAC-SHA1 and Go's crypto/tls has none (GO-1); TLS 1.3 has no SRP at all. The method
// token stays "srp", but the bytes differ: both sides run an ordinary TLS 1.3 handshake that
// accepts any self-signed certificate, then, before any application byte, SRP-6a with the
// RFC 5054 3072-bit group (g = 5) and SHA-256 in every formula (PAD to 384 bytes), framed as
// type(1) | length(2) | body. The identity I is the initiator's bare JID, the password goes
// through PRECIS OpaqueString, the responder picks a fresh 32-byte salt per session, and the
// verifier is computed on the fly by both sides (they share the password; nothing is stored).
// Instead of the TLS Finished messages the proofs are
//
//	K  = H(PAD(S))
//	T  = "XTLS-SRP-v1" ‖ cb ‖ fpC ‖ fpS ‖ H(I) ‖ s ‖ PAD(A) ‖ PAD(B)
//	M1 = HMAC-SHA256(K, "client" ‖ T)       M2 = HMAC-SHA256(K, "server" ‖ T ‖ M1)
//
// with cb the RFC 9266 tls-exporter of this TLS connection and fpC, fpS the SHA-256 fingerprints
// of both certificates as seen in it, so a man in the middle who terminates TLS twice gets
// proofs that do not verify, and an attacker gets one online password guess per run. A peer
// speaking real RFC 5054 TLS-SRP fails closed (the TLS 1.3 handshake or XSRP fails and the
// session ends with <security-error/>); no such XTLS peer is known to exist.
//
// Exponentiations with secret exponents use filippo.io/bigmod, constant time in the exponent
// value; math/big touches only public values. Secrets (a, b, x, S, K, the password bytes) are
// cleared after use on a best-effort basis: Go's garbage collector may have copied them, and
// bigmod's internal limbs are not cleared.
package xtls
