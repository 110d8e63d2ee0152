package integration

import (
	"context"
	"crypto/tls"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/xtlsjingle/xtlsjingle/gosrcxmpp"
	"github.com/xtlsjingle/xtlsjingle/internal/prosodytest"
	"github.com/xtlsjingle/xtlsjingle/p2p"
)

// TestAdapterPresenceAtLogin (issue 10, SEED-1, RFC 6121 §4.2): bob is online with a <p2p/>
// presence before his contact alice dials. alice installs her presence handler some time
// after Dial returned (as an application does once it has built its engines) and then sets
// her presence: bob's presence, which the server sends in answer to alice's initial presence,
// reaches the handler although bob never sends it again. The link is then cut: after the
// reconnection alice's presence goes out again and bob's answer reaches the same handler.
func TestAdapterPresenceAtLogin(t *testing.T) {
	srv := prosodytest.Shared(t)
	alice, alicePass := srv.Account(t)
	bob, bobPass := srv.Account(t)
	srv.Befriend(t, alice, bob)
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	dial := func(addr, jid, password string, rec *eventRecorder) *gosrcxmpp.Client {
		t.Helper()
		cfg := gosrcxmpp.Config{Address: addr, JID: jid + "/login", Password: password,
			TLS: &tls.Config{RootCAs: srv.RootCAs}}
		if rec != nil {
			rec.install(&cfg)
		}
		c, err := gosrcxmpp.Dial(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	b := dial(srv.Addr, bob, bobPass, nil)
	want := p2p.P2P{External: netip.MustParseAddrPort("198.51.100.9:40001"), Local: netip.MustParseAddrPort("192.168.7.2:5001")}
	el, err := want.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := b.SetPresence(ctx, el); err != nil {
		t.Fatal(err)
	}
	bobSeen := recordPresence(b)

	proxy := newCutProxy(t, srv.Addr)
	rec := newEventRecorder()
	a := dial(proxy.addr(), alice, alicePass, rec)
	time.Sleep(time.Second) // the application builds its engines; the server answers meanwhile
	aliceSeen := recordPresence(a)
	if err := a.SetPresence(ctx); err != nil {
		t.Fatal(err)
	}
	fromBob := func(p presenceSeen) bool {
		if p.from != b.LocalJID() || p.typ != "available" {
			return false
		}
		for _, k := range p.kids {
			if strings.Contains(string(k), p2p.NS) {
				v, err := p2p.ParseP2P(k)
				return err == nil && v == want
			}
		}
		return false
	}
	waitPresence(t, aliceSeen, "bob's presence at alice's login", fromBob)
	// Bob, who never sent his presence again, sees alice come online.
	waitPresence(t, bobSeen, "alice's presence", func(p presenceSeen) bool {
		return strings.HasPrefix(p.from, alice+"/") && p.typ == "available"
	})

	proxy.cut()
	rec.waitFor(t, gosrcxmpp.Reconnected, 20*time.Second)
	waitPresence(t, aliceSeen, "bob's presence after alice's reconnection", fromBob)
}
