package ibb

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Pacing (IBB-10, IBB-11). Servers limit the bytes they read from each client connection:
// ejabberd's default shaper 3000 B/s (a token bucket with a 20000-byte burst), Prosody's
// mod_limits 10 KiB/s. Both charge after the read: the server reads what is there, then
// stops reading for as long as those bytes cost at the rate. Every byte the client sent
// before a small write (a chat message, on this or any other stream of the link) passes the
// limit first, so what matters for latency is how many bytes are queued in front of the
// limit, not how many blocks.
//
// The pacer therefore works in wire bytes: the data IQ (payload plus an estimate of the IQ
// envelope), which is what the server counts.
//
//   - Without a measured limit the old block window applies: up to Config.Window blocks in
//     flight, from two blocks in slow start (growing only while the window is what holds the
//     stream back), halved (not below two) once per round when even the round's fastest
//     acknowledgement came more than queueTarget after the fastest ever seen. This is the
//     fast path of an unlimited server.
//   - An acknowledgement later than the smallest round trip by more than queueNoise means the
//     block waited in front of a limit. While the link keeps the server busy (the block
//     waited for the window or pacer, or blocks of any stream of the link were in flight),
//     the server reads what is waiting one pause apart, and each pause is the previous
//     read's cost, so the groups of acknowledgements of such a busy period are spaced by wire
//     bytes / rate: that measures the limit's rate. The limit is the connection's, so the
//     measurement, the pace and the pacer's bucket are the link's (linkPace), shared by the
//     streams of a Handler: a chat on one stream and a transfer on another are one busy
//     period and one budget. A period whose bytes mostly did not wait (chat messages sent
//     as soon as written) is spaced by the writer: it may raise the rate, never set or lower
//     it. A lone message that found the server pausing for something else measures nothing.
//   - With a measured rate low enough that the block window would queue for more than
//     paceAbove, the Conn paces: it sends at paceShare of the measured rate from a token
//     bucket (a block leaves when the bucket holds its bytes), keeps at most inflightTime of
//     the rate unacknowledged, and cuts blocks that take at most blockTime at the rate (never
//     below minPacedBlock bytes of payload, and at most maxPacedWire bytes on the wire:
//     Prosody 0.12 under mod_limits held every 5.6 KB data IQ back for 0.4 s, while 2.9 KB
//     ones passed at once). Blocks are cut from the bytes written, not per Write: the short
//     rest of a write larger than a block is kept (Conn.tail) while the bucket lacks a full
//     block, and leaves with the next write's first bytes, or after coalesceDelay on its own
//     (a 4 KB TLS record in 1.7 KB blocks otherwise costs a third block and its envelope).
//     A short write on its own is never kept. Sending below the rate keeps the queue in
//     front of the limit empty; under a token bucket (ejabberd) the unused share builds
//     credit in the server's bucket, so a later small write passes at once. A small write
//     then waits for at most the block in front of it (≤ blockTime) plus its own bytes.
//   - A sustained queue (a busy period long enough to measure) sets the pace back to
//     paceShare of the new measurement and empties the bucket; the in-flight bound lets the
//     queue drain. A Conn that is held back by the pacer and sees no queue for probeAfter
//     raises its pace by probeGain, so a lifted or raised limit is found again. (Probing
//     more often eats the credit that keeps small writes fast under ejabberd's shaper.)
const (
	queueTarget   = 100 * time.Millisecond
	queueNoise    = 25 * time.Millisecond
	blockTime     = 850 * time.Millisecond
	inflightTime  = 700 * time.Millisecond
	paceAbove     = 250 * time.Millisecond
	paceShare     = 0.97
	minPacedBlock = 256
	maxPacedWire  = 3072
	probeAfter    = 30 * time.Second
	probeGain     = 1.05
	busyMax       = 64
	groupGap      = 3 * time.Millisecond
	coalesceDelay = 5 * time.Millisecond
)

// Delivery errors of type wait, resource-constraint and policy-violation (a server's rate
// limit) suspend the stream and retry the same block (IBB-11) instead of closing it (IBB-13
// still applies to every other error, and to these once Config.RetryTimeout runs out).
const (
	retryFirst = 250 * time.Millisecond
	retryMax   = 4 * time.Second
)

// envelope estimates the bytes of a data IQ around its <data/> element as the server reads
// them: <iq xmlns='jabber:client' type='set' id='(36)' to='…'>…</iq>, a little more than most
// links write, so that the estimate errs towards sending less.
func envelope(peer string) int { return 96 + len(peer) }

// ackRec is one read of a busy period: the wire bytes of the acknowledgements it released,
// and how many of them belong to blocks that had waited for the window or the pacer.
type ackRec struct {
	at         time.Time
	wire, held int
}

// linkPace is what the streams of one link (one client connection, one Handler) share: the
// server limits the connection, not a stream. The limit is measured from the reads of the
// whole link and spent from one bucket, so a chat on one stream and a transfer on another
// neither take each other's acknowledgements for the limit nor send twice its rate.
type linkPace struct {
	mu         sync.Mutex
	rate       float64   // measured rate of the limit, wire bytes/s; 0: none measured
	pace       float64   // sending rate while pacing, wire bytes/s
	tokens     float64   // pacer bucket, wire bytes (negative: a drain in progress)
	tokensAt   time.Time // when tokens was last brought up to date
	inflight   int       // wire bytes sent and not acknowledged, all streams
	busy       []ackRec  // reads (groups of acknowledgements) of the current busy period
	busyAt     time.Time // last acknowledgement added to busy
	lastQueued time.Time // last acknowledgement that had waited
	lastHeld   time.Time // last time the pacer held a block back
	lastProbe  time.Time
}

// pacer is the adaptive sender of a Conn. It is guarded by Conn.smu; the link part by
// linkPace.mu, which its methods take (Conn.smu before linkPace.mu).
type pacer struct {
	link     *linkPace
	max      int           // Config.Window
	block    int           // negotiated block-size (payload bytes)
	overhead int           // wire bytes of a data IQ besides its <data/> element
	cwnd     int           // blocks allowed in flight while not pacing, 1..max
	slow     bool          // slow start: cwnd doubles per round
	full     bool          // a block waited for the window in this round
	acks     int           // acknowledgements in the current round
	roundMin time.Duration // smallest round trip in the current round
	base     time.Duration // smallest round trip seen
	inflight int           // wire bytes of this stream sent and not acknowledged
	suspends int           // wait errors seen (for tests and diagnostics)
}

func newPacer(max, block int, peer string, link *linkPace) pacer {
	if link == nil {
		link = new(linkPace)
	}
	return pacer{link: link, max: max, block: block, overhead: envelope(peer), cwnd: min(2, max), slow: true}
}

// paced reports whether the pacer sends by rate: a limit was measured at which the block
// window would queue for longer than paceAbove.
func (p *pacer) paced() bool {
	p.link.mu.Lock()
	defer p.link.mu.Unlock()
	return p.pacedL()
}

func (p *pacer) pacedL() bool {
	l := p.link
	if l.rate <= 0 {
		return false
	}
	window := float64(p.max * p.wireOf(p.block))
	return window > l.effRate()*paceAbove.Seconds()
}

// effRate is the rate the pacer believes in: the measured one, or more after probing.
func (l *linkPace) effRate() float64 { return max(l.rate, l.pace/paceShare) }

// wireOf estimates the wire bytes of a data IQ carrying n payload bytes.
func (p *pacer) wireOf(n int) int { return (n+2)/3*4 + 80 + p.overhead }

// blockLimit returns the largest payload of the next block.
func (p *pacer) blockLimit() int {
	p.link.mu.Lock()
	defer p.link.mu.Unlock()
	return p.blockLimitL()
}

func (p *pacer) blockLimitL() int {
	if !p.pacedL() {
		return p.block
	}
	wire := min(p.link.effRate()*blockTime.Seconds(), maxPacedWire)
	n := int((wire - float64(80+p.overhead)) * 3 / 4)
	return min(p.block, max(minPacedBlock, n))
}

// chunk returns the payload size of the next block of a write with n bytes left, and
// whether a shorter remainder may wait for the next write (coalesce): while pacing, blocks
// are cut at the block limit from the stream of bytes, whatever the writes' boundaries, and
// a short last part that the pacer would hold back anyway is filled by the next write.
func (p *pacer) chunk(n int) (size int, coalesce bool) {
	p.link.mu.Lock()
	defer p.link.mu.Unlock()
	limit := p.blockLimitL()
	return min(n, limit), p.pacedL() && n < limit
}

// short reports whether the pacer bucket lacks the bytes of a full block now: a short rest
// of a write then waits up to coalesceDelay for the next write (pacing only).
func (p *pacer) short(now time.Time) bool {
	p.link.mu.Lock()
	defer p.link.mu.Unlock()
	if !p.pacedL() {
		return false
	}
	p.refill(now)
	return p.link.tokens < float64(p.wireOf(p.blockLimitL()))
}

// refill brings the pacer bucket up to now. linkPace.mu must be held.
func (p *pacer) refill(now time.Time) {
	l := p.link
	if !l.tokensAt.IsZero() {
		l.tokens += l.pace * now.Sub(l.tokensAt).Seconds()
	}
	l.tokensAt = now
	if limit := float64(p.wireOf(p.blockLimitL())); l.tokens > limit {
		l.tokens = limit
	}
}

// admit reports whether a block of wire bytes may be sent now, with inFlight blocks of this
// stream unacknowledged; if not, wait > 0 is how long the pacer holds it (0: until an
// acknowledgement).
func (p *pacer) admit(now time.Time, wire, inFlight int) (ok bool, wait time.Duration) {
	if inFlight >= p.max {
		return false, 0
	}
	l := p.link
	l.mu.Lock()
	defer l.mu.Unlock()
	if !p.pacedL() {
		if inFlight >= p.cwnd {
			p.full = true
			return false, 0
		}
		return true, 0
	}
	if p.inflight > 0 && float64(p.inflight+wire) > max(float64(wire), l.effRate()*inflightTime.Seconds()) {
		return false, 0
	}
	p.refill(now)
	need := min(float64(wire), float64(p.wireOf(p.blockLimitL())))
	if l.tokens >= need {
		return true, 0
	}
	l.lastHeld = now
	return false, time.Duration((need - l.tokens) / l.pace * float64(time.Second))
}

// sent records a block of wire bytes handed to the link; others reports whether blocks of
// any stream of the link were unacknowledged (the server may be busy with them).
func (p *pacer) sent(now time.Time, wire int) (others bool) {
	l := p.link
	l.mu.Lock()
	defer l.mu.Unlock()
	others = l.inflight > 0
	p.inflight += wire
	l.inflight += wire
	if p.pacedL() {
		p.refill(now)
		l.tokens -= float64(wire)
	}
	return others
}

// unsent takes back a block that sent counted but that never left, or the acknowledgement
// of one that carries no timing.
func (p *pacer) unsent(wire int) {
	p.link.mu.Lock()
	defer p.link.mu.Unlock()
	p.inflight = max(0, p.inflight-wire)
	p.link.inflight = max(0, p.link.inflight-wire)
}

// ack adapts the pacer to the acknowledgement of a block of wire bytes that took rtt after
// its request was written. backlogged says that the block waited for the window or the
// pacer (held), or was sent while blocks of the link were in flight: only then may the
// server have been busy with the link's own bytes when it read it, so that the spacing of
// the reads measures the limit (a lone chat message that finds the server pausing for
// something else the client sent is spaced by the user's typing).
func (p *pacer) ack(now time.Time, rtt time.Duration, wire int, backlogged, held bool) {
	l := p.link
	l.mu.Lock()
	defer l.mu.Unlock()
	p.inflight = max(0, p.inflight-wire)
	l.inflight = max(0, l.inflight-wire)
	if p.base == 0 || rtt < p.base {
		p.base = rtt
	}
	queued := rtt > p.base+max(queueNoise, p.base/2)
	if queued {
		l.lastQueued = now
	}
	if queued && backlogged && l.rate == 0 && p.cwnd > 2 {
		// A queue before any measurement: two blocks at a time, so that the reads, and so
		// the acknowledgements, come a block or two apart and measure the limit soon.
		p.cwnd, p.acks, p.slow = 2, 0, false
	}
	if queued {
		// A busy period: the limit is measured again; a sustained queue (not a single block
		// that found the server pausing after the one before it) sends the pace back to the
		// measured rate and empties the bucket. (The in-flight bound lets the queue drain.)
		if p.measure(now, wire, backlogged, held) && p.pacedL() {
			l.pace = paceShare * l.rate
			p.refill(now)
			l.tokens = min(l.tokens, 0)
		}
	} else {
		l.busy = l.busy[:0]
		if p.pacedL() && now.Sub(l.lastQueued) > probeAfter && now.Sub(l.lastProbe) > probeAfter && now.Sub(l.lastHeld) < time.Second {
			// Held back by the pacer and no queue for a while: probe for more.
			l.pace = min(l.pace*probeGain, 4*l.rate)
			l.lastProbe = now
		}
	}
	p.window(rtt)
}

// measure adds an acknowledgement that waited to the link's busy period and, once the
// period spans enough, sets the rate. The server reads what is waiting at once and then
// pauses for what it read, so in a busy period acknowledgements come in groups (one per
// read, closer than groupGap), and the next group starts one pause, this group's cost,
// later: the span from the second group to the last one is the cost of the groups from the
// second to the one before the last. (The first group of a period may have found credit in
// the server's bucket.) The reads are the link's, whichever streams they carried.
//
// The spacing measures the limit only while the link had more to send than it sent: a
// period in which most bytes were sent as soon as they were written (chat messages sent
// while a few others waited in front of something else) is spaced by the writer, so it may
// raise the rate but neither sets a first one nor lowers it. linkPace.mu must be held.
func (p *pacer) measure(now time.Time, wire int, backlogged, held bool) bool {
	l := p.link
	h := 0
	if held {
		h = wire
	}
	if n := len(l.busy); n > 0 && now.Sub(l.busyAt) <= groupGap {
		l.busy[n-1].wire += wire // the same read
		l.busy[n-1].held += h
		l.busyAt = now
		return false
	}
	l.busyAt = now
	if !backlogged {
		// The server may have been idle, or busy with others, before this read: a new
		// period starts with it.
		l.busy = append(l.busy[:0], ackRec{at: now, wire: wire, held: h})
		return false
	}
	if len(l.busy) == busyMax {
		l.busy = append(l.busy[:0], l.busy[1:]...)
	}
	l.busy = append(l.busy, ackRec{at: now, wire: wire, held: h})
	n := len(l.busy)
	if n < 3 {
		return false
	}
	span := now.Sub(l.busy[1].at)
	if span < 150*time.Millisecond {
		return false
	}
	bytes, heldBytes := 0, 0
	for _, a := range l.busy[1 : n-1] {
		bytes += a.wire
		heldBytes += a.held
	}
	sample := float64(bytes) / span.Seconds()
	if 2*heldBytes < bytes {
		// Limited by the writer, not by the server.
		if l.rate > 0 && sample > l.rate {
			l.rate = sample
			return true
		}
		return false
	}
	// A server that reads in chunks of its own size (Prosody: 8 KiB) does not acknowledge
	// a block per read, so a short period can be off either way. An estimate that is too
	// high shows as a queue and is measured again, one that is too low would never be seen
	// again (the pacer stays below it): each measurement lowers the rate by at most 3%.
	// (Through Prosody 0.12's mod_limits, with 4 KiB blocks, samples fell to 70% of the
	// limit while the long-run rate was the limit's.)
	first := l.rate == 0
	if first {
		l.rate = sample
		l.pace = paceShare * l.rate
		l.tokens, l.tokensAt = 0, now
	} else {
		l.rate = max(sample, 0.97*l.rate)
	}
	return true
}

// window is the block window of the unpaced mode: a round is one window of
// acknowledgements; its smallest round trip is the queueing signal (a single late
// acknowledgement, e.g. a scheduling hiccup, does not shrink the window).
func (p *pacer) window(rtt time.Duration) {
	if p.acks == 0 || rtt < p.roundMin {
		p.roundMin = rtt
	}
	p.acks++
	if p.acks < p.cwnd {
		return
	}
	switch {
	case p.roundMin > p.base+max(queueTarget, p.base/2):
		// Not below two: with two blocks in flight each is sent while the other waits, and
		// their acknowledgements measure the limit (measure).
		p.cwnd = max(min(2, p.max), p.cwnd/2)
		p.slow = false
	case !p.full:
		// The window was not what held the stream back (a few small writes, e.g. a TLS
		// handshake): no evidence that a larger one would pass, so it does not grow.
	case p.slow:
		p.cwnd = min(p.max, 2*p.cwnd)
	case p.cwnd < p.max:
		p.cwnd++
	}
	p.acks, p.full = 0, false
}

// suspend records a wait error: one block at a time until the acknowledgements say
// otherwise, and no credit in the pacer's bucket.
func (p *pacer) suspend(now time.Time) {
	p.cwnd = 1
	p.slow = false
	p.acks = 0
	p.suspends++
	p.link.mu.Lock()
	defer p.link.mu.Unlock()
	if p.pacedL() {
		p.refill(now)
		p.link.tokens = min(p.link.tokens, 0)
	}
}

// retryable reports whether err, the answer to a data IQ, is a delivery error to retry
// after a pause (IBB-11): type wait, or resource-constraint / policy-violation.
func retryable(err error) bool {
	var se stanzaErrorer
	if !errors.As(err, &se) {
		return false
	}
	typ, cond, _, _ := se.StanzaError()
	return typ == "wait" || cond == "resource-constraint" || cond == "policy-violation"
}

// sleepCtx waits for d or until ctx is done; it reports whether d passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
