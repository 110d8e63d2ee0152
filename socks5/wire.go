package socks5

import (
	"bytes"
	"encoding/xml"
	"net"
	"strconv"
	"strings"
)

// Namespaces.
const (
	// NSBytestreams is XEP-0065 SOCKS5 Bytestreams (S5B-1).
	NSBytestreams = "http://jabber.org/protocol/bytestreams"
	// NSJingleS5B is XEP-0260 Jingle SOCKS5 Bytestreams Transport Method (JS5B-16).
	NSJingleS5B = "urn:xmpp:jingle:transports:s5b:1"
)

// Field limits beyond the generic XML limits.
const (
	maxSIDLen  = 256
	maxCIDLen  = 256
	maxHostLen = 255 // a DNS name; IP literals are shorter
	maxJIDLen  = 3071
)

// Streamhost is a <streamhost/> of XEP-0065: a SOCKS5 server (a proxy, or the requester
// itself) that the target may connect to.
type Streamhost struct {
	JID  string
	Host string
	Port int // 0 when absent (a streamhost in a request defaults to 1080)
}

// Query is a <query xmlns='http://jabber.org/protocol/bytestreams'/> of XEP-0065. At most one of
// Streamhosts, StreamhostUsed and Activate is set; all empty is the proxy discovery request
// (S5B-2).
type Query struct {
	SID            string // absent in the discovery request (S5B-2)
	Mode           string // "" (tcp) or "tcp"/"udp"
	DstAddr        string // optional, S5B-11
	Streamhosts    []Streamhost
	StreamhostUsed string // JID of the streamhost the target connected to (S5B-7)
	Activate       string // target JID in the activation request (S5B-8)
}

// CandidateType is the type of a XEP-0260 candidate.
type CandidateType string

// Candidate types and their type preferences (XEP-0260 §2.4).
const (
	Direct   CandidateType = "direct"
	Assisted CandidateType = "assisted"
	Tunnel   CandidateType = "tunnel"
	Proxy    CandidateType = "proxy"
)

// Preference returns the type preference of t (direct 126, assisted 120, tunnel 110,
// proxy 10), or 0 for an unknown type.
func (t CandidateType) Preference() uint32 {
	switch t {
	case Direct, "":
		return 126
	case Assisted:
		return 120
	case Tunnel:
		return 110
	case Proxy:
		return 10
	}
	return 0
}

// Priority returns 2^16*type_pref + local_pref, the priority XEP-0260 recommends (JS5B-7).
func Priority(t CandidateType, localPref uint16) uint32 {
	return t.Preference()<<16 + uint32(localPref)
}

// Candidate is a <candidate/> of XEP-0260.
type Candidate struct {
	CID      string
	Host     string
	JID      string
	Port     int // 0 when absent
	Priority uint32
	Type     CandidateType // "" when absent (means direct)
}

// Transport is a <transport xmlns='urn:xmpp:jingle:transports:s5b:1'/> element. It carries
// either candidates (possibly none) or exactly one of CandidateUsed, CandidateError,
// Activated and ProxyError.
type Transport struct {
	SID            string
	DstAddr        string
	Mode           string // "" (tcp), "tcp" or "udp"
	Candidates     []Candidate
	CandidateUsed  string // cid of <candidate-used/>
	CandidateError bool
	Activated      string // cid of <activated/>
	ProxyError     bool
}

// ParseQuery parses a bytestreams <query/> strictly.
func ParseQuery(b []byte) (*Query, error) {
	n, err := parse(b)
	if err != nil {
		return nil, err
	}
	if n.name != (xml.Name{Space: NSBytestreams, Local: "query"}) {
		return nil, badRequest("expected {%s}query, got {%s}%s", NSBytestreams, n.name.Space, n.name.Local)
	}
	q := &Query{}
	for _, a := range n.attrs {
		if a.Name.Space != "" {
			continue // foreign-namespace attributes (xml:lang) are allowed and ignored
		}
		switch a.Name.Local {
		case "sid":
			q.SID = a.Value
		case "mode":
			q.Mode = a.Value
		case "dstaddr":
			q.DstAddr = a.Value
		default:
			return nil, badRequest("unknown attribute %q on <query/>", a.Name.Local)
		}
	}
	if _, ok := n.attr("sid"); ok {
		if err := checkID("sid", q.SID, maxSIDLen); err != nil {
			return nil, err
		}
	}
	if err := checkMode(q.Mode); err != nil {
		return nil, err
	}
	if _, ok := n.attr("dstaddr"); ok && !isHash(q.DstAddr) {
		return nil, badRequest("dstaddr is not 40 hex digits")
	}
	if n.text != "" {
		return nil, badRequest("text in <query/>")
	}
	kinds := 0
	var lastKind string
	for _, c := range n.children {
		if c.name.Space != NSBytestreams {
			return nil, badRequest("unknown child {%s}%s", c.name.Space, c.name.Local)
		}
		if c.name.Local != lastKind {
			kinds++
			lastKind = c.name.Local
		}
		switch c.name.Local {
		case "streamhost":
			sh, err := parseStreamhost(c)
			if err != nil {
				return nil, err
			}
			q.Streamhosts = append(q.Streamhosts, sh)
		case "streamhost-used":
			if q.StreamhostUsed != "" {
				return nil, badRequest("more than one <streamhost-used/>")
			}
			if err := onlyAttrs(c, "jid"); err != nil {
				return nil, err
			}
			jid, _ := c.attr("jid")
			if err := checkJID(jid); err != nil {
				return nil, err
			}
			q.StreamhostUsed = jid
		case "activate":
			if q.Activate != "" {
				return nil, badRequest("more than one <activate/>")
			}
			if err := onlyAttrs(c); err != nil {
				return nil, err
			}
			if len(c.children) != 0 {
				return nil, badRequest("child elements in <activate/>")
			}
			if err := checkJID(c.text); err != nil {
				return nil, err
			}
			q.Activate = c.text
		default:
			return nil, badRequest("unknown child <%s/> of <query/>", c.name.Local)
		}
	}
	if kinds > 1 {
		return nil, badRequest("<query/> mixes streamhost, streamhost-used and activate")
	}
	if q.Activate != "" && q.SID == "" {
		return nil, badRequest("activation request without sid (S5B-8)")
	}
	return q, nil
}

func parseStreamhost(c *node) (Streamhost, error) {
	if err := onlyAttrs(c, "jid", "host", "port"); err != nil {
		return Streamhost{}, err
	}
	if len(c.children) != 0 || c.text != "" {
		return Streamhost{}, badRequest("content in <streamhost/>")
	}
	var sh Streamhost
	sh.JID, _ = c.attr("jid")
	if err := checkJID(sh.JID); err != nil {
		return sh, err
	}
	var ok bool
	if sh.Host, ok = c.attr("host"); !ok {
		return sh, badRequest("<streamhost/> without host (S5B-3)")
	}
	if err := checkHost(sh.Host); err != nil {
		return sh, err
	}
	if p, ok := c.attr("port"); ok {
		port, err := parsePort(p)
		if err != nil {
			return sh, err
		}
		sh.Port = port
	}
	return sh, nil
}

// Marshal serialises q.
func (q *Query) Marshal() []byte {
	var b bytes.Buffer
	b.WriteString("<query xmlns='" + NSBytestreams + "'")
	writeAttr(&b, "sid", q.SID)
	writeAttr(&b, "mode", q.Mode)
	writeAttr(&b, "dstaddr", q.DstAddr)
	if len(q.Streamhosts) == 0 && q.StreamhostUsed == "" && q.Activate == "" {
		b.WriteString("/>")
		return b.Bytes()
	}
	b.WriteString(">")
	for _, sh := range q.Streamhosts {
		b.WriteString("<streamhost")
		writeAttr(&b, "jid", sh.JID)
		writeAttr(&b, "host", sh.Host)
		if sh.Port != 0 {
			writeAttr(&b, "port", strconv.Itoa(sh.Port))
		}
		b.WriteString("/>")
	}
	if q.StreamhostUsed != "" {
		b.WriteString("<streamhost-used")
		writeAttr(&b, "jid", q.StreamhostUsed)
		b.WriteString("/>")
	}
	if q.Activate != "" {
		b.WriteString("<activate>")
		_ = xml.EscapeText(&b, []byte(q.Activate))
		b.WriteString("</activate>")
	}
	b.WriteString("</query>")
	return b.Bytes()
}

// ParseTransport parses a Jingle S5B <transport/> strictly.
func ParseTransport(b []byte) (*Transport, error) {
	n, err := parse(b)
	if err != nil {
		return nil, err
	}
	if n.name != (xml.Name{Space: NSJingleS5B, Local: "transport"}) {
		return nil, badRequest("expected {%s}transport, got {%s}%s", NSJingleS5B, n.name.Space, n.name.Local)
	}
	t := &Transport{}
	for _, a := range n.attrs {
		if a.Name.Space != "" {
			continue
		}
		switch a.Name.Local {
		case "sid":
			t.SID = a.Value
		case "dstaddr":
			t.DstAddr = a.Value
		case "mode":
			t.Mode = a.Value
		default:
			return nil, badRequest("unknown attribute %q on <transport/>", a.Name.Local)
		}
	}
	if err := checkID("sid", t.SID, maxSIDLen); err != nil { // JS5B-3: sid MUST be included
		return nil, err
	}
	if _, ok := n.attr("dstaddr"); ok && !isHash(t.DstAddr) {
		return nil, badRequest("dstaddr is not 40 hex digits")
	}
	if err := checkMode(t.Mode); err != nil {
		return nil, err
	}
	if n.text != "" {
		return nil, badRequest("text in <transport/>")
	}
	others := 0
	for _, c := range n.children {
		if c.name.Space != NSJingleS5B {
			return nil, badRequest("unknown child {%s}%s", c.name.Space, c.name.Local)
		}
		if len(c.children) != 0 || c.text != "" {
			return nil, badRequest("content in <%s/>", c.name.Local)
		}
		switch c.name.Local {
		case "candidate":
			cand, err := parseCandidate(c)
			if err != nil {
				return nil, err
			}
			for _, o := range t.Candidates {
				if o.CID == cand.CID {
					return nil, badRequest("duplicate candidate cid %q", cand.CID)
				}
			}
			t.Candidates = append(t.Candidates, cand)
			continue
		case "candidate-used":
			if err := onlyAttrs(c, "cid"); err != nil {
				return nil, err
			}
			t.CandidateUsed, _ = c.attr("cid")
			if err := checkID("cid", t.CandidateUsed, maxCIDLen); err != nil {
				return nil, err
			}
		case "activated":
			if err := onlyAttrs(c, "cid"); err != nil {
				return nil, err
			}
			t.Activated, _ = c.attr("cid")
			if err := checkID("cid", t.Activated, maxCIDLen); err != nil {
				return nil, err
			}
		case "candidate-error":
			if err := onlyAttrs(c); err != nil {
				return nil, err
			}
			t.CandidateError = true
		case "proxy-error":
			if err := onlyAttrs(c); err != nil {
				return nil, err
			}
			t.ProxyError = true
		default:
			return nil, badRequest("unknown child <%s/> of <transport/>", c.name.Local)
		}
		others++
	}
	if others > 1 || (others == 1 && len(t.Candidates) > 0) {
		return nil, badRequest("<transport/> carries candidates or exactly one of candidate-used, candidate-error, activated, proxy-error")
	}
	return t, nil
}

func parseCandidate(c *node) (Candidate, error) {
	if err := onlyAttrs(c, "cid", "host", "jid", "port", "priority", "type"); err != nil {
		return Candidate{}, err
	}
	var cand Candidate
	var ok bool
	cand.CID, _ = c.attr("cid")
	if err := checkID("cid", cand.CID, maxCIDLen); err != nil {
		return cand, err
	}
	if cand.Host, ok = c.attr("host"); !ok {
		return cand, badRequest("candidate without host")
	}
	if err := checkHost(cand.Host); err != nil {
		return cand, err
	}
	cand.JID, _ = c.attr("jid")
	if err := checkJID(cand.JID); err != nil {
		return cand, err
	}
	if p, ok := c.attr("port"); ok {
		port, err := parsePort(p)
		if err != nil {
			return cand, err
		}
		cand.Port = port
	}
	p, ok := c.attr("priority")
	if !ok {
		return cand, badRequest("candidate without priority")
	}
	prio, err := strconv.ParseUint(p, 10, 32)
	if err != nil || prio == 0 || p[0] == '+' {
		return cand, badRequest("priority %q is not a positive integer below 2^32", p)
	}
	cand.Priority = uint32(prio)
	if ty, ok := c.attr("type"); ok {
		switch CandidateType(ty) {
		case Direct, Assisted, Tunnel, Proxy:
			cand.Type = CandidateType(ty)
		default:
			return cand, badRequest("unknown candidate type %q", ty)
		}
	}
	return cand, nil
}

// Marshal serialises t.
func (t *Transport) Marshal() []byte {
	var b bytes.Buffer
	b.WriteString("<transport xmlns='" + NSJingleS5B + "'")
	writeAttr(&b, "sid", t.SID)
	writeAttr(&b, "dstaddr", t.DstAddr)
	writeAttr(&b, "mode", t.Mode)
	var child string
	switch {
	case t.CandidateUsed != "":
		child = "<candidate-used cid='" + escapeAttr(t.CandidateUsed) + "'/>"
	case t.CandidateError:
		child = "<candidate-error/>"
	case t.Activated != "":
		child = "<activated cid='" + escapeAttr(t.Activated) + "'/>"
	case t.ProxyError:
		child = "<proxy-error/>"
	}
	if child == "" && len(t.Candidates) == 0 {
		b.WriteString("/>")
		return b.Bytes()
	}
	b.WriteString(">")
	if child != "" {
		b.WriteString(child)
	} else {
		for _, c := range t.Candidates {
			b.WriteString("<candidate")
			writeAttr(&b, "cid", c.CID)
			writeAttr(&b, "host", c.Host)
			writeAttr(&b, "jid", c.JID)
			if c.Port != 0 {
				writeAttr(&b, "port", strconv.Itoa(c.Port))
			}
			writeAttr(&b, "priority", strconv.FormatUint(uint64(c.Priority), 10))
			writeAttr(&b, "type", string(c.Type))
			b.WriteString("/>")
		}
	}
	b.WriteString("</transport>")
	return b.Bytes()
}

// writeAttr writes name='value' unless value is empty.
func writeAttr(b *bytes.Buffer, name, value string) {
	if value == "" {
		return
	}
	b.WriteString(" " + name + "='" + escapeAttr(value) + "'")
}

func escapeAttr(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

func onlyAttrs(n *node, allowed ...string) error {
outer:
	for _, a := range n.attrs {
		if a.Name.Space != "" {
			continue
		}
		for _, name := range allowed {
			if a.Name.Local == name {
				continue outer
			}
		}
		return badRequest("unknown attribute %q on <%s/>", a.Name.Local, n.name.Local)
	}
	return nil
}

func checkID(what, v string, max int) error {
	if v == "" {
		return badRequest("missing %s", what)
	}
	if len(v) > max {
		return badRequest("%s longer than %d bytes", what, max)
	}
	for _, r := range v {
		if r <= ' ' || r == 0x7f {
			return badRequest("%s contains white space or control characters", what)
		}
	}
	return nil
}

func checkJID(v string) error {
	if v == "" {
		return badRequest("missing jid")
	}
	if len(v) > maxJIDLen {
		return badRequest("jid longer than %d bytes", maxJIDLen)
	}
	if strings.ContainsAny(v, " \t\r\n") {
		return badRequest("jid contains white space")
	}
	return nil
}

// checkHost accepts an IP address literal or a DNS name (letters, digits, '-', '_', '.').
func checkHost(h string) error {
	if h == "" || len(h) > maxHostLen {
		return badRequest("host is empty or longer than %d bytes", maxHostLen)
	}
	if net.ParseIP(h) != nil {
		return nil
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return badRequest("host %q is neither an IP address nor a DNS name", h)
		}
	}
	if strings.Contains(h, "..") || h[0] == '.' || h[0] == '-' {
		return badRequest("host %q is not a valid DNS name", h)
	}
	if strings.Trim(h, "0123456789.") == "" {
		return badRequest("host %q is not a valid IPv4 address (ERR-8)", h)
	}
	return nil
}

func parsePort(p string) (int, error) {
	port, err := strconv.ParseUint(p, 10, 16)
	if err != nil || port == 0 || p[0] == '+' {
		return 0, badRequest("port %q is not in 1..65535", p)
	}
	return int(port), nil
}

func checkMode(m string) error {
	switch m {
	case "", "tcp":
		return nil
	case "udp":
		return &Error{Type: "cancel", Condition: "feature-not-implemented", Text: "udp mode is not supported"}
	}
	return badRequest("unknown mode %q", m)
}

func isHash(s string) bool {
	if len(s) != 40 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}
