package ibb

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"time"
)

// maxBuffered bounds the bytes a Conn holds for its reader. IQ senders are held back by
// withheld acks long before; message senders have no flow control (IBB-17) and are cut off
// with resource-constraint.
const maxBuffered = 16 << 20

// Addr is the address of one end of a bytestream: a full JID and the stream's sid.
type Addr struct {
	JID string
	SID string
}

// Network returns "ibb".
func (a Addr) Network() string { return "ibb" }

// String returns the JID and the sid.
func (a Addr) String() string { return a.JID + "#" + a.SID }

// Conn is one XEP-0047 bytestream as a net.Conn. Write splits its input into blocks of at
// most the negotiated block-size and keeps up to Config.Window data IQs unacknowledged; Read
// returns the peer's blocks in seq order whatever order they arrived in (IBB-7, IBB-14).
// Deadlines behave as net.Pipe's; Close sends <close/> after every data block was
// acknowledged and waits for its result (IBB-15), bounded by Config.CloseTimeout.
type Conn struct {
	h         *Handler
	key       connKey
	blockSize int
	stanza    string
	recvWin   int

	ctx    context.Context // cancelled when the stream ends; bounds in-flight requests
	cancel context.CancelFunc

	wrSem    chan struct{} // one sender at a time: Write, the flusher or Close
	inflight sync.WaitGroup
	sendSeq  uint16        // guarded by wrSem
	lastSent chan struct{} // closed when the previous block's request started; guarded by wrSem
	tail     []byte        // bytes written and kept for the next block (pacing); guarded by wrSem
	flushing bool          // a flusher runs for tail; guarded by wrSem

	smu        sync.Mutex
	sendBase   uint16          // oldest unacknowledged seq
	acked      map[uint16]bool // acknowledged seqs at or after sendBase
	pace       pacer           // adaptive send window (pace.go)
	ackCh      chan struct{}   // closed (and replaced) by each acknowledgement
	backlogged bool            // the block admitted last waited or had others in flight
	held       bool            // the block admitted last waited for the window or the pacer

	readDL, writeDL deadline
	readNotify      chan struct{} // poke: data or end of stream
	closedCh        chan struct{} // closed by Close
	doneCh          chan struct{} // closed when the stream ended (remote close, failure)
	closeOnce       sync.Once

	mu          sync.Mutex
	next        uint16            // next seq expected from the peer
	ooo         map[uint16][]byte // blocks that arrived ahead of next
	oooBytes    int
	ready       [][]byte // in-order blocks not yet read
	readyBytes  int
	room        chan struct{} // closed when next advanced or the reader consumed blocks
	gapTimer    *time.Timer
	gapGen      uint64
	received    uint64 // blocks accepted
	viaMessage  bool   // some block came in a message stanza
	localClosed bool
	finished    bool
	rerr        error         // returned by Read once ready is drained
	werr        error         // returned by Write
	closer      chan struct{} // closed when a failure's <close/> round trip is over
}

var _ net.Conn = (*Conn)(nil)

var closedChan = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

func newConn(h *Handler, key connKey, blockSize int, stanza string) *Conn {
	ctx, cancel := context.WithCancel(context.Background())
	return &Conn{
		h:          h,
		key:        key,
		blockSize:  blockSize,
		stanza:     stanza,
		recvWin:    h.cfg.ReceiveWindow,
		ctx:        ctx,
		cancel:     cancel,
		wrSem:      make(chan struct{}, 1),
		lastSent:   closedChan,
		ackCh:      make(chan struct{}),
		acked:      make(map[uint16]bool),
		pace:       newPacer(h.cfg.Window, blockSize, key.peer, &h.pace),
		readDL:     makeDeadline(),
		writeDL:    makeDeadline(),
		readNotify: make(chan struct{}, 1),
		closedCh:   make(chan struct{}),
		doneCh:     make(chan struct{}),
		ooo:        make(map[uint16][]byte),
		room:       make(chan struct{}),
	}
}

// BlockSize returns the negotiated block-size.
func (c *Conn) BlockSize() int { return c.blockSize }

// SID returns the stream's sid.
func (c *Conn) SID() string { return c.key.sid }

// LocalAddr returns our full JID and the sid.
func (c *Conn) LocalAddr() net.Addr { return Addr{JID: c.h.link.LocalJID(), SID: c.key.sid} }

// RemoteAddr returns the peer's full JID and the sid.
func (c *Conn) RemoteAddr() net.Addr { return Addr{JID: c.key.peer, SID: c.key.sid} }

// SetDeadline sets the read and write deadlines.
func (c *Conn) SetDeadline(t time.Time) error {
	if isClosedChan(c.closedCh) {
		return c.opError("set", net.ErrClosed)
	}
	c.readDL.set(t)
	c.writeDL.set(t)
	return nil
}

// SetReadDeadline sets the read deadline; it wakes a blocked Read.
func (c *Conn) SetReadDeadline(t time.Time) error {
	if isClosedChan(c.closedCh) {
		return c.opError("set", net.ErrClosed)
	}
	c.readDL.set(t)
	return nil
}

// SetWriteDeadline sets the write deadline; it wakes a blocked Write.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	if isClosedChan(c.closedCh) {
		return c.opError("set", net.ErrClosed)
	}
	c.writeDL.set(t)
	return nil
}

func (c *Conn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "ibb", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}

func poke(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// Read reads the peer's data in seq order. After the peer's <close/> it returns the data
// still held and then io.EOF; after a protocol failure, the data still held and then the
// failure (an *Error for what the peer did wrong, a *RemoteError for a refusal by the peer).
func (c *Conn) Read(b []byte) (int, error) {
	for {
		c.mu.Lock()
		switch {
		case c.localClosed:
			c.mu.Unlock()
			return 0, c.opError("read", net.ErrClosed)
		case isClosedChan(c.readDL.wait()):
			c.mu.Unlock()
			return 0, c.opError("read", os.ErrDeadlineExceeded)
		case len(c.ready) > 0:
			n := 0
			consumed := false
			for n < len(b) && len(c.ready) > 0 {
				k := copy(b[n:], c.ready[0])
				n += k
				c.readyBytes -= k
				if k == len(c.ready[0]) {
					c.ready[0] = nil
					c.ready = c.ready[1:]
					consumed = true
				} else {
					c.ready[0] = c.ready[0][k:]
				}
			}
			if consumed {
				c.signalProgress()
			}
			if len(c.ready) > 0 {
				poke(c.readNotify) // for a concurrent reader
			}
			c.mu.Unlock()
			return n, nil
		case c.rerr != nil:
			err := c.rerr
			c.mu.Unlock()
			if err == io.EOF {
				return 0, io.EOF
			}
			return 0, c.opError("read", err)
		case len(b) == 0:
			c.mu.Unlock()
			return 0, nil
		}
		c.mu.Unlock()
		// doneCh stays closed, but once it is, the checks above return without waiting.
		select {
		case <-c.readNotify:
		case <-c.doneCh:
		case <-c.closedCh:
		case <-c.readDL.wait():
		}
	}
}

// writeState returns the error that stops a Write, or nil.
func (c *Conn) writeState() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.localClosed {
		return c.opError("write", net.ErrClosed)
	}
	if c.werr != nil {
		return c.opError("write", c.werr)
	}
	return nil
}

// Write sends b as data blocks. It returns when every block was handed to the link and at
// most Config.Window of them are unacknowledged; an error of a data IQ closes the stream
// (IBB-13) and is returned by this or the next Write. No lock is held while sending (ERR-12).
//
// While a server's rate limit paces the stream (pace.go), blocks are cut from the stream of
// bytes rather than from each write: a short last part of b that the pacer would hold back
// anyway is kept (less than one block) and leaves with the next write's first bytes, or on
// its own as soon as the pacer lets it, or by Close. Kept bytes count as written.
func (c *Conn) Write(b []byte) (int, error) {
	select {
	case c.wrSem <- struct{}{}:
	case <-c.closedCh:
		return 0, c.opError("write", net.ErrClosed)
	case <-c.doneCh:
		return 0, c.writeState()
	case <-c.writeDL.wait():
		return 0, c.opError("write", os.ErrDeadlineExceeded)
	}
	defer func() { <-c.wrSem }()
	// The kept bytes of earlier writes go first; of what this call hands over or keeps, only
	// b's own bytes are reported.
	carry := len(c.tail)
	if carry > 0 {
		b = append(c.tail, b...)
		c.tail = nil
	}
	sent := 0
	done := func(err error) (int, error) {
		if sent < carry && c.werrOrNil() == nil {
			// Kept bytes of an earlier write that did not leave (deadline, Close): they
			// stay kept, for the flusher or Close.
			c.tail = append([]byte(nil), b[sent:carry]...)
			c.scheduleFlush()
		}
		return max(0, sent-carry), err
	}
	for {
		if err := c.writeStopped(); err != nil {
			return done(err)
		}
		if sent == len(b) {
			return done(nil)
		}
		rest := b[sent:]
		chunk, coalesce := rest[:min(len(rest), c.blockSize)], false
		if c.stanza == StanzaIQ {
			c.smu.Lock()
			var size int
			size, coalesce = c.pace.chunk(len(rest))
			c.smu.Unlock()
			chunk = rest[:min(size, c.blockSize)]
		}
		if coalesce && (sent > 0 || carry > 0) {
			// The short rest of a write larger than a block (a writer of bulk data), or a
			// write joining kept bytes, while the pacer could not send a full block: kept
			// for the next write (a writer of bulk data writes again at once), or sent by
			// the flusher after coalesceDelay, as soon as its own bytes may go. A short
			// write on its own is never kept: it leaves as soon as the pacer lets it.
			c.smu.Lock()
			short := c.pace.short(time.Now())
			c.smu.Unlock()
			if short {
				c.tail = append([]byte(nil), rest...)
				c.scheduleFlush()
				sent = len(b)
				return done(nil)
			}
		}
		payload, wire := c.block(chunk)
		if c.stanza == StanzaIQ {
			// Sliding window (IBB-10): a block is sent only while it is less than the window
			// ahead of the oldest unacknowledged one, so the receiver never holds more than
			// Window blocks behind a gap, however late one of them is; under a measured rate
			// limit the pacer also holds it back by bytes and time (pace.go).
			for waited := false; ; waited = true {
				ok, wait, acked := c.admit(wire, waited)
				if ok {
					break
				}
				if !c.waitRoom(wait, acked, c.closedCh, c.writeDL.wait()) {
					if err := c.writeStopped(); err != nil {
						return done(err)
					} // the deadline moved on meanwhile: ask again
				}
			}
			if err := c.launch(payload, wire, false); err != nil {
				return done(c.opError("write", err))
			}
		} else {
			c.sendSeq++
			if err := c.h.link.SendMessage(c.ctx, c.key.peer, payload); err != nil {
				c.fail(&RemoteError{Op: "data", Err: err}, true)
				return done(c.writeState())
			}
		}
		sent += len(chunk)
	}
}

// werrOrNil returns the error that ended the stream for writing, or nil: kept bytes are
// lost with the stream.
func (c *Conn) werrOrNil() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.werr
}

// block returns the <data/> element of the next block and its estimated wire bytes.
// wrSem must be held.
func (c *Conn) block(chunk []byte) (payload []byte, wire int) {
	payload = AppendData(make([]byte, 0, 96+len(c.key.sid)+len(chunk)*4/3+4), c.key.sid, c.sendSeq, chunk)
	return payload, len(payload) + c.pace.overhead
}

// writeStopped returns the error that stops a Write now: the end of the stream, Close, or
// the write deadline.
func (c *Conn) writeStopped() error {
	if err := c.writeState(); err != nil {
		return err
	}
	if isClosedChan(c.writeDL.wait()) {
		return c.opError("write", os.ErrDeadlineExceeded)
	}
	return nil
}

// launch starts the data request of a block that admit let through. wrSem must be held.
// Close may have begun since the caller looked: it marks the conn closed under c.mu and then
// waits for inflight, so the block is counted under c.mu too, or not sent (an Add racing
// that Wait is a WaitGroup misuse the race detector reports). Close's own flush (closing)
// counts its blocks before it waits.
func (c *Conn) launch(payload []byte, wire int, closing bool) error {
	c.mu.Lock()
	closed := c.localClosed && !closing
	if !closed {
		c.inflight.Add(1)
	}
	c.mu.Unlock()
	if closed {
		c.smu.Lock()
		c.pace.unsent(wire)
		c.smu.Unlock()
		return net.ErrClosed
	}
	c.sendSeq++
	prev, started := c.lastSent, make(chan struct{})
	c.lastSent = started
	go c.sendData(c.sendSeq-1, payload, wire, c.backlogged, c.held, prev, started)
	return nil
}

// scheduleFlush makes sure kept bytes leave without another write. wrSem must be held.
func (c *Conn) scheduleFlush() {
	if c.flushing || len(c.tail) == 0 {
		return
	}
	c.flushing = true
	go c.flusher()
}

// flusher sends the kept bytes once the pacer lets them go, unless a Write took them first.
// It holds wrSem only to look and to send, so that a Write can add to them meanwhile.
func (c *Conn) flusher() {
	if !c.waitRoom(coalesceDelay, nil, c.closedCh, nil) {
		return
	}
	for {
		select {
		case c.wrSem <- struct{}{}:
		case <-c.closedCh:
			return // Close sends them
		case <-c.doneCh:
			return
		}
		if len(c.tail) == 0 {
			c.flushing = false
			<-c.wrSem
			return
		}
		// Not as Close's flush: a block must not be counted after Close began waiting.
		ok, wait, acked, err := c.sendTail(false)
		if err != nil || ok && len(c.tail) == 0 {
			c.flushing = false
			<-c.wrSem
			return
		}
		<-c.wrSem
		if !ok {
			c.waitRoom(wait, acked, c.closedCh, nil)
		}
	}
}

// waitRoom waits until the pacer may admit a block again: after wait (0: none) or the next
// acknowledgement (acked). It reports false if the stream ended, or stop or stop2 fired
// first (nil: never).
func (c *Conn) waitRoom(wait time.Duration, acked, stop, stop2 <-chan struct{}) bool {
	var fire <-chan time.Time
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		fire = t.C
	}
	select {
	case <-acked:
		return true
	case <-fire:
		return true
	case <-c.doneCh:
	case <-stop:
	case <-stop2:
	}
	return false
}

// sendTail sends one block of the kept bytes if the pacer admits it now (ok); err says that
// the conn was closed in the meantime (see launch). wrSem must be held.
func (c *Conn) sendTail(closing bool) (ok bool, wait time.Duration, acked <-chan struct{}, err error) {
	c.smu.Lock()
	limit := c.pace.blockLimit()
	c.smu.Unlock()
	chunk := c.tail[:min(len(c.tail), limit, c.blockSize)]
	payload, wire := c.block(chunk)
	ok, wait, acked = c.admit(wire, true)
	if !ok {
		return false, wait, acked, nil
	}
	if err := c.launch(payload, wire, closing); err != nil {
		return false, 0, nil, err
	}
	c.tail = c.tail[len(chunk):]
	if len(c.tail) == 0 {
		c.tail = nil
	}
	return true, 0, nil, nil
}

// flushTail sends the kept bytes for Close, until limit. It reports whether none are left.
func (c *Conn) flushTail(limit time.Time) bool {
	if c.stanza != StanzaIQ {
		return true // nothing is kept; a Write may be blocked in SendMessage with wrSem held
	}
	ctx, cancel := context.WithDeadline(context.Background(), limit)
	defer cancel()
	select {
	case c.wrSem <- struct{}{}:
	case <-c.doneCh:
		return false
	case <-ctx.Done():
		return false
	}
	defer func() { <-c.wrSem }()
	for len(c.tail) > 0 {
		ok, wait, acked, _ := c.sendTail(true) // Close's own flush: launch cannot refuse
		if !ok && !c.waitRoom(wait, acked, ctx.Done(), nil) {
			return false
		}
	}
	return true
}

// sendData sends one data IQ and marks it acknowledged when the result arrives. Blocks must
// leave in seq order: most receivers process them in wire order and close the stream on a
// swap (IBB-14). The link's Request both writes and waits, so the next block's request starts
// only when this one is written, which the link shows by starting to wait on its context
// (sentSignal); a link that never does so makes the blocks go one at a time.
func (c *Conn) sendData(seq uint16, payload []byte, wire int, backlogged, held bool, prev <-chan struct{}, started chan struct{}) {
	defer c.inflight.Done()
	select {
	case <-prev:
	case <-c.ctx.Done():
	}
	sig := &sentSignal{Context: c.ctx, sent: started}
	var (
		err     error
		written time.Time
		wait    = retryFirst
		giveUp  = time.Now().Add(c.h.cfg.RetryTimeout)
	)
	for {
		written = time.Time{}
		sig.at = &written
		_, err = c.h.link.Request(sig, c.key.peer, "set", payload)
		sig.signal()
		if err == nil || c.ctx.Err() != nil || !retryable(err) || time.Now().Add(wait).After(giveUp) {
			break
		}
		// IBB-11: a delivery error of type wait (a server's rate limit): suspend, then send
		// the same block again, one block at a time.
		c.smu.Lock()
		c.pace.suspend(time.Now())
		c.smu.Unlock()
		if !sleepCtx(c.ctx, wait) {
			c.forget(wire)
			return
		}
		wait = min(2*wait, retryMax)
		sig = &sentSignal{Context: c.ctx, sent: make(chan struct{})}
	}
	if err != nil {
		c.forget(wire)
		if c.ctx.Err() != nil {
			return // the stream already ended
		}
		c.fail(&RemoteError{Op: "data", Err: err}, true) // IBB-13
		return
	}
	now := time.Now()
	c.smu.Lock()
	if !written.IsZero() {
		c.pace.ack(now, now.Sub(written), wire, backlogged, held)
	} else {
		c.pace.unsent(wire)
	}
	c.acked[seq] = true
	for c.acked[c.sendBase] {
		delete(c.acked, c.sendBase)
		c.sendBase++
	}
	close(c.ackCh) // wakes every sender waiting for the window
	c.ackCh = make(chan struct{})
	c.smu.Unlock()
}

// forget takes a block that will never be acknowledged out of the pacer's bytes in flight
// (the link's too: its other streams go on).
func (c *Conn) forget(wire int) {
	c.smu.Lock()
	c.pace.unsent(wire)
	c.smu.Unlock()
}

// sentSignal is the context of one data request: the first call of Done, which a link makes
// when it starts waiting for the answer (after writing the request), closes sent.
type sentSignal struct {
	context.Context
	once sync.Once
	sent chan struct{}
	at   *time.Time // set to the time of the signal, if not nil
}

func (s *sentSignal) signal() {
	s.once.Do(func() {
		if s.at != nil {
			*s.at = time.Now()
		}
		close(s.sent)
	})
}

// Done signals that the request was written and returns the parent's Done channel.
func (s *sentSignal) Done() <-chan struct{} {
	s.signal()
	return s.Context.Done()
}

// admit reports whether the next block, of wire bytes, may be sent now and, if so, counts
// it as sent; otherwise wait > 0 says when to ask again, and acked is closed by the next
// acknowledgement. waited says that the block was held back before. Called with wrSem held.
func (c *Conn) admit(wire int, waited bool) (ok bool, wait time.Duration, acked <-chan struct{}) {
	c.smu.Lock()
	defer c.smu.Unlock()
	now := time.Now()
	inFlight := int(c.sendSeq - c.sendBase)
	ok, wait = c.pace.admit(now, wire, inFlight)
	if ok {
		others := c.pace.sent(now, wire)
		c.backlogged = waited || others || inFlight > 0
		c.held = waited
	}
	return ok, wait, c.ackCh
}

// receive handles one data block from the peer (IBB-7, IBB-12, IBB-14).
func (c *Conn) receive(ctx context.Context, seq uint16, payload []byte, iq bool) error {
	c.mu.Lock()
	if c.localClosed || c.finished {
		c.mu.Unlock()
		return withText(ErrItemNotFound, "bytestream closed")
	}
	var perr *Error
	d := seq - c.next
	switch {
	case len(payload) > c.blockSize:
		perr = withText(ErrBadRequest, "block larger than block-size") // IBB-5
	case d >= 32768:
		perr = ErrDuplicateSeq
	case int(d) >= c.recvWin:
		perr = ErrSeqGap
	default:
		if _, dup := c.ooo[seq]; dup {
			perr = ErrDuplicateSeq
		}
	}
	if perr == nil && c.readyBytes+c.oooBytes+len(payload) > maxBuffered {
		perr = withText(ErrResourceConstraint, "receive buffer full")
	}
	if perr != nil {
		c.mu.Unlock()
		c.fail(perr, true)
		return perr
	}
	c.ooo[seq] = payload
	c.oooBytes += len(payload)
	c.received++
	if !iq {
		c.viaMessage = true
	}
	advanced := false
	for {
		p, ok := c.ooo[c.next]
		if !ok {
			break
		}
		delete(c.ooo, c.next)
		c.oooBytes -= len(p)
		c.next++
		advanced = true
		if len(p) > 0 {
			c.ready = append(c.ready, p)
			c.readyBytes += len(p)
		}
	}
	if advanced {
		poke(c.readNotify)
		c.signalProgress()
	}
	// The reorder timer runs while blocks are held behind a gap; it restarts whenever the
	// gap moves.
	if len(c.ooo) == 0 {
		if c.gapTimer != nil {
			c.gapTimer.Stop()
			c.gapTimer = nil
		}
	} else if advanced || c.gapTimer == nil {
		if c.gapTimer != nil {
			c.gapTimer.Stop()
		}
		c.gapGen++
		gen := c.gapGen
		c.gapTimer = time.AfterFunc(c.h.cfg.ReorderTimeout, func() { c.gapExpired(gen) })
	}
	if !iq {
		c.mu.Unlock()
		return nil
	}
	// Flow control (IBB-10): the ack is withheld while the reader is more than the receive
	// window behind. (Blocks held behind a gap are acknowledged: the sender's sliding window
	// keeps it from running ahead of the missing one.)
	for len(c.ready) > c.recvWin && !c.localClosed && !c.finished {
		room := c.room
		c.mu.Unlock()
		select {
		case <-room:
		case <-c.closedCh:
		case <-c.doneCh:
		case <-ctx.Done():
			return withText(ErrItemNotFound, "bytestream closed")
		}
		c.mu.Lock()
	}
	lost := c.localClosed || (c.finished && uint16(c.next-seq-1) >= 32768)
	c.mu.Unlock()
	if lost {
		return withText(ErrItemNotFound, "bytestream closed")
	}
	return nil
}

// signalProgress wakes the handlers waiting to acknowledge. c.mu must be held.
func (c *Conn) signalProgress() {
	close(c.room)
	c.room = make(chan struct{})
}

func (c *Conn) gapExpired(gen uint64) {
	c.mu.Lock()
	stale := gen != c.gapGen || len(c.ooo) == 0
	c.mu.Unlock()
	if !stale {
		c.fail(ErrGapTimeout, true) // IBB-14
	}
}

// endLocked marks the stream as ended. c.mu must be held.
func (c *Conn) endLocked(rerr, werr error) bool {
	if c.finished || c.localClosed {
		return false
	}
	c.finished = true
	c.rerr, c.werr = rerr, werr
	if c.gapTimer != nil {
		c.gapTimer.Stop()
		c.gapTimer = nil
	}
	close(c.doneCh)
	poke(c.readNotify)
	return true
}

// fail ends the stream because of err (IBB-13, IBB-14); sendClose sends <close/> to the peer
// in the background (Close waits for it).
func (c *Conn) fail(err error, sendClose bool) {
	c.mu.Lock()
	if !c.endLocked(err, err) {
		c.mu.Unlock()
		return
	}
	if sendClose {
		c.closer = make(chan struct{})
	}
	closer := c.closer
	c.mu.Unlock()
	c.h.remove(c)
	c.cancel()
	if sendClose {
		go func() {
			defer close(closer)
			c.sendClose(time.Now().Add(c.h.cfg.CloseTimeout))
		}()
	}
}

// Message-stanza data has no acks, so the peer's <close/> can overtake its last blocks
// (GOSRC.md §3.A4): before ending such a stream the receiver lingers until no block arrived
// for closeQuiet, at most closeLinger.
const (
	closeQuiet  = 100 * time.Millisecond
	closeLinger = 2 * time.Second
)

// remoteClose handles the peer's <close/> (IBB-15, IBB-16).
func (c *Conn) remoteClose() {
	c.mu.Lock()
	lingering := c.viaMessage || c.stanza == StanzaMessage
	c.mu.Unlock()
	for end := time.Now().Add(closeLinger); lingering && time.Now().Before(end); {
		c.mu.Lock()
		before := c.received
		c.mu.Unlock()
		select {
		case <-time.After(closeQuiet):
		case <-c.closedCh:
		case <-c.doneCh:
		}
		c.mu.Lock()
		quiet := c.received == before && len(c.ooo) == 0
		stop := c.localClosed || c.finished
		c.mu.Unlock()
		if quiet || stop {
			break
		}
	}
	c.mu.Lock()
	rerr := error(io.EOF)
	if len(c.ooo) > 0 {
		rerr = ErrUnexpectedClose
	}
	ok := c.endLocked(rerr, io.ErrClosedPipe)
	c.mu.Unlock()
	c.h.remove(c)
	if ok {
		c.cancel()
	}
}

// abort ends a stream that never opened.
func (c *Conn) abort() {
	c.mu.Lock()
	c.endLocked(net.ErrClosed, net.ErrClosed)
	c.localClosed = true
	c.mu.Unlock()
	c.closeOnce.Do(func() { close(c.closedCh) })
	c.cancel()
}

func (c *Conn) sendClose(deadline time.Time) {
	payload, err := Close{SID: c.key.sid}.Marshal()
	if err != nil {
		return
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	// An error (item-not-found included) still means the stream is closed (IBB-16).
	_, _ = c.h.link.Request(ctx, c.key.peer, "set", payload)
}

// ErrUnacknowledged is returned by Close when some data blocks were still unacknowledged
// when Config.CloseTimeout (or the write deadline) expired: the peer may not have them.
var ErrUnacknowledged = errors.New("ibb: data not acknowledged before close")

// Close closes the bytestream: it unblocks Read and Write, waits (bounded by
// Config.CloseTimeout) until every data block sent was acknowledged,
// then sends <close/> and waits for its result (IBB-15). It returns ErrUnacknowledged when the
// wait expired. It is safe to call more than once; later calls return nil.
func (c *Conn) Close() error {
	var err error
	c.closeOnce.Do(func() {
		c.mu.Lock()
		wasOpen := !c.finished && !c.localClosed
		c.localClosed = true
		if c.gapTimer != nil {
			c.gapTimer.Stop()
			c.gapTimer = nil
		}
		c.mu.Unlock()
		close(c.closedCh)
		c.h.remove(c)

		if wasOpen {
			// Bounded by CloseTimeout only, not by the write deadline: crypto/tls sets that to
			// now right after its close_notify, which must still reach the peer.
			limit := time.Now().Add(c.h.cfg.CloseTimeout)
			if !c.flushTail(limit) {
				err = ErrUnacknowledged
			}
			acked := make(chan struct{})
			go func() { c.inflight.Wait(); close(acked) }()
			t := time.NewTimer(time.Until(limit))
			select {
			case <-acked:
				t.Stop()
			case <-t.C:
				err = ErrUnacknowledged
				c.cancel()
			}
			c.mu.Lock()
			failed := c.finished
			c.mu.Unlock()
			if !failed {
				// Sent even after a timeout, so that the peer does not wait for ever.
				c.sendClose(time.Now().Add(c.h.cfg.CloseTimeout))
			}
		}
		c.cancel()
		c.inflight.Wait()
		c.mu.Lock()
		closer := c.closer
		c.mu.Unlock()
		if closer != nil {
			<-closer
		}
		c.readDL.stop()
		c.writeDL.stop()
	})
	return err
}
