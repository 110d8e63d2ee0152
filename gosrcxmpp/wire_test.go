package gosrcxmpp

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/xtlsjingle/xtlsjingle/testvectors"
)

// parseStanza runs readStanza on the first element of doc.
func parseStanza(doc []byte) (*inStanza, error) {
	d := xml.NewDecoder(bytes.NewReader(doc))
	for {
		tok, err := d.Token()
		if err != nil {
			return nil, err
		}
		if se, ok := tok.(xml.StartElement); ok {
			return readStanza(d, se)
		}
	}
}

func TestEscape(t *testing.T) {
	var b bytes.Buffer
	escapeAttr(&b, "a&b<c>d\"e'f\tg\nh\ri")
	if got, want := b.String(), "a&amp;b&lt;c&gt;d&quot;e&apos;f&#x9;g&#xA;h&#xD;i"; got != want {
		t.Errorf("escapeAttr: %s, want %s", got, want)
	}
	b.Reset()
	escapeText(&b, "a&b<c>d\"e'\n\r")
	if got, want := b.String(), "a&amp;b&lt;c&gt;d\"e'\n&#xD;"; got != want {
		t.Errorf("escapeText: %q, want %q", got, want)
	}
	// Whatever the value, an attribute written with escapeAttr reads back unchanged.
	for _, v := range []string{"", "x", "<&>\"'", "tab\there", "\r\n", "ünï©ødé", "]]>"} {
		doc := `<a v="` + attrString(v) + `" w='` + attrString(v) + `'/>`
		var got struct {
			V string `xml:"v,attr"`
			W string `xml:"w,attr"`
		}
		if err := xml.Unmarshal([]byte(doc), &got); err != nil || got.V != v || got.W != v {
			t.Errorf("attribute %q read back as %q/%q (%v)", v, got.V, got.W, err)
		}
	}
}

// TestReadStanzaNamespaces (GOSRC.md §3.B3): captured payloads carry explicit namespaces
// whatever prefixes the sender used, and never the library's broken xmlns:_xmlns form.
func TestReadStanzaNamespaces(t *testing.T) {
	doc := `<iq xmlns="jabber:client" xmlns:j="urn:xmpp:jingle:1" type="set" id="i1" from="a@b/c" to="d@e/f">` +
		`<j:jingle action="session-initiate" sid="s&amp;1" xml:lang="en"><j:content name="c">` +
		`<transport xmlns="urn:xmpp:jingle:transports:ibb:1" block-size="4096"/>` +
		`<x:y xmlns:x="urn:x" xmlns:z="urn:z" z:attr="1&lt;2">text<!-- c --> more</x:y></j:content></j:jingle></iq>`
	s, err := parseStanza([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if s.kind != "iq" || s.typ != "set" || s.id != "i1" || s.from != "a@b/c" || s.to != "d@e/f" || s.invalid != nil {
		t.Fatalf("attributes: %+v", s)
	}
	if len(s.children) != 1 || s.children[0].name != (xml.Name{Space: "urn:xmpp:jingle:1", Local: "jingle"}) {
		t.Fatalf("children: %+v", s.children)
	}
	want := `<jingle xmlns="urn:xmpp:jingle:1" action="session-initiate" sid="s&amp;1" xml:lang="en"><content name="c">` +
		`<transport xmlns="urn:xmpp:jingle:transports:ibb:1" block-size="4096"></transport>` +
		`<y xmlns="urn:x" a0:attr="1&lt;2" xmlns:a0="urn:z">text more</y></content></jingle>`
	if got := string(s.children[0].raw); got != want {
		t.Errorf("payload\n got %s\nwant %s", got, want)
	}
}

// TestReadStanzaError (J-25, GOSRC.md §3.B5): a stanza error keeps its application condition
// and text; a payload named error in another namespace stays a payload (§3.B4).
func TestReadStanzaError(t *testing.T) {
	doc := `<iq type="error" id="e1" from="x@y/z"><jingle xmlns="urn:xmpp:jingle:1" sid="s"/>` +
		`<error type="cancel" code="404"><item-not-found xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/>` +
		`<unknown-session xmlns="urn:xmpp:jingle:errors:1"/><text xmlns="urn:ietf:params:xml:ns:xmpp-stanzas">gone &amp; away</text></error></iq>`
	d := xml.NewDecoder(strings.NewReader(`<stream xmlns="jabber:client">` + doc))
	d.Token()
	tok, _ := d.Token()
	s, err := readStanza(d, tok.(xml.StartElement))
	if err != nil {
		t.Fatal(err)
	}
	want := &StanzaError{Type: "cancel", Condition: "item-not-found", App: xml.Name{Space: "urn:xmpp:jingle:errors:1", Local: "unknown-session"}, Text: "gone & away"}
	if s.err == nil || *s.err != *want {
		t.Fatalf("error %+v, want %+v", s.err, want)
	}
	if len(s.children) != 1 || s.children[0].name.Local != "jingle" {
		t.Fatalf("children %+v", s.children)
	}

	d = xml.NewDecoder(strings.NewReader(`<stream xmlns="jabber:client"><iq type="set" id="x"><error xmlns="urn:example:app" code="x"/></iq>`))
	d.Token()
	tok, _ = d.Token()
	s, err = readStanza(d, tok.(xml.StartElement))
	if err != nil || s.err != nil || s.stanzaErrorPresent || len(s.children) != 1 || s.children[0].name.Space != "urn:example:app" {
		t.Fatalf("foreign <error/> payload: %+v %v", s, err)
	}
}

// TestReadStanzaLimits: too deep, too many children or too big stanzas are consumed in full
// and marked invalid; the decoder stays usable for the next stanza.
func TestReadStanzaLimits(t *testing.T) {
	cases := map[string]string{
		"depth":    `<iq type="set" id="d"><a xmlns="urn:a">` + strings.Repeat("<b>", maxDepth+1) + strings.Repeat("</b>", maxDepth+1) + `</a></iq>`,
		"children": `<message>` + strings.Repeat(`<a xmlns="urn:a"/>`, maxChildren+1) + `</message>`,
		"size":     `<message><a xmlns="urn:a">` + strings.Repeat("x", maxStanzaBytes+1) + `</a></message>`,
		"errors":   `<iq type="error" id="e"><error type="cancel"/><error type="cancel"/></iq>`,
	}
	for name, doc := range cases {
		d := xml.NewDecoder(strings.NewReader(`<stream xmlns="jabber:client">` + doc + `<iq type="get" id="next"/>`))
		d.Token()
		tok, _ := d.Token()
		s, err := readStanza(d, tok.(xml.StartElement))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if s.invalid == nil {
			t.Errorf("%s: not marked invalid", name)
		}
		tok, err = d.Token()
		if se, ok := tok.(xml.StartElement); err != nil || !ok || se.Attr[1].Value != "next" {
			t.Errorf("%s: next stanza not readable: %v %v", name, tok, err)
		}
	}
}

func TestDecodeStanzaError(t *testing.T) {
	cases := []struct {
		in   string
		want StanzaError
	}{
		{`<error type="modify"><bad-request xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/></error>`,
			StanzaError{Type: "modify", Condition: "bad-request"}},
		{`<error type="bogus" code="abc"><made-up xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/></error>`,
			StanzaError{Type: "cancel", Condition: "undefined-condition"}},
		{`<error/>`, StanzaError{Type: "cancel", Condition: "undefined-condition"}},
		{`<error type="cancel"><out-of-order xmlns="urn:xmpp:jingle:errors:1"/><unexpected-request xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/></error>`,
			StanzaError{Type: "cancel", Condition: "unexpected-request", App: xml.Name{Space: "urn:xmpp:jingle:errors:1", Local: "out-of-order"}}},
		{`<error type="wait"><resource-constraint xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/><text xmlns="urn:ietf:params:xml:ns:xmpp-stanzas">a</text><text xmlns="urn:ietf:params:xml:ns:xmpp-stanzas">b</text></error>`,
			StanzaError{Type: "wait", Condition: "resource-constraint", Text: "a"}},
		{`<error type="cancel"><conflict xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/><text xmlns="urn:ietf:params:xml:ns:xmpp-stanzas">` + strings.Repeat("é", 1000) + `</text></error>`,
			StanzaError{Type: "cancel", Condition: "conflict", Text: strings.Repeat("é", maxErrorText/2)}},
		{`<error type="cancel"><item-not-found xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/>`, // truncated
			StanzaError{Type: "cancel", Condition: "item-not-found"}},
	}
	for i, c := range cases {
		got := decodeStanzaError([]byte(c.in))
		if *got != c.want {
			t.Errorf("%d: got %+v\nwant %+v", i, *got, c.want)
		}
	}
}

type testAppErr struct{}

func (testAppErr) Error() string { return "app" }
func (testAppErr) StanzaError() (string, string, xml.Name, string) {
	return "modify", "bad-request", xml.Name{Space: "urn:xmpp:jingle:errors:1", Local: "unsupported-info"}, "t<&>"
}

// TestErrorReplyRoundTrip: handler errors map through the StanzaError behaviour, the reply
// always carries a non-zero code, and it decodes back to the same error.
func TestErrorReplyRoundTrip(t *testing.T) {
	for _, err := range []error{testAppErr{}, fmt.Errorf("wrapped: %w", testAppErr{}), errors.New("internal detail")} {
		e := errorFor(err)
		var b bytes.Buffer
		appendErrorXML(&b, e)
		if !bytes.Contains(b.Bytes(), []byte(`code="`)) || bytes.Contains(b.Bytes(), []byte(`code="0"`)) {
			t.Errorf("no legacy code in %s", b.Bytes())
		}
		if bytes.Contains(b.Bytes(), []byte("internal detail")) {
			t.Errorf("internal error text leaked: %s", b.Bytes())
		}
		if got := decodeStanzaError(b.Bytes()); *got != *e {
			t.Errorf("round trip of %v: %+v → %s → %+v", err, *e, b.Bytes(), *got)
		}
	}
	if e := errorFor(errors.New("x")); e.Condition != "internal-server-error" || e.Text != "" {
		t.Errorf("plain error mapped to %+v", e)
	}
}

func TestElementName(t *testing.T) {
	good := map[string]xml.Name{
		`<a xmlns="urn:a"/>`:                 {Space: "urn:a", Local: "a"},
		" <p:b xmlns:p='urn:b'><c/></p:b>\n": {Space: "urn:b", Local: "b"},
	}
	for in, want := range good {
		if got, err := elementName([]byte(in)); err != nil || got != want {
			t.Errorf("%q: %v %v", in, got, err)
		}
	}
	for _, in := range []string{"", "text", "<a/><b/>", "<a>", "<a/>x", "<!-- c --><a/>", "<?pi?><a/>", "<a></b>", "</iq><iq>"} {
		if _, err := elementName([]byte(in)); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}

// seedFuzz adds the vector files (one stanza each) and the captured stanzas (one per line).
func seedFuzz(f *testing.F) {
	files, _ := fs.Glob(testvectors.FS, "gosrcxmpp/*.xml")
	captured, _ := fs.Glob(testvectors.FS, "captured/*.xml")
	for _, name := range files {
		b, _ := fs.ReadFile(testvectors.FS, name)
		f.Add(b)
	}
	for _, name := range captured {
		b, _ := fs.ReadFile(testvectors.FS, name)
		for _, line := range bytes.Split(b, []byte("\n")) {
			if len(bytes.TrimSpace(line)) > 0 {
				f.Add(line)
			}
		}
	}
}

// FuzzReadStanza: the stanza reader never panics, and every payload it captures is one
// well-formed element that reads back to itself (the capture is a fixed point).
func FuzzReadStanza(f *testing.F) {
	seedFuzz(f)
	f.Add([]byte(`<iq type="error" id="1"><error type="cancel"><unknown-session xmlns="urn:xmpp:jingle:errors:1"/></error></iq>`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		s, err := parseStanza(doc)
		if err != nil || s.invalid != nil {
			return
		}
		for _, c := range s.children {
			name, err := elementName(c.raw)
			if err != nil || name != c.name {
				t.Fatalf("captured payload %q is not one element named %v: %v %v", c.raw, c.name, name, err)
			}
			again, err := parseStanza([]byte(`<iq xmlns="jabber:client">` + string(c.raw) + `</iq>`))
			if err != nil || len(again.children) != 1 || !bytes.Equal(again.children[0].raw, c.raw) {
				t.Fatalf("capture is not stable:\n%q\n%+v %v", c.raw, again, err)
			}
		}
	})
}

// FuzzDecodeStanzaError: the error decoder never panics, always yields a valid type and
// condition and bounded UTF-8 text, and its output survives appendErrorXML unchanged.
func FuzzDecodeStanzaError(f *testing.F) {
	f.Add([]byte(`<error type="cancel" code="404"><item-not-found xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/><unknown-session xmlns="urn:xmpp:jingle:errors:1"/><text xmlns="urn:ietf:params:xml:ns:xmpp-stanzas">x</text></error>`))
	f.Add([]byte(`<error type="wait"><resource-constraint xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/></error>`))
	f.Add([]byte(`<error code="abc" type="nonsense"/>`))
	seedFuzz(f)
	f.Fuzz(func(t *testing.T, doc []byte) {
		e := decodeStanzaError(doc)
		if !errorTypes[e.Type] {
			t.Fatalf("type %q", e.Type)
		}
		if _, ok := conditionCodes[e.Condition]; !ok {
			t.Fatalf("condition %q", e.Condition)
		}
		if len(e.Text) > maxErrorText || !utf8.ValidString(e.Text) {
			t.Fatalf("text %q", e.Text)
		}
		var b bytes.Buffer
		appendErrorXML(&b, e)
		if _, err := elementName(b.Bytes()); err != nil {
			t.Fatalf("appendErrorXML wrote %q: %v", b.Bytes(), err)
		}
		back := decodeStanzaError(b.Bytes())
		want := *e
		if !validName(want.App.Local) {
			want.App = xml.Name{}
		}
		// XML normalises some characters in text (CR, invalid runes); compare the rest.
		if back.Type != want.Type || back.Condition != want.Condition || back.App != want.App {
			t.Fatalf("round trip: %+v → %s → %+v", want, b.Bytes(), *back)
		}
	})
}

// FuzzElementName: the decoder-free path of elementName accepts only what encoding/xml
// accepts, with the same name (differential), and never panics.
func FuzzElementName(f *testing.F) {
	seedFuzz(f)
	for _, s := range []string{
		"<data xmlns='http://jabber.org/protocol/ibb' seq='3' sid='x1'>AAEC/+==</data>",
		"<jingle xmlns=\"urn:xmpp:jingle:1\" action='session-info' sid='a'/>",
		" <a x='1' y=\"2\" >text\n</a > ",
		"<a x='1'y='2'/>", "<a x='1' x='2'/>", "<a:b xmlns:a='u'/>", "<a>&amp;</a>", "<a></b>",
		"<a>]]></a>", "<a xmlns=''/>", "<a\txmlns='u'\n/>", "<_.-9/>", "<9a/>", "<a/><b/>",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fast, ok := fastElementName(b)
		if !ok {
			return
		}
		d := xml.NewDecoder(bytes.NewReader(b))
		var name xml.Name
		depth, roots := 0, 0
		for {
			tok, err := d.Token()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("fast path accepted %q, encoding/xml: %v", b, err)
			}
			switch tk := tok.(type) {
			case xml.StartElement:
				if depth == 0 {
					roots++
					name = tk.Name
				}
				depth++
			case xml.EndElement:
				depth--
			case xml.CharData:
				if depth == 0 && len(bytes.TrimSpace(tk)) > 0 {
					t.Fatalf("fast path accepted text outside the element: %q", b)
				}
			case xml.Comment, xml.ProcInst, xml.Directive:
				t.Fatalf("fast path accepted %T in %q", tk, b)
			}
		}
		if roots != 1 || depth != 0 || name != fast {
			t.Fatalf("%q: fast %v, encoding/xml %v (%d roots, depth %d)", b, fast, name, roots, depth)
		}
	})
}

func BenchmarkElementNameIBBData(b *testing.B) {
	p := []byte("<data xmlns='http://jabber.org/protocol/ibb' seq='3' sid='x1d68d6ebfa3'>" + strings.Repeat("QUJD", 1366) + "</data>")
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		if _, err := elementName(p); err != nil {
			b.Fatal(err)
		}
	}
}
