package xtls

import (
	"net"
	"sync"
)

// corkConn holds back writes until its owner reads or uncorks, so that what one side sends
// before waiting for the peer travels together: the initiator's TLS Finished and its stream
// header (or its XSRP A) become one write, one IBB block instead of two stanzas through the
// server. Corking ends for good with uncork; afterwards corkConn only passes calls through.
type corkConn struct {
	net.Conn
	mu     sync.Mutex
	corked bool
	buf    []byte
}

func newCorkConn(c net.Conn) *corkConn { return &corkConn{Conn: c, corked: true} }

// flushLocked writes what is held back.
func (c *corkConn) flushLocked() error {
	if len(c.buf) == 0 {
		return nil
	}
	b := c.buf
	c.buf = nil
	_, err := c.Conn.Write(b)
	return err
}

func (c *corkConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	if c.corked {
		c.buf = append(c.buf, b...)
		c.mu.Unlock()
		return len(b), nil
	}
	c.mu.Unlock()
	return c.Conn.Write(b)
}

// Read sends what is held back first: whoever reads waits for the peer, which may be waiting
// for those bytes.
func (c *corkConn) Read(b []byte) (int, error) {
	c.mu.Lock()
	err := c.flushLocked()
	c.mu.Unlock()
	if err != nil {
		return 0, err
	}
	return c.Conn.Read(b)
}

// uncork sends what is held back and stops holding back.
func (c *corkConn) uncork() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.corked = false
	return c.flushLocked()
}
