package xmlstream_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"path"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/xtlsjingle/xtlsjingle/testvectors"
	"github.com/xtlsjingle/xtlsjingle/xmlstream"
)

const (
	romeo  = "romeo@montague.lit/orchard"
	juliet = "juliet@capulet.lit/balcony"
)

// noLeaks fails the test if goroutines started during it are still running after its
// cleanups (register it first: cleanups run last-in first-out).
func noLeaks(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(3 * time.Second)
		for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > before {
			buf := make([]byte, 1<<16)
			buf = buf[:runtime.Stack(buf, true)]
			t.Errorf("goroutine leak: %d before, %d after\n%s", before, n, buf)
		}
	})
}

func vector(t testing.TB, name string) []byte {
	t.Helper()
	b, err := fs.ReadFile(testvectors.FS, path.Join("xmlstream", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// pair opens a stream between romeo (initiator) and juliet (responder) over net.Pipe (ERR-12:
// both sides always read concurrently).
func pair(t *testing.T, ca, cb *xmlstream.Config) (a, b *xmlstream.Stream) {
	t.Helper()
	c1, c2 := net.Pipe()
	t.Cleanup(func() { c1.Close(); c2.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var (
		wg   sync.WaitGroup
		errB error
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		b, errB = xmlstream.Respond(ctx, c2, juliet, romeo, cb)
	}()
	a, errA := xmlstream.Initiate(ctx, c1, romeo, juliet, ca)
	wg.Wait()
	if errA != nil || errB != nil {
		t.Fatalf("Initiate: %v, Respond: %v", errA, errB)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestXS1_Headers: both headers exchanged, responder's id fresh and unpredictable (CORE-2).
func TestXS1_Headers(t *testing.T) {
	noLeaks(t)
	a, b := pair(t, nil, nil)
	if a.ID() == "" || a.ID() != b.ID() || len(b.ID()) < 16 {
		t.Errorf("ids %q / %q", a.ID(), b.ID())
	}
	if a.LocalJID() != romeo || a.PeerJID() != juliet || b.LocalJID() != juliet || b.PeerJID() != romeo {
		t.Error("JIDs")
	}
	_, b2 := pair(t, nil, nil)
	if b2.ID() == b.ID() {
		t.Error("stream id repeated")
	}
}

type message struct {
	XMLName xml.Name `xml:"jabber:client message"`
	Type    string   `xml:"type,attr,omitempty"`
	Body    string   `xml:"body"`
}

// TestXS6_StanzasBothWays: messages both ways, from attributed to the peer (XS-12), to = us.
func TestXS6_StanzasBothWays(t *testing.T) {
	noLeaks(t)
	a, b := pair(t, nil, nil)
	ctx := ctxT(t)
	const n = 50
	errs := make(chan error, 2)
	go func() {
		for i := range n {
			if err := a.Encode(ctx, message{Type: "chat", Body: fmt.Sprintf("r%d <&>", i)}); err != nil {
				errs <- err
				return
			}
		}
		errs <- nil
	}()
	go func() {
		for i := range n {
			if err := b.Send(ctx, []byte(fmt.Sprintf("<message xmlns='jabber:client'><body>j%d</body></message>", i))); err != nil {
				errs <- err
				return
			}
		}
		errs <- nil
	}()
	for i := range n {
		st, err := b.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.From != romeo || st.To != juliet || st.Name.Local != "message" || st.Name.Space != xmlstream.NSClient {
			t.Fatalf("stanza %+v", st)
		}
		var m message
		if err := st.Decode(&m); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(message{XMLName: xml.Name{Space: xmlstream.NSClient, Local: "message"}, Type: "chat", Body: fmt.Sprintf("r%d <&>", i)}, m); diff != "" {
			t.Fatalf("message %d (-want +got):\n%s", i, diff)
		}
		st, err = a.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.From != juliet || !bytes.Contains(st.Raw, []byte(fmt.Sprintf("<body>j%d</body>", i))) {
			t.Fatalf("stanza %q from %s", st.Raw, st.From)
		}
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	// A stanza from the peer's bare JID is accepted (XS-12).
	if err := a.Send(ctx, []byte("<presence from='romeo@montague.lit'/>")); err != nil {
		t.Fatal(err)
	}
	st, err := b.Next(ctx)
	if err != nil || st.From != "romeo@montague.lit" || st.Name.Local != "presence" {
		t.Fatalf("%+v %v", st, err)
	}
	// The raw stanza stands alone: jabber:client is declared on it.
	if !bytes.HasPrefix(st.Raw, []byte("<presence xmlns='jabber:client'")) {
		t.Errorf("Raw = %s", st.Raw)
	}
}

func TestSend_Rejects(t *testing.T) {
	noLeaks(t)
	a, _ := pair(t, &xmlstream.Config{MaxStanzaSize: 1024}, nil)
	ctx := ctxT(t)
	for _, bad := range []string{
		"", "text", "<message/><message/>", "<foo/>", "<message xmlns='jabber:server'/>",
		"<message><!-- c --></message>", "<message>", "<?xml version='1.0'?><message/>",
		"<message><body>" + strings.Repeat("x", 1100) + "</body></message>",
	} {
		if err := a.Send(ctx, []byte(bad)); !errors.Is(err, xmlstream.ErrInvalidStanza) {
			t.Errorf("Send(%.40q) = %v", bad, err)
		}
	}
}

type stanzaErr interface {
	StanzaError() (typ, cond string, app xml.Name, text string)
}

// TestCORE9_IQ: requests both ways, handler errors, panics, unknown payloads, concurrency.
func TestCORE9_IQ(t *testing.T) {
	noLeaks(t)
	// b's handler "slow" only ends when canceled: b cancels it 200 ms after a closes.
	a, b := pair(t, nil, &xmlstream.Config{CloseTimeout: 400 * time.Millisecond})
	ctx := ctxT(t)
	b.HandleIQ("urn:example:echo", "echo", func(ctx context.Context, from, to, typ string, payload []byte) ([]byte, error) {
		if from != romeo || to != juliet || typ != "get" {
			return nil, fmt.Errorf("bad addressing %s %s %s", from, to, typ)
		}
		return payload, nil
	})
	b.HandleIQ("urn:example", "empty", func(ctx context.Context, from, to, typ string, payload []byte) ([]byte, error) {
		return nil, nil
	})
	b.HandleIQ("urn:example", "fail", func(ctx context.Context, from, to, typ string, payload []byte) ([]byte, error) {
		return nil, &xmlstream.StanzaError{Type: "cancel", Condition: "not-acceptable", App: xml.Name{Space: "urn:xmpp:jingle:errors:1", Local: "security-required"}, Text: "no"}
	})
	b.HandleIQ("urn:example", "internal", func(ctx context.Context, from, to, typ string, payload []byte) ([]byte, error) {
		return nil, errors.New("secret detail")
	})
	b.HandleIQ("urn:example", "panic", func(ctx context.Context, from, to, typ string, payload []byte) ([]byte, error) {
		panic("boom")
	})
	a.HandleIQ("urn:example", "back", func(ctx context.Context, from, to, typ string, payload []byte) ([]byte, error) {
		return []byte("<ok xmlns='urn:example'/>"), nil
	})

	got, err := a.Request(ctx, "", "get", []byte("<echo xmlns='urn:example:echo'><x a='1'>t</x></echo>"))
	if err != nil || string(got) != "<echo xmlns='urn:example:echo'><x a='1'>t</x></echo>" {
		t.Fatalf("echo = %s, %v", got, err)
	}
	if got, err := a.Request(ctx, juliet, "set", []byte("<empty xmlns='urn:example'/>")); err != nil || got != nil {
		t.Errorf("empty = %q, %v", got, err)
	}
	if got, err := b.Request(ctx, "", "get", []byte("<back xmlns='urn:example'/>")); err != nil || string(got) != "<ok xmlns='urn:example'/>" {
		t.Errorf("back = %q, %v", got, err)
	}
	check := func(payload, wantType, wantCond string, wantApp xml.Name, wantText string) {
		t.Helper()
		_, err := a.Request(ctx, "", "get", []byte(payload))
		var se stanzaErr
		if !errors.As(err, &se) {
			t.Fatalf("%s: %v", payload, err)
		}
		typ, cond, app, text := se.StanzaError()
		if typ != wantType || cond != wantCond || app != wantApp || text != wantText {
			t.Errorf("%s: got %s %s %v %q", payload, typ, cond, app, text)
		}
	}
	check("<fail xmlns='urn:example'/>", "cancel", "not-acceptable", xml.Name{Space: "urn:xmpp:jingle:errors:1", Local: "security-required"}, "no")
	check("<internal xmlns='urn:example'/>", "wait", "internal-server-error", xml.Name{}, "")
	check("<panic xmlns='urn:example'/>", "wait", "internal-server-error", xml.Name{}, "")
	check("<unknown xmlns='urn:example'/>", "cancel", "service-unavailable", xml.Name{}, "") // CORE-9
	check("<query/>", "cancel", "service-unavailable", xml.Name{}, "")                       // jabber:client child

	// Many concurrent requests in both directions.
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 30 {
				p := fmt.Sprintf("<echo xmlns='urn:example:echo' n='%d-%d'/>", g, i)
				got, err := a.Request(ctx, "", "get", []byte(p))
				if err != nil || string(got) != p {
					t.Errorf("echo %s = %s, %v", p, got, err)
					return
				}
				if _, err := b.Request(ctx, "", "get", []byte("<back xmlns='urn:example'/>")); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()

	if _, err := a.Request(ctx, "", "result", []byte("<x/>")); err == nil {
		t.Error("request of type result accepted")
	}
	if _, err := a.Request(ctx, "", "get", []byte("<x/><y/>")); !errors.Is(err, xmlstream.ErrInvalidStanza) {
		t.Errorf("two payload elements: %v", err)
	}
	// A request that is never answered returns at its deadline.
	b.HandleIQ("urn:example", "slow", func(ctx context.Context, from, to, typ string, payload []byte) ([]byte, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	})
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := a.Request(short, "", "get", []byte("<slow xmlns='urn:example'/>")); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("slow: %v", err)
	}
}

// TestPayloadNamespaces: payloads handed to handlers stand alone even when their namespace
// prefixes were declared on the iq or in the stream header.
func TestPayloadNamespaces(t *testing.T) {
	noLeaks(t)
	in := strings.Builder{}
	in.WriteString("<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' xmlns:h='urn:h' from='romeo@montague.lit/orchard' to='juliet@capulet.lit/balcony' version='1.0'>")
	in.WriteString("<iq type='get' id='1' xmlns:p='urn:p'><p:q><h:x/></p:q></iq>")
	in.WriteString("<iq type='get' id='2'><h:y/></iq>")
	in.WriteString("</stream:stream>")
	c := &scriptConn{r: strings.NewReader(in.String())}
	s, err := xmlstream.Respond(ctxT(t), c, juliet, romeo, &xmlstream.Config{CloseTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	got := map[string]string{}
	h := func(ctx context.Context, from, to, typ string, payload []byte) ([]byte, error) {
		mu.Lock()
		got[string(payload)] = from
		mu.Unlock()
		return nil, nil
	}
	s.HandleIQ("urn:p", "q", h)
	s.HandleIQ("urn:h", "y", h)
	// The script ends with </stream:stream>: Next reports the orderly close.
	if _, err := s.Next(ctxT(t)); err != io.EOF {
		t.Fatalf("Next = %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"<p:q xmlns:p='urn:p' xmlns:h='urn:h'><h:x/></p:q>", "<h:y xmlns:h='urn:h'/>"} {
		if got[p] != romeo {
			t.Errorf("payload %s not delivered (got %v)", p, got)
		}
		if _, err := xml.NewDecoder(strings.NewReader(p)).Token(); err != nil {
			t.Error(err)
		}
	}
	out := c.Output()
	if !strings.Contains(out, "<iq type='result' id='1'/>") || !strings.Contains(out, "<iq type='result' id='2'/>") {
		t.Errorf("answers missing: %s", out)
	}
}

// scriptConn reads a fixed script and records what is written.
type scriptConn struct {
	r  io.Reader
	mu sync.Mutex
	w  bytes.Buffer
}

func (c *scriptConn) Read(p []byte) (int, error) { return c.r.Read(p) }
func (c *scriptConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.w.Write(p)
}
func (c *scriptConn) Output() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.w.String()
}

// TestRejectVectors feeds each negative vector (testvectors/xmlstream/<ID>_<condition>_*.txt)
// to a responder and expects that stream error, sent to the peer and returned (CORE-5, CORE-6,
// CORE-7, CORE-9, XS-12, XS-13).
func TestRejectVectors(t *testing.T) {
	noLeaks(t)
	files, err := fs.Glob(testvectors.FS, "xmlstream/*_*_*.txt")
	if err != nil || len(files) < 10 {
		t.Fatalf("vectors: %v %d", err, len(files))
	}
	for _, f := range files {
		name := path.Base(f)
		cond := strings.Split(name, "_")[1]
		t.Run(name, func(t *testing.T) {
			c := &scriptConn{r: bytes.NewReader(vector(t, name))}
			s, err := xmlstream.Respond(ctxT(t), c, juliet, romeo, &xmlstream.Config{CloseTimeout: 200 * time.Millisecond})
			if err == nil {
				_, err = s.Next(ctxT(t))
				s.Close()
			}
			if !errors.Is(err, &xmlstream.StreamError{Condition: cond}) {
				t.Fatalf("err = %v, want stream error %s", err, cond)
			}
			out := c.Output()
			wantErr := "<stream:error><" + cond + " xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
			if !strings.Contains(out, wantErr) || !strings.HasSuffix(out, "</stream:stream>") {
				t.Errorf("peer got %s", out)
			}
			if !strings.HasPrefix(out, "<?xml version='1.0'?><stream:stream ") {
				t.Errorf("responder did not send its header before the error: %s", out)
			}
		})
	}
}

// TestCORE2_SpecVectors: the SPEC §11.2 header pair is accepted by both sides, and the A.4
// base64 IBB payloads decode to a header we accept and to our closing tag.
func TestCORE2_SpecVectors(t *testing.T) {
	noLeaks(t)
	// Responder side reads the initiator's vector (with the text declaration, CORE-3).
	c := &scriptConn{r: bytes.NewReader(vector(t, "CORE-2_initiator-stream.xml"))}
	s, err := xmlstream.Respond(ctxT(t), c, juliet, romeo, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Next(ctxT(t)); err != io.EOF {
		t.Errorf("Next = %v, want io.EOF", err)
	}
	if err := s.Close(); err != nil {
		t.Error(err)
	}
	out := c.Output()
	for _, want := range []string{"from='juliet@capulet.lit/balcony'", "to='romeo@montague.lit/orchard'", "version='1.0'", "xml:lang='en'", "id='" + s.ID() + "'", "<stream:features/>"} {
		if !strings.Contains(out, want) {
			t.Errorf("responder header lacks %s: %s", want, out)
		}
	}
	if !strings.HasSuffix(out, "</stream:stream>") {
		t.Errorf("no closing tag: %s", out)
	}

	// Initiator side reads the responder's vector.
	c = &scriptConn{r: bytes.NewReader(vector(t, "CORE-2_responder-stream.xml"))}
	s, err = xmlstream.Initiate(ctxT(t), c, romeo, juliet, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.ID() != "hs91gh1836d8s717" {
		t.Errorf("id %q", s.ID())
	}
	if _, err := s.Next(ctxT(t)); err != io.EOF {
		t.Errorf("Next = %v", err)
	}
	s.Close()
	out = c.Output()
	if !strings.HasPrefix(out, "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' from='romeo@montague.lit/orchard' to='juliet@capulet.lit/balcony' version='1.0' xml:lang='en'>") {
		t.Errorf("initiator header: %s", out)
	}
	if strings.Contains(out[:strings.Index(out, ">")+1], " id=") {
		t.Error("initiator sent an id (CORE-2)")
	}

	// SPEC A.4: the base64 IBB payloads.
	hdr, err := base64.StdEncoding.DecodeString(string(vector(t, "XS-1_ibb-header.b64")))
	if err != nil {
		t.Fatal(err)
	}
	closing, err := base64.StdEncoding.DecodeString(string(vector(t, "XS-7_ibb-close.b64")))
	if err != nil {
		t.Fatal(err)
	}
	c = &scriptConn{r: io.MultiReader(bytes.NewReader(hdr), bytes.NewReader(closing))}
	s, err = xmlstream.Respond(ctxT(t), c, juliet, romeo, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Next(ctxT(t)); err != io.EOF {
		t.Errorf("Next = %v", err)
	}
	s.Close()
	if !strings.HasSuffix(c.Output(), string(closing)) {
		t.Errorf("our close differs from A.4: %s", c.Output())
	}
}

// TestXS13_HeaderMismatch: each side checks the other's header against the Jingle parties
// and the peer learns why (stream error).
func TestXS13_HeaderMismatch(t *testing.T) {
	tests := []struct {
		name                 string
		aLocal, aPeer        string // initiator's view
		bLocal, bPeer        string // responder's view
		wantA, wantB         string
		remoteAtA, remoteAtB bool
	}{
		{"responder-expects-other-initiator", romeo, juliet, juliet, "tybalt@capulet.lit/sword", xmlstream.InvalidFrom, xmlstream.InvalidFrom, true, false},
		// Both detect it: the responder is not the addressee, and its header is not from the
		// resource the initiator wanted.
		{"initiator-addresses-other-resource", romeo, "juliet@capulet.lit/garden", juliet, romeo, xmlstream.InvalidFrom, xmlstream.HostUnknown, false, false},
		{"initiator-expects-other-responder", romeo, juliet, juliet, romeo, "", "", false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			noLeaks(t)
			c1, c2 := net.Pipe()
			defer c1.Close()
			defer c2.Close()
			ctx := ctxT(t)
			var errB error
			done := make(chan struct{})
			go func() {
				defer close(done)
				var s *xmlstream.Stream
				s, errB = xmlstream.Respond(ctx, c2, tc.bLocal, tc.bPeer, nil)
				if s != nil {
					s.Close()
				}
			}()
			s, errA := xmlstream.Initiate(ctx, c1, tc.aLocal, tc.aPeer, nil)
			if s != nil {
				s.Close()
			}
			c1.Close()
			<-done
			if tc.wantA == "" {
				if errA != nil || errB != nil {
					t.Fatal(errA, errB)
				}
				return
			}
			var sa, sb *xmlstream.StreamError
			if !errors.As(errA, &sa) || sa.Condition != tc.wantA || sa.Remote != tc.remoteAtA {
				t.Errorf("initiator: %v", errA)
			}
			if !errors.As(errB, &sb) || sb.Condition != tc.wantB || sb.Remote != tc.remoteAtB {
				t.Errorf("responder: %v", errB)
			}
		})
	}
	// The initiator checks the responder's header too.
	noLeaks(t)
	resp := strings.Replace(string(vector(t, "CORE-2_responder-stream.xml")), "from='juliet@capulet.lit/balcony'", "from='nurse@capulet.lit/kitchen'", 1)
	c := &scriptConn{r: strings.NewReader(resp)}
	if _, err := xmlstream.Initiate(ctxT(t), c, romeo, juliet, nil); !errors.Is(err, &xmlstream.StreamError{Condition: xmlstream.InvalidFrom}) {
		t.Errorf("initiator accepted a foreign responder: %v", err)
	}
	if !strings.Contains(c.Output(), "<invalid-from xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>") {
		t.Errorf("no stream error sent: %s", c.Output())
	}
	for repl, cond := range map[string]string{
		"id='hs91gh1836d8s717' ": xmlstream.BadFormat,
		"version='1.0'":          xmlstream.UnsupportedVersion,
		"<stream:features/>":     xmlstream.BadFormat,
	} {
		with := strings.Replace(string(vector(t, "CORE-2_responder-stream.xml")), repl, map[string]string{"version='1.0'": "version='1.1'", "<stream:features/>": "<message/>"}[repl], 1)
		c := &scriptConn{r: strings.NewReader(with)}
		if _, err := xmlstream.Initiate(ctxT(t), c, romeo, juliet, nil); !errors.Is(err, &xmlstream.StreamError{Condition: cond}) {
			t.Errorf("%s removed: %v, want %s", repl, err, cond)
		}
	}
}

// TestCORE2_VersionNumeric: versions compare as numbers ("1.10" > "1.9"; "10.0" is ≥ 1.0).
func TestCORE2_VersionNumeric(t *testing.T) {
	noLeaks(t)
	for ver, ok := range map[string]bool{"1.0": true, "1.10": true, "2.0": true, "0.9": false, "1": false, "a.b": false, "01.0": true, "1.0.0": false} {
		hdr := fmt.Sprintf("<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' from='%s' to='%s' version='%s'></stream:stream>", romeo, juliet, ver)
		c := &scriptConn{r: strings.NewReader(hdr)}
		s, err := xmlstream.Respond(ctxT(t), c, juliet, romeo, nil)
		if (err == nil) != ok {
			t.Errorf("version %s: %v", ver, err)
		}
		if s != nil {
			s.Close()
			if !strings.Contains(c.Output(), "version='1.0'") {
				t.Errorf("answer to %s: %s", ver, c.Output())
			}
		}
	}
}

// TestPolicyLimits: oversize stanza, deep nesting, too many attributes → policy-violation.
func TestPolicyLimits(t *testing.T) {
	noLeaks(t)
	hdr := fmt.Sprintf("<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' from='%s' to='%s' version='1.0'>", romeo, juliet)
	cases := map[string]string{
		"oversize":       "<message><body>" + strings.Repeat("A", 5000) + "</body></message>",
		"oversize-attr":  "<message id='" + strings.Repeat("A", 5000) + "'/>",
		"whitespace":     strings.Repeat(" ", 5000),
		"deep":           strings.Repeat("<a>", 40) + strings.Repeat("</a>", 40),
		"deep-in-stanza": "<message>" + strings.Repeat("<a>", 40) + strings.Repeat("</a>", 40) + "</message>",
		"attrs":          "<message " + strings.Repeat("", 0) + attrs(70) + "/>",
	}
	for name, body := range cases {
		t.Run(name, func(t *testing.T) {
			c := &scriptConn{r: strings.NewReader(hdr + body)}
			s, err := xmlstream.Respond(ctxT(t), c, juliet, romeo, &xmlstream.Config{MaxStanzaSize: 4096, CloseTimeout: 100 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			_, err = s.Next(ctxT(t))
			s.Close()
			want := xmlstream.PolicyViolation
			if name == "deep" {
				want = xmlstream.UnsupportedStanzaType // <a/> is no stanza: rejected before its depth matters
			}
			if !errors.Is(err, &xmlstream.StreamError{Condition: want}) {
				t.Errorf("err = %v, want %s", err, want)
			}
		})
	}
	// Whitespace keepalives between stanzas are fine however many there are (CORE-11).
	body := strings.Repeat(" <message/>\n", 100) + "</stream:stream>"
	c := &scriptConn{r: strings.NewReader(hdr + body)}
	s, err := xmlstream.Respond(ctxT(t), c, juliet, romeo, &xmlstream.Config{MaxStanzaSize: 64})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		_, err := s.Next(ctxT(t))
		if err != nil {
			if err != io.EOF {
				t.Fatal(err)
			}
			break
		}
		n++
	}
	s.Close()
	if n != 100 {
		t.Errorf("%d stanzas, want 100", n)
	}
}

func attrs(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, " a%d='x'", i)
	}
	return b.String()
}

// TestCORE8_Close: the closing handshake in both directions, and a peer that never closes.
func TestCORE8_Close(t *testing.T) {
	noLeaks(t)
	a, b := pair(t, nil, nil)
	ctx := ctxT(t)
	if err := a.Send(ctx, []byte("<message><body>bye</body></message>")); err != nil {
		t.Fatal(err)
	}
	closed := make(chan error, 1)
	go func() { closed <- a.Close() }()
	st, err := b.Next(ctx)
	if err != nil || !bytes.Contains(st.Raw, []byte("bye")) {
		t.Fatalf("stanza before close lost: %v", err)
	}
	if _, err := b.Next(ctx); err != io.EOF {
		t.Fatalf("b.Next = %v, want io.EOF", err)
	}
	if err := <-closed; err != nil {
		t.Errorf("a.Close = %v", err)
	}
	if err := b.Close(); err != nil {
		t.Errorf("b.Close = %v", err)
	}
	if err := a.Send(ctx, []byte("<message/>")); !errors.Is(err, xmlstream.ErrClosed) {
		t.Errorf("Send after close: %v", err)
	}
	if _, err := a.Request(ctx, "", "get", []byte("<x xmlns='y'/>")); !errors.Is(err, xmlstream.ErrClosed) {
		t.Errorf("Request after close: %v", err)
	}

	// A peer that never sends </stream:stream>: Close gives up after CloseTimeout.
	c1, c2 := net.Pipe()
	defer c1.Close()
	defer c2.Close()
	go func() {
		// A silent peer: reads everything, answers the header, never closes.
		buf := make([]byte, 4096)
		_, _ = c2.Read(buf)
		_, _ = c2.Write([]byte("<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' from='" + juliet + "' to='" + romeo + "' id='x1' version='1.0'><stream:features/>"))
		for {
			if _, err := c2.Read(buf); err != nil {
				return
			}
		}
	}()
	s, err := xmlstream.Initiate(ctx, c1, romeo, juliet, &xmlstream.Config{CloseTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := s.Close(); !errors.Is(err, xmlstream.ErrCloseTimeout) {
		t.Errorf("Close = %v, want ErrCloseTimeout", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Close took %v", d)
	}
	c2.Close()
}

// TestCORE8_CloseWithUnreadStanzas: Close does not wait for the application to read what the
// peer sent before its </stream:stream>.
func TestCORE8_CloseWithUnreadStanzas(t *testing.T) {
	noLeaks(t)
	a, b := pair(t, nil, nil)
	ctx := ctxT(t)
	// More than b's receive queue (32) holds: a's sends block once it is full (backpressure).
	var count atomic.Int64
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		for range 200 {
			if a.Send(ctx, []byte("<message><body>unread</body></message>")) != nil {
				return
			}
			count.Add(1)
		}
	}()
	for count.Load() < 33 && ctx.Err() == nil { // 32 queued + 1 held by the blocked reader
		time.Sleep(time.Millisecond)
	}
	start := time.Now()
	if err := b.Close(); err != nil {
		t.Errorf("b.Close = %v", err)
	}
	if err := a.Close(); err != nil {
		t.Errorf("a.Close = %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("closing took %v", d)
	}
	<-sent
}

// TestRemoteStreamError: a received <stream:error/> ends the stream with a remote error.
func TestRemoteStreamError(t *testing.T) {
	noLeaks(t)
	hdr := fmt.Sprintf("<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' from='%s' to='%s' version='1.0'>", romeo, juliet)
	c := &scriptConn{r: strings.NewReader(hdr + "<message/><stream:error><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/><text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>too fast</text></stream:error></stream:stream>")}
	s, err := xmlstream.Respond(ctxT(t), c, juliet, romeo, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Next(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	_, err = s.Next(ctxT(t))
	var se *xmlstream.StreamError
	if !errors.As(err, &se) || !se.Remote || se.Condition != xmlstream.PolicyViolation || se.Text != "too fast" {
		t.Errorf("err = %#v", err)
	}
	s.Close()
	if strings.Contains(c.Output(), "<stream:error>") {
		t.Error("answered a stream error with a stream error")
	}
}

// TestIdleTimeout: no bytes for IdleTimeout → connection-timeout (needs read deadlines).
func TestIdleTimeout(t *testing.T) {
	noLeaks(t)
	a, b := pair(t, nil, &xmlstream.Config{IdleTimeout: 100 * time.Millisecond, CloseTimeout: 200 * time.Millisecond})
	_, err := b.Next(ctxT(t))
	if !errors.Is(err, &xmlstream.StreamError{Condition: xmlstream.ConnectionTimeout}) {
		t.Fatalf("err = %v", err)
	}
	// The initiator learns it from the stream error.
	_, err = a.Next(ctxT(t))
	if !errors.Is(err, &xmlstream.StreamError{Condition: xmlstream.ConnectionTimeout}) {
		t.Errorf("a: %v", err)
	}
}

// TestCORE11_KeepAlive: with KeepAlive set, spaces flow and keep an idle peer from timing out.
func TestCORE11_KeepAlive(t *testing.T) {
	noLeaks(t)
	// Margins are wide (keepalive every 10 ms, timeout after 500 ms without a byte) so that a
	// loaded machine does not make the test flaky; without keepalives the stream would die.
	a, b := pair(t, &xmlstream.Config{KeepAlive: 10 * time.Millisecond}, &xmlstream.Config{IdleTimeout: 500 * time.Millisecond})
	time.Sleep(time.Second)
	if err := b.Err(); err != nil {
		t.Fatalf("idle stream died despite keepalives: %v", err)
	}
	if err := a.Keepalive(ctxT(t)); err != nil {
		t.Fatal(err)
	}
}

// TestHeaderContext: ctx bounds the header exchange with a silent peer.
func TestHeaderContext(t *testing.T) {
	noLeaks(t)
	c1, c2 := net.Pipe()
	defer c1.Close()
	defer c2.Close()
	go io.Copy(io.Discard, c2)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := xmlstream.Initiate(ctx, c1, romeo, juliet, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Initiate = %v", err)
	}
	c2.Close()
}

// TestXS12_ForeignFromInStream: a stanza claiming another sender kills the stream, and the
// peer sees <invalid-from/>.
func TestXS12_ForeignFromInStream(t *testing.T) {
	noLeaks(t)
	a, b := pair(t, nil, nil)
	ctx := ctxT(t)
	if err := a.Send(ctx, []byte("<message from='tybalt@capulet.lit/sword'><body>x</body></message>")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Next(ctx); !errors.Is(err, &xmlstream.StreamError{Condition: xmlstream.InvalidFrom}) {
		t.Errorf("b: %v", err)
	}
	if _, err := a.Next(ctx); !errors.Is(err, &xmlstream.StreamError{Condition: xmlstream.InvalidFrom}) {
		t.Errorf("a: %v", err)
	}
}

// BenchmarkMessage measures one message from initiator to responder over net.Pipe.
func BenchmarkMessage(b *testing.B) {
	c1, c2 := net.Pipe()
	defer c1.Close()
	defer c2.Close()
	ctx := context.Background()
	ch := make(chan *xmlstream.Stream)
	go func() {
		s, _ := xmlstream.Respond(ctx, c2, juliet, romeo, nil)
		ch <- s
	}()
	a, _ := xmlstream.Initiate(ctx, c1, romeo, juliet, nil)
	r := <-ch
	defer r.Close()
	defer a.Close()
	msg := []byte("<message type='chat'><body>" + strings.Repeat("x", 100) + "</body></message>")
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	done := make(chan error)
	go func() {
		for range b.N {
			if _, err := r.Next(ctx); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for range b.N {
		if err := a.Send(ctx, msg); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}

// BenchmarkRequest measures one IQ round trip inside the stream over net.Pipe.
func BenchmarkRequest(b *testing.B) {
	c1, c2 := net.Pipe()
	defer c1.Close()
	defer c2.Close()
	ctx := context.Background()
	ch := make(chan *xmlstream.Stream)
	go func() {
		s, _ := xmlstream.Respond(ctx, c2, juliet, romeo, nil)
		ch <- s
	}()
	a, _ := xmlstream.Initiate(ctx, c1, romeo, juliet, nil)
	r := <-ch
	defer r.Close()
	defer a.Close()
	r.HandleIQ("urn:xmpp:ping", "ping", func(ctx context.Context, from, to, typ string, payload []byte) ([]byte, error) {
		return nil, nil
	})
	b.ReportAllocs()
	for range b.N {
		if _, err := a.Request(ctx, "", "get", []byte("<ping xmlns='urn:xmpp:ping'/>")); err != nil {
			b.Fatal(err)
		}
	}
}

// TestERR12_NoCrossDeadlock: both sides flood each other with requests while answering the
// other's over an unbuffered pipe, with one handler slot each; readers and handlers never wait
// for the network, so nothing deadlocks.
func TestERR12_NoCrossDeadlock(t *testing.T) {
	noLeaks(t)
	cfg := &xmlstream.Config{MaxHandlers: 1}
	a, b := pair(t, cfg, cfg)
	ctx := ctxT(t)
	echo := func(ctx context.Context, from, to, typ string, payload []byte) ([]byte, error) { return payload, nil }
	a.HandleIQ("urn:example", "e", echo)
	b.HandleIQ("urn:example", "e", echo)
	var wg sync.WaitGroup
	for g := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := a
			if g%2 == 1 {
				s = b
			}
			for i := range 50 {
				p := fmt.Sprintf("<e xmlns='urn:example' n='%d.%d'/>", g, i)
				if got, err := s.Request(ctx, "", "get", []byte(p)); err != nil || string(got) != p {
					t.Errorf("%s: %s %v", p, got, err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// TestLargeStanzas: stanzas up to the default 256 KiB limit pass, one byte over is refused by
// Send (and would be a policy-violation at the receiver, TestPolicyLimits).
func TestLargeStanzas(t *testing.T) {
	noLeaks(t)
	a, b := pair(t, nil, nil)
	ctx := ctxT(t)
	wrap := func(n int) []byte {
		head, tail := "<message><body>", "</body></message>"
		return []byte(head + strings.Repeat("x", n-len(head)-len(tail)) + tail)
	}
	for _, n := range []int{200 << 10, 256 << 10, 100, 256 << 10} {
		msg := wrap(n)
		go func() { _ = a.Send(ctx, msg) }()
		st, err := b.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(st.Raw) != n+len(" xmlns='jabber:client'") {
			t.Errorf("got %d bytes, sent %d", len(st.Raw), n)
		}
	}
	if err := a.Send(ctx, wrap(256<<10+1)); !errors.Is(err, xmlstream.ErrInvalidStanza) {
		t.Errorf("oversize Send = %v", err)
	}
}

// link is the server link's method set (BRIEF "The link to the XMPP server"); the stream has
// all of it, so packages written for the link run inside the stream.
type link interface {
	LocalJID() string
	Request(ctx context.Context, to, typ string, payload []byte) ([]byte, error)
	HandleIQ(space, local string, h func(ctx context.Context, from, to, typ string, payload []byte) ([]byte, error)) (remove func())
	SendMessage(ctx context.Context, to string, payload []byte) error
	HandleMessage(space, local string, h func(ctx context.Context, from, to string, payload []byte)) (remove func())
}

var _ link = (*xmlstream.Stream)(nil)

func TestHandleMessage(t *testing.T) {
	noLeaks(t)
	a, b := pair(t, nil, nil)
	ctx := ctxT(t)
	got := make(chan string, 1)
	remove := b.HandleMessage("urn:example", "note", func(ctx context.Context, from, to string, payload []byte) {
		got <- from + " " + to + " " + string(payload)
	})
	if err := a.SendMessage(ctx, "", []byte("<note xmlns='urn:example'>hi</note>")); err != nil {
		t.Fatal(err)
	}
	if g := <-got; g != romeo+" "+juliet+" <note xmlns='urn:example'>hi</note>" {
		t.Errorf("handler got %q", g)
	}
	// Without a handler (or with more than one child) the message goes to Next.
	remove()
	if err := a.SendMessage(ctx, juliet, []byte("<note xmlns='urn:example'>again</note>")); err != nil {
		t.Fatal(err)
	}
	st, err := b.Next(ctx)
	if err != nil || !bytes.Contains(st.Raw, []byte("again")) {
		t.Fatalf("%v %v", st, err)
	}
	if p, name := st.Payload(); name.Local != "note" || !bytes.Contains(p, []byte("again")) {
		t.Errorf("Payload = %s %v", p, name)
	}
	if err := a.SendMessage(ctx, "", []byte("<a/><b/>")); !errors.Is(err, xmlstream.ErrInvalidStanza) {
		t.Errorf("two elements: %v", err)
	}
}

// TestCORE8_CloseTimeoutBeatsIdleTimeout: a long idle timeout does not keep Close waiting on a
// peer that never closes; Close gives up after CloseTimeout.
func TestCORE8_CloseTimeoutBeatsIdleTimeout(t *testing.T) {
	noLeaks(t)
	c1, c2 := net.Pipe()
	defer c1.Close()
	defer c2.Close()
	go func() {
		buf := make([]byte, 4096)
		_, _ = c2.Read(buf)
		_, _ = c2.Write([]byte("<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' from='" + juliet + "' to='" + romeo + "' id='x1' version='1.0'><stream:features/>"))
		for {
			if _, err := c2.Read(buf); err != nil {
				return
			}
		}
	}()
	s, err := xmlstream.Initiate(ctxT(t), c1, romeo, juliet, &xmlstream.Config{IdleTimeout: time.Minute, CloseTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := s.Close(); !errors.Is(err, xmlstream.ErrCloseTimeout) {
		t.Errorf("Close = %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Close took %v", d)
	}
	c2.Close()
}
