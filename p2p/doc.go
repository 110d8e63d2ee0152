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
// order in which the peer's addresses are tried.
package p2p
