package xtls_test

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	"github.com/xtlsjingle/xtlsjingle/internal/xmpptest"
	"github.com/xtlsjingle/xtlsjingle/p2p"
	"github.com/xtlsjingle/xtlsjingle/xtls"
)

// Config.P2P turns on seed 000's peer-to-peer hints: ExternalIP (from p2p.Gather) decides
// whether a contact that published <p2p/> is on our network, and PresencePayloads returns
// what to add to our presence (next to the caps) when the user chose to publish.
func ExampleClient_PresencePayloads() {
	link := xmpptest.NewNetwork(1).Party("juliet@capulet.lit/balcony")
	id, _ := xtls.NewIdentity("juliet@capulet.lit", xtls.KeyEd25519)
	c, err := xtls.NewClient(link, xtls.Config{
		Identity: id,
		Trust:    xtls.NewMemoryStore(),
		P2P: &xtls.P2PConfig{
			ExternalIP: netip.MustParseAddr("198.51.100.7"),
			Publish: p2p.P2P{
				External: netip.MustParseAddrPort("198.51.100.7:40000"), // a port forward
				Local:    netip.MustParseAddrPort("192.168.1.219:5000"), // the S5B listener
			},
			PublishKey: true,
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	kids, err := c.PresencePayloads()
	if err != nil {
		fmt.Println(err)
		return
	}
	_ = link.SetPresence(context.Background(), kids...) // with the caps, in a real client
	fmt.Println(string(kids[0]))
	fmt.Println(strings.HasPrefix(string(kids[1]), "<e2e xmlns='urn:nf:iot:e2e:1.0'><ed25519 pub='"))
	// Output:
	// <p2p xmlns='urn:nf:iot:p2p:1.0' extIp='198.51.100.7' extPort='40000' locIp='192.168.1.219' locPort='5000'/>
	// true
}
