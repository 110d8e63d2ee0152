package xmpptest

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

type jingleErr struct{}

func (jingleErr) Error() string { return "unknown session" }
func (jingleErr) StanzaError() (string, string, xml.Name, string) {
	return "cancel", "item-not-found", xml.Name{Space: "urn:xmpp:jingle:errors:1", Local: "unknown-session"}, "gone"
}

func TestRequestResult(t *testing.T) {
	n := NewNetwork(1)
	a, b := n.Party("a@x/1"), n.Party("b@x/2")
	b.HandleIQ("urn:t", "ping", func(ctx context.Context, from, to, typ string, p []byte) ([]byte, error) {
		if from != "a@x/1" || to != "b@x/2" || typ != "get" {
			return nil, fmt.Errorf("bad envelope %s %s %s", from, to, typ)
		}
		return []byte(`<pong xmlns='urn:t'/>`), nil
	})
	got, err := a.Request(context.Background(), "b@x/2", "get", []byte(`<ping xmlns='urn:t'/>`))
	if err != nil || string(got) != `<pong xmlns='urn:t'/>` {
		t.Fatalf("got %q, %v", got, err)
	}
}

func TestStanzaErrorCarriesAppCondition(t *testing.T) {
	n := NewNetwork(1)
	a, b := n.Party("a@x/1"), n.Party("b@x/2")
	b.HandleIQ("urn:t", "q", func(context.Context, string, string, string, []byte) ([]byte, error) {
		return nil, fmt.Errorf("wrapped: %w", jingleErr{})
	})
	_, err := a.Request(context.Background(), "b@x/2", "set", []byte(`<q xmlns='urn:t'/>`))
	var se *StanzaError
	if !errors.As(err, &se) {
		t.Fatalf("err = %v, want *StanzaError", err)
	}
	if se.Condition != "item-not-found" || se.App.Local != "unknown-session" || se.Text != "gone" {
		t.Fatalf("got %+v", se)
	}
}

func TestUnhandledAndAbsent(t *testing.T) {
	n := NewNetwork(1)
	a := n.Party("a@x/1")
	n.Party("b@x/2")
	for _, to := range []string{"b@x/2", "nobody@x/9"} {
		_, err := a.Request(context.Background(), to, "get", []byte(`<q xmlns='urn:t'/>`))
		var se *StanzaError
		if !errors.As(err, &se) || se.Condition != "service-unavailable" {
			t.Fatalf("to %s: err = %v, want service-unavailable", to, err)
		}
	}
}

func TestHandlerErrorAndPanicDoNotLeakText(t *testing.T) {
	n := NewNetwork(1)
	a, b := n.Party("a@x/1"), n.Party("b@x/2")
	b.HandleIQ("urn:t", "e", func(context.Context, string, string, string, []byte) ([]byte, error) {
		return nil, errors.New("secret internal detail")
	})
	b.HandleIQ("urn:t", "p", func(context.Context, string, string, string, []byte) ([]byte, error) {
		panic("boom")
	})
	for _, el := range []string{`<e xmlns='urn:t'/>`, `<p xmlns='urn:t'/>`} {
		_, err := a.Request(context.Background(), "b@x/2", "set", []byte(el))
		var se *StanzaError
		if !errors.As(err, &se) || se.Condition != "internal-server-error" || se.Text != "" {
			t.Fatalf("%s: err = %v", el, err)
		}
	}
}

func TestPayloadMustBeOneElement(t *testing.T) {
	n := NewNetwork(1)
	a := n.Party("a@x/1")
	for _, p := range []string{``, `text`, `<a/><b/>`, `<a>`, `<!-- c --><a/>`} {
		if _, err := a.Request(context.Background(), "b@x/2", "get", []byte(p)); err == nil {
			t.Errorf("payload %q accepted", p)
		}
	}
	if _, err := a.Request(context.Background(), "b@x/2", "result", []byte(`<a/>`)); err == nil {
		t.Error("type result accepted for a request")
	}
}

func TestDropTimesOutAndDuplicateAnswerIsIgnored(t *testing.T) {
	n := NewNetwork(7)
	a, b := n.Party("a@x/1"), n.Party("b@x/2")
	var mu sync.Mutex
	calls := 0
	b.HandleIQ("urn:t", "q", func(context.Context, string, string, string, []byte) ([]byte, error) {
		mu.Lock()
		calls++
		mu.Unlock()
		return nil, nil
	})
	n.SetFaults("a@x/1", "b@x/2", Faults{Duplicate: 1})
	if _, err := a.Request(context.Background(), "b@x/2", "set", []byte(`<q xmlns='urn:t'/>`)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Second)
	for {
		mu.Lock()
		c := calls
		mu.Unlock()
		if c == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("handler ran %d times, want 2 (duplicate)", c)
		}
		time.Sleep(time.Millisecond)
	}
	n.SetFaults("a@x/1", "b@x/2", Faults{Drop: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := a.Request(ctx, "b@x/2", "set", []byte(`<q xmlns='urn:t'/>`)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("dropped request: err = %v", err)
	}
	if d, dup, _ := n.Stats(); d != 1 || dup != 1 {
		t.Fatalf("stats dropped=%d duplicated=%d", d, dup)
	}
}

func TestDelayReordersDeterministically(t *testing.T) {
	// run sends numbered messages with delay faults and returns how many were delayed and the
	// order in which they arrived.
	run := func(seed int64) (int64, []int) {
		n := NewNetwork(seed)
		a, b := n.Party("a@x/1"), n.Party("b@x/2")
		n.SetFaults("a@x/1", "b@x/2", Faults{Delay: 0.5, MaxDelay: 3 * time.Millisecond})
		const total = 100
		var mu sync.Mutex
		var order []int
		done := make(chan struct{})
		b.HandleMessage("urn:t", "m", func(_ context.Context, _, _ string, p []byte) {
			var m struct {
				N int `xml:"n,attr"`
			}
			if err := xml.Unmarshal(p, &m); err != nil {
				t.Error(err)
			}
			mu.Lock()
			order = append(order, m.N)
			if len(order) == total {
				close(done)
			}
			mu.Unlock()
		})
		for i := 0; i < total; i++ {
			if err := a.SendMessage(context.Background(), "b@x/2", []byte(fmt.Sprintf(`<m xmlns='urn:t' n='%d'/>`, i))); err != nil {
				t.Fatal(err)
			}
			time.Sleep(20 * time.Microsecond)
		}
		<-done
		_, _, delayed := n.Stats()
		return delayed, order
	}
	d1, order := run(3)
	d2, _ := run(3)
	if d1 != d2 || d1 == 0 {
		t.Fatalf("same seed delayed %d and %d stanzas", d1, d2)
	}
	inversions := 0
	for i := 1; i < len(order); i++ {
		if order[i] < order[i-1] {
			inversions++
		}
	}
	if inversions == 0 {
		t.Fatal("delay faults did not reorder anything")
	}
}

func TestMessagesAndClose(t *testing.T) {
	n := NewNetwork(1)
	a, b := n.Party("a@x/1"), n.Party("b@x/2")
	got := make(chan string, 1)
	b.HandleMessage("urn:t", "m", func(ctx context.Context, from, to string, p []byte) {
		got <- from + " " + string(p)
	})
	if err := a.SendMessage(context.Background(), "b@x/2", []byte(`<m xmlns='urn:t'>hi</m>`)); err != nil {
		t.Fatal(err)
	}
	if s := <-got; s != "a@x/1 <m xmlns='urn:t'>hi</m>" {
		t.Fatalf("got %q", s)
	}
	block := make(chan struct{})
	b.HandleIQ("urn:t", "slow", func(ctx context.Context, _, _, _ string, _ []byte) ([]byte, error) {
		<-block
		return nil, nil
	})
	errc := make(chan error, 1)
	go func() {
		_, err := a.Request(context.Background(), "b@x/2", "get", []byte(`<slow xmlns='urn:t'/>`))
		errc <- err
	}()
	time.Sleep(10 * time.Millisecond)
	a.Close()
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Fatalf("pending request after Close: %v", err)
	}
	close(block)
}

// TestPresence: available presence with its children reaches the other party, a late
// party gets the current presence of those online, and Close sends unavailable.
func TestPresence(t *testing.T) {
	n := NewNetwork(1)
	a, b := n.Party("a@x/1"), n.Party("b@x/2")
	type pres struct {
		from, typ string
		kids      int
	}
	got := make(chan pres, 8)
	b.HandlePresence(func(_ context.Context, from, typ string, kids [][]byte) {
		got <- pres{from, typ, len(kids)}
	})
	if err := a.SetPresence(t.Context(), []byte("<c xmlns='urn:t'/>"), []byte("<d xmlns='urn:t'/>")); err != nil {
		t.Fatal(err)
	}
	if p := <-got; p != (pres{"a@x/1", "available", 2}) {
		t.Errorf("got %+v", p)
	}
	if err := a.SetPresence(t.Context(), []byte("<c")); err == nil {
		t.Error("malformed payload accepted")
	}
	// c arrives later and receives a's presence on its first own presence.
	c := n.Party("c@x/3")
	cgot := make(chan string, 4)
	remove := c.HandlePresence(func(_ context.Context, from, typ string, _ [][]byte) { cgot <- from + " " + typ })
	if err := c.SetPresence(t.Context()); err != nil {
		t.Fatal(err)
	}
	if s := <-cgot; s != "a@x/1 available" {
		t.Errorf("c got %q", s)
	}
	if p := <-got; p != (pres{"c@x/3", "available", 0}) {
		t.Errorf("b got %+v", p)
	}
	remove()
	a.Close()
	if p := <-got; p != (pres{"a@x/1", "unavailable", 0}) {
		t.Errorf("after Close got %+v", p)
	}
	select {
	case s := <-cgot:
		t.Errorf("removed handler called: %q", s)
	case <-time.After(50 * time.Millisecond):
	}
}
