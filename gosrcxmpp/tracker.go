package gosrcxmpp

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"
	"sync"
)

// answer is what a pending request receives.
type answer struct {
	payload []byte
	err     error
}

type pendingIQ struct {
	to string   // the JID the request was sent to
	s  *session // the session it was sent on
	ch chan answer
}

// tracker matches IQ results and errors to pending requests (GOSRC.md §3.A3 workaround):
// register before the request is written, a buffered channel so delivery never blocks, the
// answer's from checked against the request's to, and removal by the requester whatever
// happens, so late answers find nothing and are dropped.
type tracker struct {
	mu      sync.Mutex
	pending map[string]*pendingIQ
}

// newID returns an unpredictable stanza id: 128 random bits in unpadded base64url, 22
// characters (hex took 32, and every IBB data IQ carries one under a server's rate limit).
func newID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("gosrcxmpp: crypto/rand failed: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// register returns a fresh id and the channel its answer arrives on; cancel must be called
// when the requester stops waiting.
func (t *tracker) register(to string, s *session) (id string, ch <-chan answer, cancel func()) {
	p := &pendingIQ{to: to, s: s, ch: make(chan answer, 1)}
	t.mu.Lock()
	for {
		id = newID()
		if _, dup := t.pending[id]; !dup {
			break
		}
	}
	t.pending[id] = p
	t.mu.Unlock()
	return id, p.ch, func() {
		t.mu.Lock()
		if t.pending[id] == p {
			delete(t.pending, id)
		}
		t.mu.Unlock()
	}
}

// deliver hands an IQ result or error that arrived on session s to its requester. An answer
// with an unknown id, from another JID than the request went to, or on another session, is
// dropped. domain and bare are our server's domain and our bare JID (lower case).
func (t *tracker) deliver(st *inStanza, s *session, domain, bare string) bool {
	t.mu.Lock()
	p := t.pending[st.id]
	if p == nil || p.s != s || !answerFromMatches(p.to, st.from, domain, bare) {
		t.mu.Unlock()
		return false
	}
	delete(t.pending, st.id)
	t.mu.Unlock()
	var a answer
	if st.typ == "error" {
		if st.err != nil {
			a.err = st.err
		} else {
			a.err = &StanzaError{Type: "cancel", Condition: "undefined-condition"}
		}
	} else if st.invalid != nil {
		a.err = st.invalid
	} else if c := st.payload(); c != nil {
		a.payload = c.raw
	}
	p.ch <- a // buffered, never blocks: each pending entry is delivered at most once
	return true
}

// failAll fails every pending request with err.
func (t *tracker) failAll(err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for id, p := range t.pending {
		delete(t.pending, id)
		p.ch <- answer{err: err}
	}
}

// answerFromMatches reports whether an answer from the JID from may answer a request sent to
// to (RFC 6120 §8.1.2.1 and §10.3.3): the same JID; or, for a request without to, to our bare
// JID or to our server's domain, the server answering without from, from our bare JID or from
// the domain.
func answerFromMatches(to, from, domain, bare string) bool {
	if sameJID(to, from) {
		return true
	}
	nto := normJID(to)
	if nto == "" || nto == bare || nto == domain {
		nfrom := normJID(from)
		return nfrom == "" || nfrom == bare || nfrom == domain
	}
	return false
}

// sameJID compares JIDs as a server normalises them in the simple cases: node and domain
// case-insensitively, resource exactly. (No stringprep: the server has already applied it to
// the from it stamps.)
func sameJID(a, b string) bool { return normJID(a) == normJID(b) }

func normJID(j string) string {
	bare, res, hasRes := strings.Cut(j, "/")
	bare = strings.TrimSuffix(strings.ToLower(bare), ".")
	if hasRes {
		return bare + "/" + res
	}
	return bare
}

// splitJID splits a JID into node, domain and resource, with basic validation.
func splitJID(j string) (node, domain, resource string, err error) {
	bare, resource, hasRes := strings.Cut(j, "/")
	if hasRes && resource == "" {
		return "", "", "", errors.New("empty resource")
	}
	node, domain, hasNode := strings.Cut(bare, "@")
	if !hasNode {
		node, domain = "", bare
	} else if node == "" || strings.ContainsAny(node, "\"&'/:<>@ \t\r\n") {
		return "", "", "", errors.New("bad node")
	}
	if domain == "" || strings.ContainsAny(domain, "@/ ") || len(j) > 3071 {
		return "", "", "", errors.New("bad domain")
	}
	return node, domain, resource, nil
}
