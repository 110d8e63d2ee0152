package xtls

import (
	"context"
	"net"
	"sync/atomic"
	"time"
)

// Prosody's mod_proxy65 (0.12) may hold back up to 4096 bytes of a burst larger than 4096 bytes
// until the same sender writes again (its relay reads 4096 bytes at a time from LuaSocket's
// 8 KiB buffer and re-arms epoll without looking at that buffer; see socks5/doc.go and
// internal/integration/socks5_test.go). Request/response traffic over such a proxy would stall
// on every larger message. The cure: once the sender has written more than nudgeMin bytes and
// then been idle for nudgeIdle, it sends one XML whitespace keepalive inside TLS (CORE-11),
// whose record releases the held tail. The peer's stream ignores the space.
const (
	nudgeIdle = 20 * time.Millisecond
	nudgeMin  = 1024
)

// nudgeConn counts what the end-to-end stream writes to TLS and signals each write.
type nudgeConn struct {
	net.Conn
	pending atomic.Int64
	wrote   chan struct{}
}

func newNudgeConn(c net.Conn) *nudgeConn {
	return &nudgeConn{Conn: c, wrote: make(chan struct{}, 1)}
}

func (c *nudgeConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.pending.Add(int64(n))
	select {
	case c.wrote <- struct{}{}:
	default:
	}
	return n, err
}

// nudge runs for the life of a session over a proxied bytestream: after a burst of more than
// nudgeMin bytes followed by nudgeIdle of quiet it sends one whitespace keepalive.
func (s *Session) nudge(c *nudgeConn) {
	defer s.wg.Done()
	t := time.NewTimer(time.Hour)
	t.Stop()
	defer t.Stop()
	for {
		select {
		case <-c.wrote:
			t.Reset(nudgeIdle)
		case <-t.C:
			if c.pending.Swap(0) > nudgeMin {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				_ = s.Stream.Keepalive(ctx)
				cancel()
			}
		case <-s.Stream.Done():
			return
		case <-s.done:
			return
		}
	}
}
