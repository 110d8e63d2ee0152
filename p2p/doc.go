// Package p2p finds the addresses under which a peer behind a NAT can reach our XEP-0260
// (Jingle SOCKS5 Bytestreams) listener, and reads and writes the urn:nf:iot:p2p:1.0
// presence element that publishes them (seed 000, SPEC SEED-1).
//
// # STUN (RFC 8489)
//
// [Binding] sends one STUN Binding request and returns the XOR-MAPPED-ADDRESS of the
// success response (STUN-4). Over TCP the request leaves from the S5B listener's own local
// port ([ListenReusable] makes the listener shareable with SO_REUSEADDR/SO_REUSEPORT), so the
// mapping learned is the NAT's mapping of the listener's TCP port — the only one that matters
// for S5B (SPEC §17: a UDP mapping says nothing about inbound TCP). Over UDP the request is
// sent from the same port number with retransmissions (RTO doubling, Rc transmissions, Rm×RTO
// after the last, STUN-7); such an address is only a guess for TCP and is used for its IP.
//
// An address learned from STUN is a mapping the NAT made for a connection to the STUN server;
// whether it accepts inbound connections depends on the NAT's filtering. [Gather] therefore
// offers configured port forwards first and the reflexive address after them, all as type
// assisted (JS5B-2). Every address is a hint: TLS authenticates the peer whatever address
// the bytestream came from.
//
// # Presence (seed 000)
//
// [P2P] is <p2p xmlns='urn:nf:iot:p2p:1.0' extIp extPort locIp locPort/>; [ParseP2P] is
// strict and bounded. [SameNetwork] implements the seed's rule (equal external IPs mean the
// same network, so the local address is tried first) and [P2P.Order] turns it into the
// order in which the peer's addresses are tried. [E2E] is <e2e xmlns='urn:nf:iot:e2e:1.0'>
// with published public keys; [E2E.Matches] compares them with the certificate a peer
// presented in TLS, as a hint to display and nothing more. [Table] keeps what each full JID
// published, bounded, until its unavailable presence.
//
// The seed also lets a device accept a connection because its source IP equals a published
// address. We do not: NAT, spoofing and shared networks make an IP address no proof of
// anything, and the server can rewrite presence. Published addresses only decide which
// SOCKS5 candidates are tried first (package xtls, Config.P2P); TLS with pinned certificates
// or XSRP authenticates the peer on every path.
package p2p
