package socks5

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/xtlsjingle/xtlsjingle/testvectors"
)

func readVector(t testing.TB, name string) []byte {
	t.Helper()
	b, err := fs.ReadFile(testvectors.FS, "socks5/"+name)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSpace(b)
}

func vectorNames(t testing.TB, pattern string) []string {
	t.Helper()
	names, err := fs.Glob(testvectors.FS, "socks5/"+pattern)
	if err != nil {
		t.Fatal(err)
	}
	if len(names) == 0 {
		t.Fatalf("no vectors match %s", pattern)
	}
	for i, n := range names {
		names[i] = strings.TrimPrefix(n, "socks5/")
	}
	return names
}

// TestS5B4_DstAddrVectors checks DST.ADDR against SPEC Appendix A.2 (S5B-4, JS5B-3, JS5B-6, JS5B-19).
func TestS5B4_DstAddrVectors(t *testing.T) {
	var vecs []struct{ SID, Requester, Target, DstAddr string }
	if err := json.Unmarshal(readVector(t, "S5B-4_dstaddr.json"), &vecs); err != nil {
		t.Fatal(err)
	}
	if len(vecs) != 3 {
		t.Fatalf("got %d vectors, want 3", len(vecs))
	}
	for _, v := range vecs {
		if got := DstAddr(v.SID, v.Requester, v.Target); got != v.DstAddr {
			t.Errorf("DstAddr(%q,%q,%q) = %s, want %s", v.SID, v.Requester, v.Target, got, v.DstAddr)
		}
	}
}

// TestS5B13_ConnectBytes checks the greeting and CONNECT request bytes of the client.
func TestS5B13_ConnectBytes(t *testing.T) {
	greeting, _ := hex.DecodeString(string(readVector(t, "S5B-13_greeting.hex")))
	request, _ := hex.DecodeString(string(readVector(t, "S5B-13_connect-request.hex")))
	reply, _ := hex.DecodeString(string(readVector(t, "S5B-13_connect-reply.hex")))
	dst := DstAddr("vj3hs98y", "romeo@montague.lit/orchard", "juliet@capulet.lit/balcony")

	// A scripted streamhost on the other end of a pipe.
	var got bytes.Buffer
	conn := &scriptConn{in: bytes.NewReader(append([]byte{5, 0}, reply...)), out: &got}
	if err := Connect(t.Context(), conn, dst); err != nil {
		t.Fatal(err)
	}
	want := append(append([]byte{}, greeting...), request...)
	if !bytes.Equal(got.Bytes(), want) {
		t.Errorf("client wrote\n% x\nwant\n% x", got.Bytes(), want)
	}
}

func TestVectorsRoundTrip(t *testing.T) {
	for _, name := range vectorNames(t, "*.xml") {
		if strings.Contains(name, "_invalid-") {
			continue
		}
		t.Run(name, func(t *testing.T) {
			b := readVector(t, name)
			if bytes.Contains(b, []byte("<transport")) {
				tr, err := ParseTransport(b)
				if err != nil {
					t.Fatal(err)
				}
				again, err := ParseTransport(tr.Marshal())
				if err != nil {
					t.Fatalf("re-parse of %s: %v", tr.Marshal(), err)
				}
				if d := cmp.Diff(tr, again); d != "" {
					t.Errorf("round trip (-first +second):\n%s", d)
				}
				return
			}
			q, err := ParseQuery(b)
			if err != nil {
				t.Fatal(err)
			}
			again, err := ParseQuery(q.Marshal())
			if err != nil {
				t.Fatalf("re-parse of %s: %v", q.Marshal(), err)
			}
			if d := cmp.Diff(q, again); d != "" {
				t.Errorf("round trip (-first +second):\n%s", d)
			}
		})
	}
}

func TestVectorsInvalid(t *testing.T) {
	for _, name := range vectorNames(t, "*_invalid-*.xml") {
		t.Run(name, func(t *testing.T) {
			b := readVector(t, name)
			var err error
			if bytes.Contains(b, []byte("<transport")) {
				_, err = ParseTransport(b)
			} else {
				_, err = ParseQuery(b)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("err = %v, want *Error", err)
			}
			if _, cond, _, _ := e.StanzaError(); cond != "bad-request" {
				t.Errorf("condition %q, want bad-request", cond)
			}
		})
	}
}

// TestJS5B3_ParsedValues checks the decoded fields of XEP-0260 Example 1.
func TestJS5B3_ParsedValues(t *testing.T) {
	tr, err := ParseTransport(readVector(t, "JS5B-3_initiator-transport.xml"))
	if err != nil {
		t.Fatal(err)
	}
	want := &Transport{
		SID: "vj3hs98y", DstAddr: "972b7bf47291ca609517f67f86b5081086052dad", Mode: "tcp",
		Candidates: []Candidate{
			{CID: "hft54dqy", Host: "192.168.4.1", JID: "romeo@montague.lit/orchard", Port: 5086, Priority: 8257636, Type: Direct},
			{CID: "hutr46fe", Host: "24.24.24.1", JID: "romeo@montague.lit/orchard", Port: 5087, Priority: 8258636, Type: Direct},
			{CID: "xmdh4b7i", Host: "192.0.2.8", JID: "streamer.shakespeare.lit", Port: 7625, Priority: 7878787, Type: Proxy},
		},
	}
	if d := cmp.Diff(want, tr); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
	q, err := ParseQuery(readVector(t, "S5B-8_activate.xml"))
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(&Query{SID: "vj3hs98y", Activate: "romeo@montague.lit/orchard"}, q); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
}

// TestCapturedTransports parses every S5B <transport/> that Gajim and Libervia sent.
func TestCapturedTransports(t *testing.T) {
	re := regexp.MustCompile(`<transport[^>]*xmlns='urn:xmpp:jingle:transports:s5b:1'.*?</transport>`)
	n := 0
	for _, file := range []string{"captured/libervia-jingle-s5b.xml", "captured/trace-gajim153-xtls-s5b.xml"} {
		b, err := fs.ReadFile(testvectors.FS, file)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			for _, m := range re.FindAll(sc.Bytes(), -1) {
				n++
				tr, err := ParseTransport(m)
				if err != nil {
					t.Errorf("%s: %v\n%s", file, err, m)
					continue
				}
				again, err := ParseTransport(tr.Marshal())
				if err != nil || !cmp.Equal(tr, again) {
					t.Errorf("%s: round trip failed: %v", file, err)
				}
			}
		}
	}
	if n < 6 {
		t.Errorf("found %d captured transports, want ≥ 6", n)
	}
}

func TestParseStrictness(t *testing.T) {
	bad := map[string]string{
		"comment":       `<transport xmlns='urn:xmpp:jingle:transports:s5b:1' sid='s'><!-- x --></transport>`,
		"pi":            `<?xml version='1.0'?><transport xmlns='urn:xmpp:jingle:transports:s5b:1' sid='s'/>`,
		"doctype":       `<!DOCTYPE x><transport xmlns='urn:xmpp:jingle:transports:s5b:1' sid='s'/>`,
		"two roots":     `<transport xmlns='urn:xmpp:jingle:transports:s5b:1' sid='s'/><x/>`,
		"wrong ns":      `<transport xmlns='urn:xmpp:jingle:transports:s5b:0' sid='s'/>`,
		"unknown attr":  `<transport xmlns='urn:xmpp:jingle:transports:s5b:1' sid='s' foo='1'/>`,
		"dup cid":       `<transport xmlns='urn:xmpp:jingle:transports:s5b:1' sid='s'><candidate cid='a' host='h' jid='j' priority='1'/><candidate cid='a' host='h2' jid='j' priority='1'/></transport>`,
		"port 0":        `<transport xmlns='urn:xmpp:jingle:transports:s5b:1' sid='s'><candidate cid='a' host='h' jid='j' port='0' priority='1'/></transport>`,
		"port 65536":    `<transport xmlns='urn:xmpp:jingle:transports:s5b:1' sid='s'><candidate cid='a' host='h' jid='j' port='65536' priority='1'/></transport>`,
		"prio +1":       `<transport xmlns='urn:xmpp:jingle:transports:s5b:1' sid='s'><candidate cid='a' host='h' jid='j' priority='+1'/></transport>`,
		"prio big":      `<transport xmlns='urn:xmpp:jingle:transports:s5b:1' sid='s'><candidate cid='a' host='h' jid='j' priority='4294967296'/></transport>`,
		"bad type":      `<transport xmlns='urn:xmpp:jingle:transports:s5b:1' sid='s'><candidate cid='a' host='h' jid='j' priority='1' type='relay'/></transport>`,
		"text":          `<transport xmlns='urn:xmpp:jingle:transports:s5b:1' sid='s'>hello</transport>`,
		"deep":          `<transport xmlns='urn:xmpp:jingle:transports:s5b:1' sid='s'><a><b><c><d/></c></b></a></transport>`,
		"dstaddr short": `<transport xmlns='urn:xmpp:jingle:transports:s5b:1' sid='s' dstaddr='abc'/>`,
		"mode bogus":    `<transport xmlns='urn:xmpp:jingle:transports:s5b:1' sid='s' mode='sctp'/>`,
		"host space":    `<transport xmlns='urn:xmpp:jingle:transports:s5b:1' sid='s'><candidate cid='a' host='a b' jid='j' priority='1'/></transport>`,
		"foreign child": `<transport xmlns='urn:xmpp:jingle:transports:s5b:1' sid='s'><candidate xmlns='urn:x' cid='a' host='h' jid='j' priority='1'/></transport>`,
		"used no cid":   `<transport xmlns='urn:xmpp:jingle:transports:s5b:1' sid='s'><candidate-used/></transport>`,
		"cands + error": `<transport xmlns='urn:xmpp:jingle:transports:s5b:1' sid='s'><candidate cid='a' host='h' jid='j' priority='1'/><candidate-error/></transport>`,
	}
	for name, x := range bad {
		if _, err := ParseTransport([]byte(x)); err == nil {
			t.Errorf("%s: accepted %s", name, x)
		}
	}
	many := `<transport xmlns='urn:xmpp:jingle:transports:s5b:1' sid='s'>` +
		strings.Repeat(`<candidate-error/>`, maxChildren+1) + `</transport>`
	if _, err := ParseTransport([]byte(many)); err == nil {
		t.Error("accepted more than maxChildren children")
	}
	huge := []byte(`<transport xmlns='urn:xmpp:jingle:transports:s5b:1' sid='s'>` + strings.Repeat(" ", maxElementSize) + `</transport>`)
	if _, err := ParseTransport(huge); err == nil {
		t.Error("accepted an element larger than the limit")
	}
	if _, err := ParseTransport([]byte(`<transport xmlns='urn:xmpp:jingle:transports:s5b:1' sid='s' mode='udp'/>`)); err == nil {
		t.Error("accepted udp mode")
	} else if e := (*Error)(nil); !errors.As(err, &e) || e.Condition != "feature-not-implemented" {
		t.Errorf("udp mode: %v, want feature-not-implemented", err)
	}
	// Prefixed namespaces and xml:lang are fine.
	ok := `<s:transport xmlns:s='urn:xmpp:jingle:transports:s5b:1' xml:lang='en' sid='s'><s:candidate-error/></s:transport>`
	if tr, err := ParseTransport([]byte(ok)); err != nil || !tr.CandidateError {
		t.Errorf("prefixed transport: %v %+v", err, tr)
	}
}

// TestJS5B7_Priority checks the XEP-0260 priority formula and type preferences.
func TestJS5B7_Priority(t *testing.T) {
	cases := []struct {
		ty   CandidateType
		pref uint16
		want uint32
	}{
		{Direct, 0, 8257536}, // Gajim's direct candidate
		{Direct, 10000, 8267536},
		{Assisted, 0, 7864320},
		{Tunnel, 0, 7208960},
		{Proxy, 0, 655360}, // Libervia's proxy candidate
		{Direct, 65535, 126<<16 + 65535},
	}
	for _, c := range cases {
		if got := Priority(c.ty, c.pref); got != c.want {
			t.Errorf("Priority(%s, %d) = %d, want %d", c.ty, c.pref, got, c.want)
		}
	}
	if Priority(Proxy, 65535) >= Priority(Tunnel, 0) || Priority(Tunnel, 65535) >= Priority(Assisted, 0) ||
		Priority(Assisted, 65535) >= Priority(Direct, 0) {
		t.Error("type preference does not dominate local preference")
	}
}

// scriptConn is a net.Conn whose reads come from in and writes go to out.
type scriptConn struct {
	nopConn
	in  *bytes.Reader
	out *bytes.Buffer
}

func (c *scriptConn) Read(b []byte) (int, error)  { return c.in.Read(b) }
func (c *scriptConn) Write(b []byte) (int, error) { return c.out.Write(b) }

// TestParseIndentedXML: white space between child elements (pretty-printed XML, as some
// clients and servers send it) parses like the compact form. It once panicked: the parent's
// text builder was copied when a child's was appended (the fuzz input <A>0<A/>00).
func TestParseIndentedXML(t *testing.T) {
	tr, err := ParseTransport([]byte("<transport xmlns='urn:xmpp:jingle:transports:s5b:1' sid='vj3hs98y'>\n" +
		"  <candidate cid='hft54dqy' host='192.168.4.1' jid='romeo@montague.example/dr4hcr0st3lup4c' port='5086' priority='8257636' type='direct'/>\n" +
		"  <candidate cid='hutr46fe' host='24.24.24.1' jid='romeo@montague.example/dr4hcr0st3lup4c' port='5087' priority='8258636' type='direct'/>\n" +
		"</transport>\n"))
	if err != nil {
		t.Fatalf("indented transport: %v", err)
	}
	if len(tr.Candidates) != 2 || tr.Candidates[1].CID != "hutr46fe" {
		t.Fatalf("indented transport: %+v", tr)
	}
	q, err := ParseQuery([]byte("<query xmlns='http://jabber.org/protocol/bytestreams' sid='vxf9n471bn46'>\n" +
		"  <activate>\n    juliet@capulet.lit/balcony\n  </activate>\n</query>"))
	if err != nil {
		t.Fatalf("indented query: %v", err)
	}
	if q.Activate != "juliet@capulet.lit/balcony" {
		t.Fatalf("activate %q", q.Activate)
	}
	// Text in the parent on both sides of a child, beyond the first growth of the stack.
	if _, err := parse([]byte("<a>0<b>1<c/>2</b>3</a>")); err != nil {
		t.Fatalf("mixed text: %v", err)
	}
	var e *Error
	if _, err := ParseTransport([]byte("<A>0<A/>00")); !errors.As(err, &e) || e.Condition != "bad-request" {
		t.Fatalf("unclosed element: %v, want bad-request", err)
	}
}
