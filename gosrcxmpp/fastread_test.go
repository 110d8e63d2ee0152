package gosrcxmpp

import (
	"bufio"
	"bytes"
	"encoding/xml"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// slowStanza reads b with the decoder as the reader does after the stream header.
func slowStanza(t *testing.T, b []byte) (*inStanza, int64, error) {
	t.Helper()
	head := "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"
	cr := &countingReader{br: bufio.NewReader(strings.NewReader(head + string(b)))}
	d := xml.NewDecoder(cr)
	if _, err := d.Token(); err != nil {
		t.Fatal(err)
	}
	tok, err := d.Token()
	if err != nil {
		return nil, 0, err
	}
	start, ok := tok.(xml.StartElement)
	if !ok {
		return nil, 0, errLimit
	}
	s, err := readStanza(d, start)
	return s, d.InputOffset() - int64(len(head)), err
}

func fastSeeds() []string {
	return []string{
		"<iq type='set' id='a1' from='a@b/c' to='d@e/f'><data xmlns='http://jabber.org/protocol/ibb' seq='1' sid='x'>AAEC/+==</data></iq>",
		"<iq type='result' id='a1' from='a@b/c' to='d@e/f'/>",
		"<iq type=\"result\" id=\"a1\"></iq>",
		"<message from='a@b/c' to='d@e/f'><data xmlns='http://jabber.org/protocol/ibb' seq='0' sid='s'>QUJD\nREVG</data></message>",
		"<iq type='set' id='j'><jingle xmlns='urn:xmpp:jingle:1' action='session-info' sid='q'/></iq>",
		"<iq type='error' id='e'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
		"<iq type='get' id='p'><ping xmlns='jabber:client'/></iq>",
		"<iq id='x' xml:lang='en'><q xmlns='u'/></iq>",
		"<iq id='x'><q xmlns='u'>a&amp;b</q></iq>",
		"<iq id='x'><q xmlns='u'>a</q> </iq>",
		"<iq id='x'><q xmlns='u'>a</r></iq>",
		"<presence/>",
		"<iq id='x' id='y'/>",
		// Nested elements (index 13 on): a Jingle action with contents, a disco#info result.
		"<iq type='set' id='n' from='a@b/c' to='d@e/f'><jingle xmlns='urn:xmpp:jingle:1' action='session-initiate' sid='s1' initiator='a@b/c'><content creator='initiator' name='xs'><description xmlns='urn:xmpp:jingle:apps:xmlstream:0'/><transport xmlns='urn:xmpp:jingle:transports:ibb:1' block-size='4096' sid='t'/><security xmlns='urn:xmpp:jingle:security:xtls:0'><fingerprint algo='sha-256'>0a1b</fingerprint><method name='x509'/><method name='srp'/></security></content></jingle></iq>",
		"<iq type='result' id='d'><query xmlns='http://jabber.org/protocol/disco#info'>\n <identity category='client' type='console' name='x'/>\n <feature var='urn:xmpp:jingle:1'/>\n</query></iq>",
		"<iq type='result' id='d'><query xmlns='u'><a><b xmlns='v'><c/></b><d xmlns='u'>t</d></a></query></iq>",
		"<iq id='x'><q xmlns='u'><r xmlns=''/></q></iq>",
		"<iq id='x'><q xmlns='u'><r xmlns='jabber:client'/></q></iq>",
		"<iq id='x'><q xmlns='u'><r a:b='1'/></q></iq>",
		"<iq id='x'><q xmlns='u'><r>&lt;</r></q></iq>",
		"<iq id='x'><q xmlns='u'><r></q></r></iq>",
		"<iq id='x' xml:lang='en' xml:lang='de'/>",
		"<iq id='x' xml:space='preserve'/>",
		"<iq id='x'><q xmlns='u' xml:lang='en'/></iq>",
		"<iq id='x' xml:langx='en'/>",
	}
}

// FuzzFastStanza: whatever the reader's fast path accepts, the decoder path reads to the same
// stanza, consuming the same bytes (differential); the fast path never panics.
func FuzzFastStanza(f *testing.F) {
	for _, s := range fastSeeds() {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fast, n, ok, _ := parseFastStanza(b)
		if !ok {
			return
		}
		slow, used, err := slowStanza(t, b[:n])
		if err != nil {
			t.Fatalf("fast path accepted %q, the decoder failed: %v", b[:n], err)
		}
		if used != int64(n) {
			t.Fatalf("%q: fast path consumed %d bytes, the decoder %d", b, n, used)
		}
		if d := cmp.Diff(slow, fast, cmp.AllowUnexported(inStanza{}, child{}, StanzaError{})); d != "" {
			t.Fatalf("%q: fast and decoder paths differ (-slow +fast):\n%s", b[:n], d)
		}
	})
}

// TestFastStanzaSeeds: the plain shapes take the fast path; the others do not.
func TestFastStanzaSeeds(t *testing.T) {
	wantFast := map[int]bool{0: true, 1: true, 2: true, 3: true, 4: true, 7: true, 13: true, 14: true, 15: true}
	for i, s := range fastSeeds() {
		_, _, ok, _ := parseFastStanza([]byte(s))
		if ok != wantFast[i] {
			t.Errorf("%q: fast path %v, want %v", s, ok, wantFast[i])
		}
	}
}

// TestReaderFastPathMixed: a stream mixing plain stanzas, stanzas that need the decoder,
// white space between stanzas (the decoder then holds a pushed-back '<') and stanzas split
// across reads yields every stanza once, in order, with the decoder's content.
func TestReaderFastPathMixed(t *testing.T) {
	var in bytes.Buffer
	in.WriteString("<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>")
	var want []string
	for i := range 300 {
		var s string
		switch i % 6 {
		case 0, 1:
			s = "<iq type='set' id='i" + strings.Repeat("7", i%13) + "'><data xmlns='http://jabber.org/protocol/ibb' seq='" + strings.Repeat("1", i%4+1) + "' sid='x'>" + strings.Repeat("QUJD", i*7%900) + "</data></iq>"
		case 2:
			s = "<message from='a@b/c'><body>h&amp;i</body><x xmlns='u'/></message>"
		case 3:
			s = " \n<iq type='result' id='r'/>"
		case 4:
			s = "<iq type='get' id='g' xml:lang='en'><q xmlns='urn:x'>t</q></iq>\t"
		case 5:
			s = fastSeeds()[13+i%3]
		}
		in.WriteString(s)
		want = append(want, strings.TrimSpace(s))
	}
	var got []*inStanza
	tr := &transport{done: make(chan struct{})}
	tr.rd = &reader{t: tr, onStanza: func(s *inStanza) { got = append(got, s) }}
	// a reader that returns small, odd-sized pieces so stanzas straddle buffer fills
	cr := &countingReader{br: bufio.NewReaderSize(&chunky{r: bytes.NewReader(in.Bytes())}, 4096)}
	tr.rd.in, tr.rd.counter = xml.NewDecoder(cr), cr
	for {
		tok, err := tr.rd.in.Token()
		if err != nil {
			t.Fatal(err)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "stream" {
			break
		}
	}
	tr.rd.capture.Store(true)
	_, err := tr.rd.Token() // reads to EOF
	if err == nil {
		t.Fatal("Token returned without error at the end of input")
	}
	if len(got) != len(want) {
		t.Fatalf("got %d stanzas, want %d", len(got), len(want))
	}
	if tr.rd.skipped == 0 {
		t.Fatal("the fast path never took a stanza")
	}
	t.Logf("fast path took %d of %d bytes", tr.rd.skipped, in.Len())
	for i, w := range want {
		slow, _, err := slowStanza(t, []byte(w))
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(slow, got[i], cmp.AllowUnexported(inStanza{}, child{}, StanzaError{})); d != "" {
			t.Fatalf("stanza %d differs (-decoder +reader):\n%s", i, d)
		}
	}
}

type chunky struct {
	r *bytes.Reader
	i int
}

func (c *chunky) Read(p []byte) (int, error) {
	c.i++
	n := 1 + (c.i*7919)%1500
	if n < len(p) {
		p = p[:n]
	}
	return c.r.Read(p)
}
