package xtls_test

import (
	"testing"
	"time"

	"github.com/xtlsjingle/xtlsjingle/internal/xmpptest"
)

// TestCloseBothAtOncePeerGone (issue 10, XS-7, CORE-8): romeo and juliet close the session
// at the same moment, and juliet's server link disappears at once (her process exits; her
// server neither delivers to her nor answers for her). The data exchanged before arrived
// (exchange), romeo's Close still sends </stream:stream>, close_notify and session-terminate,
// and returns without waiting the IQ timeout for an answer that never comes; the session
// ends without error on both sides. The bound is a correctness bound, not a speed goal.
func TestCloseBothAtOncePeerGone(t *testing.T) {
	checkGoroutines(t)
	n := xmpptest.NewNetwork(41)
	romeo := newParty(t, n, romeoJID, partyOpts{})
	juliet := newParty(t, n, julietJID, partyOpts{listener: true})
	pinEachOther(t, romeo, juliet)
	sa, sb, err := openAccept(t, romeo, juliet, nil)
	if err != nil {
		t.Fatal(err)
	}
	exchange(t, sa, sb, "parting is such sweet sorrow")
	gone := xmpptest.Faults{Drop: 1}
	n.SetFaults(julietJID, "", gone)
	n.SetFaults("", julietJID, gone)
	start := time.Now()
	done := make(chan time.Duration, 1)
	go func() {
		_ = sb.Close()
		done <- time.Since(start)
	}()
	if err := sa.Close(); err != nil {
		t.Errorf("romeo's Close: %v", err)
	}
	if d := time.Since(start); d >= 3*time.Second {
		t.Errorf("romeo's Close took %v with juliet gone", d)
	}
	if d := <-done; d >= 3*time.Second {
		t.Errorf("juliet's Close took %v", d)
	}
	if err := sa.Err(); err != nil {
		t.Errorf("romeo's session ended with %v, want an orderly close", err)
	}
	if err := sb.Err(); err != nil {
		t.Errorf("juliet's session ended with %v, want an orderly close", err)
	}
}
