package integration

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/xtlsjingle/xtlsjingle/gosrcxmpp"
	"github.com/xtlsjingle/xtlsjingle/p2p"
	"github.com/xtlsjingle/xtlsjingle/xtls"
)

type presenceSeen struct {
	from, typ string
	kids      [][]byte
}

// recordPresence installs a presence handler on c that forwards what arrives.
func recordPresence(c *gosrcxmpp.Client) <-chan presenceSeen {
	ch := make(chan presenceSeen, 64)
	c.HandlePresence(func(_ context.Context, from, typ string, kids [][]byte) {
		select {
		case ch <- presenceSeen{from, typ, kids}:
		default:
		}
	})
	return ch
}

func waitPresence(t *testing.T, ch <-chan presenceSeen, what string, pred func(presenceSeen) bool) presenceSeen {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		select {
		case p := <-ch:
			if pred(p) {
				return p
			}
		case <-deadline:
			t.Fatalf("no %s within 15 s", what)
		}
	}
}

// TestAdapterPresenceSubscription (SEED-1, RFC 6121 §3): through a real server, a subscribes
// to b's presence with SendPresence and b approves the request it receives through
// HandlePresence; b's presence then reaches a from b's full JID with its <p2p/> child intact
// (and parses), and b's Close reaches a as unavailable.
func TestAdapterPresenceSubscription(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv *server) {
		a := dialOn(t, srv, "a", nil)
		b := dialOn(t, srv, "b", nil)
		aSeen, bSeen := recordPresence(a), recordPresence(b)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		aBare, _ := xtls.BareJID(a.LocalJID())
		bBare, _ := xtls.BareJID(b.LocalJID())
		want := p2p.P2P{External: netip.MustParseAddrPort("198.51.100.7:40000"), Local: netip.MustParseAddrPort("192.168.1.219:5000")}
		el, err := want.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if err := b.SetPresence(ctx, el); err != nil {
			t.Fatal(err)
		}
		if err := a.SetPresence(ctx); err != nil {
			t.Fatal(err)
		}
		if err := a.SendPresence(ctx, bBare, "subscribe"); err != nil {
			t.Fatal(err)
		}
		req := waitPresence(t, bSeen, "subscription request", func(p presenceSeen) bool { return p.typ == "subscribe" })
		if bare, _ := xtls.BareJID(req.from); bare != aBare {
			t.Fatalf("subscribe from %q, want %s", req.from, aBare)
		}
		if err := b.SendPresence(ctx, aBare, "subscribed"); err != nil {
			t.Fatal(err)
		}
		got := waitPresence(t, aSeen, "b's presence", func(p presenceSeen) bool {
			return p.from == b.LocalJID() && p.typ == "available" && len(p.kids) > 0
		})
		var parsed bool
		for _, k := range got.kids {
			if strings.Contains(string(k), p2p.NS) {
				v, err := p2p.ParseP2P(k)
				if err != nil || v != want {
					t.Fatalf("b's <p2p/> as a received it: %s → %+v, %v", k, v, err)
				}
				parsed = true
			}
		}
		if !parsed {
			t.Fatalf("b's presence arrived without <p2p/>: %q", got.kids)
		}
		bFull := b.LocalJID()
		b.Close()
		waitPresence(t, aSeen, "b's unavailable", func(p presenceSeen) bool { return p.from == bFull && p.typ == "unavailable" })
	})
}
