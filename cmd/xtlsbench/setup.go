package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"time"

	"github.com/xtlsjingle/xtlsjingle/internal/xmpptest"
	"github.com/xtlsjingle/xtlsjingle/socks5"
	"github.com/xtlsjingle/xtlsjingle/xtls"
)

type party struct {
	link   xtls.Link
	jid    string
	id     *xtls.Identity
	trust  *xtls.MemoryStore
	client *xtls.Client
	mu     sync.Mutex
	pw     string
}

func newParty(link xtls.Link, policy xtls.TransportPolicy, listener *socks5.Listener) (*party, error) {
	p := &party{link: link, jid: link.LocalJID(), trust: xtls.NewMemoryStore()}
	var err error
	if p.id, err = xtls.NewIdentity(p.jid, xtls.KeyEd25519); err != nil {
		return nil, err
	}
	cfg := xtls.Config{Identity: p.id, Trust: p.trust, Transports: policy, SetupTimeout: 30 * time.Second,
		AcceptQueue: 1 << 16,
		OnIncoming: func(ctx context.Context, in *xtls.Incoming) xtls.Decision {
			p.mu.Lock()
			defer p.mu.Unlock()
			return xtls.Decision{Password: p.pw}
		}}
	cfg.S5B.Listener = listener
	if p.client, err = xtls.NewClient(link, cfg); err != nil {
		return nil, err
	}
	return p, nil
}

func bare(jid string) string { b, _, _ := strings.Cut(jid, "/"); return b }

func pinEachOther(a, b *party) {
	now := time.Now()
	a.trust.Pin(bare(b.jid), b.id.Fingerprint(), xtls.VerifiedSRP, now)
	b.trust.Pin(bare(a.jid), a.id.Fingerprint(), xtls.VerifiedSRP, now)
}

func unpinEachOther(a, b *party) {
	a.trust.Unpin(bare(b.jid), b.id.Fingerprint())
	b.trust.Unpin(bare(a.jid), a.id.Fingerprint())
}

// openAccept opens a session from a to b and returns both ends and Open → first stanza delivered.
func openAccept(ctx context.Context, a, b *party, opts *xtls.OpenOptions) (*xtls.Session, *xtls.Session, time.Duration, error) {
	ch := make(chan *xtls.Session, 1)
	errc := make(chan error, 1)
	go func() {
		s, err := b.client.Accept(ctx)
		if err != nil {
			errc <- err
			return
		}
		ch <- s
	}()
	t0 := time.Now()
	sa, err := a.client.Open(ctx, b.jid, opts)
	if err != nil {
		return nil, nil, 0, err
	}
	var sb *xtls.Session
	select {
	case sb = <-ch:
	case err := <-errc:
		sa.Close()
		return nil, nil, 0, err
	}
	if err := sa.Stream.Send(ctx, []byte("<message><body>first</body></message>")); err != nil {
		return nil, nil, 0, err
	}
	if _, err := sb.Stream.Next(ctx); err != nil {
		return nil, nil, 0, err
	}
	return sa, sb, time.Since(t0), nil
}

// setupsPerRun is how many set-ups (each after one IQ round trip) a run of the set-up measure
// makes: a set-up takes milliseconds, and a median over few samples moves with the load.
const setupsPerRun = 5

// setup measures x509 and srp session setup through Prosody in units of one IQ round trip
// between the same two clients, and one local TLS handshake with the same configuration:
// first on the loopback links, then (with -setup-latency) with a network's latency added to
// each client's link to the server.
func (b *bench) setup() ([]Setup, error) {
	var out []Setup
	hs, err := b.localHandshakes()
	if err != nil {
		return nil, err
	}
	type setupCase struct {
		name    string
		policy  xtls.TransportPolicy
		srp     bool
		latency time.Duration // one way, on each client's link to the server
	}
	cases := []setupCase{{"x509 over IBB", xtls.TransportIBB, false, 0}, {"x509 over direct S5B", xtls.TransportS5B, false, 0}, {"srp over IBB", xtls.TransportIBB, true, 0}}
	if l := b.o.setupLatency; l > 0 {
		// With a network's latency on the client links, one IQ round trip is four link
		// crossings and CPU is a small part of it: the ratio counts protocol round trips.
		// IBB only: there every byte crosses the server; a direct S5B bytestream would not
		// cross the relays.
		cases = append(cases, setupCase{"x509 over IBB", xtls.TransportIBB, false, l}, setupCase{"srp over IBB", xtls.TransportIBB, true, l})
	}
	for _, c := range cases {
		addr := b.srv.Addr
		if c.latency > 0 {
			r, err := newDelayRelay(b.srv.Addr, c.latency)
			if err != nil {
				return nil, err
			}
			b.later(func() { r.Close() })
			addr = r.Addr()
		}
		la, err := b.dialAt(addr, "setup-a")
		if err != nil {
			return nil, err
		}
		lb, err := b.dialAt(addr, "setup-b")
		if err != nil {
			return nil, err
		}
		var lA, lB *socks5.Listener
		if c.policy == xtls.TransportS5B {
			if lA, err = socks5.Listen("127.0.0.1:0"); err != nil {
				return nil, err
			}
			if lB, err = socks5.Listen("127.0.0.1:0"); err != nil {
				return nil, err
			}
			b.later(func() { lA.Close(); lB.Close() })
		}
		pa, err := newParty(la, c.policy, lA)
		if err != nil {
			return nil, err
		}
		pb, err := newParty(lb, c.policy, lB)
		if err != nil {
			return nil, err
		}
		b.later(func() { pa.client.Close(); pb.client.Close() })
		var opts *xtls.OpenOptions
		if c.srp {
			opts = &xtls.OpenOptions{Password: "bench"}
			pb.pw = "bench"
		}
		s := Setup{Name: c.name, HandshakeMS: hs, OneWayLatencyMS: ms(c.latency)}
		var rtts []float64
		for i := 0; i < b.o.runs; i++ {
			// Round trips and set-ups interleave so that both see the same load.
			for range setupsPerRun {
				t0 := time.Now()
				if _, err := la.Request(context.Background(), lb.LocalJID(), "get", []byte("<query xmlns='http://jabber.org/protocol/disco#info'/>")); err != nil {
					return nil, err
				}
				rtts = append(rtts, ms(time.Since(t0)))
				if c.srp {
					unpinEachOther(pa, pb)
				} else {
					pinEachOther(pa, pb)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
				sa, sb, d, err := openAccept(ctx, pa, pb, opts)
				cancel()
				if err != nil {
					return nil, fmt.Errorf("%s: %w", c.name, err)
				}
				if c.srp && sa.Method != xtls.MethodSRP {
					return nil, fmt.Errorf("%s: method %s", c.name, sa.Method)
				}
				s.MS = append(s.MS, ms(d))
				sa.Close()
				<-sb.Done()
			}
		}
		if c.name == "x509 over IBB" && c.latency == 0 && b.o.setupProf != "" {
			if err := b.profileSetups(pa, pb, 200); err != nil {
				return nil, fmt.Errorf("setup profile: %w", err)
			}
		}
		s.MedianMS, s.RTTMS = median(s.MS), median(rtts)
		s.RTTs = s.MedianMS / s.RTTMS
		s.RTTsMinusHS = (s.MedianMS - hs) / s.RTTMS
		if !c.srp {
			s.GoalRTTPlusH = 8
		}
		out = append(out, s)
	}
	return out, nil
}

// profileSetups runs n more x509 set-ups from a to b with the CPU profiler on and writes the
// profile to -setup-cpuprofile (not counted in the medians).
func (b *bench) profileSetups(a, p *party, n int) error {
	f, err := os.Create(b.o.setupProf)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := pprof.StartCPUProfile(f); err != nil {
		return err
	}
	defer pprof.StopCPUProfile()
	for range n {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		sa, sb, _, err := openAccept(ctx, a, p, nil)
		cancel()
		if err != nil {
			return err
		}
		sa.Close()
		<-sb.Done()
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

// localHandshakes is the median of one x509 TLS 1.3 handshake with the XTLS configuration over
// net.Pipe (the "one handshake" of the setup goal: CPU of both ends, no network).
func (b *bench) localHandshakes() (float64, error) {
	var v []float64
	for i := 0; i < 5*b.o.runs; i++ {
		cc, sc, err := b.tlsPair()
		if err != nil {
			return 0, err
		}
		x, y := net.Pipe()
		tc, ts := tls.Client(x, cc), tls.Server(y, sc)
		errc := make(chan error, 1)
		t0 := time.Now()
		go func() { errc <- ts.Handshake() }()
		err = tc.Handshake()
		if err == nil {
			// GO-7: the server checks the client certificate after the client finished; one
			// byte back covers the whole handshake.
			go ts.Write([]byte{1})
			_, err = tc.Read(make([]byte, 1))
		}
		if e := <-errc; err == nil {
			err = e
		}
		v = append(v, ms(time.Since(t0)))
		x.Close()
		y.Close()
		if err != nil {
			return 0, err
		}
	}
	return median(v), nil
}

// memory opens n idle x509 sessions over IBB on the in-memory network and reports the heap and
// goroutines per session end, next to n crypto/tls pairs over net.Pipe alone.
func memory(n int, budget time.Duration) (*Memory, error) {
	m := &Memory{Sessions: n, GoalKiB: 32, Note: "both ends live in this process, over internal/xmpptest (no server); heap after GC"}
	// crypto/tls pairs alone.
	ids := [2]*xtls.Identity{}
	var err error
	for i, j := range []string{"romeo@montague.lit", "juliet@capulet.lit"} {
		if ids[i], err = xtls.NewIdentity(j, xtls.KeyEd25519); err != nil {
			return nil, err
		}
	}
	rs, js := xtls.NewMemoryStore(), xtls.NewMemoryStore()
	rs.Pin("juliet@capulet.lit", ids[1].Fingerprint(), xtls.VerifiedSRP, time.Now())
	js.Pin("romeo@montague.lit", ids[0].Fingerprint(), xtls.VerifiedSRP, time.Now())
	cc, _ := xtls.ClientConfig(ids[0], "juliet@capulet.lit", xtls.MethodX509, rs)
	sc, _ := xtls.ServerConfig(ids[1], "romeo@montague.lit", xtls.MethodX509, js)
	heap := func() (uint64, int) {
		var ms runtime.MemStats
		time.Sleep(100 * time.Millisecond)
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc, runtime.NumGoroutine()
	}
	h0, g0 := heap()
	var conns []net.Conn // the pipe ends; closing a tls.Conn would block on close_notify
	var keep []*tls.Conn
	for i := 0; i < n; i++ {
		x, y := net.Pipe()
		tc, ts := tls.Client(x, cc), tls.Server(y, sc)
		errc := make(chan error, 1)
		go func() {
			err := ts.Handshake()
			if err == nil {
				_, err = ts.Write([]byte{1})
			}
			errc <- err
		}()
		if err := tc.Handshake(); err != nil {
			return nil, err
		}
		if _, err := tc.Read(make([]byte, 1)); err != nil {
			return nil, err
		}
		if err := <-errc; err != nil {
			return nil, err
		}
		conns, keep = append(conns, x, y), append(keep, tc, ts)
	}
	h1, g1 := heap()
	m.TLSPairKiBPerEnd = float64(int64(h1)-int64(h0)) / float64(2*n) / 1024
	m.TLSGoroutinesEnd = float64(g1-g0) / float64(2*n)
	for _, c := range conns {
		c.Close()
	}
	runtime.KeepAlive(keep)
	conns, keep = nil, nil

	// XTLS sessions. The Jingle manager of one client holds at most 1024 sessions
	// (resource-constraint beyond), so the sessions are spread over pairs of clients with up to
	// perPair sessions each; the clients exist before the baseline is taken.
	const perPair = 1000
	nw := xmpptest.NewNetwork(9)
	var pairs [][2]*party
	for i := 0; i < (n+perPair-1)/perPair; i++ {
		ra, err := newParty(nw.Party(fmt.Sprintf("romeo%d@montague.lit/orchard", i)), xtls.TransportIBB, nil)
		if err != nil {
			return nil, err
		}
		jb, err := newParty(nw.Party(fmt.Sprintf("juliet%d@capulet.lit/balcony", i)), xtls.TransportIBB, nil)
		if err != nil {
			return nil, err
		}
		defer ra.client.Close()
		defer jb.client.Close()
		pinEachOther(ra, jb)
		pairs = append(pairs, [2]*party{ra, jb})
	}
	m.Note += fmt.Sprintf("; %d client pairs of up to %d sessions (one Jingle manager holds at most 1024)", len(pairs), perPair)
	h0, g0 = heap()
	t0 := time.Now()
	var all []*xtls.Session
	for i := 0; i < n; i++ {
		if time.Since(t0) > budget {
			m.Note += fmt.Sprintf("; stopped at the time budget of %v after %d of %d sessions", budget, i, n)
			n, m.Sessions = i, i
			break
		}
		pr := pairs[i/perPair]
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		sa, sb, _, err := openAccept(ctx, pr[0], pr[1], nil)
		cancel()
		if err != nil {
			m.Note += fmt.Sprintf("; opening session %d failed (%v): measured the %d before", i+1, err, i)
			n, m.Sessions = i, i
			break
		}
		all = append(all, sa, sb)
	}
	if n == 0 {
		return m, nil
	}
	m.OpenSeconds = time.Since(t0).Seconds()
	h1, g1 = heap()
	runtime.KeepAlive(all)
	m.XTLSKiBPerEnd = float64(int64(h1)-int64(h0)) / float64(2*n) / 1024
	m.GoroutinesPerEnd = float64(g1-g0) / float64(2*n)
	m.DifferenceKiB = m.XTLSKiBPerEnd - m.TLSPairKiBPerEnd
	for i := 0; i < len(all); i += 2 {
		all[i].Close()
		<-all[i+1].Done()
	}
	return m, nil
}
