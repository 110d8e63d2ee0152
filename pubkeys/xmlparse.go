package pubkeys

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"strings"
)

// limits bound what parse accepts from a peer.
type limits struct {
	maxBytes int // whole input
	maxDepth int // element nesting, root = 1
	maxElems int // elements in total
	maxAttrs int // attributes per element
}

// node is a parsed element: a tiny DOM for strict, bounded decoding of peer payloads.
type node struct {
	name xml.Name
	attr []xml.Attr
	kids []*node
	text strings.Builder
}

// attrValue returns the value of the attribute space:local and whether it is present.
func (n *node) attrValue(space, local string) (string, bool) {
	for _, a := range n.attr {
		if a.Name.Space == space && a.Name.Local == local {
			return a.Value, true
		}
	}
	return "", false
}

// parse decodes exactly one element from b with encoding/xml in strict mode: no comments,
// processing instructions or DTDs (SPEC CORE-6), no entities beyond the predefined ones,
// nothing but whitespace after the root, and the limits in lim.
func parse(b []byte, lim limits) (*node, error) {
	if len(b) > lim.maxBytes {
		return nil, badRequest("payload larger than %d bytes", lim.maxBytes)
	}
	d := xml.NewDecoder(bytes.NewReader(b))
	d.Strict = true
	var (
		root  *node
		stack []*node
		elems int
	)
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			var se *xml.SyntaxError
			if errors.As(err, &se) {
				return nil, badRequest("malformed XML: %s", se.Msg)
			}
			return nil, badRequest("malformed XML")
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if root != nil && len(stack) == 0 {
				return nil, badRequest("more than one root element")
			}
			elems++
			if elems > lim.maxElems {
				return nil, badRequest("more than %d elements", lim.maxElems)
			}
			if len(stack) >= lim.maxDepth {
				return nil, badRequest("elements nested deeper than %d", lim.maxDepth)
			}
			if len(t.Attr) > lim.maxAttrs {
				return nil, badRequest("more than %d attributes on <%s/>", lim.maxAttrs, t.Name.Local)
			}
			n := &node{name: t.Name, attr: t.Attr}
			if len(stack) > 0 {
				p := stack[len(stack)-1]
				p.kids = append(p.kids, n)
			} else {
				root = n
			}
			stack = append(stack, n)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) == 0 {
				if len(bytes.TrimLeft(t, " \t\r\n")) != 0 {
					return nil, badRequest("text outside the root element")
				}
				continue
			}
			stack[len(stack)-1].text.Write(t)
		case xml.Comment:
			return nil, badRequest("XML comments are not allowed")
		case xml.ProcInst:
			return nil, badRequest("processing instructions are not allowed")
		case xml.Directive:
			return nil, badRequest("DTDs and directives are not allowed")
		}
	}
	if root == nil {
		return nil, badRequest("no element")
	}
	return root, nil
}

// escAttr writes s escaped for use inside a single-quoted attribute value.
func escAttr(b *bytes.Buffer, s string) {
	for _, r := range s {
		switch r {
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
			b.WriteRune(r)
		}
	}
}

// attr writes ` name='value'` unless value is empty.
func attr(b *bytes.Buffer, name, value string) {
	if value == "" {
		return
	}
	b.WriteByte(' ')
	b.WriteString(name)
	b.WriteString("='")
	escAttr(b, value)
	b.WriteByte('\'')
}

// escText writes s escaped as element character data.
func escText(b *bytes.Buffer, s string) {
	_ = xml.EscapeText(b, []byte(s))
}
