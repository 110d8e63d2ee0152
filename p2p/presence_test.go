package p2p

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net/netip"
	"strconv"
	"strings"
	"testing"
)

// seedExample is the <p2p/> of seed 000's example, verbatim: its extIp "81.229..." was cut
// short in the seed and is not an IP address (SEED-1).
const seedExample = `<p2p xmlns="urn:nf:iot:p2p:1.0" extIp="81.229..." extPort="64152" locIp="192.168.1.219" locPort="64152" />`

func TestSEED1_SeedExampleRejected(t *testing.T) {
	_, err := ParseP2P([]byte(seedExample))
	var pe *ParseError
	if !errors.As(err, &pe) || pe.Attr != "extIp" || !errors.Is(err, ErrMalformed) {
		t.Fatalf("ParseP2P(seed example) = %v, want a *ParseError for extIp", err)
	}
	if typ, cond, _, _ := pe.StanzaError(); typ != "modify" || cond != "bad-request" {
		t.Errorf("maps to %s/%s, want modify/bad-request", typ, cond)
	}
	// The same element with the address completed is accepted.
	p, err := ParseP2P([]byte(strings.Replace(seedExample, "81.229...", "81.229.0.17", 1)))
	if err != nil {
		t.Fatal(err)
	}
	want := P2P{External: netip.MustParseAddrPort("81.229.0.17:64152"), Local: netip.MustParseAddrPort("192.168.1.219:64152")}
	if p != want {
		t.Errorf("got %+v, want %+v", p, want)
	}
}

func TestSEED1_P2PRoundTrip(t *testing.T) {
	for _, p := range []P2P{
		{External: netip.MustParseAddrPort("203.0.113.7:40000"), Local: netip.MustParseAddrPort("192.168.1.2:5000")},
		{External: netip.MustParseAddrPort("[2001:db8::1]:1"), Local: netip.MustParseAddrPort("[fd00::2]:65535")},
		{External: netip.MustParseAddrPort("127.0.0.1:1080"), Local: netip.MustParseAddrPort("127.0.0.1:1080")},
	} {
		b, err := p.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		got, err := ParseP2P(b)
		if err != nil || got != p {
			t.Errorf("round trip of %+v: %s → %+v, %v", p, b, got, err)
		}
	}
	if _, err := (P2P{}).Marshal(); err == nil {
		t.Error("zero P2P marshalled")
	}
}

func TestSEED1_P2PStrict(t *testing.T) {
	const ok = `extIp='203.0.113.7' extPort='1' locIp='10.0.0.2' locPort='2'`
	el := func(attrs string) string { return "<p2p xmlns='" + NS + "' " + attrs + "/>" }
	if _, err := ParseP2P([]byte(el(ok))); err != nil {
		t.Fatalf("valid element refused: %v", err)
	}
	for name, in := range map[string]string{
		"wrong namespace":  "<p2p xmlns='urn:nf:iot:p2p:2.0' " + ok + "/>",
		"wrong name":       "<p2q xmlns='" + NS + "' " + ok + "/>",
		"missing locPort":  el(`extIp='203.0.113.7' extPort='1' locIp='10.0.0.2'`),
		"unknown attr":     el(ok + ` x='1'`),
		"qualified attr":   "<p2p xmlns='" + NS + "' xmlns:a='urn:a' a:x='1' " + ok + "/>",
		"child":            "<p2p xmlns='" + NS + "' " + ok + "><x/></p2p>",
		"text":             "<p2p xmlns='" + NS + "' " + ok + ">hi</p2p>",
		"two elements":     el(ok) + el(ok),
		"port 0":           el(`extIp='203.0.113.7' extPort='0' locIp='10.0.0.2' locPort='2'`),
		"port 65536":       el(`extIp='203.0.113.7' extPort='65536' locIp='10.0.0.2' locPort='2'`),
		"port sign":        el(`extIp='203.0.113.7' extPort='+1' locIp='10.0.0.2' locPort='2'`),
		"port leading 0":   el(`extIp='203.0.113.7' extPort='01' locIp='10.0.0.2' locPort='2'`),
		"port space":       el(`extIp='203.0.113.7' extPort=' 1' locIp='10.0.0.2' locPort='2'`),
		"host name":        el(`extIp='example.org' extPort='1' locIp='10.0.0.2' locPort='2'`),
		"zone":             el(`extIp='fe80::1%eth0' extPort='1' locIp='10.0.0.2' locPort='2'`),
		"unspecified":      el(`extIp='0.0.0.0' extPort='1' locIp='10.0.0.2' locPort='2'`),
		"multicast":        el(`extIp='224.0.0.1' extPort='1' locIp='10.0.0.2' locPort='2'`),
		"broadcast":        el(`extIp='255.255.255.255' extPort='1' locIp='10.0.0.2' locPort='2'`),
		"v6 unspecified":   el(`extIp='::' extPort='1' locIp='10.0.0.2' locPort='2'`),
		"too large":        "<p2p xmlns='" + NS + "' " + ok + ">" + strings.Repeat(" ", 1100) + "</p2p>",
		"comment":          "<p2p xmlns='" + NS + "' " + ok + "><!-- x --></p2p>",
		"not XML":          "<p2p",
		"duplicate attr":   el(ok + ` extIp='203.0.113.7'`),
		"ip with brackets": el(`extIp='[2001:db8::1]' extPort='1' locIp='10.0.0.2' locPort='2'`),
	} {
		if _, err := ParseP2P([]byte(in)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: ParseP2P(%q) = %v, want ErrMalformed", name, in, err)
		}
	}
	// IPv4-mapped IPv6 is taken as the IPv4 address.
	p, err := ParseP2P([]byte(el(`extIp='::ffff:203.0.113.7' extPort='1' locIp='10.0.0.2' locPort='2'`)))
	if err != nil || p.External.Addr() != netip.MustParseAddr("203.0.113.7") {
		t.Errorf("mapped address: %+v, %v", p, err)
	}
}

// TestSEED1_SameNetwork: the seed's rule — equal external IPs mean the same network, so the
// local address is tried first; otherwise the external one.
func TestSEED1_SameNetwork(t *testing.T) {
	peer := P2P{External: netip.MustParseAddrPort("198.51.100.1:40000"), Local: netip.MustParseAddrPort("192.168.1.5:5000")}
	same := netip.MustParseAddr("198.51.100.1")
	other := netip.MustParseAddr("203.0.113.9")
	if !SameNetwork(same, peer) || SameNetwork(other, peer) || SameNetwork(netip.Addr{}, peer) {
		t.Error("SameNetwork wrong")
	}
	if o := peer.Order(same); o[0] != peer.Local || o[1] != peer.External {
		t.Errorf("same network order %v", o)
	}
	if o := peer.Order(other); o[0] != peer.External {
		t.Errorf("other network order %v", o)
	}
	if o := peer.Order(netip.Addr{}); o[0] != peer.External {
		t.Errorf("unknown own IP order %v", o)
	}
}

func TestSEED1_E2E(t *testing.T) {
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	edKey, err := KeyOf(edPub)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := KeyOf(&ec.PublicKey)
	if err != nil || len(ecKey.Pub) != 65 || ecKey.Alg != "p256" {
		t.Fatalf("KeyOf(p256) = %+v, %v", ecKey, err)
	}
	b, err := E2E{Keys: []Key{edKey, ecKey}}.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	e, err := ParseE2E(b)
	if err != nil {
		t.Fatalf("ParseE2E(%s): %v", b, err)
	}
	if e.Matches(edPub) != KeyHintMatches || e.Matches(&ec.PublicKey) != KeyHintMatches {
		t.Error("own keys do not match")
	}
	otherEd, _, _ := ed25519.GenerateKey(rand.Reader)
	if h := e.Matches(otherEd); h != KeyHintDiffers || h.String() != "differs" {
		t.Errorf("other key: %v", h)
	}
	if h := (E2E{}).Matches(edPub); h != KeyHintNone || h.String() != "none" {
		t.Errorf("nothing published: %v", h)
	}
	// X‖Y without the SEC1 prefix matches too.
	xy := E2E{Keys: []Key{{Alg: "p256", Pub: ecKey.Pub[1:]}}}
	if xy.Matches(&ec.PublicKey) != KeyHintMatches {
		t.Error("X‖Y form does not match")
	}
	if _, err := KeyOf("rsa"); !errors.Is(err, ErrUnsupportedKey) {
		t.Errorf("KeyOf(string) = %v", err)
	}
}

func TestSEED1_E2EStrict(t *testing.T) {
	k32 := base64.StdEncoding.EncodeToString(make([]byte, 32))
	el := func(kids string) string { return "<e2e xmlns='" + NSE2E + "'>" + kids + "</e2e>" }
	// The seed's algorithms we do not know are skipped.
	e, err := ParseE2E([]byte(el("<ed25519 pub='" + k32 + "'/><future pub='AAAA'/>")))
	if err != nil || len(e.Keys) != 1 {
		t.Fatalf("got %+v, %v", e, err)
	}
	for name, in := range map[string]string{
		"p256 not SEC1":        el("<p256 pub='" + base64.StdEncoding.EncodeToString(append([]byte{2}, make([]byte, 64)...)) + "'/>"),
		"whitespace in base64": el("<ed25519 pub='" + k32[:10] + "\n" + k32[10:] + "'/>"),
		"no padding":           el("<ed25519 pub='" + strings.TrimRight(k32, "=") + "'/>"),
		"wrong size":           el("<ed25519 pub='AAAA'/>"),
		"twice":                el("<ed25519 pub='" + k32 + "'/><ed25519 pub='" + k32 + "'/>"),
		"extra attr":           el("<ed25519 pub='" + k32 + "' x='1'/>"),
		"no pub":               el("<ed25519/>"),
		"foreign child":        el("<ed25519 xmlns='urn:x' pub='" + k32 + "'/>"),
		"nested":               el("<ed25519 pub='" + k32 + "'><x/></ed25519>"),
		"too many":             el(strings.Repeat("<future/>", 17)),
		"attr on e2e":          "<e2e xmlns='" + NSE2E + "' a='1'/>",
		"wrong ns":             "<e2e xmlns='urn:nf:iot:e2e:2.0'/>",
		"too large":            el(strings.Repeat(" ", 17<<10)),
		"text":                 el("x"),
	} {
		if _, err := ParseE2E([]byte(in)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: ParseE2E = %v, want ErrMalformed", name, err)
		}
	}
}

func TestTable(t *testing.T) {
	tb := NewTable(2)
	p := P2P{External: netip.MustParseAddrPort("198.51.100.1:40000"), Local: netip.MustParseAddrPort("192.168.1.5:5000")}
	pb, _ := p.Marshal()
	caps := []byte("<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='n' ver='v'/>")
	tb.Update("a@x/1", [][]byte{caps, pb})
	if got, ok := tb.Lookup("a@x/1"); !ok || got.P2P == nil || *got.P2P != p || got.E2E != nil {
		t.Fatalf("Lookup = %+v, %v", got, ok)
	}
	if errs := tb.Update("b@x/1", [][]byte{[]byte(seedExample)}); len(errs) != 1 {
		t.Errorf("malformed element: errs %v", errs)
	}
	if _, ok := tb.Lookup("b@x/1"); ok {
		t.Error("a presence with only a malformed <p2p/> left an entry")
	}
	tb.Update("b@x/1", [][]byte{pb})
	tb.Update("c@x/1", [][]byte{pb}) // evicts a@x/1, the oldest
	if _, ok := tb.Lookup("a@x/1"); ok || tb.Len() != 2 {
		t.Errorf("bound not kept: len %d", tb.Len())
	}
	tb.Update("b@x/1", [][]byte{caps}) // a presence without <p2p/> replaces the one before
	if _, ok := tb.Lookup("b@x/1"); ok {
		t.Error("b still published after a presence without <p2p/>")
	}
	tb.Forget("c@x/1")
	if tb.Len() != 0 {
		t.Errorf("len %d after Forget", tb.Len())
	}
}

// TestTableResourcesBounded (SEED-1, issue 10): presence comes from anyone the server lets
// through. One account sending presence with <p2p/> from many resources keeps at most
// maxResources entries (its own oldest go first) and does not push a contact out.
func TestTableResourcesBounded(t *testing.T) {
	tb := NewTable(64)
	p := P2P{External: netip.MustParseAddrPort("198.51.100.1:40000"), Local: netip.MustParseAddrPort("192.168.1.5:5000")}
	pb, _ := p.Marshal()
	tb.Update("juliet@capulet.lit/balcony", [][]byte{pb})
	for i := range 200 {
		tb.Update("mallory@evil.example/"+strconv.Itoa(i), [][]byte{pb})
	}
	if _, ok := tb.Lookup("juliet@capulet.lit/balcony"); !ok {
		t.Error("the contact was pushed out by another account's resources")
	}
	if n := tb.Len(); n != 1+maxResources {
		t.Errorf("len %d, want %d", n, 1+maxResources)
	}
	if _, ok := tb.Lookup("mallory@evil.example/199"); !ok {
		t.Error("the newest resource is missing")
	}
	if _, ok := tb.Lookup("mallory@evil.example/0"); ok {
		t.Error("the oldest resource of the flooding account is still there")
	}
}

// TestTableLookupCopies (SEED-1, issue 10): what Lookup returns (xtls.Client.Published) is the
// caller's: changing it does not change what the table compares certificates with.
func TestTableLookupCopies(t *testing.T) {
	tb := NewTable(4)
	b, err := E2E{Keys: []Key{{Alg: "ed25519", Pub: make([]byte, 32)}}}.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	tb.Update("juliet@capulet.lit/balcony", [][]byte{b})
	got, _ := tb.Lookup("juliet@capulet.lit/balcony")
	got.E2E.Keys[0].Pub[0] = 0xff
	got.E2E.Keys = nil
	again, _ := tb.Lookup("juliet@capulet.lit/balcony")
	if len(again.E2E.Keys) != 1 || again.E2E.Keys[0].Pub[0] != 0 {
		t.Fatalf("the table changed through a Lookup result: %+v", again.E2E)
	}
}

// TestTableDuplicateElements (SEED-1): a presence with two <p2p/> (or two <e2e/>) is
// ambiguous; neither copy is kept, and the presence still replaces what was known.
func TestTableDuplicateElements(t *testing.T) {
	tb := NewTable(0)
	p := P2P{External: netip.MustParseAddrPort("198.51.100.1:40000"), Local: netip.MustParseAddrPort("192.168.1.5:5000")}
	q := P2P{External: netip.MustParseAddrPort("198.51.100.2:40000"), Local: netip.MustParseAddrPort("192.168.1.6:5000")}
	pb, _ := p.Marshal()
	qb, _ := q.Marshal()
	tb.Update("a@x/1", [][]byte{pb})
	errs := tb.Update("a@x/1", [][]byte{pb, qb})
	if len(errs) != 1 || !errors.Is(errs[0], ErrMalformed) {
		t.Fatalf("errs %v, want one ErrMalformed", errs)
	}
	if got, ok := tb.Lookup("a@x/1"); ok {
		t.Fatalf("Lookup = %+v after two <p2p/>, want nothing", got)
	}
}
