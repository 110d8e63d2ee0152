package jingle

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"io"
	"io/fs"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xtlsjingle/xtlsjingle/testvectors"
)

// stanza is an IQ read from a vector file: its attributes and its child element.
type stanza struct {
	from, to, typ, id string
	child             []byte
}

// readStanza parses one IQ stanza (the test side of a vector file) and slices out its first
// child element byte-exactly.
func readStanza(t testing.TB, b []byte) stanza {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(b))
	var st stanza
	depth := 0
	var start int64
	for {
		off := d.InputOffset()
		tok, err := d.Token()
		if err == io.EOF {
			t.Fatalf("no child element in %q", b)
		}
		if err != nil {
			t.Fatalf("stanza: %v", err)
		}
		switch tk := tok.(type) {
		case xml.StartElement:
			depth++
			if depth == 1 {
				for _, a := range tk.Attr {
					switch a.Name.Local {
					case "from":
						st.from = a.Value
					case "to":
						st.to = a.Value
					case "type":
						st.typ = a.Value
					case "id":
						st.id = a.Value
					}
				}
			}
			if depth == 2 {
				start = off
			}
		case xml.EndElement:
			if depth == 2 {
				st.child = b[start:d.InputOffset()]
				return st
			}
			depth--
		}
	}
}

func readVector(t testing.TB, name string) stanza {
	t.Helper()
	b, err := fs.ReadFile(testvectors.FS, name)
	if err != nil {
		t.Fatal(err)
	}
	return readStanza(t, b)
}

// capturedLines returns the stanzas of a captured file whose child is a <jingle/>.
func capturedJingle(t testing.TB, file string) []stanza {
	t.Helper()
	b, err := fs.ReadFile(testvectors.FS, "captured/"+file)
	if err != nil {
		t.Fatal(err)
	}
	var out []stanza
	for _, line := range bytes.Split(b, []byte("\n")) {
		if !bytes.Contains(line, []byte("<jingle ")) {
			continue
		}
		out = append(out, readStanza(t, line))
	}
	if len(out) == 0 {
		t.Fatalf("no jingle stanzas in %s", file)
	}
	return out
}

// parseErrorElement decodes <error type=…><condition xmlns=stanzas/><app xmlns=…/></error>.
func parseErrorElement(t testing.TB, b []byte) *Error {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(b))
	e := &Error{}
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return e
		}
		if err != nil {
			t.Fatal(err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			switch se.Name.Space {
			case "":
				for _, a := range se.Attr {
					if a.Name.Local == "type" {
						e.Type = a.Value
					}
				}
			case "urn:ietf:params:xml:ns:xmpp-stanzas":
				e.Condition = se.Name.Local
			case NSErrors:
				e.App = se.Name.Local
			}
		}
	}
}

// fakeLink is a Link whose incoming IQs are injected by the test and whose outgoing requests
// are recorded and answered by answer (nil: an empty result).
type fakeLink struct {
	jid string

	mu      sync.Mutex
	handler func(ctx context.Context, from, to, typ string, payload []byte) ([]byte, error)
	sent    []sent
	answer  func(to string, j *Jingle) error
}

type sent struct {
	to string
	j  *Jingle
}

func newFakeLink(jid string) *fakeLink { return &fakeLink{jid: jid} }

func (f *fakeLink) LocalJID() string { return f.jid }

func (f *fakeLink) Request(ctx context.Context, to, typ string, payload []byte) ([]byte, error) {
	j, err := Parse(payload)
	if err != nil {
		panic("manager sent an invalid jingle element: " + err.Error())
	}
	f.mu.Lock()
	f.sent = append(f.sent, sent{to, j})
	answer := f.answer
	f.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if answer != nil {
		return nil, answer(to, j)
	}
	return nil, nil
}

func (f *fakeLink) HandleIQ(space, local string, h func(ctx context.Context, from, to, typ string, payload []byte) ([]byte, error)) func() {
	if space != NS || local != "jingle" {
		panic("unexpected handler " + space + " " + local)
	}
	f.mu.Lock()
	f.handler = h
	f.mu.Unlock()
	return func() {
		f.mu.Lock()
		f.handler = nil
		f.mu.Unlock()
	}
}

// deliver hands an incoming IQ-set to the manager and returns its answer.
func (f *fakeLink) deliver(from string, payload []byte) ([]byte, error) {
	f.mu.Lock()
	h := f.handler
	f.mu.Unlock()
	if h == nil {
		return nil, errors.New("no handler installed")
	}
	return h(context.Background(), from, f.jid, "set", payload)
}

func (f *fakeLink) sentActions() []sent {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]sent(nil), f.sent...)
}

// waitSent waits until a request with action a was sent and returns it.
func (f *fakeLink) waitSent(t testing.TB, a Action) sent {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for _, s := range f.sentActions() {
			if s.j.Action == a {
				return s
			}
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("no %s was sent; sent: %v", a, f.sentActions())
	return sent{}
}

// checkGoroutines fails the test if more goroutines run at its end than at its start.
func checkGoroutines(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(3 * time.Second)
		for {
			n := runtime.NumGoroutine()
			if n <= before {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<16)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("goroutine leak: %d before, %d after\n%s", before, n, buf)
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
}

// wantErr checks that err is a stanza error with condition cond and Jingle condition app.
func wantErr(t testing.TB, err error, cond, app string) {
	t.Helper()
	if cond == "" {
		if err != nil {
			t.Fatalf("got error %v, want a result", err)
		}
		return
	}
	var se stanzaErrorer
	if !errors.As(err, &se) {
		t.Fatalf("got %v, want stanza error %s/%s", err, cond, app)
	}
	_, c, a, _ := se.StanzaError()
	if c != cond || a.Local != app || (app != "" && a.Space != NSErrors) {
		t.Fatalf("got %s/%s:%s (%v), want %s/%s", c, a.Space, a.Local, err, cond, app)
	}
}

func mustMarshal(t testing.TB, j *Jingle) []byte {
	t.Helper()
	b, err := j.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

const (
	nsXS   = "urn:xmpp:jingle:apps:xmlstream:0"
	nsIBB  = "urn:xmpp:jingle:transports:ibb:1"
	nsXTLS = "urn:xmpp:jingle:security:xtls:0"
)

func xsContent(name string) Content {
	return Content{
		Creator:     CreatorInitiator,
		Name:        name,
		Description: []byte("<description xmlns='" + nsXS + "'/>"),
		Transport:   []byte("<transport xmlns='" + nsIBB + "' block-size='4096' sid='ibb-" + name + "'/>"),
		Security:    []byte("<security xmlns='" + nsXTLS + "'><method name='srp'/></security>"),
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
