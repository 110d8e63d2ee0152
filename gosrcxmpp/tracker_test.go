package gosrcxmpp

import (
	"encoding/base64"
	"errors"
	"testing"
)

func TestAnswerFromMatches(t *testing.T) {
	const domain, bare = "localhost", "romeo@localhost"
	cases := []struct {
		to, from string
		ok       bool
	}{
		{"juliet@capulet.lit/balcony", "juliet@capulet.lit/balcony", true},
		{"Juliet@Capulet.lit/balcony", "juliet@capulet.lit/balcony", true},
		{"juliet@capulet.lit/balcony", "juliet@capulet.lit/Balcony", false},
		{"juliet@capulet.lit/balcony", "juliet@capulet.lit", false},
		{"juliet@capulet.lit/balcony", "mallory@evil.lit/x", false},
		{"juliet@capulet.lit/balcony", "", false},
		{"juliet@capulet.lit", "juliet@capulet.lit", true},
		{"capulet.lit", "capulet.lit", true},
		{"", "", true},                // to our server session
		{"", "localhost", true},       // the server answers from its domain
		{"", "romeo@localhost", true}, // or from our bare JID
		{"", "mallory@localhost/x", false},
		{"localhost", "", true}, // a request to the bare domain
		{"localhost", "romeo@localhost", true},
		{"romeo@localhost", "", true}, // to our own bare JID
		{"romeo@localhost", "localhost", true},
		{"romeo@localhost", "romeo@localhost/other", false},
	}
	for _, c := range cases {
		if got := answerFromMatches(c.to, c.from, domain, bare); got != c.ok {
			t.Errorf("to %q from %q: %v, want %v", c.to, c.from, got, c.ok)
		}
	}
}

// TestTracker (GOSRC.md §3.A3): answers reach their requester once; answers from the wrong
// JID, on another session, or after the requester gave up are dropped without blocking.
func TestTracker(t *testing.T) {
	var tr tracker
	tr.pending = make(map[string]*pendingIQ)
	s1, s2 := &session{}, &session{}
	const peer = "juliet@capulet.lit/balcony"

	id, ch, cancel := tr.register(peer, s1)
	if raw, err := base64.RawURLEncoding.Strict().DecodeString(id); err != nil || len(raw) != 16 {
		t.Fatalf("id %q is not 128 random bits in base64url", id)
	}
	if tr.deliver(&inStanza{kind: "iq", typ: "result", id: id, from: "mallory@evil.lit/x"}, s1, "localhost", "romeo@localhost") {
		t.Fatal("answer from another JID delivered")
	}
	if tr.deliver(&inStanza{kind: "iq", typ: "result", id: id, from: peer}, s2, "localhost", "romeo@localhost") {
		t.Fatal("answer on another session delivered")
	}
	ok := tr.deliver(&inStanza{kind: "iq", typ: "result", id: id, from: peer,
		children: []child{{raw: []byte(`<x xmlns="urn:x"></x>`)}}}, s1, "localhost", "romeo@localhost")
	if !ok {
		t.Fatal("right answer not delivered")
	}
	if a := <-ch; a.err != nil || string(a.payload) != `<x xmlns="urn:x"></x>` {
		t.Fatalf("answer %+v", a)
	}
	// A duplicate answer finds nothing and does not block.
	if tr.deliver(&inStanza{kind: "iq", typ: "result", id: id, from: peer}, s1, "localhost", "romeo@localhost") {
		t.Fatal("duplicate delivered")
	}
	cancel()

	// Late answer after cancel: dropped.
	id2, _, cancel2 := tr.register(peer, s1)
	cancel2()
	if tr.deliver(&inStanza{kind: "iq", typ: "result", id: id2, from: peer}, s1, "localhost", "romeo@localhost") {
		t.Fatal("late answer delivered")
	}

	// Error answers carry the decoded stanza error; an error without <error/> is still an error.
	id3, ch3, cancel3 := tr.register(peer, s1)
	defer cancel3()
	tr.deliver(&inStanza{kind: "iq", typ: "error", id: id3, from: peer}, s1, "localhost", "romeo@localhost")
	var se *StanzaError
	if a := <-ch3; !errors.As(a.err, &se) || se.Condition != "undefined-condition" {
		t.Fatalf("error answer %+v", a)
	}

	// failAll fails every pending request without blocking.
	_, ch4, cancel4 := tr.register(peer, s1)
	defer cancel4()
	_, ch5, cancel5 := tr.register("", s1)
	defer cancel5()
	tr.failAll(ErrDisconnected)
	for _, c := range []<-chan answer{ch4, ch5} {
		if a := <-c; !errors.Is(a.err, ErrDisconnected) {
			t.Fatalf("failAll: %+v", a)
		}
	}
	if len(tr.pending) != 0 {
		t.Fatalf("%d entries left", len(tr.pending))
	}
}

func TestSplitJID(t *testing.T) {
	good := map[string][3]string{
		"romeo@montague.lit":         {"romeo", "montague.lit", ""},
		"romeo@montague.lit/orchard": {"romeo", "montague.lit", "orchard"},
		"montague.lit":               {"", "montague.lit", ""},
		"a@b/c/d":                    {"a", "b", "c/d"},
	}
	for in, want := range good {
		n, d, r, err := splitJID(in)
		if err != nil || [3]string{n, d, r} != want {
			t.Errorf("%q: %q %q %q %v", in, n, d, r, err)
		}
	}
	for _, in := range []string{"", "@x", "a@", "a@b/", "a@b@c", "a b@c"} {
		if _, _, _, err := splitJID(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}
