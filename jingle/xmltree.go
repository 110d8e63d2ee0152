package jingle

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Bounds of the strict decoder. Every Jingle payload of the captured clients is below 4 KiB;
// these leave room for big descriptions (file-transfer with hashes) and many candidates.
const (
	maxPayload  = 128 << 10 // bytes of one <jingle/> element
	maxDepth    = 16        // nesting of elements, <jingle/> being 1
	maxElements = 2048      // elements in one payload
	maxAttrs    = 32        // attributes (namespace declarations included) per element
	maxAttrLen  = 4096      // bytes of one attribute value
	maxTextLen  = 32 << 10  // bytes of character data of one element
	maxContents = 16        // <content/> elements in one <jingle/>
	maxIDLen    = 256       // sid, content name, disposition
	maxJIDLen   = 3071      // RFC 7622
	maxReason   = 4096      // bytes of <reason><text/>
)

const nsXML = "http://www.w3.org/XML/1998/namespace"

// node is one element of a parsed payload, its namespaces resolved.
type node struct {
	name  xml.Name
	attrs []xml.Attr // resolved names; namespace declarations removed
	items []item     // children in document order
}

type item struct {
	el   *node  // element, or
	text string // character data
}

func (n *node) attr(local string) (string, bool) {
	for _, a := range n.attrs {
		if a.Name.Space == "" && a.Name.Local == local {
			return a.Value, true
		}
	}
	return "", false
}

// parseTree decodes b, which must be exactly one element (white space around it allowed), into
// a tree. It is strict and bounded: no comments, processing instructions (including an XML
// declaration) or DTDs, no undeclared prefixes, no duplicate attributes, limits above.
func parseTree(b []byte) (*node, error) {
	if len(b) > maxPayload {
		return nil, badRequest("payload too large")
	}
	d := xml.NewDecoder(bytes.NewReader(b))
	d.Strict = true
	type frame struct {
		n     *node
		raw   xml.Name
		ns    map[string]string // prefix ("" = default) → namespace declared on this element
		textN int
		text  []byte // character data not yet added to n.items
	}
	flush := func(f *frame) {
		if len(f.text) > 0 {
			f.n.items = append(f.n.items, item{text: string(f.text)})
			f.text = f.text[:0]
		}
	}
	var stack []frame
	var root *node
	elements := 0
	lookup := func(prefix string) (string, bool) {
		for i := len(stack) - 1; i >= 0; i-- {
			if v, ok := stack[i].ns[prefix]; ok {
				return v, true
			}
		}
		if prefix == "" {
			return "", true
		}
		return "", false
	}
	for {
		tok, err := d.RawToken()
		if err == io.EOF {
			if root == nil || len(stack) != 0 {
				return nil, badRequest("not one complete element")
			}
			return root, nil
		}
		if err != nil {
			return nil, badRequest("malformed XML: " + err.Error())
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if root != nil && len(stack) == 0 {
				return nil, badRequest("more than one element")
			}
			elements++
			if elements > maxElements {
				return nil, badRequest("too many elements")
			}
			if len(stack)+1 > maxDepth {
				return nil, badRequest("elements nested too deeply")
			}
			// maxAttrs attributes plus as many namespace declarations (and a default one):
			// what the canonical form of an accepted element needs at most.
			if len(t.Attr) > 2*maxAttrs+1 {
				return nil, badRequest("too many attributes")
			}
			var decl map[string]string
			for _, a := range t.Attr {
				if len(a.Value) > maxAttrLen {
					return nil, badRequest("attribute value too long")
				}
				switch {
				case a.Name.Space == "" && a.Name.Local == "xmlns":
					if decl == nil {
						decl = map[string]string{}
					}
					if _, dup := decl[""]; dup {
						return nil, badRequest("duplicate namespace declaration")
					}
					decl[""] = a.Value
				case a.Name.Space == "xmlns":
					if a.Value == "" || a.Name.Local == "xmlns" || (a.Name.Local == "xml") != (a.Value == nsXML) {
						return nil, badRequest("invalid namespace declaration")
					}
					if decl == nil {
						decl = map[string]string{}
					}
					if _, dup := decl[a.Name.Local]; dup {
						return nil, badRequest("duplicate namespace declaration")
					}
					decl[a.Name.Local] = a.Value
				}
			}
			stack = append(stack, frame{raw: t.Name, ns: decl})
			space, ok := lookup(t.Name.Space)
			if t.Name.Space == "xml" || t.Name.Space == "xmlns" {
				ok = false
			}
			if !ok || t.Name.Local == "" {
				return nil, badRequest("undeclared namespace prefix " + t.Name.Space)
			}
			n := &node{name: xml.Name{Space: space, Local: t.Name.Local}}
			if len(t.Attr)-len(decl) > maxAttrs {
				return nil, badRequest("too many attributes")
			}
			for _, a := range t.Attr {
				var name xml.Name
				switch {
				case a.Name.Space == "" && a.Name.Local == "xmlns", a.Name.Space == "xmlns":
					continue
				case a.Name.Space == "":
					name = xml.Name{Local: a.Name.Local}
				case a.Name.Space == "xml":
					name = xml.Name{Space: nsXML, Local: a.Name.Local}
				default:
					s, ok := lookup(a.Name.Space)
					if !ok || s == "" {
						return nil, badRequest("undeclared attribute prefix " + a.Name.Space)
					}
					name = xml.Name{Space: s, Local: a.Name.Local}
				}
				for _, b := range n.attrs {
					if b.Name == name {
						return nil, badRequest("duplicate attribute " + name.Local)
					}
				}
				n.attrs = append(n.attrs, xml.Attr{Name: name, Value: a.Value})
			}
			if len(stack) == 1 {
				root = n
			} else {
				pf := &stack[len(stack)-2]
				flush(pf)
				pf.n.items = append(pf.n.items, item{el: n})
			}
			stack[len(stack)-1].n = n
		case xml.EndElement:
			if len(stack) == 0 || stack[len(stack)-1].raw != t.Name {
				return nil, badRequest("mismatched end element")
			}
			flush(&stack[len(stack)-1])
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) == 0 {
				if len(bytes.TrimLeft(t, " \t\r\n")) != 0 {
					return nil, badRequest("text outside the element")
				}
				continue
			}
			f := &stack[len(stack)-1]
			f.textN += len(t)
			if f.textN > maxTextLen {
				return nil, badRequest("text too long")
			}
			if !utf8.Valid(t) {
				return nil, badRequest("invalid UTF-8")
			}
			f.text = append(f.text, t...)
		case xml.Comment, xml.ProcInst, xml.Directive:
			return nil, badRequest("comments, processing instructions and DTDs are not allowed")
		}
	}
}

// text returns the concatenated character data of n and whether n has child elements.
func (n *node) text() (string, bool) {
	var sb strings.Builder
	hasEl := false
	for _, it := range n.items {
		if it.el != nil {
			hasEl = true
		} else {
			sb.WriteString(it.text)
		}
	}
	return sb.String(), hasEl
}

// elements returns the child elements of n; non-white-space text between them is an error.
func (n *node) elements() ([]*node, error) {
	var out []*node
	for _, it := range n.items {
		if it.el != nil {
			out = append(out, it.el)
		} else if strings.Trim(it.text, " \t\r\n") != "" {
			return nil, badRequest("unexpected text in <" + n.name.Local + "/>")
		}
	}
	return out, nil
}

// canonical serialises n as a self-contained element: every element whose namespace differs
// from its parent's declares it as the default namespace; namespaced attributes other than xml:
// get generated prefixes.
func canonical(n *node) []byte {
	var b bytes.Buffer
	writeNode(&b, n, "\x00")
	return b.Bytes()
}

func writeNode(b *bytes.Buffer, n *node, parentNS string) {
	b.WriteByte('<')
	b.WriteString(n.name.Local)
	if n.name.Space != parentNS {
		b.WriteString(" xmlns='")
		escapeAttr(b, n.name.Space)
		b.WriteByte('\'')
	}
	var prefixes []string // namespaces of attributes, in order of first use: ns0, ns1, …
	for _, a := range n.attrs {
		b.WriteByte(' ')
		switch a.Name.Space {
		case "":
		case nsXML:
			b.WriteString("xml:")
		default:
			i := slices.Index(prefixes, a.Name.Space)
			if i < 0 {
				i = len(prefixes)
			}
			p := "ns" + strconv.Itoa(i)
			if i == len(prefixes) {
				prefixes = append(prefixes, a.Name.Space)
				b.WriteString("xmlns:" + p + "='")
				escapeAttr(b, a.Name.Space)
				b.WriteString("' ")
			}
			b.WriteString(p + ":")
		}
		b.WriteString(a.Name.Local)
		b.WriteString("='")
		escapeAttr(b, a.Value)
		b.WriteByte('\'')
	}
	if len(n.items) == 0 {
		b.WriteString("/>")
		return
	}
	b.WriteByte('>')
	for _, it := range n.items {
		if it.el != nil {
			writeNode(b, it.el, n.name.Space)
		} else {
			escapeText(b, it.text)
		}
	}
	b.WriteString("</")
	b.WriteString(n.name.Local)
	b.WriteByte('>')
}

func escapeAttr(b *bytes.Buffer, s string) {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '&':
			b.WriteString("&amp;")
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '\'':
			b.WriteString("&apos;")
		case '"':
			b.WriteString("&quot;")
		case '\t':
			b.WriteString("&#x9;")
		case '\n':
			b.WriteString("&#xA;")
		case '\r':
			b.WriteString("&#xD;")
		default:
			b.WriteByte(c)
		}
	}
}

func escapeText(b *bytes.Buffer, s string) {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '&':
			b.WriteString("&amp;")
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '\r':
			b.WriteString("&#xD;")
		default:
			b.WriteByte(c)
		}
	}
}

// checkXMLString reports whether s can be written as XML character data (valid UTF-8, only
// characters allowed by XML 1.0).
func checkXMLString(s string) error {
	if !utf8.ValidString(s) {
		return errors.New("jingle: string is not valid UTF-8")
	}
	for _, r := range s {
		if !(r == 0x9 || r == 0xA || r == 0xD || (r >= 0x20 && r <= 0xD7FF) ||
			(r >= 0xE000 && r <= 0xFFFD) || (r >= 0x10000 && r <= 0x10FFFF)) {
			return errors.New("jingle: string is not valid XML character data")
		}
	}
	return nil
}
