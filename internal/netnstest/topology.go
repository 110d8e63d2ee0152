package netnstest

import (
	"fmt"
	"strconv"
	"testing"
)

// Addresses of the topology. 203.0.113.0/24 (TEST-NET-3, RFC 5737) plays the internet,
// 192.168.1.0/24 and 192.168.2.0/24 (RFC 1918) the two home LANs.
const (
	PublicIP  = "203.0.113.1"  // Prosody and the STUN server, in Public
	Router1IP = "203.0.113.11" // home 1's external address
	Router2IP = "203.0.113.12" // home 2's external address
	Host1AIP  = "192.168.1.10"
	Host1BIP  = "192.168.1.11"
	Host2IP   = "192.168.2.10"
	// ForwardPort is forwarded by Router2 from Router2IP to Host2IP (same port).
	ForwardPort = 7777
)

// Topology is
//
//	                  Public 203.0.113.1 (bridge br0)
//	              ┌────────────┴─────────────┐
//	  Router1 wan 203.0.113.11       Router2 wan 203.0.113.12
//	  masquerade                     masquerade, dnat :7777 → 192.168.2.10:7777
//	  lan 192.168.1.1                lan 192.168.2.1
//	      │                              │
//	  Switch1 (bridge br0)             Host2 192.168.2.10
//	  ┌───┴────┐
//	Host1A    Host1B
//	.1.10     .1.11
//
// The routers forward new connections only from the LAN to the internet and through the
// port forward (a home NAT: endpoint-dependent filtering); they have no route to the other
// home's LAN. Home 1's LAN is switched in a namespace of its own, so that bridged traffic never
// meets the router's rules. The hosts' default route is their router.
type Topology struct {
	Public, Router1, Switch1, Host1A, Host1B, Router2, Host2 *NS
}

// New builds the topology for t; t's cleanup deletes it. It calls Require first.
func New(t testing.TB) *Topology {
	t.Helper()
	Require(t)
	run := RunID(t)
	tp := &Topology{
		Public:  NewNS(t, run, "pub"),
		Router1: NewNS(t, run, "r1"),
		Switch1: NewNS(t, run, "sw1"),
		Host1A:  NewNS(t, run, "h1a"),
		Host1B:  NewNS(t, run, "h1b"),
		Router2: NewNS(t, run, "r2"),
		Host2:   NewNS(t, run, "h2"),
	}
	pub := tp.Public
	pub.IP("link", "add", "br0", "type", "bridge")
	pub.IP("addr", "add", PublicIP+"/24", "dev", "br0")
	pub.IP("link", "set", "br0", "up")
	for i, r := range []*NS{tp.Router1, tp.Router2} {
		port := "r" + strconv.Itoa(i+1)
		pub.IP("link", "add", port, "type", "veth", "peer", "name", "wan", "netns", r.Name)
		pub.IP("link", "set", port, "master", "br0")
		pub.IP("link", "set", port, "up")
		r.IP("addr", "add", []string{Router1IP, Router2IP}[i]+"/24", "dev", "wan")
		r.IP("link", "set", "wan", "up")
	}

	// Home 1: router — switch — two hosts.
	tp.Router1.IP("link", "add", "lan", "type", "veth", "peer", "name", "to-r1", "netns", tp.Switch1.Name)
	tp.Router1.IP("addr", "add", "192.168.1.1/24", "dev", "lan")
	tp.Router1.IP("link", "set", "lan", "up")
	sw := tp.Switch1
	sw.IP("link", "add", "br0", "type", "bridge")
	sw.IP("link", "set", "br0", "up")
	sw.IP("link", "set", "to-r1", "master", "br0")
	sw.IP("link", "set", "to-r1", "up")
	for _, h := range []struct {
		ns       *NS
		port, ip string
	}{{tp.Host1A, "to-h1a", Host1AIP}, {tp.Host1B, "to-h1b", Host1BIP}} {
		sw.IP("link", "add", h.port, "type", "veth", "peer", "name", "eth0", "netns", h.ns.Name)
		sw.IP("link", "set", h.port, "master", "br0")
		sw.IP("link", "set", h.port, "up")
		host(h.ns, h.ip, "192.168.1.1")
	}

	// Home 2: router — host.
	tp.Router2.IP("link", "add", "lan", "type", "veth", "peer", "name", "eth0", "netns", tp.Host2.Name)
	tp.Router2.IP("addr", "add", "192.168.2.1/24", "dev", "lan")
	tp.Router2.IP("link", "set", "lan", "up")
	host(tp.Host2, Host2IP, "192.168.2.1")

	tp.Router1.router("")
	tp.Router2.router(fmt.Sprintf("iifname \"wan\" tcp dport %d dnat to %s:%d", ForwardPort, Host2IP, ForwardPort))
	return tp
}

func host(n *NS, ip, gateway string) {
	n.IP("addr", "add", ip+"/24", "dev", "eth0")
	n.IP("link", "set", "eth0", "up")
	n.IP("route", "add", "default", "via", gateway)
}

// router makes n a home NAT: forwarding on (in n only), masquerade towards wan, the given
// dnat rule (may be empty), and a forward filter that admits new connections only from the
// LAN or through a dnat.
func (n *NS) router(dnat string) {
	n.t.Helper()
	n.Sysctl("net.ipv4.ip_forward", "1")
	// "No route" to the other home's LAN answers every connection attempt at once (ICMP net
	// unreachable) instead of after the per-destination rate limit.
	n.Sysctl("net.ipv4.icmp_ratelimit", "0")
	n.Nft(`table ip nat {
	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		` + dnat + `
	}
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		oifname "wan" masquerade
	}
}
table ip filter {
	chain forward {
		type filter hook forward priority filter; policy drop;
		ct state established,related accept
		iifname "lan" oifname "wan" accept
		ct status dnat accept
	}
}
`)
}
