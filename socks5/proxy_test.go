package socks5

import (
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xtlsjingle/xtlsjingle/internal/xmpptest"
)

// testProxy is a minimal XEP-0065 proxy (like Prosody's mod_proxy65) on loopback TCP plus its
// XMPP side on the in-memory network: disco#info with identity proxy/bytestreams, the
// streamhost query and activation (S5B-8), which relays two connections with the same DST.ADDR.
type testProxy struct {
	jid  string
	host string // advertised host
	ln   net.Listener

	mu       sync.Mutex
	conns    map[string][]net.Conn
	all      []net.Conn
	refuse   bool // answer activation with not-allowed
	activate int
	wg       sync.WaitGroup
}

func newTestProxy(t *testing.T, n *xmpptest.Network, jid, advertisedHost string) *testProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &testProxy{jid: jid, host: advertisedHost, ln: ln, conns: map[string][]net.Conn{}}
	if p.host == "" {
		p.host = "127.0.0.1"
	}
	party := n.Party(jid)
	party.HandleIQ(nsDiscoInfo, "query", func(ctx context.Context, from, to, typ string, payload []byte) ([]byte, error) {
		return []byte("<query xmlns='" + nsDiscoInfo + "'><identity category='proxy' type='bytestreams' name='relay'/><feature var='" + NSBytestreams + "'/></query>"), nil
	})
	party.HandleIQ(NSBytestreams, "query", p.handleIQ)
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(p.close)
	return p
}

func (p *testProxy) port() int { return p.ln.Addr().(*net.TCPAddr).Port }

func (p *testProxy) streamhost() Streamhost {
	return Streamhost{JID: p.jid, Host: "127.0.0.1", Port: p.port()}
}

func (p *testProxy) handleIQ(ctx context.Context, from, to, typ string, payload []byte) ([]byte, error) {
	q, err := ParseQuery(payload)
	if err != nil {
		return nil, err
	}
	if typ == "get" {
		return (&Query{Streamhosts: []Streamhost{{JID: p.jid, Host: p.host, Port: p.port()}}}).Marshal(), nil
	}
	if q.Activate == "" {
		return nil, badRequest("no activate")
	}
	dst := DstAddr(q.SID, from, q.Activate)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.activate++
	cs := p.conns[dst]
	if p.refuse || len(cs) != 2 {
		return nil, &Error{Type: "cancel", Condition: "not-allowed", Text: "both parties must be connected"}
	}
	delete(p.conns, dst)
	p.wg.Add(2)
	go p.relay(cs[0], cs[1])
	go p.relay(cs[1], cs[0])
	return nil, nil
}

func (p *testProxy) relay(dst, src net.Conn) {
	defer p.wg.Done()
	io.Copy(dst, src)
	if tc, ok := dst.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
}

func (p *testProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.all = append(p.all, c)
		p.mu.Unlock()
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			dst, err := readRequest(c)
			if err != nil {
				c.Close()
				return
			}
			// Register before replying, as mod_proxy65 does (one event-loop step): the
			// client may ask for activation as soon as it has the reply.
			p.mu.Lock()
			p.conns[dst] = append(p.conns[dst], c)
			p.mu.Unlock()
			if writeReply(c, repSucceeded, dst) != nil {
				c.Close()
				return
			}
		}()
	}
}

func (p *testProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for _, c := range p.all {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// serverParty answers disco#items for the server domain with the given items.
func serverParty(n *xmpptest.Network, domain string, items ...string) {
	n.Party(domain).HandleIQ(nsDiscoItems, "query", func(ctx context.Context, from, to, typ string, payload []byte) ([]byte, error) {
		var b strings.Builder
		b.WriteString("<query xmlns='" + nsDiscoItems + "'>")
		for _, it := range items {
			b.WriteString("<item jid='" + it + "'/>")
		}
		b.WriteString("</query>")
		return []byte(b.String()), nil
	})
}

// TestS5B2_DiscoverProxies walks disco#items → disco#info → bytestreams query; a host that
// does not resolve is replaced by the configured address or reported by name (S5B-3).
func TestS5B2_DiscoverProxies(t *testing.T) {
	checkGoroutines(t)
	n := xmpptest.NewNetwork(1)
	romeo := n.Party("romeo@montague.lit/orchard")
	good := newTestProxy(t, n, "proxy.montague.lit", "127.0.0.1")
	named := newTestProxy(t, n, "proxy65.montague.lit", "proxy65.montague.invalid")
	// An item that is not a proxy (answers disco#info without the identity) and one that
	// does not answer at all.
	n.Party("conference.montague.lit").HandleIQ(nsDiscoInfo, "query", func(ctx context.Context, from, to, typ string, payload []byte) ([]byte, error) {
		return []byte("<query xmlns='" + nsDiscoInfo + "'><identity category='conference' type='text'/></query>"), nil
	})
	serverParty(n, "montague.lit", "conference.montague.lit", "upload.montague.lit", good.jid, named.jid)

	noDNS := func(ctx context.Context, host string) ([]string, error) {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	hosts, err := DiscoverProxies(t.Context(), romeo, "montague.lit", &ProxyOptions{LookupHost: noDNS})
	if len(hosts) != 1 || hosts[0] != good.streamhost() {
		t.Errorf("hosts = %+v, want only %+v", hosts, good.streamhost())
	}
	if err == nil || !strings.Contains(err.Error(), "proxy65.montague.invalid") || !strings.Contains(err.Error(), "proxy65_address") {
		t.Errorf("err = %v, want a clear error naming the unresolvable host", err)
	}

	hosts, err = DiscoverProxies(t.Context(), romeo, "montague.lit", &ProxyOptions{
		LookupHost: noDNS,
		Addresses:  map[string]string{named.jid: "127.0.0.1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []Streamhost{good.streamhost(), named.streamhost()}
	if len(hosts) != 2 || hosts[0] != want[0] || hosts[1] != want[1] {
		t.Errorf("hosts = %+v, want %+v", hosts, want)
	}

	// A server without proxy: no hosts, no error.
	serverParty(n, "capulet.lit")
	if hosts, err := DiscoverProxies(t.Context(), romeo, "capulet.lit", nil); hosts != nil || err != nil {
		t.Errorf("no proxy: %v %v", hosts, err)
	}
	// A server that fails disco#items.
	if _, err := DiscoverProxies(t.Context(), romeo, "nowhere.lit", nil); err == nil {
		t.Error("no error for an unreachable server")
	}
}

// TestS5B8_Activate relays two connections through the test proxy after activation, with
// the bytestream sid (ERR-7); activating before the target connected is refused.
func TestS5B8_Activate(t *testing.T) {
	checkGoroutines(t)
	n := xmpptest.NewNetwork(2)
	romeo := n.Party("romeo@montague.lit/orchard")
	p := newTestProxy(t, n, "proxy.montague.lit", "")
	sid, target := "vj3hs98y", "juliet@capulet.lit/balcony"
	dst := DstAddr(sid, romeo.LocalJID(), target)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(p.port()))

	a, err := Dial(t.Context(), addr, dst)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	err = Activate(t.Context(), romeo, p.jid, sid, target)
	if err == nil {
		t.Fatal("activation with one party connected succeeded")
	}
	var xe *xmpptest.StanzaError
	if !errors.As(err, &xe) || xe.Condition != "not-allowed" {
		t.Errorf("err = %v, want not-allowed", err)
	}
	b, err := Dial(t.Context(), addr, dst)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := Activate(t.Context(), romeo, p.jid, sid, target); err != nil {
		t.Fatal(err)
	}
	a.Write([]byte("hello"))
	buf := make([]byte, 5)
	if _, err := io.ReadFull(b, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("relay: %q %v", buf, err)
	}
}

// TestS5B7_OfferDirectAndProxy: plain XEP-0065 between two parties, first with our direct
// streamhost, then with only a proxy (activated by the requester, S5B-8).
func TestS5B7_OfferDirectAndProxy(t *testing.T) {
	checkGoroutines(t)
	n := xmpptest.NewNetwork(3)
	romeo, juliet := n.Party(romeoJID), n.Party(julietJID)
	defer romeo.Close()
	defer juliet.Close()
	p := newTestProxy(t, n, "proxy.montague.lit", "")
	l := listen(t, time.Second)
	got := make(chan net.Conn, 1)
	defer HandleRequests(juliet, julietJID, func(from, sid string) bool { return from == romeoJID }, func(from, sid string, c net.Conn) { got <- c })()

	direct := Streamhost{JID: romeoJID, Host: "127.0.0.1", Port: l.Port()}
	for name, shs := range map[string][]Streamhost{
		"direct": {direct},
		"proxy":  {{JID: p.jid, Host: "127.0.0.1", Port: p.port()}},
	} {
		c, err := Offer(t.Context(), romeo, julietJID, "sid-"+name, l, shs)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		s := <-got
		c.Write([]byte("ping"))
		buf := make([]byte, 4)
		s.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(s, buf); err != nil || string(buf) != "ping" {
			t.Errorf("%s: got %q %v", name, buf, err)
		}
		c.Close()
		s.Close()
	}
	// Refused by accept → not-acceptable; unreachable streamhosts → item-not-found.
	n.Party("mallory@evil.lit/x")
	_, err := Offer(t.Context(), n.Party("mallory@evil.lit/x"), julietJID, "s", nil, []Streamhost{{JID: "p", Host: "127.0.0.1", Port: 9}})
	var xe *xmpptest.StanzaError
	if !errors.As(err, &xe) || xe.Condition != "not-acceptable" {
		t.Errorf("refused offer: %v", err)
	}
	dead := deadAddr(t)
	host, port, _ := net.SplitHostPort(dead)
	pn, _ := strconv.Atoi(port)
	_, err = Offer(t.Context(), romeo, julietJID, "s3", nil, []Streamhost{{JID: "p", Host: host, Port: pn}})
	if !errors.As(err, &xe) || xe.Condition != "item-not-found" {
		t.Errorf("unreachable streamhost: %v", err)
	}
	n.Party("mallory@evil.lit/x").Close()
	drain := func() {
		for {
			select {
			case c := <-got:
				c.Close()
			default:
				return
			}
		}
	}
	drain()
}
