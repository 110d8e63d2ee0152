package p2p_test

import (
	"context"
	"fmt"
	"net"

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
