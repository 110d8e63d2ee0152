package filetransfer

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha3"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"github.com/xtlsjingle/xtlsjingle/internal/xmltree"
	"hash"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Namespaces of XEP-0234 and XEP-0300 (HASH-2).
const (
	// NS is the namespace of the file-transfer application, also its disco feature.
	NS = "urn:xmpp:jingle:apps:file-transfer:5"
	// NSHashes is the namespace of <hash/> and <hash-used/> (XEP-0300, HASH-2).
	NSHashes = "urn:xmpp:hashes:2"
)

// Parser bounds. Descriptions come out of the jingle decoder (itself bounded at 128 KiB) but
// this package checks again on its own.
const (
	maxElementBytes = 16 << 10
	maxDepth        = 4
	maxElements     = 64
	maxText         = 4 << 10
	maxNameBytes    = 255 // bytes of a file name
	maxHashes       = 8
)

// Hash is one <hash xmlns='urn:xmpp:hashes:2' algo='…'>base64</hash> (HASH-2). Value is the raw
// digest.
type Hash struct {
	Algo  string
	Value []byte
}

// Range is the <range/> element of a ranged transfer (XEP-0234 §5): the transfer starts at
// Offset; Length 0 means up to the end.
type Range struct {
	Offset int64
	Length int64
}

// File is the <file/> element: the metadata of an offered (or requested) file.
type File struct {
	Name      string
	Size      int64 // -1 when absent
	Date      time.Time
	MediaType string
	Desc      string
	Hashes    []Hash
	// HashUsed lists the algorithms of <hash-used/>: the sender announces the algorithm and
	// sends the digest later in a checksum session-info (HASH-2, Libervia).
	HashUsed []string
	Range    *Range
	// HexDigests makes File.Description and Send's checksum write each digest as Base64 of its
	// lowercase hex string instead of the digest: Libervia 0.9 requires that (it decodes the
	// Base64 as UTF-8 hex and fails on a real digest). Set it only for a peer known to need
	// it (e.g. from its disco#info identity); never on input, where both forms are accepted.
	HexDigests bool
}

// Error is a refusal of peer input or of an offer, with the XMPP stanza condition it maps to.
type Error struct {
	Condition string // RFC 6120 condition, e.g. "bad-request"
	Text      string
}

// Error implements error.
func (e *Error) Error() string { return "filetransfer: " + e.Condition + ": " + e.Text }

// StanzaError reports the parts of the IQ error (BRIEF "The link").
func (e *Error) StanzaError() (typ, condition string, app xml.Name, text string) {
	return "modify", e.Condition, xml.Name{}, e.Text
}

// Is matches another *Error with the same condition.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && (t.Condition == "" || t.Condition == e.Condition)
}

// ErrBadRequest matches every malformed-input error of this package (errors.Is).
var ErrBadRequest = &Error{Condition: "bad-request"}

func bad(text string) error { return &Error{Condition: "bad-request", Text: text} }

// node is one element of the strict, bounded tree that internal/xmltree decodes.
type node = xmltree.Node

// decodeTree decodes exactly one element strictly and with bounds (xmltree.Parse: valid UTF-8,
// no comments, processing instructions or DTDs, no undeclared prefixes or duplicate
// attributes, at most maxDepth levels, maxElements elements and maxText bytes of text per
// element); a refusal is a bad-request error.
func decodeTree(b []byte) (*node, error) {
	n, err := xmltree.Parse(b, xmltree.Limits{
		MaxBytes: maxElementBytes, MaxDepth: maxDepth, MaxElems: maxElements, MaxAttrs: 32, MaxText: maxText,
	})
	if err != nil {
		return nil, bad(err.Error())
	}
	return n, nil
}

// ParseDescription decodes <description xmlns='urn:xmpp:jingle:apps:file-transfer:5'> with its
// one <file/>. It accepts what Gajim and Libervia send (empty <desc/>, empty <range/>,
// <hash-used/>, Gajim's blake2b-512, hashes in algorithms it cannot compute).
func ParseDescription(b []byte) (*File, error) {
	n, err := decodeTree(b)
	if err != nil {
		return nil, err
	}
	if n.Name.Space != NS || n.Name.Local != "description" {
		return nil, bad("not a file-transfer description")
	}
	var fe *node
	for _, k := range n.Kids {
		if k.Name.Space == NS && k.Name.Local == "file" {
			if fe != nil {
				return nil, bad("more than one <file/>")
			}
			fe = k
		}
	}
	if fe == nil {
		return nil, bad("description without <file/>")
	}
	return parseFile(fe)
}

func parseFile(fe *node) (*File, error) {
	f := &File{Size: -1}
	seen := map[string]bool{}
	for _, k := range fe.Kids {
		if k.Name.Space == NSHashes {
			switch k.Name.Local {
			case "hash":
				h, err := parseHash(k)
				if err != nil {
					return nil, err
				}
				for _, o := range f.Hashes {
					if o.Algo == h.Algo {
						return nil, bad("two hashes with the same algo (HASH-2)")
					}
				}
				if len(f.Hashes) >= maxHashes {
					return nil, bad("too many hashes")
				}
				f.Hashes = append(f.Hashes, h)
			case "hash-used":
				algo, ok := k.AttrValue("", "algo")
				if !ok || !validAlgo(algo) || len(f.HashUsed) >= maxHashes {
					return nil, bad("bad <hash-used/>")
				}
				f.HashUsed = append(f.HashUsed, algo)
			}
			continue
		}
		if k.Name.Space != NS {
			continue // extensions we do not know
		}
		if seen[k.Name.Local] {
			return nil, bad("repeated <" + k.Name.Local + "/>")
		}
		seen[k.Name.Local] = true
		text := k.Text.String()
		switch k.Name.Local {
		case "name":
			if len(text) > maxNameBytes {
				return nil, bad("name too long")
			}
			f.Name = text
		case "size":
			v, err := strconv.ParseInt(strings.TrimSpace(text), 10, 64)
			if err != nil || v < 0 {
				return nil, bad("bad <size/>")
			}
			f.Size = v
		case "date":
			t, err := time.Parse(time.RFC3339, strings.TrimSpace(text))
			if err != nil {
				return nil, bad("bad <date/>")
			}
			f.Date = t
		case "media-type":
			f.MediaType = strings.TrimSpace(text)
		case "desc":
			f.Desc = text
		case "range":
			r := &Range{}
			if v, ok := k.AttrValue("", "offset"); ok {
				o, err := strconv.ParseInt(v, 10, 64)
				if err != nil || o < 0 {
					return nil, bad("bad range offset")
				}
				r.Offset = o
			}
			if v, ok := k.AttrValue("", "length"); ok {
				l, err := strconv.ParseInt(v, 10, 64)
				if err != nil || l < 0 {
					return nil, bad("bad range length")
				}
				r.Length = l
			}
			f.Range = r
		}
	}
	return f, nil
}

func validAlgo(a string) bool {
	if a == "" || len(a) > 32 {
		return false
	}
	for _, c := range a {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// parseHash decodes one <hash/>: strict Base64 after removing XML white space (HASH-2,
// ERR-5). Libervia's quirk, Base64 of the lowercase hex string instead of the digest, is
// recognised when the decoded value is exactly twice the digest length and all hex.
func parseHash(k *node) (Hash, error) {
	algo, ok := k.AttrValue("", "algo")
	if !ok || !validAlgo(algo) {
		return Hash{}, bad("hash without a valid algo")
	}
	s := strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' || r == '\n' || r == '\r' {
			return -1
		}
		return r
	}, k.Text.String())
	v, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil || len(v) == 0 {
		return Hash{}, bad("hash is not strict Base64")
	}
	if n := digestSize(algo); n > 0 && len(v) == 2*n {
		if d, err := hex.DecodeString(string(v)); err == nil {
			v = d // Libervia: base64(hex(digest))
		}
	}
	if n := digestSize(algo); n > 0 && len(v) != n {
		return Hash{}, bad("digest has the wrong length for " + algo)
	}
	return Hash{Algo: algo, Value: v}, nil
}

// newHash returns the hash function of algo, or nil if this package cannot compute it
// (blake2b-256, sha3-224 …). MD5/SHA-1 are never used (HASH-4).
func newHash(algo string) hash.Hash {
	switch algo {
	case "sha-256":
		return sha256.New()
	case "sha-512":
		return sha512.New()
	case "sha3-256":
		return sha3.New256()
	case "sha3-512":
		return sha3.New512()
	case "blake2b-512":
		return newBlake2b512()
	}
	return nil
}

func digestSize(algo string) int {
	switch algo {
	case "sha-256", "sha3-256", "blake2b-256":
		return 32
	case "sha-512", "sha3-512", "blake2b-512":
		return 64
	}
	return 0
}

// Description encodes f as <description xmlns='urn:xmpp:jingle:apps:file-transfer:5'>.
func (f *File) Description() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString("<description xmlns='" + NS + "'>")
	if err := f.appendFile(&b); err != nil {
		return nil, err
	}
	b.WriteString("</description>")
	return b.Bytes(), nil
}

func (f *File) appendFile(b *bytes.Buffer) error {
	if len(f.Name) > maxNameBytes || !utf8.ValidString(f.Name) || !utf8.ValidString(f.Desc) ||
		!utf8.ValidString(f.MediaType) {
		return bad("name, desc or media-type not valid UTF-8 or too long")
	}
	b.WriteString("<file>")
	if !f.Date.IsZero() {
		b.WriteString("<date>" + f.Date.UTC().Format(time.RFC3339) + "</date>")
	}
	if f.Desc != "" {
		b.WriteString("<desc>")
		xml.EscapeText(b, []byte(f.Desc))
		b.WriteString("</desc>")
	} else if f.Name != "" { // an offer: Libervia 0.9 fails with KeyError 'desc' without it
		b.WriteString("<desc/>")
	}
	if f.MediaType != "" {
		b.WriteString("<media-type>")
		xml.EscapeText(b, []byte(f.MediaType))
		b.WriteString("</media-type>")
	}
	if f.Name != "" {
		b.WriteString("<name>")
		xml.EscapeText(b, []byte(f.Name))
		b.WriteString("</name>")
	}
	if f.Range != nil {
		b.WriteString("<range")
		if f.Range.Offset > 0 {
			b.WriteString(" offset='" + strconv.FormatInt(f.Range.Offset, 10) + "'")
		}
		if f.Range.Length > 0 {
			b.WriteString(" length='" + strconv.FormatInt(f.Range.Length, 10) + "'")
		}
		b.WriteString("/>")
	}
	if f.Size >= 0 {
		b.WriteString("<size>" + strconv.FormatInt(f.Size, 10) + "</size>")
	}
	for _, h := range f.Hashes {
		if !validAlgo(h.Algo) || len(h.Value) == 0 {
			return bad("bad hash")
		}
		v := h.Value
		if f.HexDigests {
			v = []byte(hex.EncodeToString(v))
		}
		b.WriteString("<hash xmlns='" + NSHashes + "' algo='" + h.Algo + "'>" +
			base64.StdEncoding.EncodeToString(v) + "</hash>")
	}
	for _, a := range f.HashUsed {
		if !validAlgo(a) {
			return bad("bad hash-used")
		}
		b.WriteString("<hash-used xmlns='" + NSHashes + "' algo='" + a + "'/>")
	}
	b.WriteString("</file>")
	return nil
}

// Checksum is the <checksum/> session-info payload (XEP-0234 §7.1): the hashes of the file
// of the content (Creator, Name), sent when they were not known at offer time.
type Checksum struct {
	Creator string
	Name    string
	Hashes  []Hash
	// HexDigests: see File.HexDigests (output only).
	HexDigests bool
}

// Received is the <received/> session-info payload: the receiver got the whole file of the
// content (Creator, Name).
type Received struct {
	Creator string
	Name    string
}

// ParseInfo decodes a session-info payload of this namespace: a *Checksum or a *Received.
func ParseInfo(b []byte) (any, error) {
	n, err := decodeTree(b)
	if err != nil {
		return nil, err
	}
	if n.Name.Space != NS {
		return nil, bad("not a file-transfer payload")
	}
	creator, _ := n.AttrValue("", "creator")
	name, _ := n.AttrValue("", "name")
	if creator != "initiator" && creator != "responder" {
		return nil, bad("creator must be initiator or responder")
	}
	if name == "" {
		return nil, bad("missing content name")
	}
	switch n.Name.Local {
	case "received":
		return &Received{Creator: creator, Name: name}, nil
	case "checksum":
		var fe *node
		for _, k := range n.Kids {
			if k.Name.Space == NS && k.Name.Local == "file" {
				if fe != nil {
					return nil, bad("more than one <file/>")
				}
				fe = k
			}
		}
		if fe == nil {
			return nil, bad("checksum without <file/>")
		}
		f, err := parseFile(fe)
		if err != nil {
			return nil, err
		}
		if len(f.Hashes) == 0 {
			return nil, bad("checksum without <hash/>")
		}
		return &Checksum{Creator: creator, Name: name, Hashes: f.Hashes}, nil
	}
	return nil, bad("unknown file-transfer payload <" + n.Name.Local + "/>")
}

// Marshal encodes c as <checksum/>.
func (c *Checksum) Marshal() ([]byte, error) {
	if len(c.Hashes) == 0 {
		return nil, errors.New("filetransfer: checksum without hashes")
	}
	var b bytes.Buffer
	b.WriteString("<checksum xmlns='" + NS + "' creator='" + attrEsc(c.Creator) + "' name='" + attrEsc(c.Name) + "'>")
	f := File{Size: -1, Hashes: c.Hashes, HexDigests: c.HexDigests}
	if err := f.appendFile(&b); err != nil {
		return nil, err
	}
	b.WriteString("</checksum>")
	return b.Bytes(), nil
}

// Marshal encodes r as <received/>.
func (r *Received) Marshal() []byte {
	return []byte("<received xmlns='" + NS + "' creator='" + attrEsc(r.Creator) + "' name='" + attrEsc(r.Name) + "'/>")
}

func attrEsc(s string) string {
	var b bytes.Buffer
	xml.EscapeText(&b, []byte(s))
	return strings.ReplaceAll(b.String(), "'", "&#39;")
}
