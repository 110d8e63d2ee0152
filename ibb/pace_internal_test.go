package ibb

import (
	"testing"
	"time"
)

// IBB-10: the send window follows the acknowledgement round trips: full on a path without a
// queue, down to one block when round trips show a queue in front of a rate limit, and back
// up once the queue is gone.
func TestIBB10_PacerAdapts(t *testing.T) {
	p := newPacer(8)
	now := time.Unix(0, 0)
	step := func(rtt time.Duration, n int) {
		for range n {
			now = now.Add(rtt)
			p.ack(rtt, now)
		}
	}
	step(2*time.Millisecond, 50)
	if p.base != 2*time.Millisecond {
		t.Fatalf("base %v", p.base)
	}
	if p.cwnd != 8 {
		t.Fatalf("unlimited path: window %d, want 8", p.cwnd)
	}
	step(40*time.Millisecond, 50) // some queueing, below the target
	if p.cwnd != 8 {
		t.Fatalf("round trips below the target: window %d, want 8", p.cwnd)
	}
	step(550*time.Millisecond, 20) // a rate limit: 8 → 4 → 2 → 1, one round each (after the round under way): each block waits in the server's queue
	if p.cwnd != 1 {
		t.Fatalf("under a rate limit: window %d, want 1", p.cwnd)
	}
	step(550*time.Millisecond, 20)
	if p.cwnd != 1 {
		t.Fatalf("still limited: window %d, want 1", p.cwnd)
	}
	step(3*time.Millisecond, 40) // limit lifted
	if p.cwnd != 8 {
		t.Fatalf("limit lifted: window %d, want 8", p.cwnd)
	}
	p.suspend(now)
	if p.cwnd != 1 || p.suspends != 1 {
		t.Fatalf("after a wait error: window %d, suspends %d", p.cwnd, p.suspends)
	}
}
