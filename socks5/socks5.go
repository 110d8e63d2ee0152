package socks5

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// SOCKS5 constants of the subset XEP-0065 uses (RFC 1928, S5B-13).
const (
	socksVersion  = 5
	methodNoAuth  = 0
	methodNone    = 0xff
	cmdConnect    = 1
	atypIPv4      = 1
	atypDomain    = 3
	atypIPv6      = 4
	hashLen       = 40
	repSucceeded  = 0
	repNotAllowed = 2
	repCmdNotSupp = 7
	repAtypNoSupp = 8
)

// DstAddr returns the DST.ADDR of an XEP-0065 bytestream: the lowercase hex SHA-1 of
// sid + requester JID + target JID (S5B-4). The JIDs must be exactly those used in the
// negotiation. In XEP-0260 the requester is the party that offered the candidate (JS5B-19).
func DstAddr(sid, requester, target string) string {
	h := sha1.Sum([]byte(sid + requester + target))
	return hex.EncodeToString(h[:])
}

// aLongTimeAgo is a deadline in the past that unblocks pending I/O at once.
var aLongTimeAgo = time.Unix(1, 0)

// withContext applies ctx to conn's deadline for the duration of fn: ctx's deadline becomes the
// I/O deadline and cancelling ctx unblocks pending I/O. If ctx ended, its error is returned.
func withContext(ctx context.Context, conn net.Conn, fn func() error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(d)
	}
	done := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		_ = conn.SetDeadline(aLongTimeAgo)
		close(done)
	})
	err := fn()
	if !stop() {
		<-done
		return ctx.Err()
	}
	_ = conn.SetDeadline(time.Time{})
	if err != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	var ne net.Error
	if d, ok := ctx.Deadline(); ok && errors.As(err, &ne) && ne.Timeout() && !time.Now().Before(d) {
		return context.DeadlineExceeded // the I/O deadline was ctx's deadline
	}
	return err
}

// Connect runs the client side of the SOCKS5 handshake on conn (no authentication, CONNECT to
// the domain name dstAddr, port 0; S5B-13). A non-zero reply is a *ReplyError; malformed bytes
// wrap ErrProtocol. ctx bounds the handshake; conn's deadlines are cleared afterwards.
func Connect(ctx context.Context, conn net.Conn, dstAddr string) error {
	if len(dstAddr) == 0 || len(dstAddr) > 255 {
		return fmt.Errorf("socks5: DST.ADDR length %d not in 1..255", len(dstAddr))
	}
	return withContext(ctx, conn, func() error {
		if _, err := conn.Write([]byte{socksVersion, 1, methodNoAuth}); err != nil {
			return err
		}
		var sel [2]byte
		if _, err := io.ReadFull(conn, sel[:]); err != nil {
			return err
		}
		if sel[0] != socksVersion {
			return fmt.Errorf("%w: method selection version %d", ErrProtocol, sel[0])
		}
		if sel[1] != methodNoAuth {
			return fmt.Errorf("%w: streamhost accepts no method without authentication (got %#x)", ErrProtocol, sel[1])
		}
		req := make([]byte, 0, 7+len(dstAddr))
		req = append(req, socksVersion, cmdConnect, 0, atypDomain, byte(len(dstAddr)))
		req = append(req, dstAddr...)
		req = append(req, 0, 0)
		if _, err := conn.Write(req); err != nil {
			return err
		}
		return readReply(conn)
	})
}

// readReply reads a SOCKS5 reply strictly: version 5, reserved 0, a known address type and
// its exact length. The bound address is not compared with DST.ADDR (S5B-5 binds the
// streamhost; several streamhosts answer with other addresses and it carries no security).
func readReply(r io.Reader) error {
	var h [4]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return err
	}
	if h[0] != socksVersion {
		return fmt.Errorf("%w: reply version %d", ErrProtocol, h[0])
	}
	if h[1] != repSucceeded {
		return &ReplyError{Code: h[1]}
	}
	if h[2] != 0 {
		return fmt.Errorf("%w: reply reserved byte %#x", ErrProtocol, h[2])
	}
	var n int
	switch h[3] {
	case atypIPv4:
		n = 4
	case atypIPv6:
		n = 16
	case atypDomain:
		var l [1]byte
		if _, err := io.ReadFull(r, l[:]); err != nil {
			return err
		}
		n = int(l[0])
	default:
		return fmt.Errorf("%w: reply address type %d", ErrProtocol, h[3])
	}
	buf := make([]byte, n+2)
	_, err := io.ReadFull(r, buf)
	return err
}

// Dial connects to the streamhost at address (host:port) and runs Connect for dstAddr. The
// returned connection is the bytestream (for a proxy: once activated). TCP_NODELAY stays on
// (Go's default), so small writes are not held back.
func Dial(ctx context.Context, address, dstAddr string) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", address)
	if err != nil {
		return nil, err
	}
	if err := Connect(ctx, conn, dstAddr); err != nil {
		conn.Close()
		return nil, &net.OpError{Op: "socks5 connect", Net: "tcp", Addr: conn.RemoteAddr(), Err: err}
	}
	return conn, nil
}

// readRequest runs the server side of the handshake up to the CONNECT request: it reads the
// greeting, selects "no authentication" (or answers 05 FF and fails), reads the request and
// returns DST.ADDR. Only CONNECT with a domain name is accepted.
func readRequest(conn net.Conn) (string, error) {
	var g [2]byte
	if _, err := io.ReadFull(conn, g[:]); err != nil {
		return "", err
	}
	if g[0] != socksVersion {
		return "", fmt.Errorf("%w: greeting version %d", ErrProtocol, g[0])
	}
	if g[1] == 0 {
		return "", fmt.Errorf("%w: greeting without methods", ErrProtocol)
	}
	methods := make([]byte, g[1])
	if _, err := io.ReadFull(conn, methods); err != nil {
		return "", err
	}
	ok := false
	for _, m := range methods {
		ok = ok || m == methodNoAuth
	}
	if !ok {
		_, _ = conn.Write([]byte{socksVersion, methodNone})
		return "", fmt.Errorf("%w: client does not offer no-authentication", ErrProtocol)
	}
	if _, err := conn.Write([]byte{socksVersion, methodNoAuth}); err != nil {
		return "", err
	}
	var h [5]byte
	if _, err := io.ReadFull(conn, h[:]); err != nil {
		return "", err
	}
	if h[0] != socksVersion || h[2] != 0 {
		return "", fmt.Errorf("%w: request header % x", ErrProtocol, h[:3])
	}
	if h[1] != cmdConnect {
		_ = writeReply(conn, repCmdNotSupp, "")
		return "", fmt.Errorf("%w: command %d is not CONNECT", ErrProtocol, h[1])
	}
	if h[3] != atypDomain {
		_ = writeReply(conn, repAtypNoSupp, "")
		return "", fmt.Errorf("%w: address type %d is not a domain name", ErrProtocol, h[3])
	}
	if h[4] != hashLen {
		_ = writeReply(conn, repNotAllowed, "")
		return "", fmt.Errorf("%w: DST.ADDR length %d, want %d", ErrProtocol, h[4], hashLen)
	}
	addr := make([]byte, hashLen+2)
	if _, err := io.ReadFull(conn, addr); err != nil {
		return "", err
	}
	return string(addr[:hashLen]), nil
}

// writeReply writes a reply with REP=rep and BND.ADDR = dst (S5B-5), port 0.
func writeReply(w io.Writer, rep byte, dst string) error {
	b := make([]byte, 0, 7+len(dst))
	b = append(b, socksVersion, rep, 0, atypDomain, byte(len(dst)))
	b = append(b, dst...)
	b = append(b, 0, 0)
	_, err := w.Write(b)
	return err
}

// Listener is the SOCKS5 server for this client's direct candidates. It accepts a connection
// only if its DST.ADDR was registered with Expect; anything else — a wrong DST.ADDR, a greeting
// that is not SOCKS5 without authentication, a handshake slower than HandshakeTimeout — is
// closed without affecting other connections. One Listener serves any number of sessions.
type Listener struct {
	ln      net.Listener
	timeout time.Duration

	mu      sync.Mutex
	expect  map[string]*expectation
	pending map[net.Conn]time.Time // connections in their handshake, by arrival
	closed  bool

	wg sync.WaitGroup
}

type expectation struct {
	deliver func(net.Conn) bool
}

// Listener defaults.
const (
	// DefaultHandshakeTimeout bounds the SOCKS5 handshake of an incoming connection.
	DefaultHandshakeTimeout = 10 * time.Second
	maxPendingHandshakes    = 64
)

// Listen listens on the TCP address (e.g. "127.0.0.1:0" or ":0") and serves SOCKS5 handshakes
// until Close.
func Listen(address string) (*Listener, error) {
	ln, err := net.Listen("tcp", address)
	if err != nil {
		return nil, err
	}
	return NewListener(ln, 0), nil
}

// NewListener serves SOCKS5 handshakes on ln until Close. handshakeTimeout ≤ 0 means
// DefaultHandshakeTimeout.
func NewListener(ln net.Listener, handshakeTimeout time.Duration) *Listener {
	if handshakeTimeout <= 0 {
		handshakeTimeout = DefaultHandshakeTimeout
	}
	l := &Listener{
		ln:      ln,
		timeout: handshakeTimeout,
		expect:  make(map[string]*expectation),
		pending: make(map[net.Conn]time.Time),
	}
	l.wg.Add(1)
	go l.serve()
	return l
}

// Addr returns the listening address.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// Port returns the listening TCP port.
func (l *Listener) Port() int {
	if a, ok := l.ln.Addr().(*net.TCPAddr); ok {
		return a.Port
	}
	_, p, _ := net.SplitHostPort(l.ln.Addr().String())
	n, _ := strconv.Atoi(p)
	return n
}

// Expect registers dstAddr (compared case-insensitively, S5B-4): every connection that completes
// the handshake with it is answered with success and passed to deliver, which owns it if it
// returns true (false closes it). deliver must not block. cancel removes the registration.
func (l *Listener) Expect(dstAddr string, deliver func(net.Conn) bool) (cancel func()) {
	key := strings.ToLower(dstAddr)
	e := &expectation{deliver: deliver}
	l.mu.Lock()
	l.expect[key] = e
	l.mu.Unlock()
	return func() {
		l.mu.Lock()
		if l.expect[key] == e {
			delete(l.expect, key)
		}
		l.mu.Unlock()
	}
}

// Close stops listening, closes connections still in their handshake and waits for the
// listener's goroutines to end. Connections already delivered are not touched.
func (l *Listener) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	for c := range l.pending {
		c.Close()
	}
	l.mu.Unlock()
	err := l.ln.Close()
	l.wg.Wait()
	return err
}

func (l *Listener) serve() {
	defer l.wg.Done()
	var backoff time.Duration
	for {
		conn, err := l.ln.Accept()
		if err != nil {
			l.mu.Lock()
			closed := l.closed
			l.mu.Unlock()
			if closed || errors.Is(err, net.ErrClosed) {
				return
			}
			// Temporary failure (e.g. out of file descriptors): back off and retry.
			if backoff == 0 {
				backoff = 5 * time.Millisecond
			} else if backoff < time.Second {
				backoff *= 2
			}
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			conn.Close()
			return
		}
		if len(l.pending) >= maxPendingHandshakes {
			// Full (e.g. a flood of connections that never speak): evict the oldest, so a
			// stalling crowd cannot keep the peer's real connection out.
			var oldest net.Conn
			var at time.Time
			for c, t := range l.pending {
				if oldest == nil || t.Before(at) {
					oldest, at = c, t
				}
			}
			delete(l.pending, oldest)
			oldest.Close()
		}
		l.pending[conn] = time.Now()
		l.wg.Add(1)
		l.mu.Unlock()
		go l.handshake(conn)
	}
}

func (l *Listener) handshake(conn net.Conn) {
	defer l.wg.Done()
	delivered := false
	defer func() {
		l.mu.Lock()
		delete(l.pending, conn)
		l.mu.Unlock()
		if !delivered {
			conn.Close()
		}
	}()
	_ = conn.SetDeadline(time.Now().Add(l.timeout))
	dst, err := readRequest(conn)
	if err != nil {
		return
	}
	l.mu.Lock()
	e := l.expect[strings.ToLower(dst)]
	l.mu.Unlock()
	if e == nil {
		_ = writeReply(conn, repNotAllowed, dst)
		return
	}
	if err := writeReply(conn, repSucceeded, dst); err != nil {
		return
	}
	_ = conn.SetDeadline(time.Time{})
	l.mu.Lock()
	_, still := l.pending[conn] // false: evicted (and closed) meanwhile
	delete(l.pending, conn)     // from here on the connection belongs to deliver
	closed := l.closed
	l.mu.Unlock()
	if closed || !still {
		return
	}
	delivered = e.deliver(conn)
}
