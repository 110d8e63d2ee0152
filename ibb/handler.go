package ibb

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Link is the connection to the XMPP server that this package needs (the project's common
// link interface; gosrcxmpp.Client and xmpptest.Party implement it).
type Link interface {
	// LocalJID returns our full JID as bound by the server.
	LocalJID() string
	// Request sends an IQ get or set whose only child is payload and waits for the answer.
	// Conn relies on one property for pipelining in order: Request calls ctx.Done() only
	// once the request was written (gosrcxmpp.Client and xmpptest.Party do).
	Request(ctx context.Context, to, typ string, payload []byte) ([]byte, error)
	// HandleIQ installs h for incoming IQ get/set whose child element is {space}local.
	HandleIQ(space, local string, h func(ctx context.Context, from, to, typ string, payload []byte) ([]byte, error)) (remove func())
	// SendMessage sends a message stanza whose only child is payload.
	SendMessage(ctx context.Context, to string, payload []byte) error
	// HandleMessage installs h for incoming messages whose child element is {space}local.
	HandleMessage(space, local string, h func(ctx context.Context, from, to string, payload []byte)) (remove func())
}

// Config tunes a Handler. The zero value is usable.
type Config struct {
	// BlockSize is the block-size offered by Open when it is given 0, and the largest
	// block-size accepted on incoming opens (a larger one gets resource-constraint, IBB-4).
	// Default DefaultBlockSize; at most MaxEmitBlockSize.
	BlockSize int
	// Window is the largest number of data IQs a Conn keeps unacknowledged (IBB-10, IBB-20):
	// a block is sent only while it is less than the current window ahead of the oldest
	// unacknowledged one. The current window adapts between 2 and Window to the
	// acknowledgement round trips; under a server's rate limit the Handler's Conns pace by
	// bytes instead, together, so that the limit does not build a queue in front of later
	// writes (see RetryTimeout for its errors). Default 8. Blocks leave in seq order, as receivers that process in wire order need
	// (IBB-14): each request starts once the previous one was written, which the link shows
	// by waiting on the request's context (see Link); a link that never does makes the
	// window effectively 1, one that does before writing loses the order guarantee.
	Window int
	// ReceiveWindow is how far ahead of the next expected seq a block may arrive (the
	// reordering the receiver tolerates, GOSRC.md §3.A4); a block further ahead is a gap
	// (IBB-14), so it must be at least the peer's Window. It also bounds the blocks held for
	// the reader before acks are withheld. Default 64, and never below Window.
	ReceiveWindow int
	// Stanza is the stanza kind Open asks for: StanzaIQ (default, IBB-3) or StanzaMessage.
	Stanza string
	// ReorderTimeout is how long a missing block may be awaited while later blocks are held
	// (IBB-14). Default 10s.
	ReorderTimeout time.Duration
	// CloseTimeout bounds Close's wait for outstanding acknowledgements and the <close/>
	// round trip (IBB-15). Default 10s.
	CloseTimeout time.Duration
	// RetryTimeout is how long a data block refused with a delivery error of type wait, or
	// resource-constraint or policy-violation (a server's rate limit), is sent again after
	// growing pauses (IBB-11) before the stream is closed (IBB-13). Default 30s; negative:
	// no retry.
	RetryTimeout time.Duration
}

func (c *Config) withDefaults() Config {
	var cfg Config
	if c != nil {
		cfg = *c
	}
	if cfg.BlockSize <= 0 {
		cfg.BlockSize = DefaultBlockSize
	}
	if cfg.BlockSize > MaxEmitBlockSize {
		cfg.BlockSize = MaxEmitBlockSize
	}
	if cfg.Window <= 0 {
		cfg.Window = 8
	}
	if cfg.RetryTimeout == 0 {
		cfg.RetryTimeout = 30 * time.Second
	}
	if cfg.ReceiveWindow <= 0 {
		cfg.ReceiveWindow = 64
	}
	if cfg.ReceiveWindow < cfg.Window {
		cfg.ReceiveWindow = cfg.Window
	}
	if cfg.ReceiveWindow > 32767 {
		cfg.ReceiveWindow = 32767
	}
	if cfg.Stanza != StanzaMessage {
		cfg.Stanza = StanzaIQ
	}
	if cfg.ReorderTimeout <= 0 {
		cfg.ReorderTimeout = 10 * time.Second
	}
	if cfg.CloseTimeout <= 0 {
		cfg.CloseTimeout = 10 * time.Second
	}
	return cfg
}

type connKey struct{ peer, sid string }

type expectation struct {
	blockSize int        // required block-size (JIBB-3), or 0 for any up to Config.BlockSize
	ch        chan *Conn // buffered 1
}

// Handler owns the IBB handlers of one link and routes every <open/>, <data/> and <close/>
// to its Conn by (peer full JID, sid). Create one per link with NewHandler.
type Handler struct {
	link     Link
	cfg      Config
	removers []func()
	acceptCh chan *Conn

	bg sync.WaitGroup // best-effort <close/> after an Open the caller gave up on

	pace linkPace // the server's limit on the link, shared by its streams (pace.go)

	mu     sync.Mutex
	conns  map[connKey]*Conn
	expect map[connKey]*expectation
	closed bool
	done   chan struct{}
}

// ErrHandlerClosed is returned by a Handler's methods after Close.
var ErrHandlerClosed = errors.New("ibb: handler closed")

// NewHandler installs the XEP-0047 handlers on link (IQ open, data and close; message data)
// and returns the Handler that owns them. cfg may be nil.
func NewHandler(link Link, cfg *Config) *Handler {
	h := &Handler{
		link:     link,
		cfg:      cfg.withDefaults(),
		acceptCh: make(chan *Conn),
		conns:    make(map[connKey]*Conn),
		expect:   make(map[connKey]*expectation),
		done:     make(chan struct{}),
	}
	h.removers = append(h.removers,
		link.HandleIQ(NS, "open", h.handleOpen),
		link.HandleIQ(NS, "data", h.handleDataIQ),
		link.HandleIQ(NS, "close", h.handleClose),
		link.HandleMessage(NS, "data", h.handleDataMessage),
	)
	return h
}

// Close uninstalls the handlers and closes every Conn of this Handler.
func (h *Handler) Close() error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	close(h.done)
	conns := make([]*Conn, 0, len(h.conns))
	for _, c := range h.conns {
		conns = append(conns, c)
	}
	h.mu.Unlock()
	for _, r := range h.removers {
		r()
	}
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.Close()
		}()
	}
	wg.Wait()
	h.bg.Wait()
	return nil
}

// Open opens a bytestream to the full JID peer: it sends <open/> and returns the Conn once
// the peer acknowledged it. blockSize 0 means Config.BlockSize; at most MaxEmitBlockSize
// (ERR-6). A refusal by the peer (e.g. resource-constraint, IBB-4) is a *RemoteError.
func (h *Handler) Open(ctx context.Context, peer, sid string, blockSize int) (*Conn, error) {
	if blockSize == 0 {
		blockSize = h.cfg.BlockSize
	}
	payload, err := Open{SID: sid, BlockSize: blockSize, Stanza: h.cfg.Stanza}.Marshal()
	if err != nil {
		return nil, err
	}
	key := connKey{peer, sid}
	c := newConn(h, key, blockSize, h.cfg.Stanza)
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, ErrHandlerClosed
	}
	if h.conns[key] != nil || h.expect[key] != nil {
		h.mu.Unlock()
		return nil, withText(ErrNotAcceptable, "sid already in use with this peer")
	}
	// Registered before the request: the peer may send data as soon as it has acked, and
	// that data can overtake the ack (GOSRC.md §3.A4).
	h.conns[key] = c
	h.mu.Unlock()
	if _, err := h.link.Request(ctx, peer, "set", payload); err != nil {
		h.remove(c)
		c.abort()
		var se stanzaErrorer
		if errors.As(err, &se) {
			return nil, &RemoteError{Op: "open", Err: err}
		}
		// We gave up waiting (ctx) or lost the server: the peer may have opened the stream,
		// so tell it that it is closed, in the background.
		h.mu.Lock()
		if !h.closed {
			h.bg.Add(1)
			go func() {
				defer h.bg.Done()
				c.sendClose(time.Now().Add(h.cfg.CloseTimeout))
			}()
		}
		h.mu.Unlock()
		return nil, err
	}
	return c, nil
}

// Expect waits for the peer to open the bytestream sid, negotiated out of band (e.g. by
// Jingle), and returns it. An open for sid from peer is accepted when its block-size is at
// most Config.BlockSize.
func (h *Handler) Expect(ctx context.Context, peer, sid string) (*Conn, error) {
	exp, err := h.register(peer, sid, 0)
	if err != nil {
		return nil, err
	}
	return h.wait(ctx, connKey{peer, sid}, exp)
}

// register records an expected open; blockSize > 0 requires exactly that block-size.
func (h *Handler) register(peer, sid string, blockSize int) (*expectation, error) {
	if !ValidSID(sid) {
		return nil, badRequest("sid is not an NMTOKEN")
	}
	key := connKey{peer, sid}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, ErrHandlerClosed
	}
	if h.conns[key] != nil || h.expect[key] != nil {
		return nil, withText(ErrNotAcceptable, "sid already in use with this peer")
	}
	exp := &expectation{blockSize: blockSize, ch: make(chan *Conn, 1)}
	h.expect[key] = exp
	return exp, nil
}

// wait waits for an expectation to be met; on failure it withdraws it.
func (h *Handler) wait(ctx context.Context, key connKey, exp *expectation) (*Conn, error) {
	select {
	case c := <-exp.ch:
		return c, nil
	case <-ctx.Done():
		h.unregister(key, exp)
		return nil, ctx.Err()
	case <-h.done:
		h.unregister(key, exp)
		return nil, ErrHandlerClosed
	}
}

// unregister withdraws an expectation; a Conn that was delivered meanwhile is closed.
func (h *Handler) unregister(key connKey, exp *expectation) {
	h.mu.Lock()
	if h.expect[key] == exp {
		delete(h.expect, key)
	}
	h.mu.Unlock()
	select {
	case c := <-exp.ch:
		c.Close()
	default:
	}
}

// Accept waits for an open that nobody Expects. Opens that arrive while no Accept is
// waiting are refused with not-acceptable (IBB-4).
func (h *Handler) Accept(ctx context.Context) (*Conn, error) {
	select {
	case c := <-h.acceptCh:
		return c, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-h.done:
		return nil, ErrHandlerClosed
	}
}

func (h *Handler) lookup(peer, sid string) *Conn {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.conns[connKey{peer, sid}]
}

// remove forgets c; later stanzas for its sid get item-not-found (IBB-16).
func (h *Handler) remove(c *Conn) {
	h.mu.Lock()
	if h.conns[c.key] == c {
		delete(h.conns, c.key)
	}
	h.mu.Unlock()
}

func (h *Handler) handleOpen(ctx context.Context, from, to, typ string, payload []byte) ([]byte, error) {
	if typ != "set" {
		return nil, badRequest("open must be an IQ set")
	}
	o, err := ParseOpen(payload)
	if err != nil {
		return nil, err
	}
	key := connKey{from, o.SID}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, withText(ErrNotAcceptable, "not accepting bytestreams")
	}
	if h.conns[key] != nil {
		h.mu.Unlock()
		return nil, withText(ErrNotAcceptable, "sid already open")
	}
	if exp := h.expect[key]; exp != nil {
		if exp.blockSize > 0 && o.BlockSize != exp.blockSize {
			h.mu.Unlock()
			return nil, withText(ErrResourceConstraint, "block-size differs from the negotiated one") // JIBB-3
		}
		if exp.blockSize == 0 && o.BlockSize > h.cfg.BlockSize {
			h.mu.Unlock()
			return nil, withText(ErrResourceConstraint, "block-size too large") // IBB-4
		}
		c := newConn(h, key, o.BlockSize, o.Stanza)
		h.conns[key] = c
		delete(h.expect, key)
		exp.ch <- c
		h.mu.Unlock()
		return nil, nil
	}
	if o.BlockSize > h.cfg.BlockSize {
		h.mu.Unlock()
		return nil, withText(ErrResourceConstraint, "block-size too large") // IBB-4
	}
	c := newConn(h, key, o.BlockSize, o.Stanza)
	h.conns[key] = c
	h.mu.Unlock()
	select {
	case h.acceptCh <- c:
		return nil, nil
	default:
		h.remove(c)
		c.abort()
		return nil, withText(ErrNotAcceptable, "no bytestream expected") // IBB-4
	}
}

func (h *Handler) handleDataIQ(ctx context.Context, from, to, typ string, payload []byte) ([]byte, error) {
	if typ != "set" {
		return nil, badRequest("data must be an IQ set")
	}
	return nil, h.handleData(ctx, from, payload, true)
}

func (h *Handler) handleDataMessage(ctx context.Context, from, to string, payload []byte) {
	_ = h.handleData(ctx, from, payload, false)
}

func (h *Handler) handleData(ctx context.Context, from string, payload []byte, iq bool) error {
	d, err := ParseData(payload)
	if err != nil {
		// Bad Base64, bad seq or an oversized block for a known stream closes it (IBB-14).
		if d.SID != "" {
			if c := h.lookup(from, d.SID); c != nil {
				c.fail(err, true)
			}
		}
		return err
	}
	c := h.lookup(from, d.SID)
	if c == nil {
		h.mu.Lock()
		expected := h.expect[connKey{from, d.SID}] != nil
		h.mu.Unlock()
		if expected {
			return badRequest("data before open")
		}
		return withText(ErrItemNotFound, "unknown sid") // IBB-12
	}
	return c.receive(ctx, d.Seq, d.Payload, iq)
}

func (h *Handler) handleClose(ctx context.Context, from, to, typ string, payload []byte) ([]byte, error) {
	if typ != "set" {
		return nil, badRequest("close must be an IQ set")
	}
	cl, err := ParseClose(payload)
	if err != nil {
		return nil, err
	}
	c := h.lookup(from, cl.SID)
	if c == nil {
		return nil, withText(ErrItemNotFound, "unknown sid") // IBB-16
	}
	c.remoteClose()
	return nil, nil
}
