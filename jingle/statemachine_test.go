package jingle

import (
	"context"
	"testing"
	"time"
)

const (
	localJID = "romeo@montague.lit/orchard"
	peerJID  = "juliet@capulet.lit/balcony"
)

// fixture is a manager on a fake link with one session in a given state.
type fixture struct {
	fl  *fakeLink
	m   *Manager
	s   *Session // nil for "none"
	sid string
	// peerCreator is the creator value of contents the peer creates.
	peerCreator Creator
}

func newFixture(t *testing.T, state string, cfg Config) *fixture {
	t.Helper()
	fl := newFakeLink(localJID)
	incoming := make(chan *Session, 4)
	if cfg.Incoming == nil {
		cfg.Incoming = func(s *Session) { incoming <- s }
	}
	m := NewManager(fl, cfg)
	t.Cleanup(func() { _ = m.Close() })
	f := &fixture{fl: fl, m: m, sid: "nosuch", peerCreator: CreatorInitiator}
	ctx := context.Background()
	responder := func() {
		f.sid = "s-responder"
		_, err := fl.deliver(peerJID, mustMarshal(t, &Jingle{Action: SessionInitiate, SID: f.sid, Initiator: peerJID,
			Contents: []Content{xsContent("xmlstream")}}))
		if err != nil {
			t.Fatal(err)
		}
		select {
		case f.s = <-incoming:
		case <-time.After(5 * time.Second):
			t.Fatal("no incoming session")
		}
	}
	initiator := func() {
		s, err := m.Initiate(ctx, peerJID, []Content{xsContent("xmlstream")}, nil)
		if err != nil {
			t.Fatal(err)
		}
		f.s, f.sid, f.peerCreator = s, s.SID(), CreatorResponder
	}
	accept := func() {
		_, err := fl.deliver(peerJID, mustMarshal(t, &Jingle{Action: SessionAccept, SID: f.sid, Contents: []Content{xsContent("xmlstream")}}))
		if err != nil {
			t.Fatal(err)
		}
	}
	switch state {
	case "none":
	case "pending/responder":
		responder()
	case "active/responder":
		responder()
		if err := f.s.Accept(ctx, []Content{xsContent("xmlstream")}, nil); err != nil {
			t.Fatal(err)
		}
	case "ended/responder":
		responder()
		if err := f.s.Terminate(ctx, &Reason{Condition: Decline}); err != nil {
			t.Fatal(err)
		}
	case "pending/initiator":
		initiator()
	case "active/initiator":
		initiator()
		accept()
	case "ended/initiator":
		initiator()
		accept()
		if err := f.s.Terminate(ctx, &Reason{Condition: Success}); err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatalf("unknown state %q", state)
	}
	return f
}

// payload builds an incoming action from the peer for the fixture's session.
func (f *fixture) payload(t *testing.T, a Action) []byte {
	j := &Jingle{Action: a, SID: f.sid}
	existing := Content{Creator: CreatorInitiator, Name: "xmlstream"}
	withTransport := existing
	withTransport.Transport = []byte("<transport xmlns='" + nsIBB + "' block-size='2048' sid='x'/>")
	switch a {
	case ContentAccept, ContentReject, ContentRemove:
		j.Contents = []Content{existing}
	case ContentAdd:
		c := xsContent("extra")
		c.Creator = f.peerCreator
		j.Contents = []Content{c}
	case ContentModify:
		c := existing
		c.Senders = SendersInitiator
		j.Contents = []Content{c}
	case DescriptionInfo:
		c := existing
		c.Description = []byte("<description xmlns='" + nsXS + "'><x/></description>")
		j.Contents = []Content{c}
	case SecurityInfo:
		c := existing
		c.Security = []byte("<security xmlns='" + nsXTLS + "'><method name='srp'/></security>")
		j.Contents = []Content{c}
	case SessionAccept:
		c := xsContent("xmlstream")
		c.Senders = SendersBoth // differs from the fixture's own accept: not a duplicate
		j.Contents, j.Responder = []Content{c}, peerJID
	case SessionInitiate:
		j.Initiator, j.Contents = peerJID, []Content{xsContent("other")}
	case SessionTerminate:
		j.Reason = &Reason{Condition: Success, Text: "bye"}
	case TransportAccept, TransportInfo, TransportReject, TransportReplace:
		j.Contents = []Content{withTransport}
	}
	return mustMarshal(t, j)
}

// TestStateMachine_EveryActionInEveryState is the table of SPEC §3.2: every action of
// XEP-0166 from the peer, in every state and role, with the expected IQ answer and new state.
func TestStateMachine_EveryActionInEveryState(t *testing.T) {
	type want struct {
		cond, app string
		state     State // 0: no session
	}
	ok := func(s State) want { return want{state: s} }
	oo := func(s State) want { return want{"unexpected-request", "out-of-order", s} } // J-37
	unknown := want{"item-not-found", "unknown-session", 0}                           // J-25
	unsupported := func(s State) want { return want{"feature-not-implemented", "unsupported-info", s} }

	live := func(s State, role string) map[Action]want {
		w := map[Action]want{
			ContentAccept:    oo(s),          // no content-add of ours (J-30)
			ContentAdd:       ok(s),          // acknowledged, then content-reject (J-30)
			ContentModify:    ok(s),          // J-31
			ContentReject:    oo(s),          // no content-add of ours
			ContentRemove:    ok(StateEnded), // last content gone: session-terminate (J-32)
			DescriptionInfo:  unsupported(s), // J-28
			SecurityInfo:     ok(s),          // ERR-2
			SessionAccept:    oo(s),          // J-37
			SessionInfo:      ok(s),          // J-29 ping
			SessionInitiate:  oo(s),          // same sid (§3.2)
			SessionTerminate: ok(StateEnded), // J-24
			TransportAccept:  oo(s),          // no transport-replace of ours (J-33)
			TransportInfo:    ok(s),
			TransportReject:  oo(s),
			TransportReplace: ok(s), // acknowledged, then transport-reject (J-33)
		}
		if s == StatePending && role == "initiator" {
			w[SessionAccept] = ok(StateActive) // J-11
			// J-34 with equal sids: the peer's JID (juliet@…) is lower, its initiate wins
			// and ours is dropped.
			w[SessionInitiate] = ok(StateEnded)
		}
		return w
	}
	gone := map[Action]want{}
	for a := ContentAccept; a <= TransportReplace; a++ {
		gone[a] = unknown
	}
	none := map[Action]want{}
	for a, w := range gone {
		none[a] = w
	}
	none[SessionInitiate] = ok(StatePending)
	endedResponder := map[Action]want{}
	for a, w := range gone {
		endedResponder[a] = w
	}
	table := map[string]map[Action]want{
		"none":              none,
		"pending/responder": live(StatePending, "responder"),
		"active/responder":  live(StateActive, "responder"),
		"ended/responder":   gone,
		"pending/initiator": live(StatePending, "initiator"),
		"active/initiator":  live(StateActive, "initiator"),
		"ended/initiator":   endedResponder,
	}
	for state, actions := range table {
		for a := ContentAccept; a <= TransportReplace; a++ {
			w := actions[a]
			t.Run(state+"/"+a.String(), func(t *testing.T) {
				f := newFixture(t, state, Config{})
				_, err := f.fl.deliver(peerJID, f.payload(t, a))
				wantErr(t, err, w.cond, w.app)
				var s *Session
				if f.s != nil {
					s = f.s
				} else {
					f.m.mu.Lock()
					s = f.m.sessions[sessionKey{peerJID, f.sid}]
					f.m.mu.Unlock()
				}
				if w.state == 0 {
					if s != nil && s.State() != StateEnded {
						t.Fatalf("session in state %s, want none/ended", s.State())
					}
					return
				}
				if s == nil {
					t.Fatal("no session")
				}
				deadline := time.Now().Add(5 * time.Second)
				for s.State() != w.state && time.Now().Before(deadline) {
					time.Sleep(time.Millisecond) // J-32 terminates on a goroutine of the manager
				}
				if got := s.State(); got != w.state {
					t.Fatalf("state %s, want %s", got, w.state)
				}
				switch {
				case a == ContentAdd:
					f.fl.waitSent(t, ContentReject) // J-30
				case a == TransportReplace:
					f.fl.waitSent(t, TransportReject) // J-33
				case a == ContentRemove:
					f.fl.waitSent(t, SessionTerminate) // J-32
				}
			})
		}
	}
}
