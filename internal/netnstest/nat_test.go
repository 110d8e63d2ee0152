package netnstest_test

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xtlsjingle/xtlsjingle/internal/netnstest"
	"github.com/xtlsjingle/xtlsjingle/internal/prosodytest"
	"github.com/xtlsjingle/xtlsjingle/internal/stuntest"
	"github.com/xtlsjingle/xtlsjingle/p2p"
	"github.com/xtlsjingle/xtlsjingle/xtls"
)

func TestMain(m *testing.M) {
	if cfg := os.Getenv(helperEnv); cfg != "" {
		os.Exit(helperMain(cfg))
	}
	os.Exit(m.Run())
}

// stunAddr is the STUN server in the public namespace (TCP and UDP).
var stunAddr = net.JoinHostPort(netnstest.PublicIP, "3478")

// payloadSize is what each side sends in a session (hex-encoded in the stanzas: twice as many
// bytes inside TLS).
const payloadSize = 64 << 10

// world is the topology with its servers.
type world struct {
	tp      *netnstest.Topology
	prosody *prosodytest.Server
	certPEM string
	stun    *stuntest.Server
	exe     string
}

func newWorld(t *testing.T) *world {
	t.Helper()
	tp := netnstest.New(t)
	w := &world{tp: tp}
	var err error
	if w.exe, err = os.Executable(); err != nil {
		t.Fatal(err)
	}
	pub := tp.Public
	// Every stanza the server routes goes to its log (mod_stanza_debug), so that the IBB case
	// can show that the server saw only ciphertext.
	opts := []prosodytest.Option{prosodytest.WithDebugLog(), prosodytest.WithModules("stanza_debug")}
	w.prosody = prosodytest.StartIn(t, prosodytest.Namespace{
		Exec: []string{"ip", "netns", "exec", pub.Name},
		IP:   netnstest.PublicIP,
		Dial: func(addr string) (net.Conn, error) { return pub.Dial(addr, time.Second) },
	}, opts...)
	w.certPEM = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: w.prosody.Certificate.Raw}))
	tl, err := pub.Listen(stunAddr)
	if err != nil {
		t.Fatal(err)
	}
	ul, err := pub.ListenPacket(stunAddr)
	if err != nil {
		t.Fatal(err)
	}
	w.stun = stuntest.Serve(tl, ul)
	t.Cleanup(w.stun.Close)
	return w
}

// ibbData matches an IBB data element in the server's log (XEP-0047) and its base64.
var ibbData = regexp.MustCompile(`<data [^>]*xmlns=['"]http://jabber.org/protocol/ibb['"][^>]*>([A-Za-z0-9+/=]*)</data>`)

// serverLog returns the server's log (every stanza it routed).
func (w *world) serverLog(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(w.prosody.Dir, "prosody.log"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// start runs the helper in ns.
func (w *world) start(t *testing.T, ns *netnstest.NS, cfg helperConfig) *netnstest.Proc {
	t.Helper()
	cfg.Server, cfg.CertPEM = w.prosody.Addr, w.certPEM
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Under -race the race runtime would sleep 1 s at each helper's exit.
	return ns.Start(t, []string{helperEnv + "=" + string(b), "GORACE=" + os.Getenv("GORACE") + " atexit_sleep_ms=0"}, w.exe)
}

// next reads the helper's next line.
func next(t *testing.T, p *netnstest.Proc, what string, timeout time.Duration) helperLine {
	t.Helper()
	select {
	case line, ok := <-p.Lines:
		if !ok {
			p.Wait(5 * time.Second)
			t.Fatalf("%s: helper exited (%v): %s", what, p.Err(), p.Stderr())
		}
		var l helperLine
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("%s: helper line %q: %v", what, line, err)
		}
		if l.Error != "" {
			t.Fatalf("%s: helper failed: %s\n%s", what, l.Error, p.Stderr())
		}
		return l
	case <-time.After(timeout):
		t.Fatalf("%s: no answer from the helper within %v: %s", what, timeout, p.Stderr())
	}
	panic("unreachable")
}

// party is one client of a session.
type party struct {
	ns        *netnstest.NS
	name      string
	listen    string
	stun      bool
	forwarded []string
	proxies   bool
	noHosts   bool // offer no host candidates
	p2p       bool // publish <p2p/> and apply the same-network rule (helperConfig.P2P)
}

// session is what runSession observed.
type session struct {
	marker            string
	init, resp        helperResult
	initReady, rspRdy helperReady
	wire              []*netnstest.Stats // of the captures, in order
}

func randomHex(t *testing.T, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// runSession runs an XTLS session (srp, through the Prosody in the public namespace) from
// initiator to responder, each sending payloadSize random bytes, and checks that both arrived
// intact (sha-256) and that both sides report the same transport. Meanwhile it captures the
// wire in each namespace of capture (all interfaces), looking for the marker that starts
// every stanza; session.wire has what each capture saw.
func (w *world) runSession(t *testing.T, initiator, responder party, capture ...*netnstest.NS) *session {
	t.Helper()
	secret := randomHex(t, 8)
	marker := []byte("NETNSTEST-PLAINTEXT-" + randomHex(t, 8))
	var caps []*netnstest.Capture
	for _, ns := range capture {
		caps = append(caps, ns.Capture(t, "", marker))
	}
	cfg := func(p party, role string) helperConfig {
		jid, password := w.prosody.Account(t)
		c := helperConfig{Role: role, JID: jid + "/" + p.name, Password: password, Secret: secret,
			Listen: p.listen, Forwarded: p.forwarded, Proxies: p.proxies, NoHosts: p.noHosts, P2P: p.p2p,
			Payload: payloadSize, Marker: string(marker)}
		if p.stun {
			c.STUN = stunAddr
		}
		return c
	}
	s := &session{marker: string(marker)}
	rc, ic := cfg(responder, "accept"), cfg(initiator, "open")
	if initiator.p2p || responder.p2p { // contacts, so that they see each other's presence
		bare := func(j string) string { b, _, _ := strings.Cut(j, "/"); return b }
		w.prosody.Befriend(t, bare(ic.JID), bare(rc.JID))
	}
	// The responder first, then the initiator, which learns the responder's <p2p/> only from
	// the server's answer to its initial presence (see runHelper), then "open".
	start := time.Now()
	rp := w.start(t, responder.ns, rc)
	s.rspRdy = *next(t, rp, "responder ready", 30*time.Second).Ready
	ip := w.start(t, initiator.ns, ic)
	s.initReady = *next(t, ip, "initiator ready", 30*time.Second).Ready
	if err := ip.Send("open " + s.rspRdy.JID); err != nil {
		t.Fatal(err)
	}
	t.Logf("both clients online in %v", time.Since(start))
	t.Logf("initiator %s assisted %v proxies %v; responder %s assisted %v proxies %v",
		initiator.name, s.initReady.Assisted, s.initReady.Proxies, responder.name, s.rspRdy.Assisted, s.rspRdy.Proxies)
	start = time.Now()
	s.init = *next(t, ip, "initiator result", 60*time.Second).Result
	s.resp = *next(t, rp, "responder result", 60*time.Second).Result
	t.Logf("session set up and data exchanged in %v", time.Since(start))
	// Both close at the same moment, and each helper exits as soon as its Close returned.
	for _, p := range []*netnstest.Proc{ip, rp} {
		if err := p.Send("close"); err != nil {
			t.Fatal(err)
		}
	}
	for i, p := range []*netnstest.Proc{ip, rp} {
		took := next(t, p, "close", 30*time.Second).Closed
		// A correctness bound: Close waits neither for an answer from a peer that has gone
		// nor for one to a session-terminate that crossed the peer's.
		if d, err := time.ParseDuration(took); err != nil || d >= 3*time.Second {
			t.Errorf("%s's Close took %s", []string{"initiator", "responder"}[i], took)
		}
		t.Logf("%s's Close took %s", []string{"initiator", "responder"}[i], took)
	}
	for _, p := range []*netnstest.Proc{ip, rp} {
		if !p.Wait(15*time.Second) || p.Err() != nil {
			t.Errorf("helper did not end cleanly: %v\n%s", p.Err(), p.Stderr())
		}
	}
	for _, c := range caps {
		s.wire = append(s.wire, c.Stop())
	}
	if s.init.Sent != s.resp.Received || s.resp.Sent != s.init.Received ||
		s.init.ReceivedBytes != payloadSize || s.resp.ReceivedBytes != payloadSize {
		t.Fatalf("data not intact: initiator %+v, responder %+v", s.init, s.resp)
	}
	if s.init.Transport != s.resp.Transport || s.init.Method != xtls.MethodSRP {
		t.Fatalf("initiator %+v, responder %+v", s.init, s.resp)
	}
	t.Logf("%d bytes each way intact (sha-256) over %s, path %s/%s, method %s", payloadSize, s.init.Transport, s.init.Path, s.resp.Path, s.init.Method)
	return s
}

// path asserts the transport and the path both sides report (xtls.Session.Transport, Path).
func (s *session) path(t *testing.T, transport, path string) {
	t.Helper()
	if s.init.Transport != transport || s.init.Path != path || s.resp.Path != path {
		t.Fatalf("transport %s, paths %s (initiator) / %s (responder); want %s, %s", s.init.Transport, s.init.Path, s.resp.Path, transport, path)
	}
}

// encrypted asserts that the capture saw at least min bytes of flows matching on and never
// the marker.
func encrypted(t *testing.T, where string, st *netnstest.Stats, min int, on func(netnstest.Flow) bool) {
	t.Helper()
	n := st.Bytes(on)
	if st.Dropped != 0 {
		t.Errorf("%s: the capture dropped %d frames\n%s", where, st.Dropped, st)
	}
	if st.Marker != 0 {
		t.Errorf("%s: the plaintext marker appeared %d times on the wire\n%s", where, st.Marker, st)
	}
	if n < min {
		t.Errorf("%s: %d bytes of the session on the wire, want at least %d\n%s", where, n, min, st)
	}
	t.Logf("%s: %d session bytes on the wire, plaintext marker seen %d times", where, n, st.Marker)
}

func addrIs(ap netip.AddrPort, ip string, port int) bool {
	return ap.Addr().String() == ip && (port == 0 || int(ap.Port()) == port)
}

// between matches the flows in both directions between a and b (port 0: any).
func between(ipA string, portA int, ipB string, portB int) func(netnstest.Flow) bool {
	return func(f netnstest.Flow) bool {
		return addrIs(f.Src, ipA, portA) && addrIs(f.Dst, ipB, portB) ||
			addrIs(f.Src, ipB, portB) && addrIs(f.Dst, ipA, portA)
	}
}

// viaProxy matches the flows to and from the proxy.
func viaProxy(f netnstest.Flow) bool {
	return addrIs(f.Src, netnstest.PublicIP, prosodytest.NamespaceProxyPort) || addrIs(f.Dst, netnstest.PublicIP, prosodytest.NamespaceProxyPort)
}

func listenOn(ip string, port int) string { return net.JoinHostPort(ip, strconv.Itoa(port)) }

// TestNAT (issue 10, SPEC §17, JS5B-2, JS5B-14, XS-9, STUN-4, SEED-1): two homes behind
// masquerading NATs and a public Prosody with mod_proxy65 and a STUN server, all in network
// namespaces. STUN checks the mappings a home host learns (TCP and UDP). Every other subtest
// runs one srp session with random data both ways and checks that it arrived intact
// (sha-256), which transport and path both sides report, where on the wire the session's
// bytes flowed, and that they were encrypted there (a plaintext marker in every stanza never
// appears, and the capture dropped nothing): PortForward (direct to home 2's forwarded
// port), SameLAN (host candidates), SameNetworkRule and its control SameNetworkNoPresence
// (<p2p/> in presence), Proxy (no direct path) and IBB (no proxy either).
func TestNAT(t *testing.T) {
	w := newWorld(t)
	tp := w.tp
	// The session carries the payload hex-encoded, so each direction is at least 2×payloadSize
	// bytes of TLS records on the wire.
	oneWay := 2 * payloadSize

	t.Run("STUN", func(t *testing.T) {
		for _, c := range []struct {
			ns       *netnstest.NS
			ip, want string
		}{{tp.Host1A, netnstest.Host1AIP, netnstest.Router1IP}, {tp.Host2, netnstest.Host2IP, netnstest.Router2IP}} {
			p := w.start(t, c.ns, helperConfig{Role: "stun", Listen: listenOn(c.ip, 7790), STUN: stunAddr})
			g := next(t, p, "gather", 30*time.Second).Gather
			ap, err := netip.ParseAddrPort(g.Reflexive)
			if err != nil || ap.Addr().String() != c.want || g.ExternalIP != c.want {
				t.Fatalf("from %s: gathered %+v, want reflexive %s", c.ip, g, c.want)
			}
			if len(g.Assisted) != 1 || g.Assisted[0] != g.Reflexive {
				t.Fatalf("assisted %v, want the reflexive address", g.Assisted)
			}
			if ua, err := netip.ParseAddrPort(g.UDPReflexive); err != nil || ua.Addr().String() != c.want {
				t.Fatalf("from %s: UDP mapping %q, want %s", c.ip, g.UDPReflexive, c.want)
			}
			t.Logf("listener %s:7790 behind the NAT learned its mapping %s (STUN over TCP), %s over UDP", c.ip, g.Reflexive, g.UDPReflexive)
		}
	})

	t.Run("PortForward", func(t *testing.T) {
		// Home 2 forwards its listener's port; both publish <p2p/>, and their external IPs
		// differ, so each tries the other's external address first (SEED-1).
		fwd := ":" + strconv.Itoa(netnstest.ForwardPort)
		s := w.runSession(t,
			party{ns: tp.Host1A, name: "h1a", listen: listenOn(netnstest.Host1AIP, 7777), stun: true, proxies: true, p2p: true},
			party{ns: tp.Host2, name: "h2", listen: listenOn(netnstest.Host2IP, netnstest.ForwardPort), stun: true, forwarded: []string{fwd}, proxies: true, p2p: true},
			tp.Public)
		st := s.wire[0]
		wantFwd := listenOn(netnstest.Router2IP, netnstest.ForwardPort)
		if len(s.rspRdy.Assisted) == 0 || s.rspRdy.Assisted[0] != wantFwd {
			t.Errorf("responder's assisted candidates %v, want %s first", s.rspRdy.Assisted, wantFwd)
		}
		s.path(t, xtls.TransportNameS5BDirect, xtls.PathDirectExternal)
		// From home 1's external address to home 2's forwarded port, on the public segment.
		encrypted(t, "public segment", st, 2*oneWay, between(netnstest.Router1IP, 0, netnstest.Router2IP, netnstest.ForwardPort))
		// A proxy candidate may have been tried (its SOCKS5 handshake), not used.
		if n := st.Bytes(viaProxy); n > 1024 {
			t.Errorf("%d bytes went through the proxy", n)
		}
	})

	// sameLAN runs a session between the two hosts of home 1, which share the external
	// address 203.0.113.11; router 1 does not hairpin, so their STUN mappings do not reach
	// each other.
	sameLAN := func(t *testing.T, noHosts, p2p bool) *session {
		return w.runSession(t,
			party{ns: tp.Host1A, name: "h1a", listen: listenOn(netnstest.Host1AIP, 7777), stun: true, proxies: true, noHosts: noHosts, p2p: p2p},
			party{ns: tp.Host1B, name: "h1b", listen: listenOn(netnstest.Host1BIP, 7777), stun: true, proxies: true, noHosts: noHosts, p2p: p2p},
			tp.Switch1, tp.Public)
	}
	// onLAN asserts that the session stayed on home 1's LAN.
	onLAN := func(t *testing.T, s *session) {
		t.Helper()
		lan, pub := s.wire[0], s.wire[1]
		if s.init.Transport != xtls.TransportNameS5BDirect || s.init.Path != xtls.PathDirectLocal {
			t.Fatalf("transport %s, initiator's path %s; want %s, %s", s.init.Transport, s.init.Path, xtls.TransportNameS5BDirect, xtls.PathDirectLocal)
		}
		encrypted(t, "home 1 LAN", lan, 2*oneWay, between(netnstest.Host1AIP, 0, netnstest.Host1BIP, 0))
		if pub.Marker != 0 {
			t.Errorf("marker on the public segment")
		}
		if n := pub.Bytes(func(f netnstest.Flow) bool {
			return f.Dst.Port() != prosodytest.NamespaceC2SPort && f.Src.Port() != prosodytest.NamespaceC2SPort
		}); n > oneWay/4 {
			t.Errorf("%d bytes left home 1 besides the XMPP connections: the session did not stay on the LAN\n%s", n, pub)
		}
	}

	// Same LAN, host candidates: each side offers its local address and they connect directly.
	t.Run("SameLAN", func(t *testing.T) {
		s := sameLAN(t, false, false)
		onLAN(t, s)
		s.path(t, xtls.TransportNameS5BDirect, xtls.PathDirectLocal)
	})

	// Same LAN, only the external candidates offered, but both publish <p2p/> (SEED-1): equal
	// extIp means the same network, so the published locIp:locPort is tried first and wins.
	t.Run("SameNetworkRule", func(t *testing.T) {
		s := sameLAN(t, true, true)
		onLAN(t, s)
		// The responder nominated its own assisted candidate (the alias's base), but the
		// connection came from the initiator's published locIp: both report direct-local.
		s.path(t, xtls.TransportNameS5BDirect, xtls.PathDirectLocal)
		if s.init.KeyHint != p2p.KeyHintMatches.String() || s.resp.KeyHint != p2p.KeyHintMatches.String() {
			t.Errorf("key hints %s/%s, want %s (both published <e2e/>)", s.init.KeyHint, s.resp.KeyHint, p2p.KeyHintMatches)
		}
	})

	// The control: the same without <p2p/> finds no direct path (no hairpin) and uses the proxy.
	t.Run("SameNetworkNoPresence", func(t *testing.T) {
		s := sameLAN(t, true, false)
		s.path(t, xtls.TransportNameS5BProxy, xtls.PathProxy)
		encrypted(t, "home 1 ↔ proxy", s.wire[1], 2*oneWay, viaProxy)
	})

	// noPath runs a session between two homes without a direct path: home 2's listener is on a
	// port that is not forwarded (its STUN mapping is offered, but the NAT refuses inbound
	// connections to it), and home 1 has no forward at all.
	noPath := func(t *testing.T) (*session, *netnstest.Stats) {
		s := w.runSession(t,
			party{ns: tp.Host1B, name: "h1b", listen: listenOn(netnstest.Host1BIP, 7777), stun: true, proxies: true, p2p: true},
			party{ns: tp.Host2, name: "h2", listen: listenOn(netnstest.Host2IP, 7778), stun: true, proxies: true, p2p: true},
			tp.Public)
		return s, s.wire[0]
	}

	t.Run("Proxy", func(t *testing.T) {
		s, st := noPath(t)
		s.path(t, xtls.TransportNameS5BProxy, xtls.PathProxy)
		// Both legs of the relay carry the whole session.
		encrypted(t, "home 1 ↔ proxy", st, 2*oneWay, between(netnstest.Router1IP, 0, netnstest.PublicIP, prosodytest.NamespaceProxyPort))
		encrypted(t, "home 2 ↔ proxy", st, 2*oneWay, between(netnstest.Router2IP, 0, netnstest.PublicIP, prosodytest.NamespaceProxyPort))
	})

	t.Run("IBB", func(t *testing.T) {
		// No proxy either: the proxy's port rejects connections (in the public namespace).
		tp.Public.Nft(fmt.Sprintf(`table inet xjblock {
	chain input {
		type filter hook input priority filter; policy accept;
		tcp dport %d reject with tcp reset
	}
}
`, prosodytest.NamespaceProxyPort))
		t.Cleanup(func() { tp.Public.Exec("", "nft", "delete", "table", "inet", "xjblock") })
		s, st := noPath(t)
		s.path(t, xtls.TransportNameIBB, xtls.PathIBB)
		// IBB goes through the c2s connections (base64 of TLS records inside XMPP's TLS).
		encrypted(t, "home 1 ↔ c2s", st, oneWay, between(netnstest.Router1IP, 0, netnstest.PublicIP, prosodytest.NamespaceC2SPort))
		encrypted(t, "home 2 ↔ c2s", st, oneWay, between(netnstest.Router2IP, 0, netnstest.PublicIP, prosodytest.NamespaceC2SPort))
		if n := st.Bytes(viaProxy); n > 0 {
			t.Errorf("%d bytes through the blocked proxy", n)
		}
		// The server routed every IBB block (its log has them all): decoded, they hold the
		// session's bytes, and never the plaintext marker.
		blocks := ibbData.FindAllStringSubmatch(w.serverLog(t), -1)
		var seen, markers int
		for _, m := range blocks {
			b, err := base64.StdEncoding.DecodeString(m[1])
			if err != nil {
				t.Fatalf("IBB block in the server's log: %v", err)
			}
			seen += len(b)
			markers += strings.Count(string(b), s.marker)
		}
		if seen < 2*oneWay || markers != 0 {
			t.Errorf("the server routed %d IBB blocks with %d bytes (want at least %d), plaintext marker %d times", len(blocks), seen, 2*oneWay, markers)
		}
		t.Logf("the server routed %d IBB blocks, %d bytes decoded, plaintext marker %d times", len(blocks), seen, markers)
	})
}

// TestTopologyCleanup: building the topology changes nothing in the test's own namespace
// (links, addresses, routes, nftables, ip_forward), and the namespaces are gone after the
// test, also when it fails.
func TestTopologyCleanup(t *testing.T) {
	netnstest.Require(t)
	before := rootState(t)
	var names []string
	ok := t.Run("build", func(t *testing.T) {
		tp := netnstest.New(t)
		for _, n := range []*netnstest.NS{tp.Public, tp.Router1, tp.Switch1, tp.Host1A, tp.Host1B, tp.Router2, tp.Host2} {
			names = append(names, n.Name)
		}
		if got := rootState(t); got != before {
			t.Errorf("the root namespace changed:\nbefore:\n%s\nafter:\n%s", before, got)
		}
		// Forwarding is on in the routers only.
		if got := strings.TrimSpace(tp.Router1.Exec("", "cat", "/proc/sys/net/ipv4/ip_forward")); got != "1" {
			t.Errorf("router 1 ip_forward %q", got)
		}
		if got := strings.TrimSpace(tp.Host1A.Exec("", "cat", "/proc/sys/net/ipv4/ip_forward")); got != "0" {
			t.Errorf("host 1a ip_forward %q", got)
		}
	})
	if !ok {
		return
	}
	for _, n := range names {
		if _, err := os.Stat("/run/netns/" + n); err == nil {
			t.Errorf("namespace %s still exists", n)
		}
	}
}

// failEnv makes TestCleanupAfterFailure, run again as a child test binary, build the
// topology, start a process in it and fail on purpose.
const failEnv = "XTLSJINGLE_NETNSTEST_FAIL"

// TestCleanupAfterFailure: a test that fails with the topology up and a process running in it
// still leaves no namespace and no process behind. The failing test is this one, run again
// in a child test binary with failEnv set (failingTopology), so no test is skipped.
func TestCleanupAfterFailure(t *testing.T) {
	if os.Getenv(failEnv) != "" {
		failingTopology(t)
		return
	}
	netnstest.Require(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestCleanupAfterFailure$", "-test.v")
	cmd.Env = append(os.Environ(), failEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "failing on purpose") {
		t.Fatalf("the child did not fail as planned: %v\n%s", err, out)
	}
	var pid int
	for _, line := range strings.Split(string(out), "\n") {
		if _, err := fmt.Sscanf(line, "SLEEP-PID %d", &pid); err == nil {
			break
		}
	}
	if pid == 0 {
		t.Fatalf("no SLEEP-PID in the child's output:\n%s", out)
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
		t.Errorf("the process started in the topology (pid %d) still runs", pid)
	}
	entries, err := os.ReadDir("/run/netns")
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), fmt.Sprintf("xjnt-%d-", cmd.Process.Pid)) {
			t.Errorf("namespace %s of the failed test is left", e.Name())
		}
	}
}

// failingTopology is the child's side of TestCleanupAfterFailure: it builds the topology,
// starts a process in it and fails.
func failingTopology(t *testing.T) {
	tp := netnstest.New(t)
	p := tp.Host1A.Start(t, nil, "sleep", "60")
	fmt.Printf("SLEEP-PID %d\n", p.Pid())
	t.Fatal("failing on purpose with the topology up")
}

func rootState(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	for _, args := range [][]string{
		{"ip", "-o", "link", "show"}, {"ip", "-o", "addr", "show"}, {"ip", "route", "show", "table", "all"},
		{"nft", "list", "ruleset"}, {"cat", "/proc/sys/net/ipv4/ip_forward"},
	} {
		out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %v: %s", args, err, out)
		}
		fmt.Fprintf(&b, "$ %s\n%s", strings.Join(args, " "), out)
	}
	return b.String()
}
