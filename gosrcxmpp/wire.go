package gosrcxmpp

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Namespaces the adapter reads and writes itself.
const (
	nsClient  = "jabber:client"
	nsStream  = "http://etherx.jabber.org/streams"
	nsStanzas = "urn:ietf:params:xml:ns:xmpp-stanzas"
	nsStreams = "urn:ietf:params:xml:ns:xmpp-streams"
	nsPing    = "urn:xmpp:ping"
	xmlURL    = "http://www.w3.org/XML/1998/namespace"
)

// Limits of the stanza reader. Prosody refuses stanzas above 256 KiB, so maxStanzaBytes is only
// reached by a broken or hostile server; such a stanza is consumed and dropped (or, for an IQ
// get/set, answered with policy-violation), it never ends the session.
const (
	maxStanzaBytes = 1 << 20
	maxDepth       = 64
	maxChildren    = 64
)

// child is one child element of a stanza, re-serialised with explicit namespaces.
type child struct {
	name xml.Name
	raw  []byte
}

// inStanza is a top-level stanza as the adapter's reader captured it from the wire.
type inStanza struct {
	kind               string // "iq", "message" or "presence"
	id, typ, from, to  string
	children           []child // in document order, without <error/>
	err                *StanzaError
	invalid            error // limits exceeded or malformed: do not dispatch the payload
	stanzaErrorPresent bool
}

// payload returns the first child (the IQ payload), or nil.
func (s *inStanza) payload() *child {
	if len(s.children) == 0 {
		return nil
	}
	return &s.children[0]
}

var errLimit = errors.New("gosrcxmpp: stanza exceeds the reader's limits")

// readStanza reads the rest of the element opened by start from d (a namespace-aware decoder,
// so names carry resolved namespaces) and captures its attributes, its child elements as exact
// XML and its stanza error. It returns an error only if d itself fails (broken XML ends the
// stream anyway); limit violations are reported in inStanza.invalid after the element has been
// consumed in full.
func readStanza(d *xml.Decoder, start xml.StartElement) (*inStanza, error) {
	s := &inStanza{kind: start.Name.Local}
	for _, a := range start.Attr {
		if a.Name.Space != "" {
			continue
		}
		switch a.Name.Local {
		case "id":
			s.id = a.Value
		case "type":
			s.typ = a.Value
		case "from":
			s.from = a.Value
		case "to":
			s.to = a.Value
		}
	}
	var (
		size  int
		w     *elemWriter // the child being captured, nil between children
		isErr bool        // the child being captured is the stanza's <error/>
		errW  *elemWriter
	)
	depth := 0 // depth inside the stanza element
	for {
		tok, err := d.Token()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			size += len(t.Name.Local) + len(t.Name.Space) + 2
			for _, a := range t.Attr {
				size += len(a.Name.Local) + len(a.Name.Space) + len(a.Value) + 4
			}
			if depth == 1 {
				if t.Name.Local == "error" && t.Name.Space == start.Name.Space {
					if s.stanzaErrorPresent {
						s.invalid = errors.New("gosrcxmpp: more than one <error/>")
					}
					s.stanzaErrorPresent = true
					isErr = true
					errW = newElemWriter()
					w = errW
				} else {
					isErr = false
					if len(s.children) >= maxChildren {
						s.invalid = errLimit
					}
					w = newElemWriter()
				}
			}
			if depth > maxDepth || size > maxStanzaBytes {
				s.invalid = errLimit
			}
			if s.invalid == nil && w != nil {
				w.start(t)
			}
		case xml.EndElement:
			if depth == 0 {
				// End of the stanza itself.
				if s.invalid == nil && errW != nil {
					s.err = decodeStanzaError(errW.buf.Bytes())
				}
				return s, nil
			}
			if s.invalid == nil && w != nil {
				w.end(t)
			}
			depth--
			if depth == 0 {
				if w.bad {
					s.invalid = errors.New("gosrcxmpp: invalid XML name in stanza")
				}
				if s.invalid == nil && !isErr {
					s.children = append(s.children, child{name: w.rootName, raw: w.buf.Bytes()})
				}
				w = nil
			}
		case xml.CharData:
			size += len(t)
			if size > maxStanzaBytes {
				s.invalid = errLimit
			}
			if s.invalid == nil && w != nil && depth > 0 {
				w.text(t)
			}
		case xml.Comment, xml.ProcInst, xml.Directive:
			// RFC 6120 §11.1 forbids them in stanzas; a server never forwards them. Dropped.
		}
	}
}

// elemWriter re-serialises a token stream as XML: every element whose namespace differs from
// its parent's gets an xmlns declaration, and namespaced attributes get prefixes declared on
// their element. Original xmlns declarations are dropped (the names are already resolved), so
// the output never depends on the prefixes the sender chose (GOSRC.md §3.B3).
type elemWriter struct {
	bad      bool // a name was not an NCName (encoding/xml accepts e.g. <p:0/>)
	buf      bytes.Buffer
	spaces   []string // default namespace of each open element
	rootName xml.Name
}

func newElemWriter() *elemWriter { return &elemWriter{} }

func (w *elemWriter) start(t xml.StartElement) {
	parent := ""
	if len(w.spaces) == 0 {
		w.rootName = t.Name
		parent = "\x00" // force a declaration on the root
	} else {
		parent = w.spaces[len(w.spaces)-1]
	}
	if !isNCName(t.Name.Local) {
		w.bad = true
	}
	w.buf.WriteByte('<')
	w.buf.WriteString(t.Name.Local)
	if t.Name.Space != parent {
		w.buf.WriteString(` xmlns="`)
		escapeAttr(&w.buf, t.Name.Space)
		w.buf.WriteByte('"')
	}
	var prefixes []string // namespaces of attributes, prefix = "a" + index
	for _, a := range t.Attr {
		if a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns") {
			continue
		}
		if !isNCName(a.Name.Local) {
			w.bad = true
		}
		w.buf.WriteByte(' ')
		switch a.Name.Space {
		case "":
		case xmlURL, "xml":
			w.buf.WriteString("xml:")
		default:
			i := 0
			for i < len(prefixes) && prefixes[i] != a.Name.Space {
				i++
			}
			if i == len(prefixes) {
				prefixes = append(prefixes, a.Name.Space)
			}
			w.buf.WriteString("a" + strconv.Itoa(i) + ":")
		}
		w.buf.WriteString(a.Name.Local)
		w.buf.WriteString(`="`)
		escapeAttr(&w.buf, a.Value)
		w.buf.WriteByte('"')
	}
	for i, p := range prefixes {
		w.buf.WriteString(" xmlns:a" + strconv.Itoa(i) + `="`)
		escapeAttr(&w.buf, p)
		w.buf.WriteByte('"')
	}
	w.buf.WriteByte('>')
	w.spaces = append(w.spaces, t.Name.Space)
}

func (w *elemWriter) end(t xml.EndElement) {
	w.buf.WriteString("</")
	w.buf.WriteString(t.Name.Local)
	w.buf.WriteByte('>')
	w.spaces = w.spaces[:len(w.spaces)-1]
}

func (w *elemWriter) text(t xml.CharData) { escapeText(&w.buf, []byte(t)) }

// escapeText writes s as XML character data.
func escapeText[T string | []byte](b *bytes.Buffer, s T) {
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

// escapeAttr writes s as the value of an attribute quoted with either quote character.
func escapeAttr(b *bytes.Buffer, s string) {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '&':
			b.WriteString("&amp;")
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '"':
			b.WriteString("&quot;")
		case '\'':
			b.WriteString("&apos;")
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

// attrString returns s escaped for an attribute value.
func attrString(s string) string {
	var b bytes.Buffer
	escapeAttr(&b, s)
	return b.String()
}

// StanzaError is a stanza error (RFC 6120 §8.3) received from a peer or the server, or one the
// adapter sends for a handler's error. Request returns it; use errors.As with the
// StanzaError() behaviour (or with *StanzaError) to read it.
type StanzaError struct {
	Type      string   // auth, cancel, continue, modify or wait
	Condition string   // RFC 6120 defined condition, e.g. "item-not-found"
	App       xml.Name // application-specific condition, e.g. {urn:xmpp:jingle:errors:1}unknown-session
	Text      string   // human-readable text, may be empty
}

// Error implements error.
func (e *StanzaError) Error() string {
	s := "xmpp stanza error: " + e.Type + " " + e.Condition
	if e.App.Local != "" {
		s += " (" + e.App.Space + " " + e.App.Local + ")"
	}
	if e.Text != "" {
		s += ": " + strconv.Quote(e.Text)
	}
	return s
}

// StanzaError reports the error's type, defined condition, application condition and text.
func (e *StanzaError) StanzaError() (typ, condition string, app xml.Name, text string) {
	return e.Type, e.Condition, e.App, e.Text
}

// conditionCodes maps RFC 6120 §8.3.3 conditions to the legacy codes of XEP-0086, which
// gosrc.io/xmpp (GOSRC.md §2 "Answer error") and old clients still expect.
var conditionCodes = map[string]int{
	"bad-request": 400, "conflict": 409, "feature-not-implemented": 501, "forbidden": 403,
	"gone": 302, "internal-server-error": 500, "item-not-found": 404, "jid-malformed": 400,
	"not-acceptable": 406, "not-allowed": 405, "not-authorized": 401, "policy-violation": 403,
	"recipient-unavailable": 404, "redirect": 302, "registration-required": 407,
	"remote-server-not-found": 404, "remote-server-timeout": 504, "resource-constraint": 500,
	"service-unavailable": 503, "subscription-required": 407, "undefined-condition": 500,
	"unexpected-request": 400,
}

var errorTypes = map[string]bool{"auth": true, "cancel": true, "continue": true, "modify": true, "wait": true}

// Bounds of what decodeStanzaError keeps.
const (
	maxErrorText = 1024
	maxNameLen   = 256
)

// decodeStanzaError parses an <error/> element (as captured by readStanza, or any bytes) into
// a StanzaError. It never fails: unknown or missing parts become undefined-condition / cancel,
// so that a peer's malformed error still reaches the requester as an error. Text is truncated
// to maxErrorText bytes of valid UTF-8.
func decodeStanzaError(raw []byte) *StanzaError {
	e := &StanzaError{}
	d := xml.NewDecoder(bytes.NewReader(raw))
	depth := 0
	inText := false
	var text strings.Builder
	for {
		tok, err := d.Token()
		if err != nil {
			break
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			switch depth {
			case 1:
				for _, a := range t.Attr {
					if a.Name.Space == "" && a.Name.Local == "type" {
						e.Type = a.Value
					}
				}
			case 2:
				switch {
				case t.Name.Space == nsStanzas && t.Name.Local == "text":
					inText = text.Len() == 0
				case t.Name.Space == nsStanzas:
					if e.Condition == "" {
						e.Condition = t.Name.Local
					}
				default:
					if e.App.Local == "" && len(t.Name.Local) <= maxNameLen && len(t.Name.Space) <= maxNameLen {
						e.App = t.Name
					}
				}
			}
		case xml.EndElement:
			if depth == 2 {
				inText = false
			}
			depth--
		case xml.CharData:
			if inText && depth == 2 && text.Len() < maxErrorText {
				text.Write(t)
			}
		}
	}
	if !errorTypes[e.Type] {
		e.Type = "cancel"
	}
	if _, ok := conditionCodes[e.Condition]; !ok {
		e.Condition = "undefined-condition"
	}
	e.Text = truncateUTF8(text.String(), maxErrorText)
	return e
}

func truncateUTF8(s string, n int) string {
	if len(s) > n {
		s = s[:n]
	}
	for !utf8.ValidString(s) && len(s) > 0 {
		s = s[:len(s)-1]
	}
	return s
}

// stanzaErrorer is the behaviour of errors that carry an XMPP condition.
type stanzaErrorer interface {
	StanzaError() (typ, condition string, app xml.Name, text string)
}

// errorFor maps a handler's error to the stanza error to send: through the StanzaError
// behaviour, else internal-server-error without the error's text (it may hold internals).
func errorFor(err error) *StanzaError {
	var se stanzaErrorer
	if errors.As(err, &se) {
		typ, cond, app, text := se.StanzaError()
		if _, ok := conditionCodes[cond]; !ok {
			cond = "undefined-condition"
		}
		if !errorTypes[typ] {
			typ = "cancel"
		}
		return &StanzaError{Type: typ, Condition: cond, App: app, Text: text}
	}
	return &StanzaError{Type: "cancel", Condition: "internal-server-error"}
}

// appendErrorXML appends the <error/> element for e, with the legacy code (never 0), the
// defined condition, the text and the application condition.
func appendErrorXML(b *bytes.Buffer, e *StanzaError) {
	cond, typ := e.Condition, e.Type
	code, ok := conditionCodes[cond]
	if !ok {
		cond, code = "undefined-condition", 500
	}
	if !errorTypes[typ] {
		typ = "cancel"
	}
	fmt.Fprintf(b, `<error type="%s" code="%d"><%s xmlns="%s"/>`, typ, code, cond, nsStanzas)
	if e.Text != "" {
		b.WriteString(`<text xmlns="` + nsStanzas + `" xml:lang="en">`)
		escapeText(b, e.Text)
		b.WriteString(`</text>`)
	}
	if e.App.Local != "" && validName(e.App.Local) {
		b.WriteString("<" + e.App.Local + ` xmlns="`)
		escapeAttr(b, e.App.Space)
		b.WriteString(`"/>`)
	}
	b.WriteString("</error>")
}

// isNCName reports whether s is an XML NCName (Namespaces in XML 1.0 §3), conservatively:
// letters, digits, '_', '-', '.', and combining marks, not starting with a digit, '-' or '.'.
func isNCName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_' || unicode.IsLetter(r):
		case i > 0 && (r == '-' || r == '.' || unicode.IsDigit(r) || unicode.In(r, unicode.Mn, unicode.Mc, unicode.Nd, unicode.Lm)):
		default:
			return false
		}
	}
	return true
}

// validName reports whether s is usable as an XML local name without escaping (a conservative
// subset of NCName).
func validName(s string) bool {
	if s == "" || len(s) > maxNameLen {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z'):
		case i > 0 && (r == '-' || r == '.' || (r >= '0' && r <= '9')):
		default:
			return false
		}
	}
	return true
}

// elementName checks that b is exactly one well-formed XML element (white space around it is
// allowed) without comments, processing instructions or directives, and returns its name.
func elementName(b []byte) (xml.Name, error) {
	if name, ok := fastElementName(b); ok {
		return name, nil
	}
	d := xml.NewDecoder(bytes.NewReader(b))
	var name xml.Name
	depth := 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			if depth != 0 || name.Local == "" {
				return xml.Name{}, errors.New("gosrcxmpp: payload is not one complete element")
			}
			return name, nil
		}
		if err != nil {
			return xml.Name{}, fmt.Errorf("gosrcxmpp: payload: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if depth == 0 {
				if name.Local != "" {
					return xml.Name{}, errors.New("gosrcxmpp: payload has more than one element")
				}
				name = t.Name
			}
			depth++
		case xml.EndElement:
			depth--
		case xml.CharData:
			if depth == 0 && len(bytes.TrimSpace(t)) > 0 {
				return xml.Name{}, errors.New("gosrcxmpp: payload has text outside the element")
			}
		case xml.Comment, xml.ProcInst, xml.Directive:
			return xml.Name{}, errors.New("gosrcxmpp: payload has a comment, processing instruction or directive")
		}
	}
}

// fastElementName recognises, without a decoder, the shape almost every payload of ours has:
// one element with unprefixed ASCII names, distinct attributes quoted without '<', '&' or
// non-ASCII bytes, and either no content or text of printable ASCII without markup (an IBB
// <data/> block, a Jingle action without children). It reports false for anything else, and
// elementName then uses encoding/xml; FuzzElementName checks that every input it accepts is
// one encoding/xml accepts with the same name. A 4 KiB IBB block costs ≈140 µs through the
// decoder, which was most of the sender's CPU per block.
func fastElementName(b []byte) (xml.Name, bool) {
	i := skipXMLSpace(b, 0)
	if i >= len(b) || b[i] != '<' {
		return xml.Name{}, false
	}
	name, i, ok := scanXMLName(b, i+1)
	if !ok {
		return xml.Name{}, false
	}
	var (
		space string
		seen  [8]string
		n     int
	)
	for {
		j := skipXMLSpace(b, i)
		if j >= len(b) {
			return xml.Name{}, false
		}
		if b[j] == '>' || b[j] == '/' {
			i = j
			break
		}
		if j == i { // attributes need white space before them
			return xml.Name{}, false
		}
		attr, k, ok := scanXMLName(b, j)
		if !ok || k+1 >= len(b) || b[k] != '=' || (b[k+1] != '\'' && b[k+1] != '"') {
			return xml.Name{}, false
		}
		q := b[k+1]
		k += 2
		start := k
		for k < len(b) && b[k] != q {
			if c := b[k]; c < 0x20 || c > 0x7e || c == '<' || c == '&' {
				return xml.Name{}, false
			}
			k++
		}
		if k >= len(b) || n == len(seen) {
			return xml.Name{}, false
		}
		for _, a := range seen[:n] {
			if a == attr {
				return xml.Name{}, false
			}
		}
		seen[n] = attr
		n++
		if attr == "xmlns" {
			space = string(b[start:k])
		}
		i = k + 1
	}
	if b[i] == '/' {
		if i+1 >= len(b) || b[i+1] != '>' {
			return xml.Name{}, false
		}
		i += 2
	} else {
		i++
		for i < len(b) && b[i] != '<' {
			if c := b[i]; c < 0x20 && c != '\t' && c != '\n' && c != '\r' || c > 0x7e || c == '&' || c == '>' {
				return xml.Name{}, false
			}
			i++
		}
		if i+1 >= len(b) || b[i+1] != '/' {
			return xml.Name{}, false
		}
		end, k, ok := scanXMLName(b, i+2)
		if !ok || end != name {
			return xml.Name{}, false
		}
		k = skipXMLSpace(b, k)
		if k >= len(b) || b[k] != '>' {
			return xml.Name{}, false
		}
		i = k + 1
	}
	if skipXMLSpace(b, i) != len(b) {
		return xml.Name{}, false
	}
	return xml.Name{Space: space, Local: name}, true
}

func skipXMLSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// scanXMLName reads an unprefixed ASCII name at b[i:]: a letter or '_', then letters, digits,
// '-', '_' or '.'.
func scanXMLName(b []byte, i int) (string, int, bool) {
	start := i
	for i < len(b) {
		c := b[i]
		letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_'
		if !letter && (i == start || !(c >= '0' && c <= '9' || c == '-' || c == '.')) {
			break
		}
		i++
	}
	if i == start {
		return "", i, false
	}
	return string(b[start:i]), i, true
}
