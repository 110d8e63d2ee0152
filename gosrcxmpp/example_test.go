package gosrcxmpp_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/xml"
	"errors"
	"log"
	"time"

	"github.com/xtlsjingle/xtlsjingle/gosrcxmpp"
)

// Dial a server whose self-signed certificate is pinned, answer XEP-0199 pings from peers
// with a handler of our own, and ask a peer for something.
func ExampleDial() {
	pinned := x509.NewCertPool() // add the server's certificate here
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := gosrcxmpp.Dial(ctx, gosrcxmpp.Config{
		Address:  "127.0.0.1:5222",
		JID:      "romeo@localhost/orchard",
		Password: "secret",
		TLS:      &tls.Config{RootCAs: pinned},
		OnEvent: func(e gosrcxmpp.Event) {
			log.Printf("connection %s %s %v", e.Kind, e.JID, e.Err)
		},
	})
	if err != nil {
		log.Print(err)
		return
	}
	defer c.Close()

	remove := c.HandleIQ("urn:xmpp:ping", "ping", func(ctx context.Context, from, to, typ string, payload []byte) ([]byte, error) {
		return nil, nil // empty result
	})
	defer remove()

	res, err := c.Request(ctx, "juliet@localhost/balcony", "get", []byte(`<query xmlns="jabber:iq:version"/>`))
	var se interface {
		StanzaError() (typ, condition string, app xml.Name, text string)
	}
	switch {
	case errors.As(err, &se):
		_, cond, _, _ := se.StanzaError()
		log.Printf("peer refused: %s", cond)
	case err != nil:
		log.Print(err)
	default:
		log.Printf("version: %s", res)
	}
}

// Install the presence handlers first, then make the account available: the contacts'
// presence that the server sends in answer to the first SetPresence reaches the handler.
func ExampleClient_SetPresence() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := gosrcxmpp.Dial(ctx, gosrcxmpp.Config{
		Address: "127.0.0.1:5222", JID: "romeo@localhost/orchard", Password: "secret",
		TLS: &tls.Config{RootCAs: x509.NewCertPool()},
	})
	if err != nil {
		log.Print(err)
		return
	}
	defer c.Close()
	c.HandlePresence(func(ctx context.Context, from, typ string, payloads [][]byte) {
		log.Printf("%s is %s", from, typ) // must not block
	})
	caps := []byte(`<c xmlns="http://jabber.org/protocol/caps" hash="sha-1" node="https://xtlsjingle.example" ver="..."/>`)
	if err := c.SetPresence(ctx, caps); err != nil {
		log.Print(err)
	}
}
