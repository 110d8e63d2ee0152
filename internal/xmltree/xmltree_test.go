package xmltree

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

var lim = Limits{MaxBytes: 256, MaxDepth: 3, MaxElems: 8, MaxAttrs: 2, MaxText: 64}

func TestParseTree(t *testing.T) {
	n, err := Parse([]byte(` <q xmlns='urn:t' a='1'><k>x&amp;y</k><k/></q> `), lim)
	if err != nil {
		t.Fatal(err)
	}
	if n.Name.Space != "urn:t" || n.Name.Local != "q" || len(n.Kids) != 2 || n.Kids[0].Text.String() != "x&y" {
		t.Fatalf("tree %+v", n)
	}
	if v, ok := n.AttrValue("", "a"); !ok || v != "1" {
		t.Fatalf("attr a = %q, %v", v, ok)
	}
}

// CORE-6 and the bounds: every refusal is an *Error.
func TestParseRefuses(t *testing.T) {
	for _, in := range []string{
		``, `text`, `<a/><b/>`, `<a>`, `<a/>tail`,
		`<!-- c --><a/>`, `<?pi x?><a/>`, `<!DOCTYPE a><a/>`, `<a>&ent;</a>`,
		`<a><b><c><d/></c></b></a>`,               // depth 4
		`<a><b/><b/><b/><b/><b/><b/><b/><b/></a>`, // 9 elements
		`<a x='1' y='2' z='3'/>`,
		`<a>` + strings.Repeat("x", 300) + `</a>`,
		"<a>\xff</a>",            // invalid UTF-8
		`<p:a/>`, `<a p:x='1'/>`, // undeclared prefixes
		`<a x='1' x='2'/>`,                       // duplicate attribute
		`<a>` + strings.Repeat("y", 65) + `</a>`, // over MaxText
	} {
		_, err := Parse([]byte(in), lim)
		var e *Error
		if !errors.As(err, &e) {
			t.Errorf("%q: err = %v, want *Error", in, err)
		}
	}
}

func TestEscape(t *testing.T) {
	var b bytes.Buffer
	Attr(&b, "n", "a'b\"<&>\t\n\r")
	Attr(&b, "empty", "")
	EscText(&b, "<&>")
	if got, want := b.String(), ` n='a&apos;b&quot;&lt;&amp;&gt;&#x9;&#xA;&#xD;'&lt;&amp;&gt;`; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}
