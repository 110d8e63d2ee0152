package xtls_test

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/xtlsjingle/xtlsjingle/internal/xmpptest"
	"github.com/xtlsjingle/xtlsjingle/jingle"
	"github.com/xtlsjingle/xtlsjingle/xtls"
)

// An application other than xmlstream (here a made-up one that sends a greeting; in xtlschat
// XEP-0234 file transfer) gets its bytestream secured by XTLS exactly like a chat session:
// the initiator calls OpenConn, the responder's Application takes the secured Conn.
func ExampleClient_OpenConn() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	network := xmpptest.NewNetwork(1)
	const ns = "urn:example:greeting"
	got := make(chan string, 1)
	newClient := func(jid string) (*xtls.Client, *xtls.Identity, *xtls.MemoryStore) {
		id, _ := xtls.NewIdentity(jid, xtls.KeyEd25519)
		trust := xtls.NewMemoryStore()
		c, err := xtls.NewClient(network.Party(jid), xtls.Config{
			Identity: id, Trust: trust, Transports: xtls.TransportIBB,
			Applications: []xtls.Application{{
				Namespace: ns,
				Decide: func(ctx context.Context, in *xtls.IncomingConn) xtls.ConnDecision {
					return xtls.ConnDecision{} // accept (x509: the peer is pinned)
				},
				Secured: func(conn *xtls.Conn) {
					b, _ := io.ReadAll(conn)
					got <- fmt.Sprintf("%s from %s over %s: %s", conn.Method, conn.Peer, conn.Transport, b)
					_ = conn.Terminate(ctx, nil)
				},
			}},
		})
		if err != nil {
			panic(err)
		}
		return c, id, trust
	}
	romeo, romeoID, romeoTrust := newClient("romeo@montague.lit/orchard")
	defer romeo.Close()
	juliet, julietID, julietTrust := newClient("juliet@capulet.lit/balcony")
	defer juliet.Close()
	// Pinned after comparing fingerprints (or after an srp session).
	_ = romeoTrust.Pin("juliet@capulet.lit", julietID.Fingerprint(), xtls.VerifiedManual, time.Now())
	_ = julietTrust.Pin("romeo@montague.lit", romeoID.Fingerprint(), xtls.VerifiedManual, time.Now())

	conn, err := romeo.OpenConn(ctx, "juliet@capulet.lit/balcony", jingle.Content{
		Description: []byte("<description xmlns='" + ns + "'/>"),
	}, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	_, _ = conn.Write([]byte("good night"))
	_ = conn.Close()
	fmt.Println(<-got)
	<-conn.Jingle.Done()
	// Output:
	// x509 from romeo@montague.lit/orchard over ibb: good night
}
