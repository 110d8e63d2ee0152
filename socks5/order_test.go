package socks5

import (
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xtlsjingle/xtlsjingle/internal/xmpptest"
)

// spyListener listens on host:port, counts connections and never answers them (a candidate
// that hangs until the connect timeout).
func spyListener(t *testing.T, host string, port int) *atomic.Int32 {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		// Linux routes all of 127.0.0.0/8 to loopback; elsewhere 127.0.0.3 may not exist.
		if os.Getenv("CI") == "true" {
			t.Fatalf("cannot listen on %s:%d under CI: %v", host, port, err)
		}
		t.Skipf("cannot listen on %s:%d: %v", host, port, err)
	}
	var n atomic.Int32
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				for _, c := range conns {
					c.Close()
				}
				return
			}
			n.Add(1)
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return &n
}

// byType splits cands into those of type ty and the others, keeping their order.
func byType(cands []Candidate, ty CandidateType) (of, others []Candidate) {
	for _, c := range cands {
		if c.Type == ty {
			of = append(of, c)
		} else {
			others = append(others, c)
		}
	}
	return of, others
}

// TestOrderHintSkipsOutranked: the responder offers a direct candidate (higher priority, here
// one that never answers) and an assisted one that works. Without a hint the direct one is
// tried first (JS5B-7); Config.Order putting the assisted candidate first makes the initiator
// use it and never try the direct one, since an entry after a success is not worth trying.
func TestOrderHintSkipsOutranked(t *testing.T) {
	checkGoroutines(t)
	l := mustListen(t)
	spy := spyListener(t, "127.0.0.3", l.Port())
	var got []Candidate
	s := newSession(t, xmpptest.NewNetwork(21), func(c *Config) {
		c.Stagger = 3 * time.Second // the direct candidate would only be tried after this
		c.Order = func(peer []Candidate) []Candidate {
			got = append([]Candidate(nil), peer...)
			first, rest := byType(peer, Assisted)
			return append(first, rest...)
		}
	}, func(c *Config) {
		c.Listener = l
		c.Hosts = []string{"127.0.0.3"}
		c.Extra = []string{l.Addr().String()}
	})
	ini, res := s.establish(t.Context())
	if ini.err != nil || res.err != nil {
		t.Fatalf("establish: %v / %v", ini.err, res.err)
	}
	defer ini.conn.Close()
	defer res.conn.Close()
	if len(got) != 2 || got[0].Priority < got[1].Priority {
		t.Errorf("Order got %+v, want both candidates in descending priority", got)
	}
	if n := s.ini.Nominated(); n.Type != Assisted || hostPort(n.Host, n.Port) != l.Addr().String() {
		t.Errorf("nominated %+v, want the assisted candidate %s", n, l.Addr())
	}
	if n := spy.Load(); n != 0 {
		t.Errorf("the outranked direct candidate was tried %d times", n)
	}
	checkStream(t, ini.conn, res.conn)
}

// TestOrderAlias: the responder's only candidate is unreachable; the hint adds an alias (the
// candidate's cid, another address that reaches the same listener, as an address published
// in presence would). The initiator connects through the alias and reports the candidate's
// cid; the responder takes the connection for it.
func TestOrderAlias(t *testing.T) {
	checkGoroutines(t)
	l := mustListen(t)
	s := newSession(t, xmpptest.NewNetwork(22), func(c *Config) {
		c.Order = func(peer []Candidate) []Candidate {
			alias := peer[0]
			alias.Host, alias.Port = "127.0.0.1", l.Port()
			alias.Priority = 1 // ignored: an alias keeps its candidate's priority
			alias.Type = Assisted
			bogus := Candidate{CID: "not-a-peer-cid", Host: "127.0.0.1", Port: l.Port(), Type: Direct}
			return append([]Candidate{bogus, alias}, peer...)
		}
	}, func(c *Config) {
		c.Listener = l
		c.Hosts = []string{"127.0.0.3"} // nothing listens there
	})
	ini, res := s.establish(t.Context())
	if ini.err != nil || res.err != nil {
		t.Fatalf("establish: %v / %v", ini.err, res.err)
	}
	defer ini.conn.Close()
	defer res.conn.Close()
	want := s.res.local[0]
	if r := s.sent(romeoJID); len(r) != 1 || r[0].CandidateUsed != want.CID {
		t.Errorf("initiator sent %+v, want candidate-used %s", r, want.CID)
	}
	n := s.ini.Nominated()
	if n.CID != want.CID || n.Priority != want.Priority || n.Host != "127.0.0.1" || n.Type != Assisted {
		t.Errorf("nominated %+v, want the alias 127.0.0.1 of %+v", n, want)
	}
	if r := s.res.Nominated(); r.CID != want.CID {
		t.Errorf("responder nominated %+v, want its candidate %s", r, want.CID)
	}
	if rem := s.ini.Remote(); len(rem) != 1 || rem[0].Host != "127.0.0.3" {
		t.Errorf("Remote() = %+v, want the responder's one candidate", rem)
	}
	checkStream(t, ini.conn, res.conn)
}

// slowRelay listens on 127.0.0.1 and forwards every connection to target after delay (an
// address that reaches the same listener, but slower: a port forward across a NAT).
func slowRelay(t *testing.T, target string, delay time.Duration) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	track := func(c net.Conn) { mu.Lock(); conns = append(conns, c); mu.Unlock() }
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			track(c)
			wg.Add(1)
			go func() {
				defer wg.Done()
				time.Sleep(delay)
				u, err := net.Dial("tcp", target)
				if err != nil {
					c.Close()
					return
				}
				track(u)
				go func() { io.Copy(u, c); u.Close() }()
				io.Copy(c, u)
				c.Close()
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().(*net.TCPAddr).Port
}

// TestOrderAliasOneConnectionPerCID (issue 10, JS5B-7, JS5B-11): an alias shares its
// candidate's cid, so the peer cannot tell a connection through the alias from one to the
// candidate itself (its listener matches DST.ADDR, and takes the connection whose local
// address is the candidate's host). The alias here is slow (a relay), the candidate itself
// fast: if both were dialed, the initiator would keep the alias (ranked first), close the
// other connection, report the cid, and the responder would take the closed connection. The
// candidate must only be dialed once the alias failed, so that the peer gets one connection
// per cid.
func TestOrderAliasOneConnectionPerCID(t *testing.T) {
	checkGoroutines(t)
	l := mustListen(t)
	relay := slowRelay(t, net.JoinHostPort("127.0.0.1", strconv.Itoa(l.Port())), 300*time.Millisecond)
	s := newSession(t, xmpptest.NewNetwork(23), func(c *Config) {
		c.Order = func(peer []Candidate) []Candidate {
			alias := peer[0]
			alias.Host, alias.Port, alias.Type = "127.0.0.1", relay, Assisted
			return append([]Candidate{alias}, peer...)
		}
	}, withListener(l))
	ini, res := s.establish(t.Context())
	if ini.err != nil || res.err != nil {
		t.Fatalf("establish: %v / %v", ini.err, res.err)
	}
	defer ini.conn.Close()
	defer res.conn.Close()
	if n := s.ini.Nominated(); n.CID != s.res.local[0].CID {
		t.Fatalf("nominated %+v, want the responder's candidate", n)
	}
	checkStream(t, ini.conn, res.conn)
}

// TestOrderAliasResponderSkipsClosed (issue 10, JS5B-11): the initiator's hint puts a slow
// alias of the responder's direct candidate first and its assisted candidate (a forward to
// the same listener, so its connections arrive at the same local address) second. The
// assisted connection succeeds first, the alias later; the alias is ranked first and wins,
// and the initiator closes the assisted connection before it reports. The responder has two
// connections that its direct candidate's host matches and must take the one still open.
func TestOrderAliasResponderSkipsClosed(t *testing.T) {
	checkGoroutines(t)
	l := mustListen(t)
	target := net.JoinHostPort("127.0.0.1", strconv.Itoa(l.Port()))
	slow := slowRelay(t, target, 300*time.Millisecond)
	fast := slowRelay(t, target, 0)
	s := newSession(t, xmpptest.NewNetwork(24), func(c *Config) {
		c.Order = func(peer []Candidate) []Candidate {
			direct, out := byType(peer, Direct)
			alias := direct[0]
			alias.Host, alias.Port, alias.Type = "127.0.0.1", slow, Assisted
			return append(append([]Candidate{alias}, out...), direct...)
		}
	}, func(c *Config) {
		withListener(l)(c)
		c.Extra = []string{net.JoinHostPort("127.0.0.1", strconv.Itoa(fast))}
	})
	ini, res := s.establish(t.Context())
	if ini.err != nil || res.err != nil {
		t.Fatalf("establish: %v / %v", ini.err, res.err)
	}
	defer ini.conn.Close()
	defer res.conn.Close()
	if n := s.ini.Nominated(); n.Port != slow {
		t.Fatalf("nominated %+v, want the alias on port %d", n, slow)
	}
	checkStream(t, ini.conn, res.conn)
}

// TestTakeIncomingKeepsEarlyBytes (JS5B-11): a connection the responder probes for being
// open may already carry the peer's first bytes (it sends as soon as it knows the
// nomination); takeIncoming returns them in front, and Establish keeps that connection open.
func TestTakeIncomingKeepsEarlyBytes(t *testing.T) {
	checkGoroutines(t)
	l := mustListen(t)
	s := newSession(t, xmpptest.NewNetwork(25), nil, withListener(l))
	dialed := make(chan net.Conn, 1)
	go func() {
		c, err := s.ini.dial(t.Context(), s.res.local[0])
		if err != nil {
			t.Error(err)
			close(dialed)
			return
		}
		c.Write([]byte("early"))
		dialed <- c
	}()
	c, ok := <-dialed
	if !ok {
		return
	}
	defer c.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.res.mu.Lock()
		n := len(s.res.incoming)
		s.res.mu.Unlock()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the connection did not arrive")
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // let "early" arrive
	got, err := s.res.takeIncoming(t.Context(), s.res.local[0])
	if err != nil {
		t.Fatal(err)
	}
	s.res.mu.Lock()
	s.res.finishLocked(got)
	s.res.mu.Unlock()
	defer got.Close()
	c.Write([]byte(" and late"))
	buf := make([]byte, len("early and late"))
	got.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(got, buf); err != nil || string(buf) != "early and late" {
		t.Fatalf("read %q, %v", buf, err)
	}
}
