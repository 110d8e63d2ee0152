package disco_test

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/xtlsjingle/xtlsjingle/disco"
	"github.com/xtlsjingle/xtlsjingle/internal/xmpptest"
	"github.com/xtlsjingle/xtlsjingle/testvectors"
)

func vector(t testing.TB, name string) []byte {
	t.Helper()
	b, err := fs.ReadFile(testvectors.FS, path.Join("disco", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func parseVector(t *testing.T, name string) *disco.Info {
	t.Helper()
	info, err := disco.ParseInfo(vector(t, name))
	if err != nil {
		t.Fatalf("ParseInfo(%s): %v", name, err)
	}
	return info
}

// TestCAPS2_Vectors checks the verification strings of SPEC Appendix A.3. The Exodus example
// hashes the caps feature too although the XEP's prose omits it (ERR-10): the vector includes it.
func TestCAPS2_Vectors(t *testing.T) {
	for _, name := range []string{"exodus", "psi"} {
		t.Run(name, func(t *testing.T) {
			info := parseVector(t, "CAPS-2_"+name+"-info.xml")
			before := info.Clone()
			if got, want := disco.VerString(info), string(vector(t, "CAPS-2_"+name+"-S.txt")); got != want {
				t.Errorf("S:\n got %q\nwant %q", got, want)
			}
			ver, err := disco.Ver(info, "sha-1")
			if err != nil {
				t.Fatal(err)
			}
			if want := string(vector(t, "CAPS-2_"+name+"-ver.txt")); ver != want {
				t.Errorf("ver = %s, want %s", ver, want)
			}
			if diff := cmp.Diff(before, info); diff != "" {
				t.Errorf("Ver modified its input (-before +after):\n%s", diff)
			}
			node, wantVer, _ := strings.Cut(info.Node, "#")
			if err := disco.Verify(disco.Caps{Hash: "sha-1", Node: node, Ver: wantVer}, info); err != nil {
				t.Errorf("Verify: %v", err)
			}
		})
	}
}

func TestCAPS2_OrderIndependent(t *testing.T) {
	a := parseVector(t, "CAPS-2_psi-info.xml")
	b := a.Clone()
	b.Identities[0], b.Identities[1] = b.Identities[1], b.Identities[0]
	b.Features[0], b.Features[3] = b.Features[3], b.Features[0]
	f := b.Forms[0].Fields
	f[0], f[4] = f[4], f[0]
	f[1].Values[0], f[1].Values[1] = f[1].Values[1], f[1].Values[0]
	va, _ := disco.Ver(a, "sha-1")
	vb, _ := disco.Ver(b, "sha-1")
	if va != vb {
		t.Errorf("ver depends on order: %s vs %s", va, vb)
	}
	if _, err := disco.Ver(a, "md5"); !errors.Is(err, disco.ErrUnsupportedHash) {
		t.Errorf("Ver(md5) err = %v", err)
	}
	v256, err := disco.Ver(a, "sha-256")
	if err != nil || len(v256) != 44 {
		t.Errorf("Ver(sha-256) = %q, %v", v256, err)
	}
}

// TestCAPS3_Verify covers the processing rules: ill-formed results (Libervia's duplicate
// feature), mismatches, unsupported hashes, FORM_TYPE rules.
func TestCAPS3_Verify(t *testing.T) {
	psi := parseVector(t, "CAPS-2_psi-info.xml")
	good := disco.Caps{Hash: "sha-1", Node: "http://psi-im.org", Ver: "q07IKJEyjvHSyhy//CH0CxmKi8w="}

	lib := parseVector(t, "CAPS-3_libervia-duplicate-feature.xml")
	if !lib.Supports("urn:xmpp:jingle:apps:file-transfer:5") {
		t.Error("duplicate feature lost: the result must still be usable for interop")
	}
	libVer, _ := disco.Ver(lib, "sha-1")

	dupID := psi.Clone()
	dupID.Identities = append(dupID.Identities, dupID.Identities[0])
	dupForm := psi.Clone()
	dupForm.Forms = append(dupForm.Forms, dupForm.Forms[0])
	multiFT := psi.Clone()
	multiFT.Forms[0].Fields[0].Values = append(multiFT.Forms[0].Fields[0].Values, "x")
	notHidden := psi.Clone()
	notHidden.Forms[0].Fields[0].Type = ""
	notHiddenVer, _ := disco.Ver(notHidden, "sha-1")
	exodusLike := psi.Clone()
	exodusLike.Forms = nil
	noFormVer, _ := disco.Ver(exodusLike, "sha-1")

	tests := []struct {
		name string
		caps disco.Caps
		info *disco.Info
		want error
	}{
		{"valid", good, psi, nil},
		{"libervia-duplicate-feature", disco.Caps{Hash: "sha-1", Node: "n", Ver: libVer}, lib, disco.ErrCapsIllFormed},
		{"duplicate-identity", good, dupID, disco.ErrCapsIllFormed},
		{"duplicate-FORM_TYPE", good, dupForm, disco.ErrCapsIllFormed},
		{"multi-valued-FORM_TYPE", good, multiFT, disco.ErrCapsIllFormed},
		{"mismatch", disco.Caps{Hash: "sha-1", Node: "n", Ver: "QgayPKawpkPSDYmwT/WM94uAlu0="}, psi, disco.ErrCapsMismatch},
		{"unsupported-hash", disco.Caps{Hash: "md5", Node: "n", Ver: good.Ver}, psi, disco.ErrUnsupportedHash},
		{"legacy-no-hash", disco.Caps{Node: "n", Ver: "1.0"}, psi, disco.ErrUnsupportedHash},
		// A form whose FORM_TYPE is not hidden is ignored, so it hashes like no form at all.
		{"form-not-hidden-ignored", disco.Caps{Hash: "sha-1", Node: "n", Ver: notHiddenVer}, notHidden, nil},
	}
	if notHiddenVer != noFormVer {
		t.Errorf("a form without hidden FORM_TYPE changed the ver")
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := disco.Verify(tc.caps, tc.info); !errors.Is(err, tc.want) {
				t.Errorf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestCAPS1_RoundTrip(t *testing.T) {
	raw := vector(t, "CAPS-1_psi-caps.xml")
	c, err := disco.ParseCaps(raw)
	if err != nil {
		t.Fatal(err)
	}
	want := disco.Caps{Hash: "sha-1", Node: "http://psi-im.org", Ver: "q07IKJEyjvHSyhy//CH0CxmKi8w="}
	if diff := cmp.Diff(want, c); diff != "" {
		t.Fatalf("ParseCaps (-want +got):\n%s", diff)
	}
	out, err := disco.MarshalCaps(c)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(raw)); string(out) != got {
		t.Errorf("MarshalCaps = %s\nwant %s", out, got)
	}
	for _, bad := range []string{
		`<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' ver='x'/>`,
		`<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='x'/>`,
		`<c xmlns='urn:other' hash='sha-1' node='n' ver='v'/>`,
		`<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='n' ver='v'><x/></c>`,
	} {
		if _, err := disco.ParseCaps([]byte(bad)); err == nil {
			t.Errorf("ParseCaps(%s) accepted", bad)
		}
	}
	if _, err := disco.MarshalCaps(disco.Caps{Node: "n", Ver: "v"}); err == nil {
		t.Error("MarshalCaps without hash accepted (CAPS-1)")
	}
	if got := disco.CapsOf("https://x", parseVector(t, "CAPS-2_exodus-info.xml")); got.Ver != "QgayPKawpkPSDYmwT/WM94uAlu0=" || got.Hash != "sha-1" {
		t.Errorf("CapsOf = %+v", got)
	}
}

func TestDISCO_RoundTrip(t *testing.T) {
	for _, info := range []*disco.Info{
		parseVector(t, "CAPS-2_psi-info.xml"),
		parseVector(t, "CAPS-2_exodus-info.xml"),
		parseVector(t, "CAPS-3_libervia-duplicate-feature.xml"),
		disco.ClientInfo(),
		{Node: "n&<'\"", Identities: []disco.Identity{{Category: "c", Type: "t", Name: "a\tb\nc&", Lang: "de"}}, Features: []string{"f"}},
	} {
		b, err := disco.MarshalInfo(info)
		if err != nil {
			t.Fatal(err)
		}
		got, err := disco.ParseInfo(b)
		if err != nil {
			t.Fatalf("ParseInfo(%s): %v", b, err)
		}
		if diff := cmp.Diff(info, got); diff != "" {
			t.Errorf("round trip (-want +got):\n%s", diff)
		}
	}
	items := []disco.Item{{JID: "proxy.montague.lit", Name: "SOCKS5 Bytestreams Service"}, {JID: "montague.lit", Node: "announcements"}}
	node, got, err := disco.ParseItems(vector(t, "DISCO-8_items.xml"))
	if err != nil || node != "" {
		t.Fatal(node, err)
	}
	if diff := cmp.Diff(items, got); diff != "" {
		t.Errorf("items (-want +got):\n%s", diff)
	}
	b, _ := disco.MarshalItems("n", items)
	node, got, err = disco.ParseItems(b)
	if err != nil || node != "n" || !cmp.Equal(items, got) {
		t.Errorf("items round trip: %q %v %v", node, got, err)
	}
	b, _ = disco.MarshalItems("", nil)
	if want := strings.TrimSpace(string(vector(t, "DISCO-8_empty-items.xml"))); string(b) != want {
		t.Errorf("empty items = %s, want %s (DISCO-8)", b, want)
	}
}

// TestDISCO3_Rejects: strict parsing of peer input.
func TestDISCO3_Rejects(t *testing.T) {
	cases := map[string]string{
		"feature-children":    string(vector(t, "DISCO-3_reject-feature-children.xml")),
		"feature-without-var": string(vector(t, "DISCO-3_reject-feature-without-var.xml")),
		"identity-no-type":    `<query xmlns='http://jabber.org/protocol/disco#info'><identity category='client'/></query>`,
		"comment":             `<query xmlns='http://jabber.org/protocol/disco#info'><!-- x --></query>`,
		"pi":                  `<?xml version='1.0'?><query xmlns='http://jabber.org/protocol/disco#info'/>`,
		"dtd":                 `<!DOCTYPE q [<!ENTITY a 'b'>]><query xmlns='http://jabber.org/protocol/disco#info'/>`,
		"entity":              `<query xmlns='http://jabber.org/protocol/disco#info' node='&a;'/>`,
		"wrong-ns":            `<query xmlns='http://jabber.org/protocol/disco#items'/>`,
		"unknown-child":       `<query xmlns='http://jabber.org/protocol/disco#info'><foo/></query>`,
		"two-roots":           `<query xmlns='http://jabber.org/protocol/disco#info'/><query xmlns='http://jabber.org/protocol/disco#info'/>`,
		"trailing-text":       `<query xmlns='http://jabber.org/protocol/disco#info'/>x`,
		"unclosed":            `<query xmlns='http://jabber.org/protocol/disco#info'>`,
		"too-deep":            `<query xmlns='http://jabber.org/protocol/disco#info'><x xmlns='jabber:x:data'><field><value><a><b><c/></b></a></value></field></x></query>`,
		"too-many-features":   `<query xmlns='http://jabber.org/protocol/disco#info'>` + strings.Repeat(`<feature var='a'/>`, 513) + `</query>`,
		"too-big":             `<query xmlns='http://jabber.org/protocol/disco#info' node='` + strings.Repeat("a", 70000) + `'/>`,
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := disco.ParseInfo([]byte(in))
			var se interface {
				StanzaError() (string, string, xml.Name, string)
			}
			if !errors.As(err, &se) {
				t.Fatalf("ParseInfo accepted or untyped error: %v", err)
			}
			if typ, cond, _, _ := se.StanzaError(); typ != "modify" || cond != "bad-request" {
				t.Errorf("condition %s/%s", typ, cond)
			}
		})
	}
	if _, _, err := disco.ParseItems([]byte(`<query xmlns='http://jabber.org/protocol/disco#items'><item name='x'/></query>`)); err == nil {
		t.Error("item without jid accepted (DISCO-8)")
	}
}

// TestDISCO5_ClientInfo: our identity and the SPEC §1 features, valid per DISCO-2/3, and the
// golden encoding in testvectors/disco.
func TestDISCO5_ClientInfo(t *testing.T) {
	info := disco.ClientInfo()
	if err := info.Validate(); err != nil {
		t.Fatal(err)
	}
	if info.Identities[0] != (disco.Identity{Category: "client", Type: "console", Name: "xtlschat"}) {
		t.Errorf("identity %+v", info.Identities[0])
	}
	for _, f := range []string{disco.NSCaps, "urn:xmpp:jingle:security:xtls:0", "urn:xmpp:jingle:apps:xmlstream:0", "urn:xmpp:tmp:pubkey"} {
		if !info.Supports(f) {
			t.Errorf("missing feature %s", f)
		}
	}
	info.Node = ""
	b, err := disco.MarshalInfo(info)
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.TrimSpace(string(vector(t, "DISCO-5_client-info.xml"))); string(b) != want {
		t.Errorf("client info:\n got %s\nwant %s", b, want)
	}
	info.Features = append(info.Features, disco.NSCaps)
	if info.Validate() == nil {
		t.Error("Validate accepted a duplicate feature")
	}
	if disco.ClientInfo().Features[0] = "x"; disco.ClientInfo().Features[0] == "x" {
		t.Error("ClientInfo shares its feature slice")
	}
}

func TestDISCO6_InferDiscoInfo(t *testing.T) {
	info := &disco.Info{Features: []string{"urn:xmpp:jingle:1"}}
	if !info.Supports(disco.NSInfo) || !info.SupportsAll(disco.NSInfo, "urn:xmpp:jingle:1") || info.Supports("x") {
		t.Error("Supports")
	}
	var nilInfo *disco.Info
	if nilInfo.Supports("x") {
		t.Error("nil Info supports x")
	}
}

func stanzaCond(err error) string {
	var se interface {
		StanzaError() (string, string, xml.Name, string)
	}
	if errors.As(err, &se) {
		_, c, _, _ := se.StanzaError()
		return c
	}
	return ""
}

// TestServe_Query runs Serve and Query between two parties of the in-memory network
// (DISCO-1, DISCO-4, DISCO-7, DISCO-8, CAPS-6).
func TestServe_Query(t *testing.T) {
	n := xmpptest.NewNetwork(1)
	romeo := n.Party("romeo@montague.lit/orchard")
	juliet := n.Party("juliet@capulet.lit/balcony")
	defer romeo.Close()
	defer juliet.Close()
	var seen []xmpptest.Stanza
	var mu sync.Mutex
	n.Observe(func(s xmpptest.Stanza) { mu.Lock(); seen = append(seen, s); mu.Unlock() })

	own := disco.ClientInfo()
	remove := disco.Serve(juliet, own)
	caps := disco.CapsOf(disco.CapsNode, own)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	info, err := disco.Query(ctx, romeo, juliet.LocalJID(), "")
	if err != nil {
		t.Fatal(err)
	}
	want := disco.ClientInfo()
	want.Node = ""
	if diff := cmp.Diff(want, info); diff != "" {
		t.Errorf("Query (-want +got):\n%s", diff)
	}
	node := caps.Node + "#" + caps.Ver
	info, err = disco.Query(ctx, romeo, juliet.LocalJID(), node)
	if err != nil {
		t.Fatal(err)
	}
	if info.Node != node {
		t.Errorf("node not mirrored: %q (DISCO-4)", info.Node)
	}
	if err := disco.Verify(caps, info); err != nil {
		t.Errorf("Verify of served info: %v", err)
	}
	mu.Lock()
	last := seen[len(seen)-1]
	mu.Unlock()
	if !strings.Contains(string(last.Payload), "node='"+node+"'") {
		t.Errorf("answer payload does not carry the node: %s", last.Payload)
	}

	_, err = disco.Query(ctx, romeo, juliet.LocalJID(), caps.Node+"#AAAA")
	if c := stanzaCond(err); c != "item-not-found" {
		t.Errorf("unknown node: %v (want item-not-found, DISCO-7)", err)
	}
	if _, err := romeo.Request(ctx, juliet.LocalJID(), "set", []byte(`<query xmlns='http://jabber.org/protocol/disco#info'/>`)); stanzaCond(err) != "bad-request" {
		t.Errorf("set: %v", err)
	}
	if _, err := romeo.Request(ctx, juliet.LocalJID(), "get", []byte(`<query xmlns='http://jabber.org/protocol/disco#info'><feature var='x'/></query>`)); stanzaCond(err) != "bad-request" {
		t.Errorf("request with children: %v", err)
	}
	items, err := disco.Items(ctx, romeo, juliet.LocalJID(), "")
	if err != nil || len(items) != 0 {
		t.Errorf("Items = %v, %v (DISCO-8: empty, not an error)", items, err)
	}
	if _, err := disco.Items(ctx, romeo, juliet.LocalJID(), caps.Node); stanzaCond(err) != "item-not-found" {
		t.Errorf("Items(caps node) = %v (CAPS-9)", err)
	}

	remove()
	if _, err := disco.Query(ctx, romeo, juliet.LocalJID(), ""); stanzaCond(err) != "service-unavailable" {
		t.Errorf("after remove: %v", err)
	}
}

// countingLink answers disco#info requests from a table and counts them.
type countingLink struct {
	n       atomic.Int64
	answers map[string]*disco.Info // key jid + "|" + node
}

func (l *countingLink) Request(ctx context.Context, to, typ string, payload []byte) ([]byte, error) {
	l.n.Add(1)
	req, err := disco.ParseInfo(payload)
	if err != nil {
		return nil, err
	}
	info, ok := l.answers[to+"|"+req.Node]
	if !ok {
		return nil, &disco.Error{Type: "cancel", Condition: "item-not-found"}
	}
	c := info.Clone()
	c.Node = req.Node
	return disco.MarshalInfo(c)
}

// TestCAPS10_Cache: global caching by verified ver, per-JID caching otherwise, bounds.
func TestCAPS10_Cache(t *testing.T) {
	psi := parseVector(t, "CAPS-2_psi-info.xml")
	psi.Node = ""
	caps := disco.Caps{Hash: "sha-1", Node: "http://psi-im.org", Ver: "q07IKJEyjvHSyhy//CH0CxmKi8w="}
	lib := parseVector(t, "CAPS-3_libervia-duplicate-feature.xml")
	libVer, _ := disco.Ver(lib, "sha-1")
	libCaps := disco.Caps{Hash: "sha-1", Node: "https://libervia.org", Ver: libVer}
	link := &countingLink{answers: map[string]*disco.Info{
		"a@x/1|" + caps.Node + "#" + caps.Ver:        psi,
		"b@x/1|" + caps.Node + "#" + caps.Ver:        psi,
		"l@x/1|" + libCaps.Node + "#" + libCaps.Ver:  lib,
		"l2@x/1|" + libCaps.Node + "#" + libCaps.Ver: lib,
		"n@x/1|": psi,
	}}
	c := disco.NewCache(8)
	ctx := context.Background()
	c.SetCaps("a@x/1", caps)
	c.SetCaps("b@x/1", caps)
	for _, jid := range []string{"a@x/1", "a@x/1", "b@x/1"} {
		info, err := c.Info(ctx, link, jid)
		if err != nil {
			t.Fatal(err)
		}
		if !info.Supports("http://jabber.org/protocol/muc") {
			t.Error("wrong info")
		}
		info.Features = nil // the caller's copy; must not affect the cache
	}
	if got := link.n.Load(); got != 1 {
		t.Errorf("%d queries for one valid ver, want 1 (CAPS-10)", got)
	}
	// Ill-formed (duplicate feature): cached per JID only (CAPS-3).
	c.SetCaps("l@x/1", libCaps)
	c.SetCaps("l2@x/1", libCaps)
	for _, jid := range []string{"l@x/1", "l@x/1", "l2@x/1"} {
		if _, err := c.Info(ctx, link, jid); err != nil {
			t.Fatal(err)
		}
	}
	if got := link.n.Load(); got != 3 {
		t.Errorf("%d queries, want 3: an ill-formed result must not be cached globally", got)
	}
	// No caps: query without node, per JID.
	if _, err := c.Info(ctx, link, "n@x/1"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Info(ctx, link, "n@x/1"); err != nil {
		t.Fatal(err)
	}
	if got := link.n.Load(); got != 4 {
		t.Errorf("%d queries, want 4", got)
	}
	c.Forget("n@x/1")
	if _, err := c.Info(ctx, link, "n@x/1"); err != nil || link.n.Load() != 5 {
		t.Errorf("Forget did not drop the per-JID entry (%d queries, %v)", link.n.Load(), err)
	}
	if _, err := c.Info(ctx, link, "unknown@x/1"); stanzaCond(err) != "item-not-found" {
		t.Errorf("unknown: %v", err)
	}

	// Bounded and safe for concurrent use.
	small := disco.NewCache(4)
	big := &countingLink{answers: map[string]*disco.Info{}}
	for i := range 50 {
		big.answers[fmt.Sprintf("j%d@x/r|", i)] = psi
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				jid := fmt.Sprintf("j%d@x/r", (i+g)%50)
				small.SetCaps(jid, disco.Caps{Node: "legacy", Ver: "1"})
				if _, err := small.Info(ctx, big, jid); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if l := small.Len(); l > 4 {
		t.Errorf("cache holds %d entries, max 4", l)
	}
}

func TestNoGoroutineLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	n := xmpptest.NewNetwork(2)
	a, b := n.Party("a@x/1"), n.Party("b@x/1")
	rm := disco.Serve(b, disco.ClientInfo())
	for range 20 {
		if _, err := disco.Query(context.Background(), a, "b@x/1", ""); err != nil {
			t.Fatal(err)
		}
	}
	rm()
	a.Close()
	b.Close()
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if g := runtime.NumGoroutine(); g > before {
		t.Errorf("%d goroutines after cleanup, %d before", g, before)
	}
}
