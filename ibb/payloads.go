package ibb

import (
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"io"
	"strconv"
	"unicode/utf8"
)

// Namespaces of the elements this package reads and writes.
const (
	// NS is the XEP-0047 namespace of <open/>, <data/> and <close/>.
	NS = "http://jabber.org/protocol/ibb"
	// NSJingle is the XEP-0261 namespace of the Jingle <transport/> element.
	NSJingle = "urn:xmpp:jingle:transports:ibb:1"
)

// Block-size limits (bytes of payload per <data/> before Base64, IBB-1).
const (
	// DefaultBlockSize is the RECOMMENDED block size (IBB-1, ERR-6).
	DefaultBlockSize = 4096
	// MaxBlockSize is the largest block-size accepted from a peer (IBB-1: xs:unsignedShort).
	MaxBlockSize = 65535
	// MaxEmitBlockSize is the largest block-size this package sends (ERR-6: XEP-0261 types it
	// as xs:short).
	MaxEmitBlockSize = 32767
)

// maxElementLen bounds the serialised size of any element accepted from a peer: the Base64
// of a 65535-byte block is 87380 characters, and XML white space (line breaks every 76
// characters, indentation) may be added around it.
const maxElementLen = 128 << 10

// Stanza kinds that carry <data/> (the open's stanza attribute, IBB-3).
const (
	StanzaIQ      = "iq"
	StanzaMessage = "message"
)

// Open is the XEP-0047 <open/> element.
type Open struct {
	SID       string
	BlockSize int
	Stanza    string // StanzaIQ or StanzaMessage; empty on input means iq
}

// Data is the XEP-0047 <data/> element with its payload decoded.
type Data struct {
	SID     string
	Seq     uint16
	Payload []byte
}

// Close is the XEP-0047 <close/> element.
type Close struct {
	SID string
}

// Transport is the XEP-0261 Jingle <transport/> element.
type Transport struct {
	SID       string
	BlockSize int
	Stanza    string // StanzaIQ or StanzaMessage; empty on input means iq
}

// ValidSID reports whether sid is an XML NMTOKEN (IBB-2) of at most 256 bytes.
func ValidSID(sid string) bool {
	if sid == "" || len(sid) > 256 || !utf8.ValidString(sid) {
		return false
	}
	for _, r := range sid {
		if !isNameChar(r) {
			return false
		}
	}
	return true
}

// isNameChar reports whether r is an XML 1.0 NameChar (the characters of an NMTOKEN).
func isNameChar(r rune) bool {
	switch {
	case r == ':' || r == '_' || r == '-' || r == '.':
		return true
	case 'A' <= r && r <= 'Z', 'a' <= r && r <= 'z', '0' <= r && r <= '9':
		return true
	case r < 0x80:
		return false
	case r == 0xB7, 0xC0 <= r && r <= 0xD6, 0xD8 <= r && r <= 0xF6, 0xF8 <= r && r <= 0x37D,
		0x37F <= r && r <= 0x1FFF, 0x200C <= r && r <= 0x200D, 0x2070 <= r && r <= 0x218F,
		0x2C00 <= r && r <= 0x2FEF, 0x3001 <= r && r <= 0xD7FF, 0xF900 <= r && r <= 0xFDCF,
		0xFDF0 <= r && r <= 0xFFFD, 0x10000 <= r && r <= 0xEFFFF,
		0x300 <= r && r <= 0x36F, 0x203F <= r && r <= 0x2040:
		return true
	}
	return false
}

// parseSeq parses an xs:unsignedShort (IBB-7).
func parseSeq(s string) (uint16, error) {
	if s == "" || len(s) > 16 {
		return 0, badRequest("seq is not an unsigned 16-bit number")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, badRequest("seq is not an unsigned 16-bit number")
		}
	}
	v, err := strconv.ParseUint(s, 10, 16)
	if err != nil {
		return 0, badRequest("seq is not an unsigned 16-bit number")
	}
	return uint16(v), nil
}

// parseBlockSize parses block-size: 1..65535 (IBB-1, ERR-6).
func parseBlockSize(s string) (int, error) {
	if s == "" || len(s) > 16 {
		return 0, badRequest("block-size missing or not a number")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, badRequest("block-size is not a number")
		}
	}
	v, err := strconv.ParseUint(s, 10, 32)
	if err != nil || v == 0 || v > MaxBlockSize {
		return 0, badRequest("block-size out of range 1..65535")
	}
	return int(v), nil
}

func parseStanza(s string) (string, error) {
	switch s {
	case "", StanzaIQ:
		return StanzaIQ, nil
	case StanzaMessage:
		return StanzaMessage, nil
	}
	return "", badRequest("stanza is neither iq nor message")
}

// isXMLSpace reports whether c is XML white space (SP, TAB, CR, LF).
func isXMLSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// decodeBase64 strips XML white space and decodes strictly (IBB-6, IBB-19, ERR-5). It
// rejects payloads that decode to more than MaxBlockSize bytes; the input is bounded by
// maxElementLen.
func decodeBase64(text []byte) ([]byte, error) {
	// The decoder itself skips CR and LF; only SP and TAB need removing, and most blocks
	// have none (two vectorised scans instead of a byte loop).
	clean := text
	if bytes.IndexByte(text, ' ') >= 0 || bytes.IndexByte(text, '\t') >= 0 {
		clean = make([]byte, 0, len(text))
		for _, c := range text {
			if c != ' ' && c != '\t' {
				clean = append(clean, c)
			}
		}
	}
	out := make([]byte, base64.StdEncoding.DecodedLen(len(clean)))
	n, err := base64.StdEncoding.Strict().Decode(out, clean)
	if err != nil {
		return nil, badRequest("data is not valid Base64")
	}
	if n > MaxBlockSize {
		return nil, badRequest("data payload larger than 65535 bytes")
	}
	return out[:n], nil
}

// element is one element parsed by the strict generic decoder.
type element struct {
	name  xml.Name
	attrs map[string]string // attributes without a namespace prefix
	text  []byte            // character data (only when allowed)
}

var errNotOneElement = errors.New("not exactly one element")

// parseElement is the strict, bounded decoder for every element of this package: exactly one
// element (white space around it allowed), no comments, processing instructions or
// directives, no child elements, no duplicate attributes, and character data only when
// allowText is set.
func parseElement(b []byte, allowText bool) (*element, error) {
	if len(b) > maxElementLen {
		return nil, badRequest("element too large")
	}
	d := xml.NewDecoder(bytes.NewReader(b))
	d.Strict = true
	var el *element
	depth := 0
	done := false
	for {
		tok, err := d.Token()
		if err == io.EOF {
			if el == nil || !done {
				return nil, badRequest(errNotOneElement.Error())
			}
			return el, nil
		}
		if err != nil {
			return nil, badRequest("malformed XML")
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if el != nil {
				return nil, badRequest("unexpected child element or second element")
			}
			el = &element{attrs: make(map[string]string, len(t.Attr))}
			seen := make(map[xml.Name]bool, len(t.Attr))
			for _, a := range t.Attr {
				if seen[a.Name] {
					return nil, badRequest("duplicate attribute")
				}
				seen[a.Name] = true
				if a.Name.Space == "" && a.Name.Local != "xmlns" {
					el.attrs[a.Name.Local] = a.Value
				}
			}
			el.name = t.Name
			depth++
		case xml.EndElement:
			depth--
			if depth == 0 {
				done = true
			}
		case xml.CharData:
			if depth == 0 || !allowText {
				for _, c := range t {
					if !isXMLSpace(c) {
						return nil, badRequest("unexpected text")
					}
				}
				continue
			}
			el.text = append(el.text, t...)
		default: // comments, processing instructions, directives
			return nil, badRequest("comment, processing instruction or directive")
		}
	}
}

func parseNamed(b []byte, space, local string, allowText bool) (*element, error) {
	el, err := parseElement(b, allowText)
	if err != nil {
		return nil, err
	}
	if el.name.Space != space || el.name.Local != local {
		return nil, badRequest("not a {" + space + "}" + local + " element")
	}
	return el, nil
}

func (el *element) sid() (string, error) {
	sid, ok := el.attrs["sid"]
	if !ok || !ValidSID(sid) {
		return "", badRequest("sid missing or not an NMTOKEN")
	}
	return sid, nil
}

// ParseOpen decodes an <open/> element strictly.
func ParseOpen(b []byte) (Open, error) {
	el, err := parseNamed(b, NS, "open", false)
	if err != nil {
		return Open{}, err
	}
	var o Open
	if o.SID, err = el.sid(); err != nil {
		return Open{}, err
	}
	if o.BlockSize, err = parseBlockSize(el.attrs["block-size"]); err != nil {
		return Open{}, err
	}
	if o.Stanza, err = parseStanza(el.attrs["stanza"]); err != nil {
		return Open{}, err
	}
	return o, nil
}

// ParseClose decodes a <close/> element strictly.
func ParseClose(b []byte) (Close, error) {
	el, err := parseNamed(b, NS, "close", false)
	if err != nil {
		return Close{}, err
	}
	sid, err := el.sid()
	return Close{SID: sid}, err
}

// ParseTransport decodes a Jingle IBB <transport/> element strictly.
func ParseTransport(b []byte) (Transport, error) {
	el, err := parseNamed(b, NSJingle, "transport", false)
	if err != nil {
		return Transport{}, err
	}
	var t Transport
	if t.SID, err = el.sid(); err != nil {
		return Transport{}, err
	}
	if t.BlockSize, err = parseBlockSize(el.attrs["block-size"]); err != nil {
		return Transport{}, err
	}
	if t.Stanza, err = parseStanza(el.attrs["stanza"]); err != nil {
		return Transport{}, err
	}
	return t, nil
}

// ParseData decodes a <data/> element. The common shape is read by a byte-level scanner;
// anything it does not recognise exactly goes to the strict generic decoder, which has the
// last word. When the element is well-formed but its seq or payload is wrong, the returned
// Data still carries the sid (and seq, when valid) so that the session can be failed.
func ParseData(b []byte) (Data, error) {
	if d, ok, err := scanData(b); ok {
		return d, err
	}
	return parseDataStrict(b)
}

// parseDataStrict is the generic decoder for <data/>.
func parseDataStrict(b []byte) (Data, error) {
	el, err := parseNamed(b, NS, "data", true)
	if err != nil {
		return Data{}, err
	}
	var d Data
	if d.SID, err = el.sid(); err != nil {
		return Data{}, err
	}
	if d.Seq, err = parseSeq(el.attrs["seq"]); err != nil {
		return Data{SID: d.SID}, err
	}
	if d.Payload, err = decodeBase64(el.text); err != nil {
		return Data{SID: d.SID, Seq: d.Seq}, err
	}
	return d, nil
}

// scanData is the fast path of ParseData. ok reports whether it recognised the input; when
// it did not, nothing is decided and the caller must use the strict decoder. It recognises
// only: optional XML white space, "<data", the attributes xmlns (equal to NS), seq and sid
// each exactly once with values free of '<', '&' and the other quote, optional white space,
// ">" text that is valid Base64 once XML white space is removed, "</data>", optional white
// space. Text that is not valid Base64 is left to the strict decoder.
func scanData(b []byte) (d Data, ok bool, err error) {
	if len(b) > maxElementLen {
		return Data{}, false, nil
	}
	i := 0
	for i < len(b) && isXMLSpace(b[i]) {
		i++
	}
	if !bytes.HasPrefix(b[i:], []byte("<data")) {
		return Data{}, false, nil
	}
	i += len("<data")
	var xmlns, seq, sid []byte
	var haveXmlns, haveSeq, haveSid bool
	for {
		// At least one white space before each attribute.
		j := i
		for j < len(b) && isXMLSpace(b[j]) {
			j++
		}
		if j == len(b) {
			return Data{}, false, nil
		}
		if b[j] == '>' {
			i = j + 1
			break
		}
		if j == i {
			return Data{}, false, nil
		}
		i = j
		start := i
		for i < len(b) && (b[i] >= 'a' && b[i] <= 'z' || b[i] == '-') {
			i++
		}
		name := b[start:i]
		if i+1 >= len(b) || b[i] != '=' {
			return Data{}, false, nil
		}
		q := b[i+1]
		if q != '\'' && q != '"' {
			return Data{}, false, nil
		}
		i += 2
		vstart := i
		for i < len(b) && b[i] != q {
			if b[i] == '<' || b[i] == '&' || b[i] == '\'' || b[i] == '"' || b[i] < 0x20 {
				return Data{}, false, nil
			}
			i++
		}
		if i == len(b) {
			return Data{}, false, nil
		}
		val := b[vstart:i]
		i++
		switch string(name) {
		case "xmlns":
			if haveXmlns {
				return Data{}, false, nil
			}
			xmlns, haveXmlns = val, true
		case "seq":
			if haveSeq {
				return Data{}, false, nil
			}
			seq, haveSeq = val, true
		case "sid":
			if haveSid {
				return Data{}, false, nil
			}
			sid, haveSid = val, true
		default:
			return Data{}, false, nil
		}
	}
	if !haveXmlns || !haveSeq || !haveSid || string(xmlns) != NS {
		return Data{}, false, nil
	}
	j := bytes.IndexByte(b[i:], '<')
	if j < 0 {
		return Data{}, false, nil
	}
	text := b[i : i+j]
	i += j
	if !bytes.HasPrefix(b[i:], []byte("</data>")) {
		return Data{}, false, nil
	}
	i += len("</data>")
	for i < len(b) && isXMLSpace(b[i]) {
		i++
	}
	if i != len(b) {
		return Data{}, false, nil
	}
	// The shape is recognised: from here on the answers are the strict decoder's.
	d.SID = string(sid)
	if !ValidSID(d.SID) {
		return Data{}, true, badRequest("sid missing or not an NMTOKEN")
	}
	if d.Seq, err = parseSeq(string(seq)); err != nil {
		return Data{SID: d.SID}, true, err
	}
	if d.Payload, err = decodeBase64(text); err != nil {
		// The text may hold character references or CDATA that the strict decoder reads
		// differently: let it decide.
		return Data{}, false, nil
	}
	return d, true, nil
}

// attrValue checks that v can be written inside single quotes without escaping.
func attrValue(v string) bool {
	return ValidSID(v)
}

// AppendData appends the serialised <data/> element for one block to dst. sid must be valid
// (ValidSID); Conn guarantees that.
func AppendData(dst []byte, sid string, seq uint16, payload []byte) []byte {
	dst = append(dst, "<data xmlns='"+NS+"' seq='"...)
	dst = strconv.AppendUint(dst, uint64(seq), 10)
	dst = append(dst, "' sid='"...)
	dst = append(dst, sid...)
	dst = append(dst, "'>"...)
	n := len(dst)
	enc := base64.StdEncoding.EncodedLen(len(payload))
	dst = append(dst, make([]byte, enc)...)
	base64.StdEncoding.Encode(dst[n:], payload)
	return append(dst, "</data>"...)
}

// Marshal returns the serialised <data/> element.
func (d Data) Marshal() ([]byte, error) {
	if !attrValue(d.SID) {
		return nil, badRequest("sid is not an NMTOKEN")
	}
	if len(d.Payload) > MaxBlockSize {
		return nil, badRequest("payload larger than 65535 bytes")
	}
	return AppendData(make([]byte, 0, 96+len(d.SID)+base64.StdEncoding.EncodedLen(len(d.Payload))), d.SID, d.Seq, d.Payload), nil
}

func marshalSized(local, ns, sid string, blockSize int, stanza string) ([]byte, error) {
	if !attrValue(sid) {
		return nil, badRequest("sid is not an NMTOKEN")
	}
	if blockSize < 1 || blockSize > MaxEmitBlockSize {
		return nil, badRequest("block-size out of range 1..32767")
	}
	if stanza == "" {
		stanza = StanzaIQ
	}
	if stanza != StanzaIQ && stanza != StanzaMessage {
		return nil, badRequest("stanza is neither iq nor message")
	}
	b := make([]byte, 0, 128+len(sid))
	b = append(b, "<"+local+" xmlns='"+ns+"' block-size='"...)
	b = strconv.AppendInt(b, int64(blockSize), 10)
	b = append(b, "' sid='"+sid+"' stanza='"+stanza+"'/>"...)
	return b, nil
}

// Marshal returns the serialised <open/> element. It refuses a block-size above
// MaxEmitBlockSize (ERR-6).
func (o Open) Marshal() ([]byte, error) {
	return marshalSized("open", NS, o.SID, o.BlockSize, o.Stanza)
}

// Marshal returns the serialised Jingle <transport/> element. It refuses a block-size above
// MaxEmitBlockSize (ERR-6).
func (t Transport) Marshal() ([]byte, error) {
	return marshalSized("transport", NSJingle, t.SID, t.BlockSize, t.Stanza)
}

// Marshal returns the serialised <close/> element.
func (c Close) Marshal() ([]byte, error) {
	if !attrValue(c.SID) {
		return nil, badRequest("sid is not an NMTOKEN")
	}
	return []byte("<close xmlns='" + NS + "' sid='" + c.SID + "'/>"), nil
}
