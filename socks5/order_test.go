package socks5

import (
	"io"
	"net"
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
			var first, rest []Candidate
			for _, p := range peer {
				if p.Type == Assisted {
					first = append(first, p)
				} else {
					rest = append(rest, p)
				}
			}
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
