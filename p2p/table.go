package p2p

import (
	"bytes"
	"encoding/xml"
	"strings"
	"sync"
)

// Published is what one full JID published in its latest available presence.
type Published struct {
	// P2P is its <p2p/>, nil when absent or malformed.
	P2P *P2P
	// E2E is its <e2e/>, nil when absent or malformed.
	E2E *E2E
}

// Table remembers the <p2p/> and <e2e/> elements of contacts' presence per full JID. It is
// bounded (the oldest entry is dropped when full; one bare JID holds at most 16
// entries, its own oldest dropped first, so that one account sending presence from many
// resources cannot push the others out) and safe for concurrent use. Feed it every available
// presence with Update and every unavailable one with Forget.
type Table struct {
	mu      sync.Mutex
	max     int
	entries map[string]Published
	order   []string // insertion order of entries, for eviction
}

// maxResources is how many full JIDs of one bare JID a Table remembers.
const maxResources = 16

// NewTable returns a table of at most max full JIDs (max < 1 means 1024).
func NewTable(max int) *Table {
	if max < 1 {
		max = 1024
	}
	return &Table{max: max, entries: map[string]Published{}}
}

// Update records what jid published in an available presence whose child elements are
// payloads: a presence without <p2p/> or <e2e/> clears what was known, since a presence
// replaces the one before. Malformed elements are ignored (and returned) as if absent; so
// are both copies of an element that appears twice, since nothing tells which one is meant.
func (t *Table) Update(jid string, payloads [][]byte) (errs []error) {
	var pub Published
	var nP2P, nE2E int
	for _, p := range payloads {
		switch rootName(p) {
		case xml.Name{Space: NS, Local: "p2p"}:
			nP2P++
			if v, err := ParseP2P(p); err == nil {
				pub.P2P = &v
			} else {
				errs = append(errs, err)
			}
		case xml.Name{Space: NSE2E, Local: "e2e"}:
			nE2E++
			if v, err := ParseE2E(p); err == nil {
				pub.E2E = &v
			} else {
				errs = append(errs, err)
			}
		}
	}
	if nP2P > 1 {
		pub.P2P = nil
		errs = append(errs, &ParseError{Element: "p2p", Reason: "more than one <p2p/> in one presence"})
	}
	if nE2E > 1 {
		pub.E2E = nil
		errs = append(errs, &ParseError{Element: "e2e", Reason: "more than one <e2e/> in one presence"})
	}
	if pub.P2P == nil && pub.E2E == nil {
		t.Forget(jid)
		return errs
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.entries[jid]; !ok {
		bare := bareOf(jid)
		n, oldest := 0, -1
		for i, j := range t.order {
			if bareOf(j) == bare {
				if n++; oldest < 0 {
					oldest = i
				}
			}
		}
		if n >= maxResources {
			t.dropLocked(oldest)
		}
		for len(t.entries) >= t.max && len(t.order) > 0 {
			t.dropLocked(0)
		}
		t.order = append(t.order, jid)
	}
	t.entries[jid] = pub
	return errs
}

// Forget drops what jid published (unavailable presence).
func (t *Table) Forget(jid string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.entries[jid]; !ok {
		return
	}
	for i, j := range t.order {
		if j == jid {
			t.dropLocked(i)
			break
		}
	}
}

// dropLocked removes the entry at index i of t.order.
func (t *Table) dropLocked(i int) {
	delete(t.entries, t.order[i])
	t.order = append(t.order[:i:i], t.order[i+1:]...)
}

// bareOf returns jid without its resource.
func bareOf(jid string) string {
	bare, _, _ := strings.Cut(jid, "/")
	return bare
}

// Lookup returns a copy of what jid published, if anything (the caller may modify it).
func (t *Table) Lookup(jid string) (Published, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p, ok := t.entries[jid]
	if p.P2P != nil {
		v := *p.P2P
		p.P2P = &v
	}
	if p.E2E != nil {
		e := E2E{Keys: make([]Key, len(p.E2E.Keys))}
		for i, k := range p.E2E.Keys {
			e.Keys[i] = Key{Alg: k.Alg, Pub: bytes.Clone(k.Pub)}
		}
		p.E2E = &e
	}
	return p, ok
}

// Len returns the number of full JIDs in the table.
func (t *Table) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.entries)
}

// rootName returns the name of the first start element of b (cheaply; the parsers check the
// rest), or the zero Name.
func rootName(b []byte) xml.Name {
	d := xml.NewDecoder(bytes.NewReader(b))
	for range 4 {
		tok, err := d.Token()
		if err != nil {
			return xml.Name{}
		}
		if se, ok := tok.(xml.StartElement); ok {
			return se.Name
		}
	}
	return xml.Name{}
}
