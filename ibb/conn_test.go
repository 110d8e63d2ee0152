package ibb_test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/xtlsjingle/xtlsjingle/ibb"
	"github.com/xtlsjingle/xtlsjingle/internal/xmpptest"
)

// exchange sends ab from a to b and ba from b to a at the same time, reads both fully, then
// closes a (whose <close/> b answers) and checks that b sees io.EOF.
func exchange(t *testing.T, a, b *ibb.Conn, ab, ba []byte) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	var gotAB, gotBA []byte
	wg.Add(4)
	go func() { defer wg.Done(); _, err := a.Write(ab); errs <- err }()
	go func() { defer wg.Done(); _, err := b.Write(ba); errs <- err }()
	go func() {
		defer wg.Done()
		gotAB = make([]byte, len(ab))
		_, err := io.ReadFull(b, gotAB)
		errs <- err
	}()
	go func() {
		defer wg.Done()
		gotBA = make([]byte, len(ba))
		_, err := io.ReadFull(a, gotBA)
		errs <- err
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("exchange: %v", err)
		}
	}
	sameBytes(t, ab, gotAB)
	sameBytes(t, ba, gotBA)
	if err := a.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if n, err := b.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("Read after the peer's close = %d, %v; want 0, io.EOF", n, err)
	}
}

// IBB-7, IBB-9, IBB-14: 1 MiB each way at once over a network that delays (and so reorders)
// half of all stanzas arrives intact and in order.
func TestIBB14_ReorderedBothWays(t *testing.T) {
	w := newWorld(t, 1, nil, nil)
	a, b := w.pair(t, "s1", 4096)
	w.net.SetFaults("", "", xmpptest.Faults{Delay: 0.5, MaxDelay: 3 * time.Millisecond})
	exchange(t, a, b, randomBytes(1, 1<<20), randomBytes(2, 1<<20))
	if _, _, delayed := w.net.Stats(); delayed == 0 {
		t.Fatal("no stanza was delayed: the test did not reorder")
	}
}

// Close while a Write is sending blocks: the writer gets net.ErrClosed or finishes, Close
// returns, and no block is counted after Close began waiting for the acknowledgements (IBB-15;
// under -race an Add racing Close's Wait was reported as a WaitGroup misuse).
func TestIBB15_CloseDuringWrite(t *testing.T) {
	w := newWorld(t, 1, nil, nil)
	for i := range 30 {
		a, b := w.pair(t, fmt.Sprintf("cw%d", i), 512)
		go io.Copy(io.Discard, b)
		werr := make(chan error, 1)
		go func() {
			_, err := a.Write(randomBytes(int64(i), 64<<10))
			werr <- err
		}()
		time.Sleep(time.Duration(i%5) * 100 * time.Microsecond)
		a.Close()
		if err := <-werr; err != nil && !errors.Is(err, net.ErrClosed) {
			t.Fatalf("round %d: Write during Close: %v, want nil or net.ErrClosed", i, err)
		}
	}
}
