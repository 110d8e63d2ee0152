package ibb

import (
	"context"
	"errors"
	"time"
)

// Pacing (IBB-10, IBB-11). Servers limit what they read from a client (Prosody's mod_limits:
// 10 KiB/s per c2s connection by default; ejabberd's shaper 3000 B/s): a sender that keeps
// Config.Window blocks in flight then only fills the queue in front of the limit, and
// whatever the application writes next (a chat message behind a file) waits for all of it.
// The sender therefore sizes its window from the acknowledgement round trips it sees, as
// delay-based congestion control does: the smallest round trip seen is the path without a
// queue; a round trip more than queueTarget above it means blocks are waiting in front of a
// limit. Once per window of acknowledgements (one round trip) the window halves (never below
// 1) when even the round's fastest acknowledgement was that late, and otherwise grows by one
// block, up to Config.Window. Under a rate limit this keeps one or two blocks queued (the
// limit stays busy, the queue stays short); on an unlimited path the round trips stay near
// the base and the full window is used.
const queueTarget = 100 * time.Millisecond

// Delivery errors of type wait, resource-constraint and policy-violation (a server's rate
// limit) suspend the stream and retry the same block (IBB-11) instead of closing it (IBB-13
// still applies to every other error, and to these once Config.RetryTimeout runs out).
const (
	retryFirst = 250 * time.Millisecond
	retryMax   = 4 * time.Second
)

// pacer is the adaptive send window of a Conn. It is guarded by Conn.smu.
type pacer struct {
	max      int           // Config.Window
	cwnd     int           // blocks allowed in flight now, 1..max
	acks     int           // acknowledgements in the current round
	roundMin time.Duration // smallest round trip in the current round
	base     time.Duration // smallest round trip seen
	suspends int           // wait errors seen (for tests and diagnostics)
}

func newPacer(max int) pacer { return pacer{max: max, cwnd: max} }

// ack adapts the window to one acknowledgement that took rtt after its request was written.
// A round is one window of acknowledgements; its smallest round trip is the queueing signal
// (a single late acknowledgement, e.g. a scheduling hiccup, does not shrink the window).
func (p *pacer) ack(rtt time.Duration, now time.Time) {
	if p.base == 0 || rtt < p.base {
		p.base = rtt
	}
	if p.acks == 0 || rtt < p.roundMin {
		p.roundMin = rtt
	}
	p.acks++
	if p.acks < p.cwnd {
		return
	}
	if p.roundMin > p.base+max(queueTarget, p.base/2) {
		p.cwnd = max(1, p.cwnd/2)
	} else if p.cwnd < p.max {
		p.cwnd++
	}
	p.acks = 0
}

// suspend records a wait error: one block at a time until the acknowledgements say otherwise.
func (p *pacer) suspend(now time.Time) {
	p.cwnd = 1
	p.acks = 0
	p.suspends++
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
