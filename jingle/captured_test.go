package jingle

import (
	"context"
	"testing"
	"time"
)

const nsFileTransfer = "urn:xmpp:jingle:apps:file-transfer:5"

var capturedFiles = []string{
	"gajim153-xtls-ibb.xml",
	"trace-gajim153-xtls-s5b.xml",
	"libervia-jingle-ibb.head.xml",
	"libervia-jingle-s5b.xml",
}

// TestCaptured_ResponderRefusesFileTransfer: a responder built on this package whose
// application only does xmlstream acknowledges the captured Gajim and Libervia file-transfer
// session-initiates (J-2) and then terminates them with <unsupported-applications/> (J-8).
func TestCaptured_ResponderRefusesFileTransfer(t *testing.T) {
	for _, file := range capturedFiles {
		t.Run(file, func(t *testing.T) {
			init := capturedJingle(t, file)[0]
			fl := newFakeLink(init.to)
			m := NewManager(fl, Config{Incoming: func(s *Session) {
				for _, c := range s.Contents() {
					if Namespace(c.Description) == nsXS {
						return // would ask the user
					}
				}
				_ = s.Terminate(context.Background(), &Reason{Condition: UnsupportedApplications})
			}})
			defer m.Close()
			_, err := fl.deliver(init.from, init.child)
			wantErr(t, err, "", "")
			term := fl.waitSent(t, SessionTerminate)
			j, _ := Parse(init.child)
			if term.to != init.from || term.j.SID != j.SID || term.j.Reason.Condition != UnsupportedApplications ||
				term.j.Initiator != "" {
				t.Fatalf("sent %+v", term)
			}
		})
	}
}

// TestCaptured_ReplaySession replays every captured Jingle stanza to the party it was sent to,
// each party being a manager of this package: the responder side acknowledges the
// initiate, accepts (the application here takes file transfers), and acknowledges the
// initiator's transport-info and session-info (checksum, J-28: understood because the
// application lists the file-transfer namespace); the initiator side acknowledges
// session-accept (with Gajim's initiator attribute, J-15), transport-info and
// session-terminate (J-24), and ends.
func TestCaptured_ReplaySession(t *testing.T) {
	for _, file := range capturedFiles {
		t.Run(file, func(t *testing.T) {
			checkGoroutines(t)
			stanzas := capturedJingle(t, file)
			init := stanzas[0]
			ij, err := Parse(init.child)
			if err != nil {
				t.Fatal(err)
			}
			cfg := Config{InfoNamespaces: []string{nsFileTransfer}}
			// Responder.
			rl := newFakeLink(init.to)
			accepted := make(chan *Session, 1)
			rcfg := cfg
			rcfg.Incoming = func(s *Session) {
				if err := s.Accept(context.Background(), s.Contents(), nil); err != nil {
					t.Error(err)
				}
				accepted <- s
			}
			rm := NewManager(rl, rcfg)
			defer rm.Close()
			// Initiator: the session as if this package had sent the captured initiate.
			il := newFakeLink(init.from)
			im := NewManager(il, cfg)
			defer im.Close()
			is := im.newSession(init.to, ij.SID, true)
			is.contents = cloneContents(ij.Contents)
			im.mu.Lock()
			im.sessions[sessionKey{init.to, ij.SID}] = is
			im.mu.Unlock()

			_, err = rl.deliver(init.from, init.child)
			wantErr(t, err, "", "")
			var rs *Session
			select {
			case rs = <-accepted:
			case <-time.After(5 * time.Second):
				t.Fatal("not accepted")
			}
			if rs.State() != StateActive {
				t.Fatalf("responder %s", rs.State())
			}
			counts := map[Action]int{}
			for _, st := range stanzas[1:] {
				j, _ := Parse(st.child)
				link := il
				if st.to == init.to {
					link = rl
				}
				_, err := link.deliver(st.from, st.child)
				wantErr(t, err, "", "")
				counts[j.Action]++
			}
			if counts[SessionAccept] != 1 {
				t.Fatalf("replayed %v", counts)
			}
			if counts[SessionTerminate] == 0 { // the Gajim IBB capture ends before the terminate
				if is.State() != StateActive || rs.State() != StateActive {
					t.Fatalf("states %s %s", is.State(), rs.State())
				}
				return
			}
			if is.State() != StateEnded {
				t.Fatalf("initiator %s", is.State())
			}
			if r, byPeer := is.Reason(); r == nil || r.Condition != Success || !byPeer {
				t.Fatalf("initiator reason %+v", r)
			}
			var got []Action
			for ev := range is.Events() {
				got = append(got, ev.Action)
			}
			if got[0] != SessionAccept || got[len(got)-1] != SessionTerminate {
				t.Fatalf("initiator events %v", got)
			}
		})
	}
}
