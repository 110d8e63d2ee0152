package xmlstream_test

import (
	"context"
	"fmt"
	"net"

	"github.com/xtlsjingle/xtlsjingle/xmlstream"
)

func Example() {
	// In the project the two ends are the TLS connections of an XTLS session.
	c1, c2 := net.Pipe()
	defer c1.Close()
	defer c2.Close()
	ctx := context.Background()

	type result struct {
		s   *xmlstream.Stream
		err error
	}
	ch := make(chan result)
	go func() {
		s, err := xmlstream.Respond(ctx, c2, "juliet@capulet.lit/balcony", "romeo@montague.lit/orchard", nil)
		ch <- result{s, err}
	}()
	romeo, err := xmlstream.Initiate(ctx, c1, "romeo@montague.lit/orchard", "juliet@capulet.lit/balcony", nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	r := <-ch
	if r.err != nil {
		fmt.Println(r.err)
		return
	}
	juliet := r.s

	// Juliet answers a ping-like IQ; Romeo sends a message and asks.
	juliet.HandleIQ("urn:xmpp:ping", "ping", func(ctx context.Context, from, to, typ string, payload []byte) ([]byte, error) {
		return nil, nil
	})
	_ = romeo.Send(ctx, []byte("<message><body>Good night, good night!</body></message>"))
	st, _ := juliet.Next(ctx)
	fmt.Println(st.From, st.Name.Local)
	_, err = romeo.Request(ctx, "", "get", []byte("<ping xmlns='urn:xmpp:ping'/>"))
	fmt.Println("ping:", err)

	fmt.Println(romeo.Close(), juliet.Close())
	// Output:
	// romeo@montague.lit/orchard message
	// ping: <nil>
	// <nil> <nil>
}
