package socks5

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/xtlsjingle/xtlsjingle/internal/xmpptest"
)

const (
	romeoJID  = "romeo@montague.lit/orchard"
	julietJID = "juliet@capulet.lit/balcony"
)

// session wires two transports over the in-memory network the way the jingle package does:
// the initiator's element goes to AcceptJingleTransport, the responder's to HandleAccept,
// transport-info IQs go to HandleInfo, and both sides call Establish.
type session struct {
	n              *xmpptest.Network
	romeo, juliet  *xmpptest.Party
	ini, res       *JingleTransport
	infos          sync.Map // "from→to" → []*Transport sent
	iniCfg, resCfg Config
}

func newSession(t *testing.T, n *xmpptest.Network, iniCfg, resCfg func(*Config)) *session {
	t.Helper()
	s := &session{n: n}
	s.romeo = s.n.Party(romeoJID)
	s.juliet = s.n.Party(julietJID)
	s.iniCfg = Config{Link: s.romeo, PeerJID: julietJID, Stagger: 20 * time.Millisecond, ProxyDelay: 50 * time.Millisecond, ConnectTimeout: 2 * time.Second}
	s.resCfg = Config{Link: s.juliet, PeerJID: romeoJID, Stagger: 20 * time.Millisecond, ProxyDelay: 50 * time.Millisecond, ConnectTimeout: 2 * time.Second}
	if iniCfg != nil {
		iniCfg(&s.iniCfg)
	}
	if resCfg != nil {
		resCfg(&s.resCfg)
	}
	var err error
	if s.ini, err = NewJingleTransport(s.iniCfg); err != nil {
		t.Fatal(err)
	}
	if s.res, err = AcceptJingleTransport(s.resCfg, s.ini.Element()); err != nil {
		t.Fatal(err)
	}
	if err := s.ini.HandleAccept(s.res.Element()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.ini.Close()
		s.res.Close()
		s.romeo.Close()
		s.juliet.Close()
	})
	s.romeo.HandleIQ(NSJingleS5B, "transport", func(ctx context.Context, from, to, typ string, payload []byte) ([]byte, error) {
		return nil, s.ini.HandleInfo(payload)
	})
	s.juliet.HandleIQ(NSJingleS5B, "transport", func(ctx context.Context, from, to, typ string, payload []byte) ([]byte, error) {
		return nil, s.res.HandleInfo(payload)
	})
	s.n.Observe(func(st xmpptest.Stanza) {
		if st.Type != "set" {
			return
		}
		if tr, err := ParseTransport(st.Payload); err == nil {
			k := st.From
			v, _ := s.infos.LoadOrStore(k, &infoLog{})
			v.(*infoLog).add(tr)
		}
	})
	return s
}

type infoLog struct {
	mu sync.Mutex
	tr []*Transport
}

func (l *infoLog) add(t *Transport) { l.mu.Lock(); l.tr = append(l.tr, t); l.mu.Unlock() }

func (s *session) sent(from string) []*Transport {
	v, ok := s.infos.Load(from)
	if !ok {
		return nil
	}
	l := v.(*infoLog)
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*Transport(nil), l.tr...)
}

type result struct {
	conn net.Conn
	err  error
}

// establish runs both Establish calls concurrently.
func (s *session) establish(ctx context.Context) (ini, res result) {
	send := func(p *xmpptest.Party, to string) func(context.Context, []byte) error {
		return func(ctx context.Context, b []byte) error {
			_, err := p.Request(ctx, to, "set", b)
			return err
		}
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		ini.conn, ini.err = s.ini.Establish(ctx, send(s.romeo, julietJID))
	}()
	go func() {
		defer wg.Done()
		res.conn, res.err = s.res.Establish(ctx, send(s.juliet, romeoJID))
	}()
	wg.Wait()
	return ini, res
}

// checkStream sends 1 MiB each way and compares SHA-256 sums.
func checkStream(t *testing.T, a, b net.Conn) {
	t.Helper()
	var wg sync.WaitGroup
	oneWay := func(w, r net.Conn, name string) {
		defer wg.Done()
		data := make([]byte, 1<<20)
		rand.Read(data)
		go w.Write(data)
		got := make([]byte, len(data))
		r.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadFull(r, got); err != nil {
			t.Errorf("%s: %v", name, err)
			return
		}
		if sha256.Sum256(got) != sha256.Sum256(data) {
			t.Errorf("%s: data corrupted", name)
		}
	}
	wg.Add(2)
	go oneWay(a, b, "initiator→responder")
	go oneWay(b, a, "responder→initiator")
	wg.Wait()
}

func mustListen(t *testing.T) *Listener {
	return listen(t, 2*time.Second)
}

func withListener(l *Listener) func(*Config) {
	return func(c *Config) { c.Listener = l; c.Hosts = []string{"127.0.0.1"} }
}

// TestJS5B_DirectInitiatorDials: only the responder offers a candidate; the initiator
// connects (candidate-used), the responder has nothing (candidate-error); nominated is the
// responder's candidate (JS5B-9, JS5B-11 b).
func TestJS5B_DirectInitiatorDials(t *testing.T) {
	checkGoroutines(t)
	l := mustListen(t)
	s := newSession(t, xmpptest.NewNetwork(1), nil, withListener(l))
	ini, res := s.establish(t.Context())
	if ini.err != nil || res.err != nil {
		t.Fatalf("establish: %v / %v", ini.err, res.err)
	}
	defer ini.conn.Close()
	defer res.conn.Close()
	if got := ini.conn.RemoteAddr().String(); got != l.Addr().String() {
		t.Errorf("initiator connected to %s, want the responder's listener %s", got, l.Addr())
	}
	checkStream(t, ini.conn, res.conn)
	if r := s.sent(romeoJID); len(r) != 1 || r[0].CandidateUsed != s.res.local[0].CID {
		t.Errorf("initiator sent %+v, want candidate-used %s", r, s.res.local[0].CID)
	}
	if r := s.sent(julietJID); len(r) != 1 || !r[0].CandidateError {
		t.Errorf("responder sent %+v, want candidate-error", r)
	}
}

// TestJS5B_DirectResponderDials: the other way round.
func TestJS5B_DirectResponderDials(t *testing.T) {
	checkGoroutines(t)
	l := mustListen(t)
	s := newSession(t, xmpptest.NewNetwork(2), withListener(l), nil)
	ini, res := s.establish(t.Context())
	if ini.err != nil || res.err != nil {
		t.Fatalf("establish: %v / %v", ini.err, res.err)
	}
	defer ini.conn.Close()
	defer res.conn.Close()
	if got := res.conn.RemoteAddr().String(); got != l.Addr().String() {
		t.Errorf("responder connected to %s, want %s", got, l.Addr())
	}
	checkStream(t, ini.conn, res.conn)
}

// TestJS5B11_BothDirect: both sides offer and both connect; the candidates have equal
// priority, so the initiator's choice (the responder's candidate) wins (JS5B-11 d), and the
// losing connections are closed.
func TestJS5B11_BothDirect(t *testing.T) {
	checkGoroutines(t)
	li, lr := mustListen(t), mustListen(t)
	s := newSession(t, xmpptest.NewNetwork(3), withListener(li), withListener(lr))
	if s.ini.local[0].Priority != s.res.local[0].Priority {
		t.Fatal("test wants equal priorities")
	}
	ini, res := s.establish(t.Context())
	if ini.err != nil || res.err != nil {
		t.Fatalf("establish: %v / %v", ini.err, res.err)
	}
	defer ini.conn.Close()
	defer res.conn.Close()
	if got := ini.conn.RemoteAddr().String(); got != lr.Addr().String() {
		t.Errorf("nominated connection goes to %s, want the responder's listener %s", got, lr.Addr())
	}
	checkStream(t, ini.conn, res.conn)
}

// TestJS5B11_HigherPriorityWins: both connect; the initiator's candidate has the higher
// priority (direct vs the responder's assisted), so it wins although the initiator's choice
// would win a tie (JS5B-11 c).
func TestJS5B11_HigherPriorityWins(t *testing.T) {
	checkGoroutines(t)
	li, lr := mustListen(t), mustListen(t)
	s := newSession(t, xmpptest.NewNetwork(4), withListener(li), func(c *Config) {
		c.Extra = []string{lr.Addr().String()} // assisted: priority 120<<16
		c.Listener = lr
		c.Hosts = []string{} // no direct candidate
	})
	if s.res.local[0].Type != Assisted || s.ini.local[0].Priority <= s.res.local[0].Priority {
		t.Fatalf("setup: %+v vs %+v", s.ini.local, s.res.local)
	}
	ini, res := s.establish(t.Context())
	if ini.err != nil || res.err != nil {
		t.Fatalf("establish: %v / %v", ini.err, res.err)
	}
	defer ini.conn.Close()
	defer res.conn.Close()
	if got := res.conn.RemoteAddr().String(); got != li.Addr().String() {
		t.Errorf("nominated connection goes to %s, want the initiator's listener %s", got, li.Addr())
	}
	checkStream(t, ini.conn, res.conn)
}

// TestJS5B4_CandidatesLater: the responder's session-accept carries no candidate and sends
// them later in a transport-info (JS5B-4); the initiator uses them.
func TestJS5B4_CandidatesLater(t *testing.T) {
	checkGoroutines(t)
	l := mustListen(t)
	n := xmpptest.NewNetwork(12)
	romeo, juliet := n.Party(romeoJID), n.Party(julietJID)
	defer romeo.Close()
	defer juliet.Close()
	ini, err := NewJingleTransport(Config{Link: romeo, PeerJID: julietJID})
	if err != nil {
		t.Fatal(err)
	}
	defer ini.Close()
	res, err := AcceptJingleTransport(Config{Link: juliet, PeerJID: romeoJID, Listener: l}, ini.Element())
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	if err := ini.HandleAccept((&Transport{SID: ini.SID()}).Marshal()); err != nil {
		t.Fatal(err)
	}
	if err := ini.HandleInfo(res.Element()); err != nil { // candidates in transport-info
		t.Fatal(err)
	}
	s := &session{n: n, romeo: romeo, juliet: juliet, ini: ini, res: res}
	romeo.HandleIQ(NSJingleS5B, "transport", func(ctx context.Context, from, to, typ string, payload []byte) ([]byte, error) {
		return nil, ini.HandleInfo(payload)
	})
	juliet.HandleIQ(NSJingleS5B, "transport", func(ctx context.Context, from, to, typ string, payload []byte) ([]byte, error) {
		return nil, res.HandleInfo(payload)
	})
	a, b := s.establish(t.Context())
	if a.err != nil || b.err != nil {
		t.Fatalf("establish: %v / %v", a.err, b.err)
	}
	defer a.conn.Close()
	defer b.conn.Close()
	if ini.Nominated().CID != res.local[0].CID {
		t.Errorf("nominated %+v, want the late candidate %s", ini.Nominated(), res.local[0].CID)
	}
	checkStream(t, a.conn, b.conn)
}

// TestJS5B11_NominationTable covers every case of JS5B-11.
func TestJS5B11_NominationTable(t *testing.T) {
	hi := &Candidate{CID: "hi", Priority: Priority(Direct, 10)}
	lo := &Candidate{CID: "lo", Priority: Priority(Proxy, 10)}
	hi2 := &Candidate{CID: "hi2", Priority: Priority(Direct, 10)}
	cases := []struct {
		name          string
		initiator     bool
		mine, theirs  *Candidate
		useMine, okay bool
	}{
		{"a both error (initiator)", true, nil, nil, false, false},
		{"a both error (responder)", false, nil, nil, false, false},
		{"b only mine (initiator)", true, hi, nil, true, true},
		{"b only mine (responder)", false, lo, nil, true, true},
		{"b only theirs (initiator)", true, nil, lo, false, true},
		{"b only theirs (responder)", false, nil, hi, false, true},
		{"c mine higher (initiator)", true, hi, lo, true, true},
		{"c mine higher (responder)", false, hi, lo, true, true},
		{"c theirs higher (initiator)", true, lo, hi, false, true},
		{"c theirs higher (responder)", false, lo, hi, false, true},
		{"d tie, initiator's choice (initiator)", true, hi, hi2, true, true},
		{"d tie, initiator's choice (responder)", false, hi, hi2, false, true},
	}
	for _, c := range cases {
		useMine, ok := nominate(c.initiator, c.mine, c.theirs)
		if useMine != c.useMine || ok != c.okay {
			t.Errorf("%s: nominate = %v, %v; want %v, %v", c.name, useMine, ok, c.useMine, c.okay)
		}
		// Both sides must agree: the peer's view swaps mine/theirs and the role.
		if c.okay {
			peerUsesMine, _ := nominate(!c.initiator, c.theirs, c.mine)
			if peerUsesMine == useMine {
				t.Errorf("%s: the two sides nominate different candidates", c.name)
			}
		}
	}
}

// deadAddr returns a loopback address where nothing listens.
func deadAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := ln.Addr().String()
	ln.Close()
	return a
}

// TestJS5B14_AllUnreachable: every candidate is unreachable; both send candidate-error and
// Establish fails on both sides with ErrNoConnection, so the initiator can transport-replace.
func TestJS5B14_AllUnreachable(t *testing.T) {
	checkGoroutines(t)
	s := newSession(t, xmpptest.NewNetwork(5),
		func(c *Config) { c.Extra = []string{deadAddr(t), deadAddr(t)} },
		func(c *Config) { c.Extra = []string{deadAddr(t)} })
	ini, res := s.establish(t.Context())
	if !errors.Is(ini.err, ErrNoConnection) || !errors.Is(res.err, ErrNoConnection) {
		t.Fatalf("errors %v / %v, want ErrNoConnection on both sides", ini.err, res.err)
	}
	if ini.conn != nil || res.conn != nil {
		t.Error("a connection was returned with the error")
	}
	for _, jid := range []string{romeoJID, julietJID} {
		if r := s.sent(jid); len(r) != 1 || !r[0].CandidateError {
			t.Errorf("%s sent %+v, want one candidate-error", jid, r)
		}
	}
}

// TestJS5B12_ProxyActivation: only the initiator offers a proxy; the responder connects to it,
// the initiator (which offered it) connects too, activates it and sends <activated/>; data
// flows through the relay.
func TestJS5B12_ProxyActivation(t *testing.T) {
	checkGoroutines(t)
	n := xmpptest.NewNetwork(6)
	p := newTestProxy(t, n, "proxy.montague.lit", "")
	s := newSession(t, n, func(c *Config) { c.Proxies = []Streamhost{p.streamhost()} }, nil)
	if tr, _ := ParseTransport(s.ini.Element()); tr.DstAddr != DstAddr(s.ini.SID(), romeoJID, julietJID) {
		t.Errorf("dstaddr = %q, want sha1(sid+initiator+responder) (JS5B-3)", tr.DstAddr)
	}
	ini, res := s.establish(t.Context())
	if ini.err != nil || res.err != nil {
		t.Fatalf("establish: %v / %v", ini.err, res.err)
	}
	defer ini.conn.Close()
	defer res.conn.Close()
	checkStream(t, ini.conn, res.conn)
	if ni, nr := s.ini.Nominated(), s.res.Nominated(); ni.Type != Proxy || ni != nr || ni.CID != s.ini.local[0].CID {
		t.Errorf("nominated %+v / %+v, want the initiator's proxy on both sides", ni, nr)
	}
	r := s.sent(romeoJID)
	if len(r) != 2 || !r[0].CandidateError || r[1].Activated != s.ini.local[0].CID {
		t.Errorf("initiator sent %+v, want candidate-error then activated", r)
	}
}

// TestJS5B13_ProxyError: the proxy refuses activation; the offerer sends <proxy-error/> and
// both sides fail with ErrNoConnection.
func TestJS5B13_ProxyError(t *testing.T) {
	checkGoroutines(t)
	n := xmpptest.NewNetwork(7)
	p := newTestProxy(t, n, "proxy.capulet.lit", "")
	p.refuse = true
	s := newSession(t, n, nil, func(c *Config) { c.Proxies = []Streamhost{p.streamhost()} })
	ini, res := s.establish(t.Context())
	if !errors.Is(ini.err, ErrNoConnection) || !errors.Is(res.err, ErrNoConnection) {
		t.Fatalf("errors %v / %v, want ErrNoConnection on both", ini.err, res.err)
	}
	r := s.sent(julietJID)
	if len(r) != 2 || !r[1].ProxyError {
		t.Errorf("responder sent %+v, want candidate-error then proxy-error", r)
	}
}

// TestJS5B5_NoRepeatedCandidates: both sides know the same proxy; the responder does not offer
// it again (JS5B-5), and the direct candidate wins over the proxy.
func TestJS5B5_NoRepeatedCandidates(t *testing.T) {
	checkGoroutines(t)
	n := xmpptest.NewNetwork(8)
	p := newTestProxy(t, n, "proxy.montague.lit", "")
	l := mustListen(t)
	s := newSession(t, n,
		func(c *Config) { c.Proxies = []Streamhost{p.streamhost()} },
		func(c *Config) { c.Proxies = []Streamhost{p.streamhost()}; withListener(l)(c) })
	if len(s.res.local) != 1 || s.res.local[0].Type != Direct {
		t.Fatalf("responder offers %+v, want only its direct candidate", s.res.local)
	}
	ini, res := s.establish(t.Context())
	if ini.err != nil || res.err != nil {
		t.Fatalf("establish: %v / %v", ini.err, res.err)
	}
	defer ini.conn.Close()
	defer res.conn.Close()
	if got := ini.conn.RemoteAddr().String(); got != l.Addr().String() {
		t.Errorf("nominated %s, want the direct candidate %s", got, l.Addr())
	}
	checkStream(t, ini.conn, res.conn)
}

// TestJS5B9_StopWhenOutranked: the responder's only attempt hangs (a TCP server that never
// answers) while the initiator's candidate-used names a candidate of higher priority; the
// responder stops and sends candidate-error instead of waiting for its attempt to time out.
func TestJS5B9_StopWhenOutranked(t *testing.T) {
	checkGoroutines(t)
	stall, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer stall.Close()
	var held []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := stall.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	defer func() {
		mu.Lock()
		for _, c := range held {
			c.Close()
		}
		mu.Unlock()
	}()
	l := mustListen(t)
	s := newSession(t, xmpptest.NewNetwork(9),
		func(c *Config) { c.Extra = []string{stall.Addr().String()}; c.ConnectTimeout = time.Minute },
		func(c *Config) { withListener(l)(c); c.ConnectTimeout = time.Minute })
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	ini, res := s.establish(ctx)
	if ini.err != nil || res.err != nil {
		t.Fatalf("establish: %v / %v", ini.err, res.err)
	}
	defer ini.conn.Close()
	defer res.conn.Close()
	if r := s.sent(julietJID); len(r) != 1 || !r[0].CandidateError {
		t.Errorf("responder sent %+v, want candidate-error", r)
	}
	checkStream(t, ini.conn, res.conn)
}

// TestCloseUnblocksEstablish: Close during Establish (peer silent) returns at once and leaks
// nothing.
func TestCloseUnblocksEstablish(t *testing.T) {
	checkGoroutines(t)
	l := mustListen(t)
	s := newSession(t, xmpptest.NewNetwork(10), withListener(l), nil)
	done := make(chan error, 1)
	go func() {
		_, err := s.ini.Establish(t.Context(), func(ctx context.Context, b []byte) error {
			_, err := s.romeo.Request(ctx, julietJID, "set", b)
			return err
		})
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	s.ini.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Error("Establish succeeded after Close")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not unblock Establish")
	}
}

// TestHandleInfoErrors: unknown cid, a second contradicting report, a wrong sid.
func TestHandleInfoErrors(t *testing.T) {
	l := mustListen(t)
	s := newSession(t, xmpptest.NewNetwork(11), withListener(l), nil)
	sid := s.ini.SID()
	check := func(x, cond string) {
		t.Helper()
		err := s.ini.HandleInfo([]byte(x))
		var e *Error
		if !errors.As(err, &e) || e.Condition != cond {
			t.Errorf("%s: err = %v, want %s", x, err, cond)
		}
	}
	check(fmt.Sprintf("<transport xmlns='%s' sid='%s'><candidate-used cid='nope'/></transport>", NSJingleS5B, sid), "item-not-found")
	check(fmt.Sprintf("<transport xmlns='%s' sid='other'><candidate-error/></transport>", NSJingleS5B), "bad-request")
	if err := s.ini.HandleInfo([]byte(fmt.Sprintf("<transport xmlns='%s' sid='%s'><candidate-used cid='%s'/></transport>", NSJingleS5B, sid, s.ini.local[0].CID))); err != nil {
		t.Fatal(err)
	}
	check(fmt.Sprintf("<transport xmlns='%s' sid='%s'><candidate-error/></transport>", NSJingleS5B, sid), "unexpected-request")
	if err := s.ini.HandleAccept(s.res.Element()); err == nil {
		t.Error("second accept accepted")
	}
}

// TestJS5B_Faults runs direct establishment over a network that delays, reorders and
// duplicates signalling (the adapter's reality, GOSRC.md §3.A4).
func TestJS5B_Faults(t *testing.T) {
	checkGoroutines(t)
	for seed := int64(20); seed < 25; seed++ {
		t.Run(strconv.FormatInt(seed, 10), func(t *testing.T) {
			n := xmpptest.NewNetwork(seed)
			n.SetFaults("", "", xmpptest.Faults{Delay: 0.7, MaxDelay: 30 * time.Millisecond, Duplicate: 0.3})
			li, lr := mustListen(t), mustListen(t)
			s := newSession(t, n, withListener(li), withListener(lr))
			ini, res := s.establish(t.Context())
			if ini.err != nil || res.err != nil {
				t.Fatalf("establish: %v / %v", ini.err, res.err)
			}
			defer ini.conn.Close()
			defer res.conn.Close()
			checkStream(t, ini.conn, res.conn)
		})
	}
}

// TestHostAddresses: loopback addresses appear only when asked for; the filter applies.
func TestHostAddresses(t *testing.T) {
	with, err := HostAddresses(nil, true)
	if err != nil {
		t.Fatal(err)
	}
	hasLoop := false
	for _, a := range with {
		hasLoop = hasLoop || a == "127.0.0.1"
	}
	if !hasLoop {
		t.Errorf("HostAddresses(nil, true) = %v, want 127.0.0.1 among them", with)
	}
	without, err := HostAddresses(nil, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range without {
		if ip := net.ParseIP(a); ip == nil || ip.IsLoopback() || ip.IsLinkLocalUnicast() {
			t.Errorf("HostAddresses(nil, false) returned %s", a)
		}
	}
	none, _ := HostAddresses(func(net.Interface) bool { return false }, true)
	if len(none) != 0 {
		t.Errorf("filter rejecting all interfaces: %v", none)
	}
}
