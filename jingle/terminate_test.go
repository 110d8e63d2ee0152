package jingle

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/xtlsjingle/xtlsjingle/internal/xmpptest"
)

// crossingLink holds our session-terminate until the peer has sent its own, so the two cross
// on the network; with mute, session-terminates that reach us are never answered (the
// process is gone before it answers).
type crossingLink struct {
	*xmpptest.Party
	both    *sync.WaitGroup
	once    *sync.Once
	mute    bool
	release chan struct{}
}

func (l crossingLink) Request(ctx context.Context, to, typ string, payload []byte) ([]byte, error) {
	if bytes.Contains(payload, []byte("session-terminate")) {
		l.once.Do(l.both.Done)
		l.both.Wait()
	}
	return l.Party.Request(ctx, to, typ, payload)
}

func (l crossingLink) HandleIQ(space, local string, h func(ctx context.Context, from, to, typ string, payload []byte) ([]byte, error)) func() {
	return l.Party.HandleIQ(space, local, func(ctx context.Context, from, to, typ string, payload []byte) ([]byte, error) {
		if l.mute && bytes.Contains(payload, []byte("session-terminate")) {
			<-l.release
		}
		return h(ctx, from, to, typ, payload)
	})
}

// TestJ22_CrossingTerminateCompletes (issue 10): both parties terminate the session at the
// same moment and juliet never answers romeo's session-terminate (her process exits once her
// own Terminate returned). Romeo's Terminate completes when juliet's session-terminate for the
// sid arrives, instead of waiting for an answer that never comes; juliet's completes by
// romeo's answer. Both return nil. (The bound is a correctness bound far below ctx's 10 s.)
func TestJ22_CrossingTerminateCompletes(t *testing.T) {
	checkGoroutines(t)
	n := xmpptest.NewNetwork(11)
	n.SetFaults("", "", xmpptest.Faults{Latency: 5 * time.Millisecond})
	pr, pj := n.Party(romeo), n.Party(juliet)
	defer pr.Close()
	defer pj.Close()
	var both sync.WaitGroup
	both.Add(2)
	release := make(chan struct{})
	defer close(release)
	got := make(chan *Session, 1)
	mj := NewManager(crossingLink{Party: pj, both: &both, once: new(sync.Once), mute: true, release: release},
		Config{Incoming: func(s *Session) { got <- s }})
	defer mj.Close()
	mr := NewManager(crossingLink{Party: pr, both: &both, once: new(sync.Once), release: release}, Config{})
	defer mr.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sr, err := mr.Initiate(ctx, juliet, []Content{xsContent("xmlstream")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	sj := <-got
	if err := sj.Accept(ctx, sj.Contents(), nil); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 2)
	start := time.Now()
	go func() { done <- sj.Terminate(ctx, &Reason{Condition: Success}) }()
	if err := sr.Terminate(ctx, &Reason{Condition: Success}); err != nil {
		t.Errorf("romeo's Terminate: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("romeo's Terminate took %v waiting for an answer that never comes", d)
	}
	if err := <-done; err != nil {
		t.Errorf("juliet's Terminate: %v", err)
	}
	if r, byPeer := sr.Reason(); byPeer || r == nil || r.Condition != Success {
		t.Errorf("romeo's reason %+v by peer %v, want his own success", r, byPeer)
	}
}

// TestJ25_TerminateItemNotFoundIsDone: a peer that answers our session-terminate with
// item-not-found, with <unknown-session/> or without, no longer has the session: Terminate
// succeeds. Other errors are reported.
func TestJ25_TerminateItemNotFoundIsDone(t *testing.T) {
	for _, c := range []struct {
		answer error
		ok     bool
	}{
		{ErrUnknownSession, true},
		{&Error{Type: "cancel", Condition: "item-not-found"}, true},
		{&Error{Type: "cancel", Condition: "service-unavailable"}, false},
	} {
		fl := newFakeLink(romeo)
		m := NewManager(fl, Config{})
		s, err := m.Initiate(context.Background(), juliet, []Content{xsContent("xmlstream")}, nil)
		if err != nil {
			t.Fatal(err)
		}
		fl.mu.Lock()
		fl.answer = func(string, *Jingle) error { return c.answer }
		fl.mu.Unlock()
		err = s.Terminate(context.Background(), &Reason{Condition: Success})
		if (err == nil) != c.ok {
			t.Errorf("answer %v: Terminate returned %v", c.answer, err)
		}
		m.Close()
	}
}
