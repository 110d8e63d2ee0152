package p2p

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
)

// Limits of the presence element reader. Presence comes from anyone the server lets through,
// so everything is bounded before it is looked at.
const (
	maxP2PSize   = 1 << 10  // bytes of one <p2p/>
	maxE2ESize   = 16 << 10 // bytes of one <e2e/> (an RSA-8192 key is 1.4 KB of base64)
	maxAttrs     = 8        // attributes of one element (namespace declarations included)
	maxE2EKeys   = 16       // children of <e2e/>
	maxAttrValue = 1500     // one attribute value
)

// elem is one element of a flat presence payload: its name, unqualified attributes and (one
// level of) child elements.
type elem struct {
	name     xml.Name
	attrs    []xml.Attr
	children []*elem
}

// attr returns the unqualified attribute local.
func (e *elem) attr(local string) (string, bool) {
	for _, a := range e.attrs {
		if a.Name.Local == local {
			return a.Value, true
		}
	}
	return "", false
}

var errShape = errors.New("not exactly one XML element")

// parseFlat parses b strictly: exactly one element of at most max bytes, at most maxChildren
// child elements without children of their own, no text other than white space, no comments,
// processing instructions or directives, at most maxAttrs attributes per element, no
// duplicate attributes. Namespace declarations are dropped from attrs; an attribute in another
// namespace is an error (none is defined).
func parseFlat(b []byte, max, maxChildren int) (*elem, error) {
	if len(b) > max {
		return nil, errors.New("element too large")
	}
	d := xml.NewDecoder(bytes.NewReader(b))
	d.Strict = true
	var root *elem
	depth := 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			if root == nil || depth != 0 {
				return nil, errShape
			}
			return root, nil
		}
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			e, err := newElem(t)
			if err != nil {
				return nil, err
			}
			switch depth {
			case 1:
				if root != nil {
					return nil, errShape
				}
				root = e
			case 2:
				if len(root.children) >= maxChildren {
					return nil, errors.New("too many child elements")
				}
				root.children = append(root.children, e)
			default:
				return nil, errors.New("elements nested too deep")
			}
		case xml.EndElement:
			depth--
		case xml.CharData:
			if len(bytes.TrimSpace(t)) > 0 {
				return nil, errors.New("unexpected text")
			}
		default:
			return nil, errors.New("comment, processing instruction or directive")
		}
	}
}

func newElem(t xml.StartElement) (*elem, error) {
	if len(t.Attr) > maxAttrs {
		return nil, errors.New("too many attributes")
	}
	e := &elem{name: t.Name}
	for _, a := range t.Attr {
		if a.Name.Space == "xmlns" || a.Name.Space == "" && a.Name.Local == "xmlns" {
			continue
		}
		if a.Name.Space != "" {
			return nil, errors.New("qualified attribute " + a.Name.Local)
		}
		if len(a.Value) > maxAttrValue {
			return nil, errors.New("attribute value too long")
		}
		if _, dup := e.attr(a.Name.Local); dup {
			return nil, errors.New("duplicate attribute " + a.Name.Local)
		}
		e.attrs = append(e.attrs, a)
	}
	return e, nil
}

// escapeAttr appends s to b as the value of an attribute quoted with '.
func escapeAttr(b *bytes.Buffer, s string) {
	_ = xml.EscapeText(b, []byte(s)) // escapes ' " & < > and control characters
}
