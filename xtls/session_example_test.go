package xtls_test

import (
	"context"
	"fmt"
	"time"

	"github.com/xtlsjingle/xtlsjingle/internal/xmpptest"
	"github.com/xtlsjingle/xtlsjingle/xtls"
)

// Two clients meet for the first time: they share a password out of band, so the first session
// uses srp and pins both certificates (XSRP-8); the next one uses x509 with no password.
func ExampleClient_Open() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	network := xmpptest.NewNetwork(1) // in a real client: the gosrcxmpp link
	newClient := func(jid, password string) *xtls.Client {
		id, _ := xtls.NewIdentity(jid, xtls.KeyEd25519)
		c, err := xtls.NewClient(network.Party(jid), xtls.Config{
			Identity:   id,
			Trust:      xtls.NewMemoryStore(), // xtls.OpenFileStore for a persistent one
			Transports: xtls.TransportIBB,     // no SOCKS5 listener in this example
			OnIncoming: func(ctx context.Context, in *xtls.Incoming) xtls.Decision {
				if in.Trusted {
					return xtls.Decision{} // x509 will do
				}
				return xtls.Decision{Password: password} // ask the user in a real client
			},
		})
		if err != nil {
			panic(err)
		}
		return c
	}
	romeo := newClient("romeo@montague.lit/orchard", "")
	defer romeo.Close()
	juliet := newClient("juliet@capulet.lit/balcony", "a rose by any other name")
	defer juliet.Close()

	for _, password := range []string{"a rose by any other name", ""} {
		accepted := make(chan *xtls.Session, 1)
		go func() {
			s, err := juliet.Accept(ctx)
			if err != nil {
				panic(err)
			}
			accepted <- s
		}()
		s, err := romeo.Open(ctx, "juliet@capulet.lit/balcony", &xtls.OpenOptions{Password: password})
		if err != nil {
			fmt.Println("open:", err)
			return
		}
		peer := <-accepted
		_ = s.Stream.Send(ctx, []byte("<message><body>hello</body></message>"))
		st, _ := peer.Stream.Next(ctx)
		fmt.Printf("%s over %s, pinned %v: juliet got a message from %s\n", s.Method, s.Transport, s.Pinned, st.From)
		_ = s.Close()
		<-peer.Done()
	}
	// Output:
	// srp over ibb, pinned true: juliet got a message from romeo@montague.lit/orchard
	// x509 over ibb, pinned false: juliet got a message from romeo@montague.lit/orchard
}
