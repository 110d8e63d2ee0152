package p2p_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"

	"github.com/xtlsjingle/xtlsjingle/internal/stuntest"
	"github.com/xtlsjingle/xtlsjingle/p2p"
)

// Gather learns the NAT mapping of an S5B listener's port from a STUN server and returns the
// addresses to offer as assisted candidates (pass Result.Assisted as socks5.Config.Extra).
func ExampleGather() {
	stunLn, _ := net.Listen("tcp", "127.0.0.1:0") // a STUN server (here: in-process)
	srv := stuntest.Serve(stunLn, nil)
	defer srv.Close()

	ln, err := p2p.ListenReusable(context.Background(), "127.0.0.1:0") // wrap with socks5.NewListener
	if err != nil {
		fmt.Println(err)
		return
	}
	defer ln.Close()
	res, err := p2p.Gather(context.Background(), p2p.Config{
		Listener:  ln.Addr().(*net.TCPAddr),
		Servers:   []string{stunLn.Addr().String()},
		Forwarded: []string{":40000"}, // a port forward on the NAT, external IP from STUN
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("external IP:", res.ExternalIP)
	fmt.Println("mapping of the listener's port:", res.Reflexive.String() == ln.Addr().String())
	fmt.Println("first assisted candidate:", res.Assisted[0])
	// Output:
	// external IP: 127.0.0.1
	// mapping of the listener's port: true
	// first assisted candidate: 127.0.0.1:40000
}

// ParseP2P reads a contact's published addresses; Order applies the seed's same-network
// rule to decide which one to try first.
func ExampleParseP2P() {
	p, err := p2p.ParseP2P([]byte(`<p2p xmlns='urn:nf:iot:p2p:1.0' extIp='198.51.100.7' extPort='40000' locIp='192.168.1.219' locPort='5000'/>`))
	if err != nil {
		fmt.Println(err)
		return
	}
	ourExternalIP := netip.MustParseAddr("198.51.100.7") // from p2p.Gather: the same NAT
	fmt.Println("same network:", p2p.SameNetwork(ourExternalIP, p))
	fmt.Println("try first:", p.Order(ourExternalIP)[0])
	_, err = p2p.ParseP2P([]byte(`<p2p xmlns="urn:nf:iot:p2p:1.0" extIp="81.229..." extPort="64152" locIp="192.168.1.219" locPort="64152"/>`))
	fmt.Println(err)
	// Output:
	// same network: true
	// try first: 192.168.1.219:5000
	// p2p: bad <p2p/> extIp: not an IP address
}
