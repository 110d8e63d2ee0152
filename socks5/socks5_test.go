package socks5

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/nettest"
)

// pair returns both ends of a direct SOCKS5 bytestream over loopback TCP: the dialling side
// and the side the listener delivered.
func pair(t testing.TB, l *Listener, dst string) (client, server net.Conn) {
	t.Helper()
	got := make(chan net.Conn, 1)
	cancel := l.Expect(dst, func(c net.Conn) bool {
		select {
		case got <- c:
			return true
		default:
			return false
		}
	})
	defer cancel()
	ctx, stop := context.WithTimeout(context.Background(), 5*time.Second)
	defer stop()
	c, err := Dial(ctx, l.Addr().String(), dst)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-got:
		return c, s
	case <-ctx.Done():
		c.Close()
		t.Fatal("listener did not deliver the connection")
	}
	return nil, nil
}

func listen(t testing.TB, timeout time.Duration) *Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := NewListener(ln, timeout)
	t.Cleanup(func() { l.Close() })
	return l
}

// TestNetConnContract runs x/net/nettest.TestConn over a direct SOCKS5 bytestream: the conn
// returned to both sides has net.Pipe's contract (deadlines, Close, concurrency).
func TestNetConnContract(t *testing.T) {
	l := listen(t, time.Second)
	nettest.TestConn(t, func() (c1, c2 net.Conn, stop func(), err error) {
		c1, c2 = pair(t, l, DstAddr(randomID(), "a@x/1", "b@y/2"))
		return c1, c2, func() { c1.Close(); c2.Close() }, nil
	})
}

// TestS5B13_ListenerRejects: a wrong DST.ADDR, a garbage greeting, a greeting without the
// no-authentication method, a non-CONNECT command and a stalled handshake are all closed,
// while a real transfer on the same listener goes through untouched.
func TestS5B13_ListenerRejects(t *testing.T) {
	checkGoroutines(t)
	l := listen(t, 300*time.Millisecond)
	good := DstAddr("sid1", "romeo@montague.lit/orchard", "juliet@capulet.lit/balcony")
	c, s := pair(t, l, good)
	defer c.Close()
	defer s.Close()

	// Start the real transfer and keep it running while the attacks happen.
	payload := make([]byte, 1<<20)
	rand.Read(payload)
	sum := make(chan [32]byte, 1)
	go func() {
		h := sha256.New()
		io.Copy(h, s)
		var out [32]byte
		copy(out[:], h.Sum(nil))
		sum <- out
	}()

	// Stalled: connects and sends nothing.
	stall, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer stall.Close()

	// Wrong DST.ADDR: the listener answers "not allowed".
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	_, err = Dial(ctx, l.Addr().String(), DstAddr("other", "a", "b"))
	var re *ReplyError
	if !errors.As(err, &re) || re.Code != repNotAllowed {
		t.Errorf("wrong DST.ADDR: err = %v, want ReplyError 2", err)
	}
	// Right DST.ADDR in upper case is accepted (compared case-insensitively, S5B-4) — but the
	// expectation is gone after pair returned, so it is refused as well.
	for name, raw := range map[string][]byte{
		"garbage":        []byte("GET / HTTP/1.1\r\n\r\n"),
		"socks4":         {4, 1, 0, 80, 127, 0, 0, 1, 0},
		"no methods":     {5, 0},
		"only user/pass": {5, 1, 2},
		"bind":           {5, 1, 0, 5, 2, 0, 3, 40},
		"ipv4 atyp":      {5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1, 0, 80},
		"short hash":     append([]byte{5, 1, 0, 5, 1, 0, 3, 4}, "abcd\x00\x00"...),
	} {
		conn, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		conn.Write(raw)
		conn.SetReadDeadline(time.Now().Add(3 * time.Second))
		rest, err := io.ReadAll(conn)
		if err != nil && !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("%s: connection not closed by the listener: %v", name, err)
		}
		if len(rest) > 12 {
			t.Errorf("%s: listener sent %d bytes", name, len(rest))
		}
		conn.Close()
	}
	// The stalled connection is closed at the handshake deadline.
	stall.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := stall.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("stalled connection: read err = %v, want EOF (closed by listener)", err)
	}

	if _, err := c.Write(payload); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if got := <-sum; got != sha256.Sum256(payload) {
		t.Error("transfer corrupted")
	}
}

// TestListenerStallFlood: more stalled connections than the listener keeps in their handshake
// (and a long handshake timeout) do not keep the real connection out: the oldest are evicted.
func TestListenerStallFlood(t *testing.T) {
	checkGoroutines(t)
	l := listen(t, time.Minute)
	var stalled []net.Conn
	defer func() {
		for _, c := range stalled {
			c.Close()
		}
	}()
	for i := 0; i < maxPendingHandshakes+16; i++ {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte{5}) // half a greeting
		stalled = append(stalled, c)
	}
	c, s := pair(t, l, DstAddr("flood", "a@x/1", "b@y/2"))
	c.Write([]byte("ok"))
	buf := make([]byte, 2)
	s.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(s, buf); err != nil || string(buf) != "ok" {
		t.Errorf("real connection after a flood: %q %v", buf, err)
	}
	c.Close()
	s.Close()
	// The first stalled connections were evicted (closed by the listener).
	stalled[0].SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := stalled[0].Read(buf); err == nil {
		t.Error("oldest stalled connection still open")
	}
	l.mu.Lock()
	n := len(l.pending)
	l.mu.Unlock()
	if n > maxPendingHandshakes {
		t.Errorf("%d handshakes pending, limit %d", n, maxPendingHandshakes)
	}
}

// TestS5B4_CaseInsensitive: DST.ADDR is compared case-insensitively.
func TestS5B4_CaseInsensitive(t *testing.T) {
	l := listen(t, time.Second)
	dst := DstAddr("s", "a@b/c", "d@e/f")
	got := make(chan net.Conn, 1)
	defer l.Expect(dst, func(c net.Conn) bool { got <- c; return true })()
	c, err := Dial(t.Context(), l.Addr().String(), string(bytes.ToUpper([]byte(dst))))
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	(<-got).Close()
}

// TestConnectContext: cancelling the context unblocks a handshake with a silent server and
// returns the context's error; the deadline of ctx applies too.
func TestConnectContext(t *testing.T) {
	checkGoroutines(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // silent server
		}
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = Dial(ctx, ln.Addr().String(), DstAddr("s", "a", "b"))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want deadline exceeded", err)
	}
	if time.Since(start) > 3*time.Second {
		t.Errorf("Dial took %v", time.Since(start))
	}
}

// TestReplyErrors: a non-zero REP becomes *ReplyError; bad bytes wrap ErrProtocol.
func TestReplyErrors(t *testing.T) {
	for _, c := range []struct {
		in   []byte
		code byte
		prot bool
	}{
		{in: []byte{5, 0, 5, 4, 0, 1, 0, 0, 0, 0, 0, 0}, code: 4},
		{in: []byte{5, 0, 5, 1, 0, 1, 0, 0, 0, 0, 0, 0}, code: 1},
		{in: []byte{5, 0xff}, prot: true},
		{in: []byte{4, 0}, prot: true},
		{in: []byte{5, 0, 4, 0, 0, 1, 0, 0, 0, 0, 0, 0}, prot: true},
		{in: []byte{5, 0, 5, 0, 1, 1, 0, 0, 0, 0, 0, 0}, prot: true},
		{in: []byte{5, 0, 5, 0, 0, 9, 0, 0, 0, 0, 0, 0}, prot: true},
	} {
		var out bytes.Buffer
		err := Connect(t.Context(), &scriptConn{in: bytes.NewReader(c.in), out: &out}, DstAddr("s", "a", "b"))
		var re *ReplyError
		switch {
		case c.prot && !errors.Is(err, ErrProtocol):
			t.Errorf("% x: err = %v, want ErrProtocol", c.in, err)
		case !c.prot && (!errors.As(err, &re) || re.Code != c.code):
			t.Errorf("% x: err = %v, want ReplyError %d", c.in, err, c.code)
		}
	}
}

// BenchmarkBulk compares bulk throughput over a direct S5B bytestream with plain loopback TCP
// in the same run (issue 4 goal: direct ≥ 0.95× plain TCP).
func BenchmarkBulk(b *testing.B) {
	run := func(b *testing.B, c, s net.Conn) {
		defer c.Close()
		defer s.Close()
		buf := make([]byte, 64<<10)
		b.SetBytes(int64(len(buf)))
		done := make(chan struct{})
		go func() {
			io.Copy(io.Discard, s)
			close(done)
		}()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := c.Write(buf); err != nil {
				b.Fatal(err)
			}
		}
		c.Close()
		<-done
	}
	b.Run("s5b-direct", func(b *testing.B) {
		l := listen(b, time.Second)
		c, s := pair(b, l, DstAddr(randomID(), "a@x/1", "b@y/2"))
		run(b, c, s)
	})
	b.Run("tcp-plain", func(b *testing.B) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		defer ln.Close()
		ch := make(chan net.Conn, 1)
		go func() {
			c, _ := ln.Accept()
			ch <- c
		}()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		run(b, c, <-ch)
	})
}
