package gosrcxmpp_test

import (
	"context"
	"crypto/tls"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/xtlsjingle/xtlsjingle/gosrcxmpp"
	"github.com/xtlsjingle/xtlsjingle/internal/prosodytest"
)

// TestResourceConflictStops (GOSRC.md §3.A1), against a real Prosody on loopback: a second
// login with the same full JID makes the server end the first session with the stream error
// conflict. The first client reports Stopped and does not fight for the resource: the
// library's receive loop and keep-alive of that session exit (with the library's own
// transport, recv would hang after the server's stream close). The second client stays
// connected and answers. It lives in the adapter's package because it is the only one that
// may know the library's goroutines by name. With CI=true and no Prosody it fails.
func TestResourceConflictStops(t *testing.T) {
	srv := prosodytest.Start(t)
	jid, password := srv.Account(t)
	type client struct {
		c      *gosrcxmpp.Client
		events chan gosrcxmpp.Event
	}
	dial := func() client {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		events := make(chan gosrcxmpp.Event, 64)
		cfg := gosrcxmpp.Config{Address: srv.Addr, JID: jid + "/same", Password: password,
			TLS: &tls.Config{RootCAs: srv.RootCAs, ServerName: srv.Domain},
			OnEvent: func(e gosrcxmpp.Event) {
				select {
				case events <- e:
				default:
					t.Errorf("event %s dropped: test buffer full", e.Kind)
				}
			}}
		c, err := gosrcxmpp.Dial(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return client{c, events}
	}
	first := dial()
	second := dial()
	second.c.HandleIQ("urn:xmpp:ping", "ping", func(context.Context, string, string, string, []byte) ([]byte, error) {
		return nil, nil
	})

	var stopped gosrcxmpp.Event
	timeout := time.After(10 * time.Second)
	for stopped.Kind != gosrcxmpp.Stopped {
		select {
		case stopped = <-first.events:
		case <-timeout:
			t.Fatal("first client: no Stopped event within 10s")
		}
	}
	var se *gosrcxmpp.StreamError
	if !errors.As(stopped.Err, &se) || se.Condition != "conflict" {
		t.Fatalf("stopped because of %v, want stream error conflict", stopped.Err)
	}
	if _, err := first.c.Request(context.Background(), "", "get", []byte(`<ping xmlns="urn:xmpp:ping"/>`)); !errors.Is(err, gosrcxmpp.ErrDisconnected) {
		t.Fatalf("stopped client's request: %v, want ErrDisconnected", err)
	}
	// One receive loop and one keep-alive remain: the second client's.
	waitStacks(t, "gosrc.io/xmpp.(*Client).recv", 1)
	waitStacks(t, "gosrc.io/xmpp.keepalive", 1)

	time.Sleep(500 * time.Millisecond) // room for a fight, if there were one
	for len(second.events) > 0 {
		if e := <-second.events; e.Kind == gosrcxmpp.Disconnected {
			t.Fatalf("second client was disconnected: %v", e.Err)
		}
	}
	// A third account pings the second client: it still holds the resource and answers.
	ojid, opassword := srv.Account(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	other, err := gosrcxmpp.Dial(ctx, gosrcxmpp.Config{Address: srv.Addr, JID: ojid, Password: opassword,
		TLS: &tls.Config{RootCAs: srv.RootCAs, ServerName: srv.Domain}})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := other.Request(ctx, second.c.LocalJID(), "get", []byte(`<ping xmlns="urn:xmpp:ping"/>`)); err != nil {
		t.Fatalf("second client does not answer: %v", err)
	}
}

// waitStacks waits until exactly n goroutines have fn on their stack, or fails after 5s.
func waitStacks(t testing.TB, fn string, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		got := strings.Count(string(buf), fn+"(")
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines in %s, want %d", got, fn, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
