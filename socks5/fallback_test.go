package socks5_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/xtlsjingle/xtlsjingle/ibb"
	"github.com/xtlsjingle/xtlsjingle/internal/xmpptest"
	"github.com/xtlsjingle/xtlsjingle/jingle"
	"github.com/xtlsjingle/xtlsjingle/socks5"
)

// establishBoth runs Establish on both transports, signalling transport-info as bare IQs
// whose payload is the <transport/> element (what the jingle package wraps).
func establishBoth(t *testing.T, romeo, juliet *xmpptest.Party, ini, res jingle.Transport) (net.Conn, net.Conn, error, error) {
	t.Helper()
	rmR := romeo.HandleIQ(ini.Namespace(), "transport", func(ctx context.Context, from, to, typ string, p []byte) ([]byte, error) {
		return nil, ini.HandleInfo(p)
	})
	defer rmR()
	rmJ := juliet.HandleIQ(res.Namespace(), "transport", func(ctx context.Context, from, to, typ string, p []byte) ([]byte, error) {
		return nil, res.HandleInfo(p)
	})
	defer rmJ()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	type out struct {
		c   net.Conn
		err error
	}
	ch := make(chan out, 1)
	go func() {
		c, err := res.Establish(ctx, func(ctx context.Context, b []byte) error {
			_, err := juliet.Request(ctx, romeo.LocalJID(), "set", b)
			return err
		})
		ch <- out{c, err}
	}()
	ci, erri := ini.Establish(ctx, func(ctx context.Context, b []byte) error {
		_, err := romeo.Request(ctx, juliet.LocalJID(), "set", b)
		return err
	})
	r := <-ch
	return ci, r.c, erri, r.err
}

// TestJS5B14_FallbackToIBB: every S5B candidate is unreachable, both sides exchange
// candidate-error and Establish fails with ErrNoConnection; the initiator then replaces the
// transport with XEP-0261 IBB (transport-replace / transport-accept, JS5B-14, JS5B-21) and
// 1 MiB crosses intact.
func TestJS5B14_FallbackToIBB(t *testing.T) {
	n := xmpptest.NewNetwork(42)
	romeo := n.Party("romeo@montague.lit/orchard")
	juliet := n.Party("juliet@capulet.lit/balcony")
	defer romeo.Close()
	defer juliet.Close()
	dead := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().String()
	}

	s5bIni, err := socks5.NewJingleTransport(socks5.Config{Link: romeo, PeerJID: juliet.LocalJID(), Extra: []string{dead()}})
	if err != nil {
		t.Fatal(err)
	}
	s5bRes, err := socks5.AcceptJingleTransport(socks5.Config{Link: juliet, PeerJID: romeo.LocalJID(), Extra: []string{dead()}}, s5bIni.Element())
	if err != nil {
		t.Fatal(err)
	}
	if err := s5bIni.HandleAccept(s5bRes.Element()); err != nil {
		t.Fatal(err)
	}
	c1, c2, e1, e2 := establishBoth(t, romeo, juliet, s5bIni, s5bRes)
	if !errors.Is(e1, socks5.ErrNoConnection) || !errors.Is(e2, socks5.ErrNoConnection) || c1 != nil || c2 != nil {
		t.Fatalf("S5B: %v / %v, want ErrNoConnection on both sides", e1, e2)
	}
	s5bIni.Close()
	s5bRes.Close()

	// transport-replace: the initiator offers IBB; transport-accept: the responder answers.
	hr, hj := ibb.NewHandler(romeo, nil), ibb.NewHandler(juliet, nil)
	defer hr.Close()
	defer hj.Close()
	ibbIni, err := ibb.NewJingleTransport(hr, juliet.LocalJID(), "fallback1", 4096)
	if err != nil {
		t.Fatal(err)
	}
	defer ibbIni.Close()
	ibbRes, err := ibb.NewJingleResponder(hj, romeo.LocalJID(), ibbIni.Element())
	if err != nil {
		t.Fatal(err)
	}
	defer ibbRes.Close()
	if err := ibbIni.HandleAccept(ibbRes.Element()); err != nil {
		t.Fatal(err)
	}
	ci, cr, ei, er := establishBoth(t, romeo, juliet, ibbIni, ibbRes)
	if ei != nil || er != nil {
		t.Fatalf("IBB: %v / %v", ei, er)
	}
	defer ci.Close()
	defer cr.Close()
	data := make([]byte, 1<<20)
	rand.Read(data)
	go func() {
		ci.Write(data)
		ci.Close()
	}()
	cr.SetReadDeadline(time.Now().Add(30 * time.Second))
	got, err := io.ReadAll(cr)
	if err != nil {
		t.Fatal(err)
	}
	if sha256.Sum256(got) != sha256.Sum256(data) {
		t.Fatalf("IBB fallback: received %d bytes, corrupted", len(got))
	}
}
