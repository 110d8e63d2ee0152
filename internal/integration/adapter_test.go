package integration

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/xtlsjingle/xtlsjingle/gosrcxmpp"
	"github.com/xtlsjingle/xtlsjingle/internal/prosodytest"
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
	if string(res) != wantRes {
		t.Errorf("result payload\n got %s\nwant %s", res, wantRes)
	}
	mu.Lock()
	wantReq := `<echo xmlns="` + nsTest + `" a0:attr="v" xmlns:a0="urn:q"><inner>text &lt; &amp;</inner><child xmlns="urn:c"></child></echo>`
	if string(gotPayload) != wantReq {
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

// sameXML compares two XML documents by their namespace-resolved token streams.
func sameXML(t testing.TB, a, b []byte) bool {
	t.Helper()
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
	x, y := norm(a), norm(b)
	if fmt.Sprint(x) != fmt.Sprint(y) {
		t.Logf("xml differs:\n%v\n%v", x, y)
		return false
	}
	return true
}

// TestAdapterServiceUnavailable: an IQ nobody handles is answered with service-unavailable,
// and a request to the server (XEP-0199 ping to the domain) is answered by the server.
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
	for _, to := range []string{"", srv.Domain} {
		res, err := a.Request(ctx, to, "get", []byte(`<ping xmlns="urn:xmpp:ping"/>`))
		if err != nil || res != nil {
			t.Fatalf("ping to %q: %q, %v", to, res, err)
		}
	}
}
