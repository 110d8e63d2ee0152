package xtls

import (
	"net/netip"
	"testing"

	"github.com/xtlsjingle/xtlsjingle/p2p"
	"github.com/xtlsjingle/xtlsjingle/socks5"
)

// TestSEED1_AliasOnlyWithEvidence (SEED-1, JS5B-7): a published address that is not among the
// peer's candidates becomes an alias only of a candidate evidently served by the same
// listener — the direct candidate on the published local port, or the assisted candidate at
// the published external address — never of an unrelated candidate.
func TestSEED1_AliasOnlyWithEvidence(t *testing.T) {
	pub := p2p.P2P{
		External: netip.MustParseAddrPort("203.0.113.12:7777"),
		Local:    netip.MustParseAddrPort("192.168.2.10:7777"),
	}
	direct := socks5.Candidate{CID: "d", Type: socks5.Direct, Host: "10.0.0.5", Port: 7777}
	otherPort := socks5.Candidate{CID: "o", Type: socks5.Direct, Host: "10.0.0.5", Port: 9999}
	assisted := socks5.Candidate{CID: "a", Type: socks5.Assisted, Host: "203.0.113.12", Port: 7777}
	elsewhere := socks5.Candidate{CID: "e", Type: socks5.Assisted, Host: "198.51.100.1", Port: 7777}
	proxy := socks5.Candidate{CID: "p", Type: socks5.Proxy, Host: "203.0.113.1", Port: 7777}
	for _, tc := range []struct {
		name  string
		cands []socks5.Candidate
		want  string // cid of the alias base, "" for none
	}{
		{"direct on the local port", []socks5.Candidate{otherPort, assisted, direct}, "d"},
		{"assisted at the external address", []socks5.Candidate{otherPort, elsewhere, assisted}, "a"},
		{"no evidence: other port, other address, proxy", []socks5.Candidate{otherPort, elsewhere, proxy}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := aliasBase(tc.cands, pub)
			if tc.want == "" {
				if ok {
					t.Fatalf("alias of %+v, want none", got)
				}
				return
			}
			if !ok || got.CID != tc.want {
				t.Fatalf("alias base %+v (%v), want cid %s", got, ok, tc.want)
			}
		})
	}
	// Without evidence the order is only re-sorted: no candidate is invented.
	ordered := orderByPublished([]socks5.Candidate{otherPort, elsewhere}, pub, netip.MustParseAddr("198.51.100.77"))
	if len(ordered) != 2 {
		t.Fatalf("ordered %+v: an alias was added without evidence", ordered)
	}
}
