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
)

// Limits bound what Parse accepts from a peer.
type Limits struct {
	MaxBytes int // whole input
	MaxDepth int // element nesting, root = 1
	MaxElems int // elements in total
	MaxAttrs int // attributes per element
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

// Parse decodes exactly one element from b with encoding/xml in strict mode: no comments,
// processing instructions or DTDs (SPEC CORE-6), no entities beyond the predefined ones,
// nothing but whitespace after the root, and the limits in lim.
func Parse(b []byte, lim Limits) (*Node, error) {
	if len(b) > lim.MaxBytes {
		return nil, refuse("payload larger than %d bytes", lim.MaxBytes)
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
			stack[len(stack)-1].Text.Write(t)
		case xml.Comment:
			return nil, refuse("XML comments are not allowed")
		case xml.ProcInst:
			return nil, refuse("processing instructions are not allowed")
		case xml.Directive:
			return nil, refuse("DTDs and directives are not allowed")
		}
	}
	if root == nil {
		return nil, refuse("no element")
	}
	return root, nil
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
