package xtls_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/xtlsjingle/xtlsjingle/disco"
	"github.com/xtlsjingle/xtlsjingle/ibb"
	"github.com/xtlsjingle/xtlsjingle/internal/xmpptest"
	"github.com/xtlsjingle/xtlsjingle/jingle"
	"github.com/xtlsjingle/xtlsjingle/xtls"
)

// A peer without XTLS (here a bare Jingle client that advertises only the application and
// IBB) gets nothing from OpenConn: it fails with ErrNotSupported, the cue to ask the user.
// Only after the user allowed this one session unencrypted does OpenPlaintext open it.
func ExampleClient_OpenPlaintext() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	network := xmpptest.NewNetwork(1)
	const ns = "urn:example:greeting"
	desc := []byte("<description xmlns='" + ns + "'/>")

	// The peer without XTLS: disco, IBB and a Jingle manager that accepts and reads.
	plain := network.Party("benvolio@montague.lit/laptop")
	defer plain.Close()
	defer disco.Serve(plain, &disco.Info{Features: []string{disco.NSInfo, jingle.NS, ns, ibb.NSJingle}})()
	h := ibb.NewHandler(plain, nil)
	defer h.Close()
	got := make(chan string, 1)
	m := jingle.NewManager(plain, jingle.Config{Incoming: func(s *jingle.Session) {
		c := s.Contents()[0]
		t, _ := ibb.NewJingleResponder(h, s.Peer(), c.Transport)
		_ = s.Accept(ctx, []jingle.Content{{Creator: c.Creator, Name: c.Name, Description: c.Description,
			Transport: t.Element()}}, map[string]jingle.Transport{c.Name: t})
		conn, _ := s.Establish(ctx, c.Name)
		b, _ := io.ReadAll(conn)
		got <- string(b)
		_ = s.Terminate(ctx, &jingle.Reason{Condition: jingle.Success})
	}})
	defer m.Close()

	id, _ := xtls.NewIdentity("romeo@montague.lit", xtls.KeyEd25519)
	romeo, err := xtls.NewClient(network.Party("romeo@montague.lit/orchard"), xtls.Config{
		Identity: id, Trust: xtls.NewMemoryStore(),
		Applications: []xtls.Application{{Namespace: ns}},
	})
	if err != nil {
		panic(err)
	}
	defer romeo.Close()

	content := jingle.Content{Description: desc}
	_, err = romeo.OpenConn(ctx, "benvolio@montague.lit/laptop", content, nil)
	fmt.Println("OpenConn:", errors.Is(err, xtls.ErrNotSupported))
	userAllowed := true // the user was told that this transfer is not end-to-end encrypted
	if !userAllowed {
		return
	}
	conn, err := romeo.OpenPlaintext(ctx, "benvolio@montague.lit/laptop", content, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	_, _ = conn.Write([]byte("good night"))
	_ = conn.Close()
	fmt.Printf("unencrypted over %s: %s\n", conn.Transport, <-got)
	<-conn.Jingle.Done()
	// Output:
	// OpenConn: true
	// unencrypted over ibb: good night
}

// An offer without <security/> from a peer without XTLS reaches the application only through
// Application.Plaintext, and only an explicit AcceptPlaintext takes it; without a Plaintext
// handler (or with the zero PlaintextDecision) it is declined with <decline/>.
func ExamplePlaintextHandler() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	network := xmpptest.NewNetwork(1)
	const ns = "urn:example:greeting"
	got := make(chan string, 1)
	id, _ := xtls.NewIdentity("juliet@capulet.lit", xtls.KeyEd25519)
	juliet, err := xtls.NewClient(network.Party("juliet@capulet.lit/balcony"), xtls.Config{
		Identity: id, Trust: xtls.NewMemoryStore(),
		Applications: []xtls.Application{{
			Namespace: ns,
			Plaintext: &xtls.PlaintextHandler{
				Decide: func(ctx context.Context, in *xtls.PlaintextOffer) xtls.PlaintextDecision {
					// Ask the user: "NOT end-to-end encrypted — accept anyway?"
					return xtls.PlaintextDecision{AcceptPlaintext: true}
				},
				Ready: func(conn *xtls.PlaintextConn) {
					b, _ := io.ReadAll(conn)
					got <- fmt.Sprintf("unencrypted from %s over %s: %s", conn.Peer, conn.Transport, b)
					_ = conn.Terminate(ctx, nil)
				},
			},
		}},
	})
	if err != nil {
		panic(err)
	}
	defer juliet.Close()

	// The peer without XTLS offers the application over IBB, without <security/>.
	plain := network.Party("benvolio@montague.lit/laptop")
	defer plain.Close()
	defer disco.Serve(plain, &disco.Info{Features: []string{disco.NSInfo, jingle.NS, ns, ibb.NSJingle}})()
	h := ibb.NewHandler(plain, nil)
	defer h.Close()
	m := jingle.NewManager(plain, jingle.Config{})
	defer m.Close()
	t, _ := ibb.NewJingleTransport(h, "juliet@capulet.lit/balcony", "greeting", 0)
	s, err := m.Initiate(ctx, "juliet@capulet.lit/balcony", []jingle.Content{{Creator: jingle.CreatorInitiator, Name: "g",
		Description: []byte("<description xmlns='" + ns + "'/>"), Transport: t.Element()}}, map[string]jingle.Transport{"g": t})
	if err != nil {
		fmt.Println(err)
		return
	}
	if ev := <-s.Events(); ev.Action != jingle.SessionAccept {
		fmt.Println("declined:", ev.Reason.Condition)
		return
	}
	conn, _ := s.Establish(ctx, "g")
	_, _ = conn.Write([]byte("good night"))
	_ = conn.Close()
	fmt.Println(<-got)
	<-s.Done()
	// Output:
	// unencrypted from benvolio@montague.lit/laptop over ibb: good night
}
