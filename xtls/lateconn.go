package xtls

import (
	"net"
	"sync"
	"time"
)

// lateConn is a net.Conn whose bytestream arrives later: Read and Write wait until set (or
// Close) and then use the bytestream. It lets the initiator start its TLS handshake, and so
// compute the ClientHello and its key shares, while the transport is still being negotiated;
// the first byte goes out only once the bytestream is secured-ready (JIBB-10, JS5B-20).
type lateConn struct {
	ready chan struct{} // closed by set or Close
	once  sync.Once

	mu     sync.Mutex
	conn   net.Conn
	closed bool
	rd, wd time.Time // deadlines set before the bytestream arrived
}

func newLateConn() *lateConn { return &lateConn{ready: make(chan struct{})} }

// set hands over the bytestream; it closes c and reports false when l was closed already.
func (l *lateConn) set(c net.Conn) bool {
	l.mu.Lock()
	if l.closed || l.conn != nil {
		l.mu.Unlock()
		_ = c.Close()
		return false
	}
	l.conn = c
	if !l.rd.IsZero() {
		_ = c.SetReadDeadline(l.rd)
	}
	if !l.wd.IsZero() {
		_ = c.SetWriteDeadline(l.wd)
	}
	l.mu.Unlock()
	l.once.Do(func() { close(l.ready) })
	return true
}

func (l *lateConn) wait() (net.Conn, error) {
	<-l.ready
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed || l.conn == nil {
		return nil, net.ErrClosed
	}
	return l.conn, nil
}

func (l *lateConn) Read(b []byte) (int, error) {
	c, err := l.wait()
	if err != nil {
		return 0, err
	}
	return c.Read(b)
}

func (l *lateConn) Write(b []byte) (int, error) {
	c, err := l.wait()
	if err != nil {
		return 0, err
	}
	return c.Write(b)
}

// Close closes the bytestream if it arrived and wakes every waiting Read and Write.
func (l *lateConn) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	c := l.conn
	l.mu.Unlock()
	l.once.Do(func() { close(l.ready) })
	if c != nil {
		return c.Close()
	}
	return nil
}

type lateAddr struct{}

func (lateAddr) Network() string { return "xtls-pending" }
func (lateAddr) String() string  { return "pending bytestream" }

func (l *lateConn) addr(local bool) net.Addr {
	l.mu.Lock()
	c := l.conn
	l.mu.Unlock()
	switch {
	case c == nil:
		return lateAddr{}
	case local:
		return c.LocalAddr()
	default:
		return c.RemoteAddr()
	}
}

func (l *lateConn) LocalAddr() net.Addr  { return l.addr(true) }
func (l *lateConn) RemoteAddr() net.Addr { return l.addr(false) }

// SetDeadline, SetReadDeadline and SetWriteDeadline apply to the bytestream, or are kept
// until it arrives (a Read or Write waiting for it is woken only by set or Close).
func (l *lateConn) SetDeadline(t time.Time) error {
	if err := l.SetReadDeadline(t); err != nil {
		return err
	}
	return l.SetWriteDeadline(t)
}

func (l *lateConn) SetReadDeadline(t time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn != nil {
		return l.conn.SetReadDeadline(t)
	}
	l.rd = t
	return nil
}

func (l *lateConn) SetWriteDeadline(t time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn != nil {
		return l.conn.SetWriteDeadline(t)
	}
	l.wd = t
	return nil
}
