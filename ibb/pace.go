package ibb

import (
	"context"
	"errors"
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
//     block waited in front of a limit. While the stream keeps the server busy (its blocks
//     waited for the window or pacer, or others were in flight), the server reads what is
//     waiting one pause apart, and each pause is the previous read's cost, so the groups of
//     acknowledgements of such a busy period are spaced by wire bytes / rate: that measures
//     the limit's rate. A lone message that found the server pausing for another stream
//     measures nothing.
//   - With a measured rate low enough that the block window would queue for more than
//     paceAbove, the Conn paces: it sends at paceShare of the measured rate from a token
//     bucket (a block leaves when the bucket holds its bytes), keeps at most inflightTime of
//     the rate unacknowledged, and cuts writes into blocks that take at most blockTime at the
//     rate (never below minPacedBlock bytes of payload, and at most maxPacedWire bytes on the
//     wire: Prosody 0.12 under mod_limits held every 5.6 KB data IQ back for 0.4 s, while
//     2.9 KB ones passed at once), in equal parts, so that a TLS record that does not fit one
//     block is not followed by a sliver. Sending below the rate keeps the queue in front of
//     the limit empty; under a token bucket (ejabberd) the unused share builds credit in the
//     server's bucket, so a later small write passes at once. A small write then waits for at
//     most the block in front of it (≤ blockTime) plus its own bytes.
//   - A sustained queue (a busy period long enough to measure) sets the pace back to
//     paceShare of the new measurement and empties the bucket; the in-flight bound lets the
//     queue drain. A Conn that is held back by the pacer and sees no queue for probeAfter
//     raises its pace by probeGain, so a lifted or raised limit is found again. (Probing
//     more often eats the credit that keeps small writes fast under ejabberd's shaper.)
const (
	queueTarget   = 100 * time.Millisecond
	queueNoise    = 25 * time.Millisecond
	blockTime     = 600 * time.Millisecond
	inflightTime  = 700 * time.Millisecond
	paceAbove     = 250 * time.Millisecond
	paceShare     = 0.95
	minPacedBlock = 256
	maxPacedWire  = 3072
	probeAfter    = 30 * time.Second
	probeGain     = 1.05
	busyMax       = 64
	groupGap      = 3 * time.Millisecond
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

// ackRec is one acknowledgement of a busy period.
type ackRec struct {
	at   time.Time
	wire int
}

// pacer is the adaptive sender of a Conn. It is guarded by Conn.smu.
type pacer struct {
	max      int           // Config.Window
	block    int           // negotiated block-size (payload bytes)
	overhead int           // wire bytes of a data IQ besides its <data/> element
	cwnd     int           // blocks allowed in flight while not pacing, 1..max
	slow     bool          // slow start: cwnd doubles per round
	full     bool          // a block waited for the window in this round
	acks     int           // acknowledgements in the current round
	roundMin time.Duration // smallest round trip in the current round
	base     time.Duration // smallest round trip seen
	inflight int           // wire bytes sent and not acknowledged
	suspends int           // wait errors seen (for tests and diagnostics)

	rate       float64   // measured rate of the limit, wire bytes/s; 0: none measured
	pace       float64   // sending rate while pacing, wire bytes/s
	tokens     float64   // pacer bucket, wire bytes (negative: a drain in progress)
	tokensAt   time.Time // when tokens was last brought up to date
	busy       []ackRec  // reads (groups of acknowledgements) of the current busy period
	busyAt     time.Time // last acknowledgement added to busy
	lastQueued time.Time // last acknowledgement that had waited
	lastHeld   time.Time // last time the pacer held a block back
	lastProbe  time.Time
}

func newPacer(max, block int, peer string) pacer {
	return pacer{max: max, block: block, overhead: envelope(peer), cwnd: min(2, max), slow: true}
}

// paced reports whether the pacer sends by rate: a limit was measured at which the block
// window would queue for longer than paceAbove.
func (p *pacer) paced() bool {
	if p.rate <= 0 {
		return false
	}
	window := float64(p.max * p.wireOf(p.block))
	return window > p.effRate()*paceAbove.Seconds()
}

// effRate is the rate the pacer believes in: the measured one, or more after probing.
func (p *pacer) effRate() float64 { return max(p.rate, p.pace/paceShare) }

// wireOf estimates the wire bytes of a data IQ carrying n payload bytes.
func (p *pacer) wireOf(n int) int { return (n+2)/3*4 + 80 + p.overhead }

// blockLimit returns the largest payload of the next block.
func (p *pacer) blockLimit() int {
	if !p.paced() {
		return p.block
	}
	wire := min(p.effRate()*blockTime.Seconds(), maxPacedWire)
	n := int((wire - float64(80+p.overhead)) * 3 / 4)
	return min(p.block, max(minPacedBlock, n))
}

// chunk returns the payload size of the next block of a write with n bytes left: at the
// negotiated block-size while not pacing, else in equal parts of at most the block limit.
func (p *pacer) chunk(n int) int {
	limit := p.blockLimit()
	if n <= limit || !p.paced() {
		return min(n, limit)
	}
	parts := (n + limit - 1) / limit
	return (n + parts - 1) / parts
}

// refill brings the pacer bucket up to now.
func (p *pacer) refill(now time.Time) {
	if !p.tokensAt.IsZero() {
		p.tokens += p.pace * now.Sub(p.tokensAt).Seconds()
	}
	p.tokensAt = now
	if limit := float64(p.wireOf(p.blockLimit())); p.tokens > limit {
		p.tokens = limit
	}
}

// admit reports whether a block of wire bytes may be sent now, with inFlight blocks
// unacknowledged; if not, wait > 0 is how long the pacer holds it (0: until an
// acknowledgement).
func (p *pacer) admit(now time.Time, wire, inFlight int) (ok bool, wait time.Duration) {
	if inFlight >= p.max {
		return false, 0
	}
	if !p.paced() {
		if inFlight >= p.cwnd {
			p.full = true
			return false, 0
		}
		return true, 0
	}
	if p.inflight > 0 && float64(p.inflight+wire) > max(float64(wire), p.effRate()*inflightTime.Seconds()) {
		return false, 0
	}
	p.refill(now)
	need := min(float64(wire), float64(p.wireOf(p.blockLimit())))
	if p.tokens >= need {
		return true, 0
	}
	p.lastHeld = now
	return false, time.Duration((need - p.tokens) / p.pace * float64(time.Second))
}

// sent records a block of wire bytes handed to the link.
func (p *pacer) sent(now time.Time, wire int) {
	p.inflight += wire
	if p.paced() {
		p.refill(now)
		p.tokens -= float64(wire)
	}
}

// ack adapts the pacer to the acknowledgement of a block of wire bytes that took rtt after
// its request was written. backlogged says that the block waited for the window or the
// pacer, or was sent while others of the stream were in flight: only then does the stream
// keep the server busy, so that the spacing of the reads measures the limit (a lone chat
// message that finds the server pausing for someone else is spaced by the user's typing).
func (p *pacer) ack(now time.Time, rtt time.Duration, wire int, backlogged bool) {
	p.inflight = max(0, p.inflight-wire)
	if p.base == 0 || rtt < p.base {
		p.base = rtt
	}
	queued := rtt > p.base+max(queueNoise, p.base/2)
	if queued {
		p.lastQueued = now
	}
	if queued && backlogged && p.rate == 0 && p.cwnd > 2 {
		// A queue before any measurement: two blocks at a time, so that the reads, and so
		// the acknowledgements, come a block or two apart and measure the limit soon.
		p.cwnd, p.acks, p.slow = 2, 0, false
	}
	if queued {
		// A busy period: the limit is measured again; a sustained queue (not a single block
		// that found the server pausing after the one before it) sends the pace back to the
		// measured rate and empties the bucket. (The in-flight bound lets the queue drain.)
		if p.measure(now, wire, backlogged) && p.paced() {
			p.pace = paceShare * p.rate
			p.refill(now)
			p.tokens = min(p.tokens, 0)
		}
	} else {
		p.busy = p.busy[:0]
		if p.paced() && now.Sub(p.lastQueued) > probeAfter && now.Sub(p.lastProbe) > probeAfter && now.Sub(p.lastHeld) < time.Second {
			// Held back by the pacer and no queue for a while: probe for more.
			p.pace = min(p.pace*probeGain, 4*p.rate)
			p.lastProbe = now
		}
	}
	p.window(rtt)
}

// measure adds an acknowledgement that waited to the busy period and, once the period spans
// enough, sets the rate. The server reads what is waiting at once and then pauses for what
// it read, so in a busy period acknowledgements come in groups (one per read, closer than
// groupGap), and the next group starts one pause, this group's cost, later: the span from
// the second group to the last one is the cost of the groups from the second to the one
// before the last. (The first group of a period may have found credit in the server's
// bucket.)
func (p *pacer) measure(now time.Time, wire int, backlogged bool) bool {
	if n := len(p.busy); n > 0 && now.Sub(p.busyAt) <= groupGap {
		p.busy[n-1].wire += wire // the same read
		p.busyAt = now
		return false
	}
	p.busyAt = now
	if !backlogged {
		// The server may have been idle, or busy with others, before this read: a new
		// period starts with it.
		p.busy = append(p.busy[:0], ackRec{at: now, wire: wire})
		return false
	}
	if len(p.busy) == busyMax {
		p.busy = append(p.busy[:0], p.busy[1:]...)
	}
	p.busy = append(p.busy, ackRec{at: now, wire: wire})
	n := len(p.busy)
	if n < 3 {
		return false
	}
	span := now.Sub(p.busy[1].at)
	if span < 150*time.Millisecond {
		return false
	}
	bytes := 0
	for _, a := range p.busy[1 : n-1] {
		bytes += a.wire
	}
	// A server that reads in chunks of its own size (Prosody: 8 KiB) does not acknowledge
	// a block per read, so a short period can be off either way. An estimate that is too
	// high shows as a queue and is measured again, one that is too low would never be seen
	// again (the pacer stays below it): each measurement lowers the rate by at most 3%.
	// (Through Prosody 0.12's mod_limits, with 4 KiB blocks, samples fell to 70% of the
	// limit while the long-run rate was the limit's.)
	first := p.rate == 0
	sample := float64(bytes) / span.Seconds()
	if first {
		p.rate = sample
	} else {
		p.rate = max(sample, 0.97*p.rate)
	}
	if first {
		p.pace = paceShare * p.rate
		p.tokens, p.tokensAt = 0, now
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
	if p.paced() {
		p.refill(now)
		p.tokens = min(p.tokens, 0)
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
