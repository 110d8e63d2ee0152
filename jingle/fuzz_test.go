package jingle

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/xtlsjingle/xtlsjingle/testvectors"
)

// seeds returns the Jingle payloads of every vector and captured stanza.
func seeds(f *testing.F) [][]byte {
	var out [][]byte
	files, _ := fs.Glob(testvectors.FS, "jingle/*.xml")
	for _, file := range files {
		st := readVector(f, file)
		if bytes.Contains(st.child, []byte("<jingle")) || bytes.Contains(st.child, []byte(":jingle")) {
			out = append(out, st.child)
		}
	}
	for _, file := range capturedFiles {
		for _, st := range capturedJingle(f, file) {
			out = append(out, st.child)
		}
	}
	return out
}

// FuzzParse: the decoder never panics, refuses with a typed bad-request, and what it accepts
// re-encodes to an element that decodes to the same value (and encodes identically).
func FuzzParse(f *testing.F) {
	for _, s := range seeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		j, err := Parse(data)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Condition != "bad-request" {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		b, err := j.Marshal()
		if errors.Is(err, errTooLarge) {
			return // the canonical form (one xmlns per namespace change) can outgrow the limit
		}
		if err != nil {
			t.Fatalf("Marshal of a parsed element: %v\n%q", err, data)
		}
		j2, err := Parse(b)
		if err != nil {
			t.Fatalf("re-parse: %v\n%s", err, b)
		}
		if d := cmp.Diff(j, j2); d != "" {
			t.Fatalf("round trip:\n%s", d)
		}
		if b2, _ := j2.Marshal(); !bytes.Equal(b, b2) {
			t.Fatalf("unstable:\n%s\n%s", b, b2)
		}
	})
}

// FuzzManager feeds arbitrary IQ payloads (separated by NUL bytes, up to 8) from one peer to a
// manager that already has a session with that peer: it never panics, always answers (a result
// or a stanza error with a defined condition, never an internal error), and after Close no
// session is left and every session it created has ended.
func FuzzManager(f *testing.F) {
	for _, s := range seeds(f) {
		f.Add(s)
	}
	f.Add([]byte("<jingle xmlns='urn:xmpp:jingle:1' action='session-info' sid='fz'/>\x00<jingle xmlns='urn:xmpp:jingle:1' action='session-terminate' sid='fz'/>"))
	f.Add([]byte("<jingle xmlns='urn:xmpp:jingle:1' action='content-remove' sid='fz'><content creator='initiator' name='xmlstream'/></jingle>"))
	f.Add([]byte("<jingle xmlns='urn:xmpp:jingle:1' action='transport-replace' sid='fz'><content creator='initiator' name='xmlstream'><transport xmlns='urn:t'/></content></jingle>"))
	f.Fuzz(func(t *testing.T, data []byte) {
		fl := newFakeLink(localJID)
		var mu sync.Mutex
		var all []*Session
		m := NewManager(fl, Config{
			PendingTimeout:         time.Second,
			HandleContentAdd:       len(data)%2 == 0,
			HandleTransportReplace: len(data)%3 == 0,
			InfoNamespaces:         []string{nsXS, nsFileTransfer},
			Incoming: func(s *Session) {
				mu.Lock()
				all = append(all, s)
				mu.Unlock()
				if s.SID() != "fz" {
					_ = s.Accept(context.Background(), s.Contents(), nil)
				}
			},
		})
		answer := func(payload []byte) {
			type res struct{ err error }
			ch := make(chan res, 1)
			go func() {
				_, err := fl.deliver(peerJID, payload)
				ch <- res{err}
			}()
			select {
			case r := <-ch:
				if r.err == nil {
					return
				}
				var se stanzaErrorer
				if !errors.As(r.err, &se) {
					t.Fatalf("answer without stanza error: %v", r.err)
				}
				if _, cond, _, _ := se.StanzaError(); cond == "" || cond == "internal-server-error" {
					t.Fatalf("bad condition %q", cond)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("no answer to %q", payload)
			}
		}
		answer(initiatePayload(t, "fz", peerJID))
		for i, p := range bytes.SplitN(data, []byte{0}, 9) {
			if i == 8 {
				break
			}
			answer(p)
		}
		m.Close()
		if n := liveSessions(m); n != 0 {
			t.Fatalf("%d sessions after Close", n)
		}
		mu.Lock()
		defer mu.Unlock()
		for _, s := range all {
			select {
			case <-s.Done():
			default:
				t.Fatalf("session %s not ended after Close", s.SID())
			}
		}
	})
}
