package integration

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/xml"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xtlsjingle/xtlsjingle/gosrcxmpp"
	"github.com/xtlsjingle/xtlsjingle/internal/prosodytest"
	"github.com/xtlsjingle/xtlsjingle/testvectors"
)

const nsTest = "urn:xtlsjingle:test:0"

// echo installs a handler on c that answers <echo/> with the request's payload.
func echo(c *gosrcxmpp.Client) {
	c.HandleIQ(nsTest, "echo", func(ctx context.Context, from, to, typ string, payload []byte) ([]byte, error) {
		return payload, nil
	})
}

// TestAdapterIQRoundTrip: an IQ set from A to B's full JID reaches B's handler with exact
// payload bytes (namespaces explicit), B's reply reaches A; and the round-trip time of 300
// sequential requests is recorded (no timed assertion).
func TestAdapterIQRoundTrip(t *testing.T) {
	srv := prosodytest.Shared(t)
	a := dialAccount(t, srv, "alpha", nil)
	b := dialAccount(t, srv, "beta", nil)
	var gotFrom, gotTo, gotTyp string
	var gotPayload []byte
	var mu sync.Mutex
	b.HandleIQ(nsTest, "echo", func(ctx context.Context, from, to, typ string, payload []byte) ([]byte, error) {
		mu.Lock()
		gotFrom, gotTo, gotTyp, gotPayload = from, to, typ, payload
		mu.Unlock()
		return []byte(`<echoed xmlns="` + nsTest + `" n="1"><x xmlns="urn:other" a="&lt;&amp;&quot;">t&amp;</x></echoed>`), nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req := `<p:echo xmlns:p="` + nsTest + `" xmlns:q="urn:q" q:attr="v"><p:inner>text &lt; &amp;</p:inner><child xmlns="urn:c"/></p:echo>`
	res, err := a.Request(ctx, b.LocalJID(), "set", []byte(req))
	if err != nil {
		t.Fatalf("request: %v", err)
	}
	wantRes := `<echoed xmlns="` + nsTest + `" n="1"><x xmlns="urn:other" a="&lt;&amp;&quot;">t&amp;</x></echoed>`
	// Prosody re-serialises stanzas (attribute order may change): compare namespace-resolved.
	if !sameXML(t, res, []byte(wantRes)) || !bytes.HasPrefix(res, []byte(`<echoed xmlns="`+nsTest+`"`)) {
		t.Errorf("result payload\n got %s\nwant %s", res, wantRes)
	}
	mu.Lock()
	wantReq := `<echo xmlns="` + nsTest + `" a0:attr="v" xmlns:a0="urn:q"><inner>text &lt; &amp;</inner><child xmlns="urn:c"></child></echo>`
	if !sameXML(t, gotPayload, []byte(wantReq)) || !bytes.HasPrefix(gotPayload, []byte(`<echo xmlns="`+nsTest+`"`)) {
		t.Errorf("handler payload\n got %s\nwant %s", gotPayload, wantReq)
	}
	if gotFrom != a.LocalJID() || gotTo != b.LocalJID() || gotTyp != "set" {
		t.Errorf("handler saw from=%q to=%q typ=%q, want %q %q set", gotFrom, gotTo, gotTyp, a.LocalJID(), b.LocalJID())
	}
	mu.Unlock()
	// The captured payload must be namespace-equivalent to what was sent.
	if !sameXML(t, []byte(req), gotPayload) {
		t.Errorf("captured payload is not equivalent to the sent one")
	}

	echo(b)
	const n = 300
	rtts := make([]time.Duration, 0, n)
	for i := 0; i < n; i++ {
		p := fmt.Sprintf(`<echo xmlns="%s" seq="%d"/>`, nsTest, i)
		start := time.Now()
		res, err := a.Request(ctx, b.LocalJID(), "get", []byte(p))
		rtts = append(rtts, time.Since(start))
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if want := fmt.Sprintf(`<echo xmlns="%s" seq="%d"></echo>`, nsTest, i); string(res) != want {
			t.Fatalf("request %d: got %s want %s", i, res, want)
		}
	}
	sort.Slice(rtts, func(i, j int) bool { return rtts[i] < rtts[j] })
	t.Logf("IQ round trip through Prosody, %d sequential requests: p50 %v, p90 %v, p99 %v, max %v",
		n, rtts[n/2], rtts[n*9/10], rtts[n*99/100], rtts[n-1])
}

// sameXML compares two XML documents by their namespace-resolved token streams (attribute
// order ignored).
func sameXML(t testing.TB, a, b []byte) bool {
	t.Helper()
	x, y := canon(string(a)), canon(string(b))
	if x != y {
		t.Logf("xml differs:\n%v\n%v", x, y)
		return false
	}
	return true
}

// canon returns a namespace-resolved, attribute-order independent form of an XML document.
func canon(doc string) string {
	norm := func(x []byte) []string {
		d := xml.NewDecoder(bytes.NewReader(x))
		var out []string
		for {
			tok, err := d.Token()
			if err != nil {
				return out
			}
			switch tt := tok.(type) {
			case xml.StartElement:
				s := "<{" + tt.Name.Space + "}" + tt.Name.Local
				var attrs []string
				for _, at := range tt.Attr {
					if at.Name.Space == "xmlns" || at.Name.Local == "xmlns" {
						continue
					}
					attrs = append(attrs, "{"+at.Name.Space+"}"+at.Name.Local+"="+at.Value)
				}
				sort.Strings(attrs)
				out = append(out, s+fmt.Sprint(attrs))
			case xml.EndElement:
				out = append(out, "</>")
			case xml.CharData:
				out = append(out, "T"+string(tt))
			}
		}
	}
	return fmt.Sprint(norm([]byte(doc)))
}

// TestAdapterServiceUnavailable: an IQ nobody handles is answered with service-unavailable,
// and requests the server answers itself (XEP-0199 ping without to, to the domain, to our own
// bare JID) are matched to their answers although the answer's from differs from the to.
func TestAdapterServiceUnavailable(t *testing.T) {
	srv := prosodytest.Shared(t)
	a := dialAccount(t, srv, "", nil)
	b := dialAccount(t, srv, "", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := a.Request(ctx, b.LocalJID(), "get", []byte(`<nobody xmlns="urn:nobody"/>`))
	var se interface {
		StanzaError() (typ, condition string, app xml.Name, text string)
	}
	if !errors.As(err, &se) {
		t.Fatalf("want a stanza error, got %v", err)
	}
	if typ, cond, _, _ := se.StanzaError(); cond != "service-unavailable" || typ != "cancel" {
		t.Fatalf("got %s/%s, want cancel/service-unavailable", typ, cond)
	}
	own, _, _ := strings.Cut(a.LocalJID(), "/")
	for _, to := range []string{"", srv.Domain, own} {
		res, err := a.Request(ctx, to, "get", []byte(`<ping xmlns="urn:xmpp:ping"/>`))
		if err != nil || res != nil {
			t.Fatalf("ping to %q: %q, %v", to, res, err)
		}
	}
}

// TestAdapterConcurrentRequests: 16 goroutines × 100 requests on one client, each answered
// with its own payload; nothing may be lost or mixed up.
func TestAdapterConcurrentRequests(t *testing.T) {
	srv := prosodytest.Shared(t)
	a := dialAccount(t, srv, "", nil)
	b := dialAccount(t, srv, "", nil)
	echo(b)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const workers, each = 16, 100
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	start := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				p := fmt.Sprintf(`<echo xmlns="%s" w="%d" i="%d"/>`, nsTest, w, i)
				res, err := a.Request(ctx, b.LocalJID(), "set", []byte(p))
				if err != nil {
					errs <- fmt.Errorf("worker %d request %d: %w", w, i, err)
					continue
				}
				if want := fmt.Sprintf(`<echo xmlns="%s" w="%d" i="%d"></echo>`, nsTest, w, i); !sameXML(t, res, []byte(want)) {
					errs <- fmt.Errorf("worker %d request %d: got %s", w, i, res)
				}
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	close(errs)
	lost := 0
	for err := range errs {
		lost++
		if lost <= 5 {
			t.Error(err)
		}
	}
	t.Logf("%d concurrent requests (%d goroutines): %d failed, %v total, %.0f requests/s",
		workers*each, workers, lost, el.Round(time.Millisecond), float64(workers*each)/el.Seconds())
}

// TestAdapterUnansweredRequestTimesOut: a request to a peer that never answers returns at its
// deadline; a late answer to a request that gave up is dropped; no goroutine is left behind.
func TestAdapterUnansweredRequestTimesOut(t *testing.T) {
	srv := prosodytest.Shared(t)
	a := dialAccount(t, srv, "", nil)
	silent := dialRaw(t, srv) // reads everything, answers nothing
	b := dialAccount(t, srv, "", nil)
	release := make(chan struct{})
	b.HandleIQ(nsTest, "slow", func(ctx context.Context, from, to, typ string, payload []byte) ([]byte, error) {
		<-release
		return []byte(`<late xmlns="` + nsTest + `"/>`), nil
	})
	echo(b)
	before := runtime.NumGoroutine()

	for i := 0; i < 20; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		start := time.Now()
		_, err := a.Request(ctx, silent.jid, "get", []byte(`<echo xmlns="`+nsTest+`"/>`))
		el := time.Since(start)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("request to silent peer: %v, want deadline exceeded", err)
		}
		if el > 2*time.Second {
			t.Fatalf("request returned after %v, long past its 200ms deadline", el)
		}
	}
	// Late answers: the handler answers after the requester gave up.
	for i := 0; i < 20; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		_, err := a.Request(ctx, b.LocalJID(), "get", []byte(`<slow xmlns="`+nsTest+`"/>`))
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("slow request: %v, want deadline exceeded", err)
		}
	}
	close(release)
	// The late answers arrive now; the client must drop them and keep working.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := a.Request(ctx, b.LocalJID(), "get", []byte(`<echo xmlns="`+nsTest+`"/>`)); err != nil {
		t.Fatalf("request after late answers: %v", err)
	}
	checkGoroutines(t, before, 2)
}

// jingleError is an error with a Jingle application condition, as the jingle package has.
type jingleError struct{ cond string }

func (e *jingleError) Error() string { return "jingle: " + e.cond }
func (e *jingleError) StanzaError() (typ, condition string, app xml.Name, text string) {
	return "cancel", "item-not-found", xml.Name{Space: "urn:xmpp:jingle:errors:1", Local: e.cond}, "no such session"
}

// TestAdapterJingleAppErrorRoundTrip (J-25): a handler's error with the application condition
// unknown-session reaches the requester with type, condition, app condition and text.
func TestAdapterJingleAppErrorRoundTrip(t *testing.T) {
	srv := prosodytest.Shared(t)
	a := dialAccount(t, srv, "", nil)
	b := dialAccount(t, srv, "", nil)
	b.HandleIQ("urn:xmpp:jingle:1", "jingle", func(ctx context.Context, from, to, typ string, payload []byte) ([]byte, error) {
		return nil, fmt.Errorf("wrapped: %w", &jingleError{cond: "unknown-session"})
	})
	b.HandleIQ(nsTest, "plain-error", func(ctx context.Context, from, to, typ string, payload []byte) ([]byte, error) {
		return nil, errors.New("secret internal detail")
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := a.Request(ctx, b.LocalJID(), "set", []byte(`<jingle xmlns="urn:xmpp:jingle:1" action="session-info" sid="nope"/>`))
	var se interface {
		StanzaError() (typ, condition string, app xml.Name, text string)
	}
	if !errors.As(err, &se) {
		t.Fatalf("want stanza error, got %v", err)
	}
	typ, cond, app, text := se.StanzaError()
	if typ != "cancel" || cond != "item-not-found" || app != (xml.Name{Space: "urn:xmpp:jingle:errors:1", Local: "unknown-session"}) || text != "no such session" {
		t.Fatalf("got %q %q %v %q", typ, cond, app, text)
	}
	_, err = a.Request(ctx, b.LocalJID(), "get", []byte(`<plain-error xmlns="`+nsTest+`"/>`))
	if !errors.As(err, &se) {
		t.Fatalf("want stanza error, got %v", err)
	}
	typ, cond, app, text = se.StanzaError()
	if cond != "internal-server-error" || app.Local != "" || text != "" {
		t.Fatalf("plain error mapped to %q %q %v %q, want internal-server-error without text", typ, cond, app, text)
	}
}

// TestAdapterHandlerPanicContained: a panicking handler yields internal-server-error and the
// client keeps serving.
func TestAdapterHandlerPanicContained(t *testing.T) {
	srv := prosodytest.Shared(t)
	a := dialAccount(t, srv, "", nil)
	b := dialAccount(t, srv, "", nil)
	b.HandleIQ(nsTest, "boom", func(ctx context.Context, from, to, typ string, payload []byte) ([]byte, error) {
		panic("handler bug")
	})
	gotMsg := make(chan struct{}, 1)
	b.HandleMessage(nsTest, "boom", func(ctx context.Context, from, to string, payload []byte) {
		gotMsg <- struct{}{}
		panic("message handler bug")
	})
	echo(b)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := 0; i < 5; i++ {
		_, err := a.Request(ctx, b.LocalJID(), "get", []byte(`<boom xmlns="`+nsTest+`"/>`))
		var se *gosrcxmpp.StanzaError
		if !errors.As(err, &se) || se.Condition != "internal-server-error" {
			t.Fatalf("panicking handler: %v, want internal-server-error", err)
		}
		if err := a.SendMessage(ctx, b.LocalJID(), []byte(`<boom xmlns="`+nsTest+`"/>`)); err != nil {
			t.Fatal(err)
		}
		select {
		case <-gotMsg:
		case <-ctx.Done():
			t.Fatal("message handler not called")
		}
	}
	if _, err := a.Request(ctx, b.LocalJID(), "get", []byte(`<echo xmlns="`+nsTest+`"/>`)); err != nil {
		t.Fatalf("after panics: %v", err)
	}
}

// TestAdapterMessages: SendMessage reaches the peer's HandleMessage with the exact payload;
// messages with children nobody handles are dropped without harm.
func TestAdapterMessages(t *testing.T) {
	srv := prosodytest.Shared(t)
	a := dialAccount(t, srv, "", nil)
	b := dialAccount(t, srv, "", nil)
	const n = 200
	got := make(chan string, n)
	b.HandleMessage("http://jabber.org/protocol/ibb", "data", func(ctx context.Context, from, to string, payload []byte) {
		if from != a.LocalJID() || to != b.LocalJID() {
			t.Errorf("message from %q to %q, want %q %q", from, to, a.LocalJID(), b.LocalJID())
		}
		got <- string(payload)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := a.SendMessage(ctx, b.LocalJID(), []byte(`<unhandled xmlns="urn:nobody"/>`)); err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for i := 0; i < n; i++ {
		p := fmt.Sprintf(`<data xmlns="http://jabber.org/protocol/ibb" seq="%d" sid="s1">QUJD</data>`, i)
		want[canon(p)] = true
		if err := a.SendMessage(ctx, b.LocalJID(), []byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < n; i++ {
		select {
		case p := <-got:
			if !want[canon(p)] {
				t.Fatalf("unexpected or duplicate payload %s", p)
			}
			delete(want, canon(p))
		case <-ctx.Done():
			t.Fatalf("%d of %d messages arrived", i, n)
		}
	}
}

// eventRecorder collects a client's connection events.
type eventRecorder struct {
	mu     sync.Mutex
	events []gosrcxmpp.Event
	ch     chan gosrcxmpp.Event
}

func newEventRecorder() *eventRecorder { return &eventRecorder{ch: make(chan gosrcxmpp.Event, 64)} }

func (r *eventRecorder) install(cfg *gosrcxmpp.Config) {
	prev := cfg.OnEvent
	cfg.OnEvent = func(e gosrcxmpp.Event) {
		if prev != nil {
			prev(e)
		}
		r.mu.Lock()
		r.events = append(r.events, e)
		r.mu.Unlock()
		select {
		case r.ch <- e:
		default:
		}
	}
}

func (r *eventRecorder) count(k gosrcxmpp.EventKind) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, e := range r.events {
		if e.Kind == k {
			n++
		}
	}
	return n
}

// waitFor returns the next event of kind k, or fails after d.
func (r *eventRecorder) waitFor(t testing.TB, k gosrcxmpp.EventKind, d time.Duration) gosrcxmpp.Event {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case e := <-r.ch:
			if e.Kind == k {
				return e
			}
		case <-timer.C:
			t.Fatalf("no %s event within %v", k, d)
		}
	}
}

// TestAdapterHostileStanzas (GOSRC.md §3.B1, B3, B4, A3): every stanza of
// testvectors/gosrcxmpp, sent raw by a third account, leaves the victim connected (no
// Disconnected event, same JID) and answering; a prefixed payload reaches the handler with
// explicit namespaces.
func TestAdapterHostileStanzas(t *testing.T) {
	srv := prosodytest.Shared(t)
	rec := newEventRecorder()
	victim := dialAccount(t, srv, "v", rec.install)
	a := dialAccount(t, srv, "", nil)
	attacker := dialRaw(t, srv)
	payloads := make(chan []byte, 16)
	victim.HandleIQ(nsTest, "echo", func(ctx context.Context, from, to, typ string, payload []byte) ([]byte, error) {
		if from == attacker.jid {
			payloads <- payload
		}
		return payload, nil
	})
	victimJID := victim.LocalJID()
	files, err := fs.Glob(testvectors.FS, "gosrcxmpp/*.xml")
	if err != nil || len(files) < 10 {
		t.Fatalf("vectors: %v %v", files, err)
	}
	deep := `<iq type="set" id="deep" to="victim@localhost/v"><echo xmlns="` + nsTest + `">` +
		strings.Repeat("<x>", 100) + strings.Repeat("</x>", 100) + `</echo></iq>`
	vectors := map[string]string{"generated: 100 levels of nesting": deep}
	for _, f := range files {
		b, err := fs.ReadFile(testvectors.FS, f)
		if err != nil {
			t.Fatal(err)
		}
		vectors[f] = string(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for name, v := range vectors {
		attacker.send(t, strings.ReplaceAll(v, "victim@localhost/v", victimJID))
		p := fmt.Sprintf(`<echo xmlns="%s" after="%s"/>`, nsTest, strings.ReplaceAll(path.Base(name), ":", ""))
		if _, err := a.Request(ctx, victimJID, "get", []byte(p)); err != nil {
			t.Fatalf("after %s: victim does not answer: %v", name, err)
		}
		if strings.Contains(name, "GOSRC-B3") {
			select {
			case got := <-payloads:
				want := `<echo xmlns="` + nsTest + `" a0:a="1" xmlns:a0="urn:example:q"><inner></inner></echo>`
				if string(got) != want {
					t.Errorf("prefixed payload reached the handler as\n%s\nwant\n%s", got, want)
				}
			case <-ctx.Done():
				t.Fatal("prefixed payload did not reach the handler")
			}
		}
	}
	if n := rec.count(gosrcxmpp.Disconnected); n != 0 || victim.LocalJID() != victimJID {
		t.Fatalf("victim was disconnected %d times (JID %q → %q)", n, victimJID, victim.LocalJID())
	}
}

// checkTLSBeforeAuth asserts what a connection's client sent in clear: the STARTTLS request
// followed directly by a TLS handshake record, and never <auth or the PLAIN mechanism.
func checkTLSBeforeAuth(t testing.TB, i int, sent []byte) {
	t.Helper()
	st := bytes.Index(sent, []byte("<starttls"))
	if st < 0 {
		t.Fatalf("connection %d: no STARTTLS in %q", i, sent)
	}
	end := bytes.Index(sent[st:], []byte("/>"))
	if end < 0 {
		t.Fatalf("connection %d: STARTTLS element not closed", i)
	}
	end += st + 2
	if bytes.Contains(sent[:end], []byte("<auth")) {
		t.Fatalf("connection %d: <auth before STARTTLS", i)
	}
	rest := sent[end:]
	if len(rest) < 3 || rest[0] != 0x16 || rest[1] != 0x03 {
		t.Fatalf("connection %d: no TLS handshake record right after STARTTLS: % x", i, rest[:min(len(rest), 8)])
	}
	if bytes.Contains(sent, []byte("<auth")) || bytes.Contains(sent, []byte("mechanism=")) {
		t.Fatalf("connection %d: SASL visible in clear", i)
	}
}

// TestAdapterReconnectAfterDrop: cutting the TCP connection makes the client build a new
// session, which negotiates TLS before any authentication, and answers again. The time from
// the cut to the Reconnected event and to the first answered request is logged.
func TestAdapterReconnectAfterDrop(t *testing.T) {
	srv := prosodytest.Shared(t)
	proxy := newCutProxy(t, srv.Addr)
	rec := newEventRecorder()
	victim := dialAccount(t, srv, "v", func(c *gosrcxmpp.Config) {
		c.Address = proxy.addr()
		rec.install(c)
	})
	echo(victim)
	a := dialAccount(t, srv, "", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := a.Request(ctx, victim.LocalJID(), "get", []byte(`<echo xmlns="`+nsTest+`"/>`)); err != nil {
		t.Fatal(err)
	}
	const rounds = 3
	for r := 0; r < rounds; r++ {
		start := time.Now()
		proxy.cut()
		rec.waitFor(t, gosrcxmpp.Disconnected, 10*time.Second)
		e := rec.waitFor(t, gosrcxmpp.Reconnected, 20*time.Second)
		toEvent := time.Since(start)
		var answered time.Duration
		for {
			rctx, rcancel := context.WithTimeout(ctx, 2*time.Second)
			_, err := a.Request(rctx, victim.LocalJID(), "get", []byte(`<echo xmlns="`+nsTest+`"/>`))
			rcancel()
			if err == nil {
				answered = time.Since(start)
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("round %d: victim never answered again: %v", r, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Logf("round %d: reconnected as %s after %v (%d attempts), answering after %v", r, e.JID, toEvent, e.Attempts, answered)
	}
	conns := proxy.connections()
	if len(conns) != rounds+1 {
		t.Fatalf("%d connections through the proxy, want %d", len(conns), rounds+1)
	}
	for i, c := range conns {
		checkTLSBeforeAuth(t, i, c.clientBytes())
	}
}

// TestAdapterPingDetectsDeadPath: when the network path silently drops everything, the
// XEP-0199 keep-alive ping times out and the client reconnects.
func TestAdapterPingDetectsDeadPath(t *testing.T) {
	srv := prosodytest.Shared(t)
	proxy := newCutProxy(t, srv.Addr)
	rec := newEventRecorder()
	victim := dialAccount(t, srv, "v", func(c *gosrcxmpp.Config) {
		c.Address = proxy.addr()
		c.PingInterval = 200 * time.Millisecond
		c.PingTimeout = time.Second
		rec.install(c)
	})
	echo(victim)
	start := time.Now()
	proxy.freeze()
	e := rec.waitFor(t, gosrcxmpp.Disconnected, 10*time.Second)
	if e.Err == nil || !strings.Contains(e.Err.Error(), "ping") {
		t.Errorf("disconnect reason %v, want the keep-alive ping", e.Err)
	}
	rec.waitFor(t, gosrcxmpp.Reconnected, 20*time.Second)
	t.Logf("dead path detected and replaced after %v", time.Since(start))
	a := dialAccount(t, srv, "", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := a.Request(ctx, victim.LocalJID(), "get", []byte(`<echo xmlns="`+nsTest+`"/>`)); err != nil {
		t.Fatalf("after reconnect: %v", err)
	}
	for i, c := range proxy.connections() {
		checkTLSBeforeAuth(t, i, c.clientBytes())
	}
}

// TestAdapterPresenceResentAfterReconnect: SetPresence's children (an XEP-0115 <c/>) go out at
// once and again with every new session; another resource of the same account sees both.
func TestAdapterPresenceResentAfterReconnect(t *testing.T) {
	srv := prosodytest.Shared(t)
	jid, password := srv.Account(t)
	watcher := dialRawAs(t, srv, jid, password, "watcher")
	watcher.send(t, "<presence/>") // available: receives the broadcasts of the other resources
	proxy := newCutProxy(t, srv.Addr)
	rec := newEventRecorder()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := gosrcxmpp.Dial(ctx, gosrcxmpp.Config{
		Address: proxy.addr(), JID: jid + "/caps", Password: password,
		TLS: &tls.Config{RootCAs: srv.RootCAs},
		OnEvent: func(e gosrcxmpp.Event) {
			if e.Kind == gosrcxmpp.Reconnected || e.Kind == gosrcxmpp.Disconnected {
				rec.ch <- e
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const marker = "ver-marker-7Qx"
	caps := `<c xmlns="http://jabber.org/protocol/caps" hash="sha-1" node="https://xtlsjingle.example" ver="` + marker + `"/>`
	if err := c.SetPresence(ctx, []byte(caps)); err != nil {
		t.Fatal(err)
	}
	waitCount := func(n int) {
		t.Helper()
		for strings.Count(watcher.received(), marker) < n {
			if ctx.Err() != nil {
				t.Fatalf("watcher saw the caps presence %d times, want %d:\n%s", strings.Count(watcher.received(), marker), n, watcher.received())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitCount(1)
	proxy.cut()
	rec.waitFor(t, gosrcxmpp.Reconnected, 20*time.Second)
	waitCount(2)
}

// TestAdapterCloseLeavesNoGoroutines: after Close, no goroutine of the adapter or of the
// XMPP library it wraps (receive loop, keep-alive) is left.
func TestAdapterCloseLeavesNoGoroutines(t *testing.T) {
	srv := prosodytest.Shared(t)
	before := runtime.NumGoroutine()
	a := dialAccount(t, srv, "", nil)
	b := dialAccount(t, srv, "", nil)
	echo(b)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := 0; i < 10; i++ {
		if _, err := a.Request(ctx, b.LocalJID(), "get", []byte(`<echo xmlns="`+nsTest+`"/>`)); err != nil {
			t.Fatal(err)
		}
	}
	a.Close()
	b.Close()
	if _, err := a.Request(ctx, b.LocalJID(), "get", []byte(`<echo xmlns="`+nsTest+`"/>`)); !errors.Is(err, gosrcxmpp.ErrClosed) {
		t.Fatalf("request after Close: %v, want ErrClosed", err)
	}
	checkGoroutines(t, before, 0)
}

// BenchmarkAdapterRequest measures one IQ round trip between two accounts through Prosody.
func BenchmarkAdapterRequest(b *testing.B) {
	srv := prosodytest.Shared(b)
	a := dialAccount(b, srv, "", nil)
	peer := dialAccount(b, srv, "", nil)
	echo(peer)
	ctx := context.Background()
	p := []byte(`<echo xmlns="` + nsTest + `"/>`)
	for b.Loop() {
		if _, err := a.Request(ctx, peer.LocalJID(), "get", p); err != nil {
			b.Fatal(err)
		}
	}
}
