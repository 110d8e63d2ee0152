package disco_test

import (
	"context"
	"fmt"

	"github.com/xtlsjingle/xtlsjingle/disco"
	"github.com/xtlsjingle/xtlsjingle/internal/xmpptest"
)

func Example() {
	n := xmpptest.NewNetwork(1)
	romeo := n.Party("romeo@montague.lit/orchard")
	juliet := n.Party("juliet@capulet.lit/balcony")
	defer romeo.Close()
	defer juliet.Close()

	// Juliet answers disco#info for her client and announces caps in presence.
	info := disco.ClientInfo()
	defer disco.Serve(juliet, info)()
	caps := disco.CapsOf(disco.CapsNode, info)

	// Romeo saw the caps in her presence and asks through his cache.
	cache := disco.NewCache(0)
	cache.SetCaps(juliet.LocalJID(), caps)
	got, err := cache.Info(context.Background(), romeo, juliet.LocalJID())
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(got.Supports("urn:xmpp:jingle:security:xtls:0"))
	// Output: true
}

func ExampleVer() {
	info := &disco.Info{
		Identities: []disco.Identity{{Category: "client", Type: "pc", Name: "Exodus 0.9.1"}},
		Features: []string{"http://jabber.org/protocol/disco#info", "http://jabber.org/protocol/disco#items",
			"http://jabber.org/protocol/muc", "http://jabber.org/protocol/caps"},
	}
	ver, _ := disco.Ver(info, "sha-1")
	fmt.Println(ver)
	// Output: QgayPKawpkPSDYmwT/WM94uAlu0=
}
