package xtls

import (
	"context"
	"crypto"
	"crypto/x509"
	"net"
	"net/netip"
	"slices"

	"github.com/xtlsjingle/xtlsjingle/disco"
	"github.com/xtlsjingle/xtlsjingle/p2p"
	"github.com/xtlsjingle/xtlsjingle/socks5"
)

// PresenceLink is the optional presence part of a Link; gosrcxmpp.Client and
// internal/xmpptest's parties implement it. When the link has it, NewClient installs a
// presence handler that feeds the XEP-0115 caps of contacts' presence into Config.Caps (a
// first Open then needs no disco#info round trip when the caps are known) and remembers the
// <p2p/> and <e2e/> elements they publish (seed 000), per full JID until their unavailable
// presence. A link without it works as before. Call the link's first SetPresence after
// NewClient: the contacts' presence that the server sends in answer to it then reaches the
// client's handler (gosrcxmpp.Dial sends no presence of its own for that reason).
type PresenceLink interface {
	// SetPresence sends our available presence with payloads (each one XML element) as its
	// children, replacing the presence before; the adapter re-sends it after reconnecting.
	SetPresence(ctx context.Context, payloads ...[]byte) error
	// HandlePresence installs h for incoming presence: from is the sender's full JID, typ
	// "available" or "unavailable" (a link may deliver other types, e.g. "subscribe"; the
	// client ignores them), payloads the child elements (bounded by the link). h must not
	// block. remove uninstalls it.
	HandlePresence(h func(ctx context.Context, from, typ string, payloads [][]byte)) (remove func())
}

// P2PConfig configures the peer-to-peer hints of urn:nf:iot:p2p:1.0 (seed 000, SPEC SEED-1).
// Every address in it or learned from presence is a hint for the order of SOCKS5 candidates;
// the peer is authenticated by TLS (pins or XSRP) whatever address the bytestream reached.
type P2PConfig struct {
	// ExternalIP is our address as seen from the Internet (p2p.Result.ExternalIP from
	// p2p.Gather). While it is zero (unknown) the rule below cannot tell the same network from
	// another one, and a peer's candidates are tried by priority alone (JS5B-7).
	//
	// With ExternalIP set, connecting to a peer whose presence published <p2p/> follows the
	// seed's rule: when its extIp equals ExternalIP we are on the same network and its
	// candidates at locIp:locPort are tried first, otherwise those at extIp:extPort. When the
	// preferred address is not among its candidates it is tried anyway as an alias of the
	// peer's direct candidate on locPort, else of its assisted candidate at extIp:extPort
	// (without either, no alias), and a connection through it is reported with that
	// candidate's cid: the
	// published address reaches the listener that serves that candidate (a port forward to
	// it, or its host address), the peer's listener matches our connection by DST.ADDR, not
	// by address, and the nomination uses the candidate's priority on both sides. At most one
	// alias per session is tried.
	//
	// The rule can be wrong: behind a carrier-grade NAT unrelated customers share one external
	// IP, so "the same network" may not be. That costs only a failed attempt at the local
	// address (bounded by the connect timeout) before the next candidate; it never weakens
	// authentication, which TLS does whatever address the bytestream reached.
	ExternalIP netip.Addr
	// Publish, when valid, is the <p2p/> that Client.PresencePayloads returns: our external
	// address (a port forward or the STUN mapping of our S5B listener) and the listener's
	// local address. Everyone subscribed to our presence learns them (JS5B-17): publish only
	// when the user asks for it.
	Publish p2p.P2P
	// PublishKey makes Client.PresencePayloads include <e2e/> with our certificate's public
	// key (ed25519 or p256), which contacts may show next to our fingerprint as a hint.
	PublishKey bool
}

// Paths reported in Session.Path: what carried the bytestream, judged from the connection
// itself (its remote address: the address we dialed, or the source of the peer's connection),
// never from the type of the candidate it was nominated as (an alias found by the
// same-network rule keeps the CID of an assisted candidate).
const (
	// PathDirectLocal: a direct SOCKS5 connection between host addresses on the same
	// network, with no NAT in between. We dialed the locIp:locPort the peer published, or a
	// direct candidate of the peer at a private, loopback or link-local address; or the peer
	// dialed us and the connection comes from its published locIp or from a private address
	// among its direct candidates (a NAT would have replaced the source by its own); or the
	// peer told us no address at all and used a direct candidate of ours at a private
	// address.
	PathDirectLocal = "direct-local"
	// PathDirectExternal: any other direct SOCKS5 connection: through a port forward or a
	// STUN mapping (an assisted candidate, a published extIp), to or from a public host
	// address, or from a source that is none of the peer's host addresses (a NAT's).
	PathDirectExternal = "direct-external"
	// PathProxy: through a SOCKS5 proxy (XEP-0065 mediated).
	PathProxy = "proxy"
	// PathIBB: in-band through the servers (XEP-0047).
	PathIBB = "ibb"
)

// PresencePayloads returns the elements Config.P2P asks to publish in our presence (<p2p/>,
// <e2e/>), for the application to pass to its presence with its own (e.g. XEP-0115 caps):
// nil without Config.P2P.
func (c *Client) PresencePayloads() ([][]byte, error) {
	pc := c.cfg.P2P
	if pc == nil {
		return nil, nil
	}
	var out [][]byte
	if pc.Publish.External.IsValid() || pc.Publish.Local.IsValid() {
		b, err := pc.Publish.Marshal()
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	if pc.PublishKey {
		k, err := p2p.KeyOf(c.ownPublicKey())
		if err != nil {
			return nil, err
		}
		b, err := p2p.E2E{Keys: []p2p.Key{k}}.Marshal()
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

// Published returns what the full JID peer published in its latest presence (<p2p/>,
// <e2e/>); ok is false when nothing is known.
func (c *Client) Published(peer string) (p2p.Published, bool) {
	return c.peers.Lookup(peer)
}

func (c *Client) ownPublicKey() crypto.PublicKey {
	cert := c.cfg.Identity.Certificate()
	if cert.Leaf != nil {
		return cert.Leaf.PublicKey
	}
	if x, err := x509.ParseCertificate(cert.Certificate[0]); err == nil {
		return x.PublicKey
	}
	return nil
}

// onPresence feeds contacts' presence into the caps cache and the table of published
// elements. Our own presence, echoed by the server, is skipped.
func (c *Client) onPresence(_ context.Context, from, typ string, payloads [][]byte) {
	if from == c.link.LocalJID() {
		return
	}
	if typ == "unavailable" || typ == "error" {
		// A presence error from a contact (links that deliver them) says it cannot be
		// reached now: what it published before is no longer a useful hint.
		c.caps.Forget(from)
		c.peers.Forget(from)
		return
	}
	if typ != "available" {
		return
	}
	for _, p := range payloads {
		if cp, err := disco.ParseCaps(p); err == nil {
			c.caps.SetCaps(from, cp)
		}
	}
	c.peers.Update(from, payloads)
}

// keyHint compares what peer published in <e2e/> with the public key of the certificate it
// presented in TLS (a display hint, never verification).
func (c *Client) keyHint(peer string, pub crypto.PublicKey) p2p.KeyHint {
	if p, ok := c.peers.Lookup(peer); ok && p.E2E != nil {
		return p.E2E.Matches(pub)
	}
	return p2p.KeyHintNone
}

// s5bOrder returns the candidate-ordering hint for a SOCKS5 transport with peer
// (socks5.Config.Order), or nil without Config.P2P.
func (c *Client) s5bOrder(peer string) func([]socks5.Candidate) []socks5.Candidate {
	if c.cfg.P2P == nil || !c.cfg.P2P.ExternalIP.IsValid() {
		return nil
	}
	ext := c.cfg.P2P.ExternalIP
	return func(cands []socks5.Candidate) []socks5.Candidate {
		pub, ok := c.peers.Lookup(peer)
		if !ok || pub.P2P == nil {
			return cands
		}
		return orderByPublished(cands, *pub.P2P, ext)
	}
}

// orderByPublished implements the seed's rule on the peer's candidates (see P2PConfig).
func orderByPublished(cands []socks5.Candidate, pub p2p.P2P, ourExternal netip.Addr) []socks5.Candidate {
	same := p2p.SameNetwork(ourExternal, pub)
	want := pub.Order(ourExternal)[0]
	var first, rest []socks5.Candidate
	for _, cd := range cands {
		if cd.Type != socks5.Proxy && candidateAt(cd, want) {
			first = append(first, cd)
		} else {
			rest = append(rest, cd)
		}
	}
	if len(first) == 0 {
		if base, ok := aliasBase(cands, pub); ok {
			a := base
			a.Host, a.Port = want.Addr().String(), int(want.Port())
			a.Type = socks5.Assisted
			if same {
				a.Type = socks5.Direct
			}
			first = append(first, a)
		}
	}
	return append(first, rest...)
}

// candidateAt reports whether cd is at address a.
func candidateAt(cd socks5.Candidate, a netip.AddrPort) bool {
	ip, err := netip.ParseAddr(cd.Host)
	return err == nil && ip.Unmap() == a.Addr() && cd.Port == int(a.Port())
}

// aliasBase picks the peer candidate an alias stands for, i.e. one that is evidently served
// by the listener the published addresses reach: its direct candidate on the published local
// port, else its assisted candidate at the published external address. Without such evidence
// there is no alias: a client with one listening socket per candidate would wait for our
// connection on the socket of the cid we report, so an alias on a guess could stall the
// transport until its timeout (JS5B-7).
func aliasBase(cands []socks5.Candidate, pub p2p.P2P) (socks5.Candidate, bool) {
	for _, ok := range []func(socks5.Candidate) bool{
		func(cd socks5.Candidate) bool { return cd.Type == socks5.Direct && cd.Port == int(pub.Local.Port()) },
		func(cd socks5.Candidate) bool { return cd.Type == socks5.Assisted && candidateAt(cd, pub.External) },
	} {
		for _, cd := range cands {
			if ok(cd) {
				return cd, true
			}
		}
	}
	return socks5.Candidate{}, false
}

// s5bPath classifies the SOCKS5 connection that carries the session (Session.Path) from the
// connection itself, not from the type of the nominated candidate: with aliases (the
// same-network rule) the peer may have reached our assisted candidate's listener at our
// local address, and an alias we dialed keeps the CID of the peer's assisted candidate.
//
//   - We dialed (the nominated candidate is the peer's): local when the address we are
//     connected to is the locIp:locPort the peer published, or a private, loopback or
//     link-local address of one of its direct candidates.
//   - The peer dialed us: local when the connection comes from the peer's published locIp,
//     or from a private, loopback or link-local address among its direct candidates (a NAT
//     on the way would have replaced the source by its own). When the peer told us no
//     address at all, only the candidate of ours it used is left to go by: local when it is
//     a direct candidate at a private address.
//
// Everything else is direct-external.
func (c *Client) s5bPath(s *Session, conn net.Conn, kind string) string {
	if kind == TransportNameS5BProxy {
		return PathProxy
	}
	ta, ok := conn.RemoteAddr().(*net.TCPAddr)
	if s.s5b == nil || !ok {
		return PathDirectExternal
	}
	peerAddr := ta.AddrPort()
	peerAddr = netip.AddrPortFrom(peerAddr.Addr().Unmap(), peerAddr.Port())
	pub, _ := c.peers.Lookup(s.Peer)
	n := s.s5b.Nominated()
	remote := s.s5b.Remote()
	dialed := slices.ContainsFunc(remote, func(rc socks5.Candidate) bool { return rc.CID == n.CID })
	hostOfPeer := func(ip netip.Addr) bool { // a private address among its direct candidates
		return isLocalIP(ip.String()) && slices.ContainsFunc(remote, func(rc socks5.Candidate) bool {
			a, err := netip.ParseAddr(rc.Host)
			return err == nil && rc.Type == socks5.Direct && a.Unmap() == ip
		})
	}
	if dialed {
		if pub.P2P != nil && pub.P2P.Local == peerAddr || n.Type == socks5.Direct && hostOfPeer(peerAddr.Addr()) {
			return PathDirectLocal
		}
		return PathDirectExternal
	}
	if pub.P2P != nil && pub.P2P.Local.Addr() == peerAddr.Addr() || hostOfPeer(peerAddr.Addr()) {
		return PathDirectLocal
	}
	told := pub.P2P != nil || slices.ContainsFunc(remote, func(rc socks5.Candidate) bool { return rc.Type == socks5.Direct })
	if !told && n.Type == socks5.Direct && isLocalIP(n.Host) {
		return PathDirectLocal
	}
	return PathDirectExternal
}

// isLocalIP reports whether host is a private, loopback or link-local IP address.
func isLocalIP(host string) bool {
	ip, err := netip.ParseAddr(host)
	return err == nil && (ip.IsPrivate() || ip.IsLoopback() || ip.IsLinkLocalUnicast())
}
