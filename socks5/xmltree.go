package socks5

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"strings"
)

// Limits of the strict XML reader used for every element that comes from a peer or a server.
const (
	maxElementSize = 64 << 10 // bytes of one payload element
	maxDepth       = 4        // <query><streamhost/></query> needs 2; <transport><candidate/> 2
	maxChildren    = 64       // children of one element (candidates, streamhosts, items)
	maxAttrs       = 16       // attributes of one element
	maxAttrLen     = 3071     // one attribute value (a JID is at most 3071 bytes, RFC 7622)
	maxText        = 3071     // character data of one element (the <activate> JID)
)

// node is one element of a parsed payload: its name, attributes (namespace declarations
// removed), child elements and trimmed character data.
type node struct {
	name     xml.Name
	attrs    []xml.Attr
	children []*node
	text     string
}

// attr returns the value of the unqualified attribute local and whether it was present.
func (n *node) attr(local string) (string, bool) {
	for _, a := range n.attrs {
		if a.Name.Space == "" && a.Name.Local == local {
			return a.Value, true
		}
	}
	return "", false
}

var errNotOneElement = errors.New("not exactly one XML element")

// parse parses b, which must be exactly one well-formed element (white space around it
// allowed), strictly: no comments, processing instructions or directives, bounded size, depth,
// children, attributes and text. Element names carry their namespace URI. Errors are *Error
// with condition bad-request.
func parse(b []byte) (*node, error) {
	if len(b) > maxElementSize {
		return nil, badRequest("element larger than %d bytes", maxElementSize)
	}
	d := xml.NewDecoder(bytes.NewReader(b))
	d.Strict = true
	var (
		root  *node
		stack []*node
		text  []*strings.Builder // one per open element; pointers, so growing the slice never copies a used Builder
	)
	for {
		tok, err := d.Token()
		if err == io.EOF {
			if root == nil || len(stack) != 0 {
				return nil, badRequest("%v", errNotOneElement)
			}
			return root, nil
		}
		if err != nil {
			return nil, badRequest("malformed XML: %v", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if len(stack) == 0 && root != nil {
				return nil, badRequest("%v", errNotOneElement)
			}
			if len(stack) >= maxDepth {
				return nil, badRequest("elements nested deeper than %d", maxDepth)
			}
			n := &node{name: t.Name}
			for _, a := range t.Attr {
				if a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns") {
					continue
				}
				if len(a.Value) > maxAttrLen {
					return nil, badRequest("attribute %s longer than %d bytes", a.Name.Local, maxAttrLen)
				}
				if len(n.attrs) >= maxAttrs {
					return nil, badRequest("more than %d attributes", maxAttrs)
				}
				for _, o := range n.attrs {
					if o.Name == a.Name {
						return nil, badRequest("duplicate attribute %s", a.Name.Local)
					}
				}
				n.attrs = append(n.attrs, a)
			}
			if len(stack) == 0 {
				root = n
			} else {
				p := stack[len(stack)-1]
				if len(p.children) >= maxChildren {
					return nil, badRequest("more than %d child elements", maxChildren)
				}
				p.children = append(p.children, n)
			}
			stack = append(stack, n)
			text = append(text, new(strings.Builder))
		case xml.EndElement:
			n := stack[len(stack)-1]
			n.text = strings.TrimSpace(text[len(text)-1].String())
			stack = stack[:len(stack)-1]
			text = text[:len(text)-1]
		case xml.CharData:
			if len(stack) == 0 {
				if len(bytes.TrimSpace(t)) > 0 {
					return nil, badRequest("text outside the element")
				}
				continue
			}
			tb := text[len(text)-1]
			if tb.Len()+len(t) > maxText {
				return nil, badRequest("text longer than %d bytes", maxText)
			}
			tb.Write(t)
		case xml.Comment, xml.ProcInst, xml.Directive:
			return nil, badRequest("comment, processing instruction or directive")
		}
	}
}
