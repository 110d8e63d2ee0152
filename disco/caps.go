package disco

import (
	"bytes"
	"cmp"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"hash"
	"slices"
	"strings"
)

// Caps is the XEP-0115 <c xmlns='http://jabber.org/protocol/caps'/> element carried in presence.
type Caps struct {
	Hash string // IANA hash name, e.g. "sha-1" (CAPS-7); empty in legacy caps
	Node string // URI of the software, e.g. "https://github.com/xtlsjingle/xtlsjingle"
	Ver  string // the verification string (Base64 of the digest) or a legacy version
	Ext  string // deprecated (legacy caps only)
}

// Errors of caps processing.
var (
	// ErrCapsIllFormed: the disco#info result behind a ver has a duplicate identity, feature or
	// FORM_TYPE, or a multi-valued FORM_TYPE (CAPS-3); it must not be cached globally.
	ErrCapsIllFormed = errors.New("disco: caps: ill-formed disco#info for a verification string")
	// ErrCapsMismatch: the recomputed ver differs from the announced one (CAPS-3).
	ErrCapsMismatch = errors.New("disco: caps: verification string does not match")
	// ErrUnsupportedHash: the caps hash is not one this package implements (CAPS-3, CAPS-7).
	ErrUnsupportedHash = errors.New("disco: caps: unsupported hash")
)

// newHash returns the hash function named by its IANA name; SHA-1 is mandatory (CAPS-7).
func newHash(name string) hash.Hash {
	switch name {
	case "sha-1":
		return sha1.New()
	case "sha-224":
		return sha256.New224()
	case "sha-256":
		return sha256.New()
	case "sha-384":
		return sha512.New384()
	case "sha-512":
		return sha512.New()
	}
	return nil
}

// VerString returns the XEP-0115 input string S for info (CAPS-2 steps 1-4): identities sorted
// by category, type, xml:lang (i;octet); features sorted; forms with a usable FORM_TYPE sorted by
// it, their other fields sorted by var and values sorted. Forms whose FORM_TYPE is missing, not
// hidden or not single-valued are left out, as a verifier ignores them (CAPS-3). info is not
// modified.
func VerString(info *Info) string {
	var s strings.Builder
	ids := slices.Clone(info.Identities)
	slices.SortFunc(ids, func(a, b Identity) int {
		return cmp.Or(strings.Compare(a.Category, b.Category), strings.Compare(a.Type, b.Type),
			strings.Compare(a.Lang, b.Lang), strings.Compare(a.Name, b.Name))
	})
	for _, id := range ids {
		s.WriteString(id.Category + "/" + id.Type + "/" + id.Lang + "/" + id.Name + "<")
	}
	fs := slices.Clone(info.Features)
	slices.Sort(fs)
	for _, f := range fs {
		s.WriteString(f + "<")
	}
	type typed struct {
		ft   string
		form Form
	}
	var forms []typed
	for _, f := range info.Forms {
		if ft, ok := f.FormType(); ok {
			forms = append(forms, typed{ft, f})
		}
	}
	slices.SortStableFunc(forms, func(a, b typed) int { return strings.Compare(a.ft, b.ft) })
	for _, f := range forms {
		s.WriteString(f.ft + "<")
		fields := slices.Clone(f.form.Fields)
		slices.SortStableFunc(fields, func(a, b Field) int { return strings.Compare(a.Var, b.Var) })
		for _, fl := range fields {
			if fl.Var == "FORM_TYPE" {
				continue
			}
			s.WriteString(fl.Var + "<")
			vals := slices.Clone(fl.Values)
			slices.Sort(vals)
			for _, v := range vals {
				s.WriteString(v + "<")
			}
		}
	}
	return s.String()
}

// Ver returns the XEP-0115 verification string of info for the hash named hashName (IANA name,
// "sha-1" being mandatory): Base64 (RFC 4648 §4, padded) of the binary digest of the UTF-8
// string [VerString] (CAPS-2).
func Ver(info *Info, hashName string) (string, error) {
	h := newHash(hashName)
	if h == nil {
		return "", ErrUnsupportedHash
	}
	h.Write([]byte(VerString(info)))
	return base64.StdEncoding.EncodeToString(h.Sum(nil)), nil
}

// CapsOf returns the <c/> content that advertises info under the caps node node, hashed with
// SHA-1 (CAPS-1, CAPS-7).
func CapsOf(node string, info *Info) Caps {
	v, _ := Ver(info, "sha-1")
	return Caps{Hash: "sha-1", Node: node, Ver: v}
}

// IllFormed reports whether info, fetched for a verification string, breaks a CAPS-3 rule: a
// duplicate identity (category/type/lang/name), a duplicate feature, a duplicate FORM_TYPE, or
// a form whose FORM_TYPE field has more than one value.
func IllFormed(info *Info) bool {
	ids := make(map[Identity]bool)
	for _, id := range info.Identities {
		if ids[id] {
			return true
		}
		ids[id] = true
	}
	fs := make(map[string]bool)
	for _, f := range info.Features {
		if fs[f] {
			return true
		}
		fs[f] = true
	}
	types := make(map[string]bool)
	for _, f := range info.Forms {
		for _, fl := range f.Fields {
			if fl.Var != "FORM_TYPE" {
				continue
			}
			if len(fl.Values) > 1 {
				return true
			}
		}
		if ft, ok := f.FormType(); ok {
			if types[ft] {
				return true
			}
			types[ft] = true
		}
	}
	return false
}

// Verify checks a disco#info result fetched for the caps c (CAPS-3): the hash must be supported
// ([ErrUnsupportedHash]), info must not be ill-formed ([ErrCapsIllFormed]) and the recomputed
// ver must equal c.Ver ([ErrCapsMismatch]). Only a nil result allows caching info under c.Ver
// for every entity that announces it.
func Verify(c Caps, info *Info) error {
	if newHash(c.Hash) == nil {
		return ErrUnsupportedHash
	}
	if IllFormed(info) {
		return ErrCapsIllFormed
	}
	v, _ := Ver(info, c.Hash)
	if v != c.Ver {
		return ErrCapsMismatch
	}
	return nil
}

// MarshalCaps returns the <c/> element for c (CAPS-1: hash, node and ver are required).
func MarshalCaps(c Caps) ([]byte, error) {
	if c.Hash == "" || c.Node == "" || c.Ver == "" {
		return nil, badRequest("caps need hash, node and ver (CAPS-1)")
	}
	if err := checkStrings(c.Hash, c.Node, c.Ver, c.Ext); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString("<c xmlns='" + NSCaps + "'")
	attr(&b, "hash", c.Hash)
	attr(&b, "node", c.Node)
	attr(&b, "ver", c.Ver)
	attr(&b, "ext", c.Ext)
	b.WriteString("/>")
	return b.Bytes(), nil
}

// ParseCaps decodes a <c xmlns='http://jabber.org/protocol/caps'/> element. node and ver are
// required; a missing hash marks legacy caps (CAPS-1, CAPS-3: the caller may ignore them or
// query the entity and cache per JID only). Children are not allowed.
func ParseCaps(b []byte) (Caps, error) {
	root, err := parse(b, limits{MaxBytes: 4 << 10, MaxDepth: 1, MaxElems: 1, MaxAttrs: 8})
	if err != nil {
		return Caps{}, err
	}
	if root.Name != (xml.Name{Space: NSCaps, Local: "c"}) {
		return Caps{}, badRequest("not a caps element: {%s}%s", root.Name.Space, root.Name.Local)
	}
	var c Caps
	c.Hash, _ = root.AttrValue("", "hash")
	c.Node, _ = root.AttrValue("", "node")
	c.Ver, _ = root.AttrValue("", "ver")
	c.Ext, _ = root.AttrValue("", "ext")
	if c.Node == "" || c.Ver == "" {
		return Caps{}, badRequest("caps without node or ver (CAPS-1)")
	}
	return c, nil
}
