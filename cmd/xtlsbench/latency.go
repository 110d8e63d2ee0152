package main

import (
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// delayRelay is a TCP relay on 127.0.0.1 that forwards every connection to target and holds
// each chunk for a fixed one-way delay in both directions, in order: a client that dials it
// instead of the server sees a link with that latency and the loopback's bandwidth. The
// set-up measure uses it to count round trips where one round trip is a network's, not the
// CPU of a loopback exchange (issue 6).
type delayRelay struct {
	ln     net.Listener
	target string
	delay  time.Duration

	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup
}

func newDelayRelay(target string, oneWay time.Duration) (*delayRelay, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &delayRelay{ln: ln, target: target, delay: oneWay}
	r.wg.Add(1)
	go r.serve()
	return r, nil
}

// Addr is the address to dial instead of the target.
func (r *delayRelay) Addr() string { return r.ln.Addr().String() }

func (r *delayRelay) serve() {
	defer r.wg.Done()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", r.target)
		if err != nil {
			c.Close()
			continue
		}
		for _, x := range []net.Conn{c, s} {
			if tc, ok := x.(*net.TCPConn); ok {
				tc.SetNoDelay(true)
			}
		}
		r.mu.Lock()
		r.conns = append(r.conns, c, s)
		r.mu.Unlock()
		r.wg.Add(2)
		go r.pump(s, c)
		go r.pump(c, s)
	}
}

type chunk struct {
	due  time.Time
	data []byte
}

// pump copies src to dst, each chunk written r.delay after it was read. A bounded queue (256
// chunks of at most 32 KiB) applies back-pressure instead of buffering without limit.
func (r *delayRelay) pump(dst, src net.Conn) {
	defer r.wg.Done()
	q := make(chan chunk, 256)
	go func() {
		defer close(q)
		for {
			buf := make([]byte, 32<<10)
			n, err := src.Read(buf)
			if n > 0 {
				q <- chunk{time.Now().Add(r.delay), buf[:n]}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range q {
		time.Sleep(time.Until(c.due))
		if _, err := dst.Write(c.data); err != nil {
			break
		}
	}
	// Half-close towards dst so an orderly end travels on; drain what src still sends.
	if tc, ok := dst.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
	for range q {
	}
}

// Close stops the relay and every connection through it.
func (r *delayRelay) Close() error {
	err := r.ln.Close()
	r.mu.Lock()
	for _, c := range r.conns {
		c.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

var _ io.Closer = (*delayRelay)(nil)
