// Package xmltree decodes one XML element from a peer into a small tree, strictly and within
// limits, and escapes text for the hand-written encoders of the payload packages (disco,
// pubkeys). It imports only the standard library.
package xmltree

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// Limits bound what Parse accepts from a peer.
type Limits struct {
	MaxBytes int // whole input
	MaxDepth int // element nesting, root = 1
	MaxElems int // elements in total
	MaxAttrs int // attributes per element
	MaxText  int // character data per element; 0: bounded by MaxBytes only
}

// Node is a parsed element: a tiny DOM for strict, bounded decoding of peer payloads.
type Node struct {
	Name xml.Name
	Attr []xml.Attr
	Kids []*Node
	Text strings.Builder
}

// AttrValue returns the value of the attribute space:local and whether it is present.
func (n *Node) AttrValue(space, local string) (string, bool) {
	for _, a := range n.Attr {
		if a.Name.Space == space && a.Name.Local == local {
			return a.Value, true
		}
	}
	return "", false
}

// Error says why Parse refused its input; callers map it to their bad-request error.
type Error struct{ Msg string }

func (e *Error) Error() string { return e.Msg }

func refuse(format string, args ...any) *Error { return &Error{Msg: fmt.Sprintf(format, args...)} }

// Parse decodes exactly one element from b with encoding/xml in strict mode: valid UTF-8, no
// comments, processing instructions or DTDs (SPEC CORE-6), no entities beyond the predefined
// ones, no undeclared namespace prefixes or duplicate attributes, nothing but whitespace
// around the root, and the limits in lim.
func Parse(b []byte, lim Limits) (*Node, error) {
	if len(b) > lim.MaxBytes {
		return nil, refuse("payload larger than %d bytes", lim.MaxBytes)
	}
	if !utf8.Valid(b) {
		return nil, refuse("invalid UTF-8")
	}
	d := xml.NewDecoder(bytes.NewReader(b))
	d.Strict = true
	var (
		root  *Node
		stack []*Node
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
				return nil, refuse("malformed XML: %s", se.Msg)
			}
			return nil, refuse("malformed XML")
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if root != nil && len(stack) == 0 {
				return nil, refuse("more than one root element")
			}
			elems++
			if elems > lim.MaxElems {
				return nil, refuse("more than %d elements", lim.MaxElems)
			}
			if len(stack) >= lim.MaxDepth {
				return nil, refuse("elements nested deeper than %d", lim.MaxDepth)
			}
			if len(t.Attr) > lim.MaxAttrs {
				return nil, refuse("more than %d attributes on <%s/>", lim.MaxAttrs, t.Name.Local)
			}
			if !resolved(t.Name) {
				return nil, refuse("undeclared namespace prefix on <%s/>", t.Name.Local)
			}
			for i, a := range t.Attr {
				if a.Name.Space != "xmlns" && a.Name.Space != "xml" && a.Name.Space != xmlNS && !resolved(a.Name) {
					return nil, refuse("undeclared namespace prefix on attribute %s", a.Name.Local)
				}
				for _, o := range t.Attr[:i] {
					if o.Name == a.Name {
						return nil, refuse("duplicate attribute %s on <%s/>", a.Name.Local, t.Name.Local)
					}
				}
			}
			n := &Node{Name: t.Name, Attr: t.Attr}
			if len(stack) > 0 {
				p := stack[len(stack)-1]
				p.Kids = append(p.Kids, n)
			} else {
				root = n
			}
			stack = append(stack, n)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) == 0 {
				if len(bytes.TrimLeft(t, " \t\r\n")) != 0 {
					return nil, refuse("text outside the root element")
				}
				continue
			}
			n := stack[len(stack)-1]
			if lim.MaxText > 0 && n.Text.Len()+len(t) > lim.MaxText {
				return nil, refuse("more than %d bytes of text in <%s/>", lim.MaxText, n.Name.Local)
			}
			n.Text.Write(t)
		case xml.Comment:
			return nil, refuse("XML comments are not allowed")
		case xml.ProcInst:
			return nil, refuse("processing instructions are not allowed")
		case xml.Directive:
			return nil, refuse("DTDs and directives are not allowed")
		}
	}
	if root == nil || len(stack) != 0 {
		return nil, refuse("not one complete element")
	}
	return root, nil
}

const xmlNS = "http://www.w3.org/XML/1998/namespace"

// resolved reports whether encoding/xml resolved the prefix of n: an undeclared prefix is
// left as is in Space, and a namespace name always contains a colon (it is a URI).
func resolved(n xml.Name) bool {
	return !strings.Contains(n.Local, ":") && (n.Space == "" || strings.Contains(n.Space, ":"))
}

// EscAttr writes s escaped for use inside a single-quoted attribute value.
func EscAttr(b *bytes.Buffer, s string) {
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

// Attr writes ` name='value'` unless value is empty.
func Attr(b *bytes.Buffer, name, value string) {
	if value == "" {
		return
	}
	b.WriteByte(' ')
	b.WriteString(name)
	b.WriteString("='")
	EscAttr(b, value)
	b.WriteByte('\'')
}

// EscText writes s escaped as element character data.
func EscText(b *bytes.Buffer, s string) {
	_ = xml.EscapeText(b, []byte(s))
}
