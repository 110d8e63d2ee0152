package pubkeys_test

import (
	"context"
	"fmt"
	"net"

	"github.com/xtlsjingle/xtlsjingle/pubkeys"
	"github.com/xtlsjingle/xtlsjingle/xmlstream"
)

func Example() {
	// The end-to-end stream; in the project it runs inside the XTLS session's TLS connection.
	c1, c2 := net.Pipe()
	defer c1.Close()
	defer c2.Close()
	ctx := context.Background()
	ch := make(chan *xmlstream.Stream)
	go func() {
		s, _ := xmlstream.Respond(ctx, c2, "juliet@capulet.lit/balcony", "romeo@montague.lit/orchard", nil)
		ch <- s
	}()
	romeo, _ := xmlstream.Initiate(ctx, c1, "romeo@montague.lit/orchard", "juliet@capulet.lit/balcony", nil)
	juliet := <-ch
	defer juliet.Close()
	defer romeo.Close()

	// Juliet's client certificate: the DER she also presented in the TLS handshake.
	julietCert := exampleCert
	defer pubkeys.Serve(juliet, pubkeys.KeyInfo{Cert: julietCert})()

	keys, err := pubkeys.Fetch(ctx, romeo, "")
	if err != nil {
		fmt.Println(err)
		return
	}
	// PK-12: only pin what equals the TLS peer certificate of this session.
	client, _, err := pubkeys.VerifyPeer(keys, julietCert)
	fmt.Println(err, client.Name == pubkeys.Name(julietCert))
	// Output: <nil> true
}
