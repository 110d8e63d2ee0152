package xmlstream

import (
	"bufio"
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"time"
)

var errTooBig = errors.New("xmlstream: stanza larger than the limit")

// recorder is the decoder's io.ByteReader: it keeps every byte the decoder consumed since the
// last trim, so a stanza's raw bytes can be cut out by input offsets, and it refuses to hold
// more than limit bytes, which bounds memory whatever the peer sends.
type recorder struct {
	r     *bufio.Reader
	buf   []byte
	total int64
	limit int
}

// ReadByte returns the next byte and records it, or errTooBig past the limit.
func (r *recorder) ReadByte() (byte, error) {
	if len(r.buf) >= r.limit {
		return 0, errTooBig
	}
	c, err := r.r.ReadByte()
	if err != nil {
		return 0, err
	}
	r.buf = append(r.buf, c)
	r.total++
	return c, nil
}

// Read is only there to satisfy io.Reader; the decoder uses ReadByte.
func (r *recorder) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c, err := r.ReadByte()
	if err != nil {
		return 0, err
	}
	p[0] = c
	return 1, nil
}

// deadlineReader sets a read deadline before each read when an idle timeout is configured
// and the underlying reader supports deadlines.
type deadlineReader struct {
	r       io.Reader
	timeout time.Duration
	setter  interface{ SetReadDeadline(time.Time) error }
	stopped atomic.Bool // set when the stream gives up on the transport
}

// Read reads from the underlying reader after moving the read deadline.
func (d *deadlineReader) Read(p []byte) (int, error) {
	if d.stopped.Load() {
		return 0, os.ErrDeadlineExceeded
	}
	if d.setter != nil && d.timeout > 0 {
		_ = d.setter.SetReadDeadline(time.Now().Add(d.timeout))
	}
	return d.r.Read(p)
}

// reader turns the peer's bytes into header, features and stanzas, enforcing RFC 6120 stream
// rules and the configured limits. It is used by one goroutine at a time.
type reader struct {
	dec      *xml.Decoder
	rec      *recorder
	dr       *deadlineReader
	maxDepth int
	maxAttrs int
	maxSize  int
	// decls are the prefixed namespace declarations of the stream header (other than
	// "stream"), added to stanzas and payloads so that their raw bytes stand alone.
	decls []xml.Attr
	peer  string // peer full JID (XS-12)
	local string
}

func newReader(r io.Reader, cfg *Config) *reader {
	dr := &deadlineReader{r: r, timeout: cfg.IdleTimeout}
	if s, ok := r.(interface{ SetReadDeadline(time.Time) error }); ok {
		dr.setter = s
	}
	// The headers may be larger than a small stanza limit; Initiate/Respond lower it after.
	rec := &recorder{r: bufio.NewReaderSize(dr, 4096), limit: max(cfg.MaxStanzaSize, 8192) + 16}
	d := xml.NewDecoder(rec)
	d.Strict = true
	return &reader{dec: d, rec: rec, dr: dr, maxDepth: cfg.MaxDepth, maxAttrs: cfg.MaxAttrs, maxSize: cfg.MaxStanzaSize}
}

// trim drops recorded bytes the decoder has already consumed as tokens.
func (r *reader) trim() {
	keep := int(r.rec.total - r.dec.InputOffset())
	if keep < 0 || keep > len(r.rec.buf) {
		keep = 0
	}
	if cap(r.rec.buf) > 32<<10 {
		// Do not keep a large stanza's buffer for the life of an idle stream.
		r.rec.buf = append(make([]byte, 0, 1024), r.rec.buf[len(r.rec.buf)-keep:]...)
		return
	}
	n := copy(r.rec.buf, r.rec.buf[len(r.rec.buf)-keep:])
	r.rec.buf = r.rec.buf[:n]
}

// span returns a copy of the recorded bytes between two input offsets.
func (r *reader) span(from, to int64) []byte {
	base := r.rec.total - int64(len(r.rec.buf))
	if from < base || to > r.rec.total || from > to {
		return nil
	}
	return bytes.Clone(r.rec.buf[from-base : to-base])
}

// token reads the next token and maps decoder and I/O failures to stream errors (CORE-6,
// CORE-7) or transport errors.
func (r *reader) token() (xml.Token, error) {
	tok, err := r.dec.Token()
	if err != nil {
		return nil, mapReadErr(err)
	}
	switch t := tok.(type) {
	case xml.Comment:
		return nil, streamErr(RestrictedXML, "comment")
	case xml.ProcInst:
		return nil, streamErr(RestrictedXML, "processing instruction")
	case xml.Directive:
		return nil, streamErr(RestrictedXML, "DTD or directive")
	case xml.StartElement:
		if len(t.Attr) > r.maxAttrs {
			return nil, streamErr(PolicyViolation, "too many attributes")
		}
	}
	return tok, nil
}

func mapReadErr(err error) error {
	var se *xml.SyntaxError
	var ne net.Error
	switch {
	case errors.Is(err, errTooBig):
		return streamErr(PolicyViolation, "stanza too large")
	case errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return streamErr(ConnectionTimeout, "")
	case errors.As(err, &se):
		if se.Msg == "unexpected EOF" {
			return io.ErrUnexpectedEOF
		}
		if strings.HasPrefix(se.Msg, "invalid character entity") {
			return streamErr(RestrictedXML, "entity reference")
		}
		return streamErr(NotWellFormed, "")
	case err == io.EOF:
		return io.ErrUnexpectedEOF
	case strings.Contains(err.Error(), "CharsetReader"):
		return streamErr(UnsupportedEncoding, "")
	}
	return err
}

// header reads the optional XML declaration (CORE-3) and the <stream:stream> start tag, and
// checks CORE-1: the streams namespace bound to the stream prefix, jabber:client as default.
func (r *reader) header() (xml.StartElement, error) {
	first := true
	for {
		tok, err := r.dec.Token()
		if err != nil {
			return xml.StartElement{}, mapReadErr(err)
		}
		switch t := tok.(type) {
		case xml.ProcInst:
			if !first || t.Target != "xml" {
				return xml.StartElement{}, streamErr(RestrictedXML, "processing instruction")
			}
		case xml.CharData:
			if len(bytes.Trim(t, " \t\r\n")) != 0 {
				return xml.StartElement{}, streamErr(NotWellFormed, "text before the stream header")
			}
		case xml.Comment, xml.Directive:
			return xml.StartElement{}, streamErr(RestrictedXML, "comment or DTD")
		case xml.StartElement:
			if len(t.Attr) > r.maxAttrs {
				return xml.StartElement{}, streamErr(PolicyViolation, "too many attributes")
			}
			if t.Name != (xml.Name{Space: NSStream, Local: "stream"}) {
				return xml.StartElement{}, streamErr(InvalidNamespace, "not a stream header")
			}
			if v, _ := attrValue(t.Attr, "xmlns", "stream"); v != NSStream {
				return xml.StartElement{}, streamErr(InvalidNamespace, "stream prefix not declared")
			}
			if v, _ := attrValue(t.Attr, "", "xmlns"); v != NSClient {
				return xml.StartElement{}, streamErr(InvalidNamespace, "default namespace is not jabber:client")
			}
			for _, a := range t.Attr {
				if a.Name.Space == "xmlns" && a.Name.Local != "stream" {
					r.decls = append(r.decls, a)
				}
			}
			r.trim()
			return t, nil
		case xml.EndElement:
			return xml.StartElement{}, streamErr(NotWellFormed, "")
		}
		first = false
		r.trim()
	}
}

// features reads the responder's <stream:features/> (CORE-4). Its content is ignored: under
// XTLS nothing is negotiated inside the stream (XS-5).
func (r *reader) features() error {
	for {
		tok, err := r.token()
		if err != nil {
			return err
		}
		switch t := tok.(type) {
		case xml.CharData:
			if len(bytes.Trim(t, " \t\r\n")) != 0 {
				return streamErr(BadFormat, "text between stanzas")
			}
			r.trim()
			continue
		case xml.StartElement:
			if t.Name == (xml.Name{Space: NSStream, Local: "error"}) {
				return r.streamError()
			}
			if t.Name != (xml.Name{Space: NSStream, Local: "features"}) {
				return streamErr(BadFormat, "expected stream features")
			}
			if err := r.skip(1); err != nil {
				return err
			}
			r.trim()
			return nil
		case xml.EndElement:
			return errPeerClosed
		}
	}
}

// skip consumes tokens until the element opened at depth returns (depth counts the open
// element itself), enforcing the depth limit.
func (r *reader) skip(depth int) error {
	for depth > 0 {
		tok, err := r.token()
		if err != nil {
			return err
		}
		switch tok.(type) {
		case xml.StartElement:
			depth++
			if depth > r.maxDepth {
				return streamErr(PolicyViolation, "nested too deep")
			}
		case xml.EndElement:
			depth--
		}
	}
	return nil
}

var errPeerClosed = errors.New("xmlstream: peer closed the stream")

// streamError reads the rest of a <stream:error/> (its start tag already consumed).
func (r *reader) streamError() error {
	e := &StreamError{Remote: true}
	depth := 1
	var text strings.Builder
	inText := false
	for depth > 0 {
		tok, err := r.token()
		if err != nil {
			return err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if depth > r.maxDepth {
				return streamErr(PolicyViolation, "nested too deep")
			}
			if depth == 2 && t.Name.Space == NSStreamErrors {
				if t.Name.Local == "text" {
					inText = true
				} else if e.Condition == "" {
					e.Condition = t.Name.Local
				}
			}
		case xml.EndElement:
			depth--
			inText = false
		case xml.CharData:
			if inText && text.Len() < 1024 {
				text.Write(t)
			}
		}
	}
	if e.Condition == "" {
		e.Condition = UndefinedCondition
	}
	e.Text = text.String()
	if len(e.Text) > 1024 {
		e.Text = e.Text[:1024]
	}
	return e
}

// next reads the next stanza. It returns errPeerClosed at </stream:stream>, a remote
// *StreamError for <stream:error/>, a local *StreamError for a violation, or an I/O error.
// Whitespace between stanzas (keepalives, CORE-11) is skipped.
func (r *reader) next() (*Stanza, error) {
	for {
		r.trim()
		start := r.dec.InputOffset()
		tok, err := r.token()
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.CharData:
			if len(bytes.Trim(t, " \t\r\n")) != 0 {
				return nil, streamErr(BadFormat, "text between stanzas")
			}
		case xml.EndElement:
			return nil, errPeerClosed
		case xml.StartElement:
			if t.Name == (xml.Name{Space: NSStream, Local: "error"}) {
				return nil, r.streamError()
			}
			return r.stanza(t, start)
		}
	}
}

// stanza reads one stanza whose start tag t began at input offset start.
func (r *reader) stanza(t xml.StartElement, start int64) (*Stanza, error) {
	if t.Name.Space != NSClient {
		if t.Name.Space == NSStream {
			return nil, streamErr(UnsupportedStanzaType, t.Name.Local)
		}
		return nil, streamErr(InvalidNamespace, "")
	}
	switch t.Name.Local {
	case "message", "presence", "iq":
	default:
		return nil, streamErr(UnsupportedStanzaType, t.Name.Local)
	}
	s := &Stanza{Name: t.Name, Attr: t.Attr}
	s.From, _ = attrValue(t.Attr, "", "from")
	s.To, _ = attrValue(t.Attr, "", "to")
	s.Type, _ = attrValue(t.Attr, "", "type")
	s.ID, _ = attrValue(t.Attr, "", "id")
	// XS-12: no from = the authenticated peer; otherwise its full or bare JID.
	switch s.From {
	case "":
		s.From = r.peer
	case r.peer, bare(r.peer):
	default:
		return nil, streamErr(InvalidFrom, "stanza from "+truncate(s.From))
	}
	if s.To == "" {
		s.To = r.local
	}
	var (
		depth      = 1
		children   int
		childStart int64
		childTag   xml.StartElement
		payload    []byte
	)
	for depth > 0 {
		before := r.dec.InputOffset()
		tok, err := r.token()
		if err != nil {
			return nil, err
		}
		switch tt := tok.(type) {
		case xml.StartElement:
			depth++
			if depth > r.maxDepth {
				return nil, streamErr(PolicyViolation, "nested too deep")
			}
			if depth == 2 {
				children++
				if children == 1 {
					childStart, childTag = before, tt
				}
			}
		case xml.EndElement:
			depth--
			if depth == 1 && children == 1 && payload == nil {
				payload = r.complete(r.span(childStart, r.dec.InputOffset()), childTag, t.Attr)
				s.payloadName = childTag.Name
			}
		}
	}
	s.Raw = r.complete(r.span(start, r.dec.InputOffset()), t, nil)
	s.payload = payload
	s.children = children
	if s.Name.Local == "iq" {
		if err := checkIQ(s); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// checkIQ applies CORE-9 to a received iq.
func checkIQ(s *Stanza) error {
	if s.ID == "" {
		return streamErr(BadFormat, "iq without id")
	}
	switch s.Type {
	case "get", "set":
		if s.children != 1 {
			return streamErr(BadFormat, "iq get/set must have exactly one child")
		}
	case "result":
		if s.children > 1 {
			return streamErr(BadFormat, "iq result with more than one child")
		}
	case "error":
	default:
		return streamErr(BadFormat, "iq type")
	}
	return nil
}

// complete makes raw (an element as received) stand alone: when its name is unprefixed and it
// declares no default namespace, the namespace it inherited is declared on it; prefixed
// declarations in scope (stream header, parent) that it does not redeclare are added too.
func (r *reader) complete(raw []byte, t xml.StartElement, parent []xml.Attr) []byte {
	if len(raw) < 2 || raw[0] != '<' {
		return raw
	}
	end := 1
	for end < len(raw) && !strings.ContainsRune(" \t\r\n/>", rune(raw[end])) {
		end++
	}
	qname := raw[1:end]
	var add bytes.Buffer
	if _, ok := attrValue(t.Attr, "", "xmlns"); !ok && !bytes.ContainsRune(qname, ':') {
		add.WriteString(" xmlns='")
		escAttr(&add, t.Name.Space)
		add.WriteByte('\'')
	}
	seen := make(map[string]bool)
	for _, a := range t.Attr {
		if a.Name.Space == "xmlns" {
			seen[a.Name.Local] = true
		}
	}
	for _, list := range [][]xml.Attr{parent, r.decls} {
		for _, a := range list {
			if a.Name.Space != "xmlns" || a.Name.Local == "stream" || seen[a.Name.Local] {
				continue
			}
			seen[a.Name.Local] = true
			add.WriteString(" xmlns:" + a.Name.Local + "='")
			escAttr(&add, a.Value)
			add.WriteByte('\'')
		}
	}
	if add.Len() == 0 {
		return raw
	}
	out := make([]byte, 0, len(raw)+add.Len())
	out = append(out, raw[:end]...)
	out = append(out, add.Bytes()...)
	return append(out, raw[end:]...)
}

func attrValue(attrs []xml.Attr, space, local string) (string, bool) {
	for _, a := range attrs {
		if a.Name.Space == space && a.Name.Local == local {
			return a.Value, true
		}
	}
	return "", false
}

// bare returns the bare JID of a full JID (everything before the first '/').
func bare(jid string) string {
	if i := strings.IndexByte(jid, '/'); i >= 0 {
		return jid[:i]
	}
	return jid
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
