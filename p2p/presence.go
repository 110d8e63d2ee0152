package p2p

import (
	"bytes"
	"encoding/xml"
	"errors"
	"net/netip"
	"strconv"
)

// NS is the namespace of the <p2p/> presence element of seed 000.
const NS = "urn:nf:iot:p2p:1.0"

// ErrMalformed is matched (errors.Is) by every *ParseError.
var ErrMalformed = errors.New("p2p: malformed presence element")

// ParseError is why a <p2p/> or <e2e/> element from a contact's presence was refused. Presence
// is never answered with an error, but StanzaError maps it to modify/bad-request for callers
// that report it, like every parser of the module.
type ParseError struct {
	Element string // "p2p" or "e2e"
	Attr    string // the attribute or child at fault, if any
	Reason  string
}

func (e *ParseError) Error() string {
	s := "p2p: bad <" + e.Element + "/>"
	if e.Attr != "" {
		s += " " + e.Attr
	}
	return s + ": " + e.Reason
}

// Is reports whether target is ErrMalformed.
func (e *ParseError) Is(target error) bool { return target == ErrMalformed }

// StanzaError reports the XMPP error the failure maps to: modify/bad-request.
func (e *ParseError) StanzaError() (typ, condition string, app xml.Name, text string) {
	return "modify", "bad-request", xml.Name{}, e.Error()
}

// P2P is <p2p xmlns='urn:nf:iot:p2p:1.0' extIp extPort locIp locPort/> (seed 000): the address
// under which the publisher is reachable from the Internet (External, e.g. a port forward on
// its NAT or the reflexive address learned with STUN) and the address of its listener on its
// own network (Local). Both are hints for choosing S5B candidates, never proof of identity
// (SPEC SEED-1): anyone who can change presence — the server — can change them.
type P2P struct {
	External netip.AddrPort // extIp, extPort
	Local    netip.AddrPort // locIp, locPort
}

// ParseP2P decodes a <p2p/> element strictly: at most 1 KiB, the four attributes present once
// each and nothing else, no children or text, IP addresses as netip parses them without a zone
// (IPv4-mapped IPv6 is unmapped) that are neither unspecified, multicast nor the IPv4
// broadcast address, ports decimal 1..65535 without sign or leading zeros. Errors are
// *ParseError (errors.Is ErrMalformed).
func ParseP2P(b []byte) (P2P, error) {
	bad := func(attr, reason string) (P2P, error) {
		return P2P{}, &ParseError{Element: "p2p", Attr: attr, Reason: reason}
	}
	e, err := parseFlat(b, maxP2PSize, 0)
	if err != nil {
		return bad("", err.Error())
	}
	if e.name.Space != NS || e.name.Local != "p2p" {
		return bad("", "not {"+NS+"}p2p")
	}
	known := map[string]bool{"extIp": true, "extPort": true, "locIp": true, "locPort": true}
	for _, a := range e.attrs {
		if !known[a.Name.Local] {
			return bad(a.Name.Local, "unknown attribute")
		}
	}
	var p P2P
	for _, f := range []struct {
		ip, port string
		dst      *netip.AddrPort
	}{{"extIp", "extPort", &p.External}, {"locIp", "locPort", &p.Local}} {
		ipS, ok := e.attr(f.ip)
		if !ok {
			return bad(f.ip, "missing")
		}
		ip, err := parseIP(ipS)
		if err != nil {
			return bad(f.ip, err.Error())
		}
		portS, ok := e.attr(f.port)
		if !ok {
			return bad(f.port, "missing")
		}
		port, err := parsePort(portS)
		if err != nil {
			return bad(f.port, err.Error())
		}
		*f.dst = netip.AddrPortFrom(ip, port)
	}
	return p, nil
}

// parseIP accepts a unicast IP address without zone.
func parseIP(s string) (netip.Addr, error) {
	ip, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, errors.New("not an IP address")
	}
	if ip.Zone() != "" {
		return netip.Addr{}, errors.New("IP address with a zone")
	}
	ip = ip.Unmap()
	if err := checkIP(ip); err != nil {
		return netip.Addr{}, err
	}
	return ip, nil
}

func checkIP(ip netip.Addr) error {
	switch {
	case !ip.IsValid():
		return errors.New("no IP address")
	case ip.Zone() != "":
		return errors.New("IP address with a zone")
	case ip.IsUnspecified():
		return errors.New("unspecified IP address")
	case ip.IsMulticast():
		return errors.New("multicast IP address")
	case ip == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return errors.New("broadcast IP address")
	}
	return nil
}

// parsePort accepts 1..65535 in decimal, without sign or leading zero.
func parsePort(s string) (uint16, error) {
	if s == "" || len(s) > 5 || s[0] == '0' {
		return 0, errors.New("not a port number 1..65535")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, errors.New("not a port number 1..65535")
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 {
		return 0, errors.New("not a port number 1..65535")
	}
	return uint16(n), nil
}

// Validate reports whether p can be published: both addresses valid as ParseP2P requires.
func (p P2P) Validate() error {
	for _, f := range []struct {
		name string
		a    netip.AddrPort
	}{{"extIp", p.External}, {"locIp", p.Local}} {
		if err := checkIP(f.a.Addr()); err != nil {
			return &ParseError{Element: "p2p", Attr: f.name, Reason: err.Error()}
		}
		if f.a.Addr().Is4In6() {
			return &ParseError{Element: "p2p", Attr: f.name, Reason: "IPv4-mapped IPv6 address"}
		}
		if f.a.Port() == 0 {
			return &ParseError{Element: "p2p", Attr: f.name, Reason: "port 0"}
		}
	}
	return nil
}

// Marshal returns the <p2p/> element for our presence; it fails when p does not Validate.
func (p P2P) Marshal() ([]byte, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString("<p2p xmlns='" + NS + "' extIp='")
	escapeAttr(&b, p.External.Addr().String())
	b.WriteString("' extPort='" + strconv.Itoa(int(p.External.Port())) + "' locIp='")
	escapeAttr(&b, p.Local.Addr().String())
	b.WriteString("' locPort='" + strconv.Itoa(int(p.Local.Port())) + "'/>")
	return b.Bytes(), nil
}

// SameNetwork implements the rule of seed 000: a peer whose published external IP equals our
// own external IP is on our network (behind the same NAT). With our external IP unknown it
// reports false.
func SameNetwork(ourExternal netip.Addr, peer P2P) bool {
	return ourExternal.IsValid() && peer.External.Addr() == ourExternal.Unmap()
}

// Order returns the peer's published addresses in the order to try them (seed 000): the local
// address first when SameNetwork(ourExternal, p), else the external address first.
func (p P2P) Order(ourExternal netip.Addr) []netip.AddrPort {
	if SameNetwork(ourExternal, p) {
		return []netip.AddrPort{p.Local, p.External}
	}
	return []netip.AddrPort{p.External, p.Local}
}
