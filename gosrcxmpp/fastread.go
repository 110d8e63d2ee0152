package gosrcxmpp

import (
	"bufio"
	"bytes"
	"encoding/xml"
	"io"
)

// The reader's fast path. Most stanzas a session receives are an IQ or message with at most
// one child in plain form — an IBB <data/> block, its acknowledgement, a Jingle action
// without nested elements — and encoding/xml spends ≈25 ns per byte of their text. When such
// a stanza lies complete in the read buffer, parseFastStanza builds the same inStanza that
// readStanza would (FuzzFastStanza checks that, differentially) and the reader skips its
// bytes; anything else — prefixes (but the stanza's xml:lang), entities, non-ASCII, several children, <error/>, comments,
// a stanza not yet fully received — goes to the decoder as before.

// maxFastRefills bounds how often the fast path re-reads a stanza that is still arriving
// (each refill parses it again from its start); a stanza trickling in slower goes to the
// decoder, which reads it once.
const maxFastRefills = 8

// countingReader is the decoder's byte source: it counts what the decoder consumed, so the
// reader knows the decoder holds no byte it read ahead (xml.Decoder keeps one pushed-back
// byte after character data) before it looks at the buffer itself.
type countingReader struct {
	br *bufio.Reader
	n  int64
}

func (c *countingReader) ReadByte() (byte, error) {
	b, err := c.br.ReadByte()
	if err == nil {
		c.n++
	}
	return b, err
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.br.Read(p)
	c.n += int64(n)
	return n, err
}

var _ io.ByteReader = (*countingReader)(nil)

// parseFastStanza parses one top-level <iq/> or <message/> at the start of b, in the default
// namespace jabber:client, if it has the plain form: unprefixed ASCII names, attributes quoted
// without '&', '<' or control bytes (xml:lang the one prefixed attribute, on the stanza only, and
// ignored as the decoder path ignores it), no xmlns on the stanza, and zero or one child that declares
// its own namespace (not jabber:client), with elements nested inside it in the same plain form
// (each in its parent's namespace or one it declares) and only printable-ASCII text without
// '&', '<' or '>'. It returns the stanza and its length; otherwise ok is false, and short reports that b
// ended before the stanza did (more input might make it plain).
func parseFastStanza(b []byte) (s *inStanza, n int, ok, short bool) {
	p := &fastParser{b: b}
	s, n, ok = p.stanza()
	return s, n, ok, !ok && p.short
}

// fastParser is parseFastStanza's state; short is set whenever it runs out of input.
type fastParser struct {
	b     []byte
	short bool
}

// end reports whether i is past the input, noting that the input was short.
func (p *fastParser) end(i int) bool {
	if i >= len(p.b) {
		p.short = true
		return true
	}
	return false
}

func (p *fastParser) stanza() (*inStanza, int, bool) {
	b := p.b
	if p.end(0) || b[0] != '<' {
		return nil, 0, false
	}
	kind, i, ok := scanXMLName(b, 1)
	if p.end(i) || !ok || kind != "iq" && kind != "message" {
		return nil, 0, false
	}
	s := &inStanza{kind: kind}
	attrs, i, closed, ok := p.attrs(i, true)
	if !ok {
		return nil, 0, false
	}
	for _, a := range attrs {
		switch a.name {
		case "xmlns":
			return nil, 0, false
		case "xml:lang":
			// Prosody stamps the sender's stream language on every stanza it routes; the
			// decoder path ignores namespaced attributes of the stanza, and so does this one.
		case "id":
			s.id = a.value
		case "type":
			s.typ = a.value
		case "from":
			s.from = a.value
		case "to":
			s.to = a.value
		}
	}
	if closed {
		return s, i, true
	}
	if p.end(i+1) || b[i] != '<' {
		return nil, 0, false
	}
	if b[i+1] != '/' {
		var w bytes.Buffer
		w.Grow(len(b) - i + 64)
		size := 0
		name, space, j, ok := p.element(&w, i, "\x00", 1, &size)
		if !ok {
			return nil, 0, false
		}
		s.children = []child{{name: xml.Name{Space: space, Local: name}, raw: w.Bytes()}}
		i = j
	}
	if i = p.endTag(i, kind); i < 0 {
		return nil, 0, false
	}
	return s, i, true
}

// element reads one element at b[i] (its '<') and everything inside it, writing it to w the
// way readStanza's elemWriter would: an xmlns declaration where the namespace differs from the
// parent's (always on the stanza's child, parent "\x00"), other attributes in document order,
// text escaped, every element closed with an end tag. It counts size as readStanza does and
// gives up (ok false) past its limits, at a prefix, a namespace it would not take on the fast
// path (none, empty, or jabber:client), or text other than printable ASCII without '&', '<'
// and '>' (white space included).
func (p *fastParser) element(w *bytes.Buffer, i int, parent string, depth int, size *int) (name, space string, next int, ok bool) {
	b := p.b
	if depth > maxDepth || p.end(i+1) || b[i] != '<' {
		return "", "", 0, false
	}
	name, j, ok := scanXMLName(b, i+1)
	if p.end(j) || !ok {
		return "", "", 0, false
	}
	attrs, j, closed, ok := p.attrs(j, false)
	if !ok {
		return "", "", 0, false
	}
	space, hasNS := parent, false
	if depth == 1 {
		space = ""
	}
	for _, a := range attrs {
		if a.name == "xmlns" {
			space, hasNS = a.value, true
		}
		*size += len(a.name) + len(a.value) + 4
	}
	if depth == 1 && !hasNS || space == nsClient || space == "" {
		return "", "", 0, false
	}
	if *size += len(name) + len(space) + 2; *size > maxStanzaBytes {
		return "", "", 0, false
	}
	w.WriteByte('<')
	w.WriteString(name)
	if space != parent {
		w.WriteString(` xmlns="`)
		escapeAttr(w, space)
		w.WriteByte('"')
	}
	for _, a := range attrs {
		if a.name == "xmlns" {
			continue
		}
		w.WriteByte(' ')
		w.WriteString(a.name)
		w.WriteString(`="`)
		escapeAttr(w, a.value)
		w.WriteByte('"')
	}
	w.WriteByte('>')
	for !closed {
		start := j
		for !p.end(j) && b[j] != '<' {
			if c := b[j]; c < 0x20 && c != '\t' && c != '\n' || c > 0x7e || c == '&' || c == '>' {
				return "", "", 0, false
			}
			j++
		}
		if p.short {
			return "", "", 0, false
		}
		if j > start {
			if *size += j - start; *size > maxStanzaBytes {
				return "", "", 0, false
			}
			escapeText(w, b[start:j])
		}
		if p.end(j + 1) {
			return "", "", 0, false
		}
		if b[j+1] == '/' {
			if j = p.endTag(j, name); j < 0 {
				return "", "", 0, false
			}
			break
		}
		if _, _, j, ok = p.element(w, j, space, depth+1, size); !ok {
			return "", "", 0, false
		}
	}
	w.WriteString("</")
	w.WriteString(name)
	w.WriteByte('>')
	return name, space, j, true
}

type fastAttr struct{ name, value string }

// attrs reads the attributes after an element name up to '>' or '/>' (closed). Names are
// unprefixed, except xml:lang where lang is true.
func (p *fastParser) attrs(i int, lang bool) (attrs []fastAttr, next int, closed, ok bool) {
	b := p.b
	for {
		j := skipXMLSpace(b, i)
		if p.end(j) {
			return nil, 0, false, false
		}
		switch b[j] {
		case '>':
			return attrs, j + 1, false, true
		case '/':
			if p.end(j + 1) {
				return nil, 0, false, false
			}
			if b[j+1] == '>' {
				return attrs, j + 2, true, true
			}
			return nil, 0, false, false
		}
		if j == i || len(attrs) == 16 {
			return nil, 0, false, false
		}
		name, k, ok := scanXMLName(b, j)
		if lang && ok && name == "xml" && !p.end(k) && b[k] == ':' {
			var local string
			if local, k, ok = scanXMLName(b, k+1); local != "lang" {
				ok = false
			}
			name = "xml:lang"
		}
		if p.end(k+1) || !ok || b[k] != '=' || b[k+1] != '\'' && b[k+1] != '"' {
			return nil, 0, false, false
		}
		q := b[k+1]
		k += 2
		start := k
		for !p.end(k) && b[k] != q {
			if c := b[k]; c < 0x20 || c > 0x7e || c == '<' || c == '&' {
				return nil, 0, false, false
			}
			k++
		}
		if p.short {
			return nil, 0, false, false
		}
		for _, a := range attrs {
			if a.name == name {
				return nil, 0, false, false
			}
		}
		attrs = append(attrs, fastAttr{name, string(b[start:k])})
		i = k + 1
	}
}

// endTag reads "</name>" (white space allowed before '>') at b[i:] and returns what follows,
// or -1.
func (p *fastParser) endTag(i int, name string) int {
	b := p.b
	if p.end(i+1) || b[i] != '<' || b[i+1] != '/' {
		return -1
	}
	got, k, ok := scanXMLName(b, i+2)
	if p.end(k) || !ok || got != name {
		return -1
	}
	k = skipXMLSpace(b, k)
	if p.end(k) || b[k] != '>' {
		return -1
	}
	return k + 1
}

// fastStanza returns the next stanza from the read buffer if the fast path applies: the
// decoder has consumed exactly what it read (no pushed-back byte) and the buffer holds a plain
// stanza, complete or (then it reads more, as the decoder would) cut short by the buffer's end.
// Read errors are left to the decoder, which meets them again.
func (r *reader) fastStanza() (*inStanza, bool) {
	cr := r.counter
	if cr == nil || r.in.InputOffset()+r.skipped != cr.n {
		return nil, false
	}
	n := cr.br.Buffered()
	if n == 0 {
		// Between stanzas the buffer is usually empty: wait for the next bytes here, as the
		// decoder would, rather than hand every stanza that arrives later to the decoder.
		if _, err := cr.br.Peek(1); err != nil {
			return nil, false
		}
		n = cr.br.Buffered()
	}
	if n < 4 {
		return nil, false
	}
	var s *inStanza
	var used int
	for refills := 0; ; refills++ {
		b, err := cr.br.Peek(n)
		if err != nil {
			return nil, false // the stanza is larger than the buffer: the decoder reads it
		}
		var ok, short bool
		if s, used, ok, short = parseFastStanza(b); ok {
			break
		}
		if !short || refills == maxFastRefills {
			return nil, false
		}
		// A plain stanza so far, not complete yet: wait for more (the decoder would block
		// for it too). Peek fills the buffer with at least one more read.
		n = cr.br.Buffered() + 1
	}
	if _, err := cr.br.Discard(used); err != nil {
		return nil, false
	}
	cr.n += int64(used)
	r.skipped += int64(used)
	return s, true
}
