// Package disco implements XEP-0030: Service Discovery (disco#info and disco#items) and
// XEP-0115: Entity Capabilities, with the XEP-0128 service discovery extensions that the caps
// hash covers.
//
// The package parses peer payloads strictly and within fixed bounds, builds and verifies the
// XEP-0115 verification string, keeps a bounded caps cache, answers disco#info for our own
// client on the server link ([Serve]) and queries other entities ([Query], [Items]). It talks to
// the server through the small [Requester] and [IQHandler] interfaces, whose method signatures
// are those of every link in this project.
package disco

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"slices"
	"unicode/utf8"
)

// Namespaces of XEP-0030, XEP-0115 and XEP-0004 (for XEP-0128 extensions).
const (
	NSInfo  = "http://jabber.org/protocol/disco#info"
	NSItems = "http://jabber.org/protocol/disco#items"
	NSCaps  = "http://jabber.org/protocol/caps"
	NSData  = "jabber:x:data"
)

// Bounds on what a parsed disco#info result may hold.
const (
	maxIdentities = 64
	maxFeatures   = 512
	maxForms      = 16
	maxFields     = 64
	maxValues     = 64
	maxItems      = 1024
)

const xmlNS = "http://www.w3.org/XML/1998/namespace"

// Identity is one <identity/> of a disco#info result (XEP-0030 §3.1).
type Identity struct {
	Category string
	Type     string
	Name     string // optional
	Lang     string // optional xml:lang
}

// Field is one field of an XEP-0128 extension form.
type Field struct {
	Var    string
	Type   string // e.g. "hidden" for FORM_TYPE; empty when absent
	Values []string
}

// Form is an XEP-0128 extension: a jabber:x:data form (normally type "result") inside the
// disco#info result. Its FORM_TYPE is the value of the field with Var "FORM_TYPE".
type Form struct {
	Type   string
	Fields []Field
}

// FormType returns the single FORM_TYPE value of f and whether the form has a usable one:
// exactly one FORM_TYPE field, of type "hidden", with exactly one value (CAPS-3).
func (f *Form) FormType() (string, bool) {
	var (
		val   string
		found int
		ok    bool
	)
	for _, fl := range f.Fields {
		if fl.Var != "FORM_TYPE" {
			continue
		}
		found++
		ok = fl.Type == "hidden" && len(fl.Values) == 1
		if ok {
			val = fl.Values[0]
		}
	}
	return val, found == 1 && ok
}

// Info is the content of a disco#info <query/>: the node it describes (empty for the entity
// itself), identities, features and extension forms. Features are kept as received, duplicates
// included (Libervia sends one feature twice); [Verify] reports such a result as ill-formed for
// caps purposes (CAPS-3).
type Info struct {
	Node       string
	Identities []Identity
	Features   []string
	Forms      []Form
}

// Supports reports whether the entity advertises feature. Every entity supports disco#info
// even if it forgets to list it (DISCO-6).
func (i *Info) Supports(feature string) bool {
	if i == nil {
		return false
	}
	return feature == NSInfo || slices.Contains(i.Features, feature)
}

// SupportsAll reports whether the entity advertises every feature in features.
func (i *Info) SupportsAll(features ...string) bool {
	for _, f := range features {
		if !i.Supports(f) {
			return false
		}
	}
	return true
}

// Clone returns a deep copy of i.
func (i *Info) Clone() *Info {
	if i == nil {
		return nil
	}
	c := &Info{Node: i.Node}
	c.Identities = slices.Clone(i.Identities)
	c.Features = slices.Clone(i.Features)
	for _, f := range i.Forms {
		nf := Form{Type: f.Type}
		for _, fl := range f.Fields {
			nf.Fields = append(nf.Fields, Field{Var: fl.Var, Type: fl.Type, Values: slices.Clone(fl.Values)})
		}
		c.Forms = append(c.Forms, nf)
	}
	return c
}

// Validate checks i against the rules for what an entity publishes (DISCO-2, DISCO-3): at least
// one identity, identities with category and type, no two identities with the same
// category/type/xml:lang, features non-empty, unique and including disco#info, forms with a
// unique hidden FORM_TYPE.
func (i *Info) Validate() error {
	if len(i.Identities) == 0 {
		return badRequest("no identity (DISCO-2)")
	}
	seen := make(map[[3]string]bool)
	for _, id := range i.Identities {
		if id.Category == "" || id.Type == "" {
			return badRequest("identity without category or type")
		}
		k := [3]string{id.Category, id.Type, id.Lang}
		if seen[k] {
			return badRequest("two identities %s/%s with xml:lang %q (DISCO-3)", id.Category, id.Type, id.Lang)
		}
		seen[k] = true
	}
	fs := make(map[string]bool)
	for _, f := range i.Features {
		if f == "" {
			return badRequest("empty feature")
		}
		if fs[f] {
			return badRequest("duplicate feature %q", f)
		}
		fs[f] = true
	}
	if !fs[NSInfo] {
		return badRequest("disco#info feature missing (DISCO-2)")
	}
	types := make(map[string]bool)
	for _, f := range i.Forms {
		ft, ok := f.FormType()
		if !ok {
			return badRequest("form without a single hidden FORM_TYPE")
		}
		if types[ft] {
			return badRequest("duplicate FORM_TYPE %q", ft)
		}
		types[ft] = true
	}
	return nil
}

// MarshalInfo returns the disco#info <query/> element for i, with node set to i.Node when it is
// not empty (DISCO-4: an answer mirrors the node of the request).
func MarshalInfo(i *Info) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString("<query xmlns='" + NSInfo + "'")
	if err := checkStrings(i.Node); err != nil {
		return nil, err
	}
	attr(&b, "node", i.Node)
	if len(i.Identities) == 0 && len(i.Features) == 0 && len(i.Forms) == 0 {
		b.WriteString("/>")
		return b.Bytes(), nil
	}
	b.WriteByte('>')
	for _, id := range i.Identities {
		if id.Category == "" || id.Type == "" {
			return nil, badRequest("identity without category or type")
		}
		if err := checkStrings(id.Category, id.Type, id.Name, id.Lang); err != nil {
			return nil, err
		}
		b.WriteString("<identity")
		attr(&b, "category", id.Category)
		attr(&b, "type", id.Type)
		attr(&b, "xml:lang", id.Lang)
		attr(&b, "name", id.Name)
		b.WriteString("/>")
	}
	for _, f := range i.Features {
		if f == "" {
			return nil, badRequest("empty feature")
		}
		if err := checkStrings(f); err != nil {
			return nil, err
		}
		b.WriteString("<feature")
		attr(&b, "var", f)
		b.WriteString("/>")
	}
	for _, f := range i.Forms {
		b.WriteString("<x xmlns='" + NSData + "'")
		if err := checkStrings(f.Type); err != nil {
			return nil, err
		}
		attr(&b, "type", f.Type)
		b.WriteByte('>')
		for _, fl := range f.Fields {
			if err := checkStrings(fl.Var, fl.Type); err != nil {
				return nil, err
			}
			b.WriteString("<field")
			attr(&b, "var", fl.Var)
			attr(&b, "type", fl.Type)
			b.WriteByte('>')
			for _, v := range fl.Values {
				if err := checkStrings(v); err != nil {
					return nil, err
				}
				b.WriteString("<value>")
				escText(&b, v)
				b.WriteString("</value>")
			}
			b.WriteString("</field>")
		}
		b.WriteString("</x>")
	}
	b.WriteString("</query>")
	return b.Bytes(), nil
}

// ParseInfo decodes a disco#info <query/> element (a result, or a request, which has no
// children). It is strict about structure (DISCO-3: <feature/> has var and no children;
// <identity/> has category and type; nothing but identities, features and jabber:x:data forms)
// and bounded (64 KiB, 64 identities, 512 features, 16 forms), but tolerates duplicate features
// and identities (kept as received; see [Verify]). Errors satisfy the StanzaError behaviour with
// bad-request.
func ParseInfo(b []byte) (*Info, error) {
	root, err := parse(b, discoLimits)
	if err != nil {
		return nil, err
	}
	if root.Name != (xml.Name{Space: NSInfo, Local: "query"}) {
		return nil, badRequest("not a disco#info query: {%s}%s", root.Name.Space, root.Name.Local)
	}
	info := &Info{}
	info.Node, _ = root.AttrValue("", "node")
	for _, k := range root.Kids {
		switch k.Name {
		case xml.Name{Space: NSInfo, Local: "identity"}:
			if len(k.Kids) != 0 {
				return nil, badRequest("<identity/> with children")
			}
			var id Identity
			id.Category, _ = k.AttrValue("", "category")
			id.Type, _ = k.AttrValue("", "type")
			id.Name, _ = k.AttrValue("", "name")
			id.Lang, _ = k.AttrValue(xmlNS, "lang")
			if id.Category == "" || id.Type == "" {
				return nil, badRequest("<identity/> without category or type")
			}
			if len(info.Identities) == maxIdentities {
				return nil, badRequest("more than %d identities", maxIdentities)
			}
			info.Identities = append(info.Identities, id)
		case xml.Name{Space: NSInfo, Local: "feature"}:
			if len(k.Kids) != 0 {
				return nil, badRequest("<feature/> with children (DISCO-3)")
			}
			v, _ := k.AttrValue("", "var")
			if v == "" {
				return nil, badRequest("<feature/> without var (DISCO-3)")
			}
			if len(info.Features) == maxFeatures {
				return nil, badRequest("more than %d features", maxFeatures)
			}
			info.Features = append(info.Features, v)
		case xml.Name{Space: NSData, Local: "x"}:
			f, err := parseForm(k)
			if err != nil {
				return nil, err
			}
			if len(info.Forms) == maxForms {
				return nil, badRequest("more than %d forms", maxForms)
			}
			info.Forms = append(info.Forms, f)
		default:
			return nil, badRequest("unexpected element {%s}%s in disco#info", k.Name.Space, k.Name.Local)
		}
	}
	return info, nil
}

func parseForm(x *node) (Form, error) {
	var f Form
	f.Type, _ = x.AttrValue("", "type")
	for _, k := range x.Kids {
		switch k.Name.Local {
		case "field":
			if k.Name.Space != NSData {
				return f, badRequest("unexpected element in form")
			}
			var fl Field
			fl.Var, _ = k.AttrValue("", "var")
			fl.Type, _ = k.AttrValue("", "type")
			for _, v := range k.Kids {
				switch {
				case v.Name == xml.Name{Space: NSData, Local: "value"}:
					if len(v.Kids) != 0 {
						return f, badRequest("<value/> with children")
					}
					if len(fl.Values) == maxValues {
						return f, badRequest("more than %d values", maxValues)
					}
					fl.Values = append(fl.Values, v.Text.String())
				case v.Name.Space == NSData && (v.Name.Local == "desc" || v.Name.Local == "required" || v.Name.Local == "option"):
					// XEP-0004 decorations; not part of the caps hash.
				default:
					return f, badRequest("unexpected element in form field")
				}
			}
			if len(f.Fields) == maxFields {
				return f, badRequest("more than %d fields", maxFields)
			}
			f.Fields = append(f.Fields, fl)
		case "title", "instructions", "reported", "item":
			// Result-form decorations; ignored (not covered by the caps hash).
		default:
			return f, badRequest("unexpected element in form")
		}
	}
	return f, nil
}

// Item is one <item/> of a disco#items result (DISCO-8).
type Item struct {
	JID  string
	Node string // optional
	Name string // optional
}

// MarshalItems returns the disco#items <query/> element with node (may be empty) and items.
// An empty list yields an empty <query/> (DISCO-8).
func MarshalItems(node string, items []Item) ([]byte, error) {
	var b bytes.Buffer
	if err := checkStrings(node); err != nil {
		return nil, err
	}
	b.WriteString("<query xmlns='" + NSItems + "'")
	attr(&b, "node", node)
	if len(items) == 0 {
		b.WriteString("/>")
		return b.Bytes(), nil
	}
	b.WriteByte('>')
	for _, it := range items {
		if it.JID == "" {
			return nil, badRequest("item without jid (DISCO-8)")
		}
		if err := checkStrings(it.JID, it.Node, it.Name); err != nil {
			return nil, err
		}
		b.WriteString("<item")
		attr(&b, "jid", it.JID)
		attr(&b, "node", it.Node)
		attr(&b, "name", it.Name)
		b.WriteString("/>")
	}
	b.WriteString("</query>")
	return b.Bytes(), nil
}

// ParseItems decodes a disco#items <query/> element: its node and items. Every <item/> must
// have a jid (DISCO-8); at most 1024 items.
func ParseItems(b []byte) (node string, items []Item, err error) {
	root, err := parse(b, discoLimits)
	if err != nil {
		return "", nil, err
	}
	if root.Name != (xml.Name{Space: NSItems, Local: "query"}) {
		return "", nil, badRequest("not a disco#items query: {%s}%s", root.Name.Space, root.Name.Local)
	}
	node, _ = root.AttrValue("", "node")
	for _, k := range root.Kids {
		if k.Name != (xml.Name{Space: NSItems, Local: "item"}) || len(k.Kids) != 0 {
			return "", nil, badRequest("unexpected element {%s}%s in disco#items", k.Name.Space, k.Name.Local)
		}
		var it Item
		it.JID, _ = k.AttrValue("", "jid")
		it.Node, _ = k.AttrValue("", "node")
		it.Name, _ = k.AttrValue("", "name")
		if it.JID == "" {
			return "", nil, badRequest("<item/> without jid (DISCO-8)")
		}
		if len(items) == maxItems {
			return "", nil, badRequest("more than %d items", maxItems)
		}
		items = append(items, it)
	}
	return node, items, nil
}

// Error is a disco failure that maps to an XMPP stanza error (RFC 6120 §8.3).
type Error struct {
	Type      string // cancel, modify, ...
	Condition string // bad-request, item-not-found, ...
	Text      string
}

// Error implements error.
func (e *Error) Error() string {
	if e.Text != "" {
		return "disco: " + e.Condition + ": " + e.Text
	}
	return "disco: " + e.Condition
}

// StanzaError reports the XMPP error type, condition, application condition (none) and text.
func (e *Error) StanzaError() (typ, condition string, app xml.Name, text string) {
	return e.Type, e.Condition, xml.Name{}, e.Text
}

func badRequest(format string, args ...any) *Error {
	return &Error{Type: "modify", Condition: "bad-request", Text: fmt.Sprintf(format, args...)}
}

// checkStrings rejects strings that cannot be written as XML character data.
func checkStrings(ss ...string) error {
	for _, s := range ss {
		if !utf8.ValidString(s) {
			return badRequest("invalid UTF-8")
		}
		for _, r := range s {
			if !(r == 0x09 || r == 0x0A || r == 0x0D || r >= 0x20 && r <= 0xD7FF ||
				r >= 0xE000 && r <= 0xFFFD || r >= 0x10000 && r <= 0x10FFFF) {
				return badRequest("character %U not allowed in XML", r)
			}
		}
	}
	return nil
}

// Requester sends an IQ get/set and waits for the answer (the link method of the same name).
type Requester interface {
	Request(ctx context.Context, to, typ string, payload []byte) ([]byte, error)
}

// IQHandler installs handlers for incoming IQ get/set (the link method of the same name).
type IQHandler interface {
	HandleIQ(space, local string, h func(ctx context.Context, from, to, typ string, payload []byte) ([]byte, error)) (remove func())
}
