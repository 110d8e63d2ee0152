package socks5_test

import (
	"context"
	"fmt"
	"io"
	"net"

	"github.com/xtlsjingle/xtlsjingle/internal/xmpptest"
	"github.com/xtlsjingle/xtlsjingle/jingle"
	"github.com/xtlsjingle/xtlsjingle/socks5"
)

// The Jingle S5B transport satisfies jingle.Transport without importing jingle.
var _ jingle.Transport = (*socks5.JingleTransport)(nil)

// Two parties negotiate a direct SOCKS5 bytestream; the transport-info signalling that the
// jingle package would carry is sent here as bare IQs.
func ExampleNewJingleTransport() {
	n := xmpptest.NewNetwork(1)
	romeo := n.Party("romeo@montague.lit/orchard")
	juliet := n.Party("juliet@capulet.lit/balcony")
	defer romeo.Close()
	defer juliet.Close()

	// Juliet serves a direct candidate on loopback.
	l, err := socks5.Listen("127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()

	ini, err := socks5.NewJingleTransport(socks5.Config{Link: romeo, PeerJID: juliet.LocalJID()})
	if err != nil {
		panic(err)
	}
	defer ini.Close()
	// session-initiate carries ini.Element(); the responder builds its transport from it.
	res, err := socks5.AcceptJingleTransport(socks5.Config{Link: juliet, PeerJID: romeo.LocalJID(), Listener: l}, ini.Element())
	if err != nil {
		panic(err)
	}
	defer res.Close()
	// session-accept carries res.Element().
	if err := ini.HandleAccept(res.Element()); err != nil {
		panic(err)
	}
	romeo.HandleIQ(socks5.NSJingleS5B, "transport", func(ctx context.Context, from, to, typ string, p []byte) ([]byte, error) {
		return nil, ini.HandleInfo(p)
	})
	juliet.HandleIQ(socks5.NSJingleS5B, "transport", func(ctx context.Context, from, to, typ string, p []byte) ([]byte, error) {
		return nil, res.HandleInfo(p)
	})

	ctx := context.Background()
	resConn := make(chan net.Conn, 1)
	go func() {
		c, err := res.Establish(ctx, func(ctx context.Context, t []byte) error {
			_, err := juliet.Request(ctx, romeo.LocalJID(), "set", t)
			return err
		})
		if err != nil {
			panic(err)
		}
		resConn <- c
	}()
	c, err := ini.Establish(ctx, func(ctx context.Context, t []byte) error {
		_, err := romeo.Request(ctx, juliet.LocalJID(), "set", t)
		return err
	})
	if err != nil {
		panic(err)
	}
	defer c.Close()
	r := <-resConn
	defer r.Close()

	c.Write([]byte("wherefore art thou"))
	buf := make([]byte, 18)
	io.ReadFull(r, buf)
	fmt.Println(string(buf))
	// Output: wherefore art thou
}

func ExampleDstAddr() {
	fmt.Println(socks5.DstAddr("vj3hs98y", "romeo@montague.lit/orchard", "juliet@capulet.lit/balcony"))
	// Output: 972b7bf47291ca609517f67f86b5081086052dad
}
