package xtls_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xtlsjingle/xtlsjingle/disco"
	"github.com/xtlsjingle/xtlsjingle/internal/xmpptest"
	"github.com/xtlsjingle/xtlsjingle/p2p"
	"github.com/xtlsjingle/xtlsjingle/xtls"
)

// forwarder stands for a port forward on a NAT: it listens on 127.0.0.1:0 and relays every
// connection to target, counting them.
type forwarder struct {
	ln    net.Listener
	count atomic.Int32
	wg    sync.WaitGroup
}

func newForwarder(t *testing.T, target string) *forwarder {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &forwarder{ln: ln}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.count.Add(1)
			d, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			f.wg.Add(2)
			go func() { defer f.wg.Done(); io.Copy(d, c); d.(*net.TCPConn).CloseWrite() }()
			go func() { defer f.wg.Done(); io.Copy(c, d); c.(*net.TCPConn).CloseWrite() }()
			t.Cleanup(func() { c.Close(); d.Close() })
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return f
}

func (f *forwarder) addr() netip.AddrPort { return netip.MustParseAddrPort(f.ln.Addr().String()) }

// p2pPair builds romeo (no listener: he dials) and juliet, whose S5B listener on 127.0.0.1 is
// also reachable through a forwarder (her "external" address, offered as an assisted
// candidate). Juliet publishes <p2p extIp/extPort = the forwarder, locIp/locPort = her
// listener/> and her key; romeo's external IP is romeoExt. hosts are juliet's direct
// candidate hosts (nil: her listener's address).
func p2pPair(t *testing.T, seed int64, romeoExt netip.Addr, hosts []string) (romeo, juliet *party, fwd *forwarder) {
	t.Helper()
	n := xmpptest.NewNetwork(seed)
	juliet = newParty(t, n, julietJID, partyOpts{listener: true, tweak: func(c *xtls.Config) {
		local := netip.MustParseAddrPort(c.S5B.Listener.Addr().String())
		fwd = newForwarder(t, local.String())
		c.S5B.Hosts = hosts
		c.S5B.Extra = []string{fwd.addr().String()}
		c.P2P = &xtls.P2PConfig{Publish: p2p.P2P{External: fwd.addr(), Local: local}, PublishKey: true}
	}})
	romeo = newParty(t, n, romeoJID, partyOpts{tweak: func(c *xtls.Config) {
		c.P2P = &xtls.P2PConfig{ExternalIP: romeoExt}
	}})
	pinEachOther(t, romeo, juliet)
	publish(t, juliet, romeo)
	return romeo, juliet, fwd
}

// publish sends p's presence (caps and PresencePayloads) and waits until to has seen it.
func publish(t *testing.T, p, to *party, extra ...[]byte) {
	t.Helper()
	kids, err := p.client.PresencePayloads()
	if err != nil {
		t.Fatal(err)
	}
	caps, err := disco.MarshalCaps(disco.CapsOf(disco.CapsNode, (&xtls.Config{}).DiscoInfo()))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.link.SetPresence(ctxT(t), append(append([][]byte{caps}, kids...), extra...)...); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, ok := to.client.Published(p.link.LocalJID()); ok || len(kids) == 0 && len(extra) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the presence did not arrive")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestSEED1_DifferentNetworkUsesExternal: juliet published an extIp other than romeo's
// external IP, so romeo tries her external address (the forward, an assisted candidate) first
// and uses it, although her direct candidate has the higher priority and would work; the
// direct one is then not tried at all.
func TestSEED1_DifferentNetworkUsesExternal(t *testing.T) {
	checkGoroutines(t)
	romeo, juliet, fwd := p2pPair(t, 31, netip.MustParseAddr("198.51.100.1"), []string{"127.0.0.1"})
	sa, sb, err := openAccept(t, romeo, juliet, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if sa.Path != xtls.PathDirectExternal || sb.Path != xtls.PathDirectExternal || sa.Transport != xtls.TransportNameS5BDirect {
		t.Errorf("paths %q/%q transport %q, want %q on both sides", sa.Path, sb.Path, sa.Transport, xtls.PathDirectExternal)
	}
	if n := fwd.count.Load(); n != 1 {
		t.Errorf("%d connections through the forward, want 1", n)
	}
	if sa.KeyHint != p2p.KeyHintMatches {
		t.Errorf("romeo's key hint %v, want matches (juliet published her key)", sa.KeyHint)
	}
	if sb.KeyHint != p2p.KeyHintNone {
		t.Errorf("juliet's key hint %v, want none (romeo published nothing)", sb.KeyHint)
	}
	exchange(t, sa, sb, "what light through yonder window breaks")
	closePair(t, sa, sb)
}

// TestSEED1_SameNetworkUsesLocal: the same external IP means the same network, so romeo tries
// juliet's published locIp:locPort first. She offers only her external address as a
// candidate, so the local one is tried as an alias of it (reported with its cid) and wins
// without any connection through the forward.
func TestSEED1_SameNetworkUsesLocal(t *testing.T) {
	checkGoroutines(t)
	romeo, juliet, fwd := p2pPair(t, 32, netip.MustParseAddr("127.0.0.1"), []string{})
	sa, sb, err := openAccept(t, romeo, juliet, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if sa.Path != xtls.PathDirectLocal {
		t.Errorf("romeo's path %q, want %q", sa.Path, xtls.PathDirectLocal)
	}
	if n := fwd.count.Load(); n != 0 {
		t.Errorf("%d connections through the forward, want none", n)
	}
	exchange(t, sa, sb, "the same network")
	closePair(t, sa, sb)
}

// TestSEED1_SameNetworkPathOnBothSides (issue 10): as in TestSEED1_SameNetworkUsesLocal, but
// romeo publishes his <p2p/> too (locIp 127.0.0.1). Juliet nominated her own assisted
// candidate (the alias's base), yet the connection came from romeo's published locIp, not
// through the forward: both sides report direct-local, judged from the connection.
func TestSEED1_SameNetworkPathOnBothSides(t *testing.T) {
	checkGoroutines(t)
	n := xmpptest.NewNetwork(37)
	var fwd *forwarder
	juliet := newParty(t, n, julietJID, partyOpts{listener: true, tweak: func(c *xtls.Config) {
		local := netip.MustParseAddrPort(c.S5B.Listener.Addr().String())
		fwd = newForwarder(t, local.String())
		c.S5B.Hosts = []string{}
		c.S5B.Extra = []string{fwd.addr().String()}
		c.P2P = &xtls.P2PConfig{Publish: p2p.P2P{External: fwd.addr(), Local: local}}
	}})
	romeo := newParty(t, n, romeoJID, partyOpts{tweak: func(c *xtls.Config) {
		c.P2P = &xtls.P2PConfig{ExternalIP: netip.MustParseAddr("127.0.0.1"),
			Publish: p2p.P2P{External: netip.MustParseAddrPort("127.0.0.1:9"), Local: netip.MustParseAddrPort("127.0.0.1:9")}}
	}})
	pinEachOther(t, romeo, juliet)
	publish(t, juliet, romeo)
	publish(t, romeo, juliet)
	sa, sb, err := openAccept(t, romeo, juliet, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if sa.Path != xtls.PathDirectLocal || sb.Path != xtls.PathDirectLocal {
		t.Errorf("paths %q (romeo) / %q (juliet), want %q on both sides", sa.Path, sb.Path, xtls.PathDirectLocal)
	}
	if n := fwd.count.Load(); n != 0 {
		t.Errorf("%d connections through the forward, want none", n)
	}
	closePair(t, sa, sb)
}

// TestSEED1_UnknownExternalIPNoHint: without our own external IP the rule cannot tell the
// networks apart, so juliet's candidates are tried by priority (JS5B-7): her direct one wins
// and the forward is not used.
func TestSEED1_UnknownExternalIPNoHint(t *testing.T) {
	checkGoroutines(t)
	romeo, juliet, fwd := p2pPair(t, 36, netip.Addr{}, []string{"127.0.0.1"})
	sa, sb, err := openAccept(t, romeo, juliet, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if sa.Path != xtls.PathDirectLocal || sb.Path != xtls.PathDirectLocal {
		t.Errorf("paths %q/%q, want %q", sa.Path, sb.Path, xtls.PathDirectLocal)
	}
	if n := fwd.count.Load(); n != 0 {
		t.Errorf("%d connections through the forward, want none", n)
	}
	closePair(t, sa, sb)
}

// TestSEED1_KeyHintDiffers: a key published for the certificate's algorithm that is not the
// certificate's key is reported as "differs" — and the session is secured by the pins all
// the same (a hint is never verification).
func TestSEED1_KeyHintDiffers(t *testing.T) {
	checkGoroutines(t)
	n := xmpptest.NewNetwork(34)
	juliet := newParty(t, n, julietJID, partyOpts{listener: true})
	romeo := newParty(t, n, romeoJID, partyOpts{})
	pinEachOther(t, romeo, juliet)
	other, _, _ := ed25519.GenerateKey(rand.Reader)
	forged := []byte("<e2e xmlns='urn:nf:iot:e2e:1.0'><ed25519 pub='" + base64.StdEncoding.EncodeToString(other) + "'/></e2e>")
	publish(t, juliet, romeo, forged)
	sa, sb, err := openAccept(t, romeo, juliet, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if sa.KeyHint != p2p.KeyHintDiffers || sa.Method != xtls.MethodX509 {
		t.Errorf("key hint %v method %q, want differs over x509", sa.KeyHint, sa.Method)
	}
	closePair(t, sa, sb)
}

// TestCAPS_FromPresence: caps in a contact's presence reach the cache, so Open's disco#info
// asks for node#ver (CAPS-6) and a second contact with the same caps costs no query at all
// (CAPS-10); after a contact's unavailable presence everything it published is forgotten.
func TestCAPS_FromPresence(t *testing.T) {
	checkGoroutines(t)
	n := xmpptest.NewNetwork(35)
	var mu sync.Mutex
	var queries []string
	n.Observe(func(s xmpptest.Stanza) {
		if s.Kind == xmpptest.KindIQ && s.Type == "get" && strings.Contains(string(s.Payload), "disco#info") {
			mu.Lock()
			queries = append(queries, string(s.Payload))
			mu.Unlock()
		}
	})
	juliet := newParty(t, n, julietJID, partyOpts{tweak: func(c *xtls.Config) { c.P2P = &xtls.P2PConfig{PublishKey: true} }})
	romeo := newParty(t, n, romeoJID, partyOpts{})
	pinEachOther(t, romeo, juliet)
	publish(t, juliet, romeo)
	sa, sb, err := openAccept(t, romeo, juliet, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	closePair(t, sa, sb)
	// A second contact running the same software announces the same caps: its disco#info is
	// known by the verification string, so opening a session with it asks nothing.
	garden := newParty(t, n, "juliet@capulet.lit/garden", partyOpts{})
	pinEachOther(t, romeo, garden)
	publish(t, garden, romeo, []byte("<p2p xmlns='urn:nf:iot:p2p:1.0' extIp='198.51.100.7' extPort='1' locIp='10.0.0.2' locPort='2'/>"))
	sa, sb, err = openAccept(t, romeo, garden, nil)
	if err != nil {
		t.Fatalf("Open garden: %v", err)
	}
	closePair(t, sa, sb)
	mu.Lock()
	if len(queries) != 1 || !strings.Contains(queries[0], "node=") {
		t.Errorf("disco#info queries %q, want one with node#ver for both contacts", queries)
	}
	mu.Unlock()
	juliet.link.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, ok := romeo.client.Published(julietJID); !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("juliet's published elements outlived her unavailable presence")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
