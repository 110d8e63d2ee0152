package ibb_test

import (
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xtlsjingle/xtlsjingle/ibb"
	"github.com/xtlsjingle/xtlsjingle/internal/xmpptest"
)

// IBB-7: seq is a 16-bit counter that wraps from 65535 to 0. 65536+300 one-byte blocks go
// through (the receiver follows the wrap), and the wire shows 65535 followed by 0.
func TestIBB7_SeqWrap(t *testing.T) {
	cfg := &ibb.Config{Window: 32}
	w := newWorld(t, 7, cfg, cfg)
	var mu sync.Mutex
	seqs := make([]int, 0, 70000)
	w.net.Observe(func(s xmpptest.Stanza) {
		if s.From != romeoJID || s.Type != "set" || !strings.HasPrefix(string(s.Payload), "<data ") {
			return
		}
		d, err := ibb.ParseData(s.Payload)
		if err != nil {
			t.Errorf("romeo sent an invalid data element: %v", err)
			return
		}
		mu.Lock()
		seqs = append(seqs, int(d.Seq))
		mu.Unlock()
	})
	a, b := w.pair(t, "wrap", 1)
	data := randomBytes(7, 65536+300)
	got, werr, rerr := transfer(a, b, data)
	if werr != nil || rerr != nil {
		t.Fatalf("write: %v, read: %v", werr, rerr)
	}
	sameBytes(t, data, got)
	mu.Lock()
	defer mu.Unlock()
	if len(seqs) != len(data) {
		t.Fatalf("%d data stanzas for %d one-byte blocks", len(seqs), len(data))
	}
	seen := map[int]bool{}
	for _, s := range seqs {
		seen[s] = true
	}
	if len(seen) != 65536 {
		t.Fatalf("%d distinct seq values; want all 65536", len(seen))
	}
	// Sent order is seq order up to the window (goroutines hand them to the network).
	wrapped := false
	for i, s := range seqs[65500:65600] {
		if s == 0 && i > 0 {
			wrapped = true
		}
	}
	if !wrapped {
		t.Fatal("no seq 0 after 65535 blocks")
	}
}

// IBB-12, IBB-14: duplicated stanzas make the receiver fail with ErrDuplicateSeq (answered
// unexpected-request), and the sender learns of it: no duplicate is ever delivered as data.
func TestIBB14_DuplicatesFail(t *testing.T) {
	w := newWorld(t, 3, nil, nil)
	a, b := w.pair(t, "dup", 4096)
	w.net.SetFaults(romeoJID, julietJID, xmpptest.Faults{Duplicate: 0.05})
	data := randomBytes(3, 1<<20)
	got, werr, rerr := transfer(a, b, data)
	if !errors.Is(rerr, ibb.ErrDuplicateSeq) {
		t.Fatalf("read error %v; want ErrDuplicateSeq", rerr)
	}
	if werr == nil {
		t.Fatal("writer saw no error")
	}
	// The duplicate itself is answered unexpected-request; blocks of the window that reach the
	// receiver after it closed the stream are answered item-not-found (IBB-12/16). Whichever
	// answer the sender sees first ends its side.
	if !errors.Is(werr, ibb.ErrUnexpectedRequest) && !errors.Is(werr, ibb.ErrItemNotFound) && !errors.Is(werr, io.ErrClosedPipe) {
		t.Fatalf("write error %v; want unexpected-request, item-not-found or closed pipe", werr)
	}
	sameBytes(t, data[:len(got)], got) // what was delivered is a correct prefix
	if _, dup, _ := w.net.Stats(); dup == 0 {
		t.Fatal("nothing was duplicated")
	}
}

// IBB-14: lost data stanzas never go unnoticed: either a gap is detected (ErrGapTimeout on
// the reader) or the sender's Close reports unacknowledged data; what was delivered is a
// correct prefix. Several seeds.
func TestIBB14_DropsDetected(t *testing.T) {
	for seed := int64(1); seed <= 4; seed++ {
		t.Run(strconv.FormatInt(seed, 10), func(t *testing.T) {
			cfg := &ibb.Config{ReorderTimeout: 2 * time.Second, CloseTimeout: 3 * time.Second} // generous: CI machines stall goroutines
			w := newWorld(t, seed, cfg, cfg)
			a, b := w.pair(t, "drop", 4096)
			w.net.SetFaults(romeoJID, julietJID, xmpptest.Faults{Drop: 0.02})
			data := randomBytes(seed, 256<<10)
			got, werr, rerr := transfer(a, b, data)
			sameBytes(t, data[:min(len(got), len(data))], got)
			dropped, _, _ := w.net.Stats()
			switch {
			case dropped == 0:
				if werr != nil || rerr != nil || len(got) != len(data) {
					t.Fatalf("no drops, yet write %v, read %v, %d of %d bytes", werr, rerr, len(got), len(data))
				}
			case len(got) == len(data) && rerr == nil && werr == nil:
				t.Fatalf("%d stanzas dropped and nobody noticed", dropped)
			case rerr != nil && !errors.Is(rerr, ibb.ErrGapTimeout) && !errors.Is(rerr, ibb.ErrUnexpectedClose):
				t.Fatalf("read error %v; want ErrGapTimeout or ErrUnexpectedClose", rerr)
			case rerr == nil && !errors.Is(werr, ibb.ErrUnacknowledged):
				t.Fatalf("reader saw a clean end (%d of %d bytes), writer %v; want ErrUnacknowledged", len(got), len(data), werr)
			}
			t.Logf("dropped %d: read %d/%d, read err %v, write err %v", dropped, len(got), len(data), rerr, werr)
		})
	}
}

// IBB-15, IBB-14: the sender's <close/> goes out only after every data block was
// acknowledged, so with heavy reordering no data is lost at the end of the stream.
func TestIBB15_CloseAfterAllAcked(t *testing.T) {
	w := newWorld(t, 5, nil, nil)
	rec := record(w.net)
	a, b := w.pair(t, "s1", 1024)
	w.net.SetFaults("", "", xmpptest.Faults{Delay: 0.7, MaxDelay: 10 * time.Millisecond})
	data := randomBytes(5, 200*1024+17)
	got, werr, rerr := transfer(a, b, data)
	if werr != nil || rerr != nil {
		t.Fatalf("write %v, read %v", werr, rerr)
	}
	sameBytes(t, data, got)
	// Every data result from juliet is on the wire before romeo's close.
	results, closeAt := 0, -1
	for i, s := range rec.stanzas() {
		if s.From == julietJID && s.Type == "result" {
			results++
		}
		if isCloseFrom(romeoJID)(s) {
			closeAt = i
			if results < 201 { // 201 data blocks (+ the open's result is from juliet too)
				t.Fatalf("close sent after only %d results", results)
			}
		}
	}
	if closeAt < 0 {
		t.Fatal("no close")
	}
}

// IBB-3, IBB-17: data in message stanzas (no acks) is reordered by the network and restored.
func TestIBB17_MessageStanzas(t *testing.T) {
	cfg := &ibb.Config{Stanza: ibb.StanzaMessage}
	w := newWorld(t, 9, cfg, nil)
	var mu sync.Mutex
	msgs := 0
	w.net.Observe(func(s xmpptest.Stanza) {
		if s.Kind == xmpptest.KindMessage && s.From == romeoJID {
			mu.Lock()
			msgs++
			mu.Unlock()
		}
	})
	a, b := w.pair(t, "msg", 4096)
	w.net.SetFaults(romeoJID, julietJID, xmpptest.Faults{Delay: 0.5, MaxDelay: time.Millisecond})
	data := randomBytes(9, 512<<10)
	// Juliet answers in messages too (the open's stanza attribute), so exchange both ways.
	exchange(t, a, b, data, randomBytes(10, 100<<10))
	mu.Lock()
	defer mu.Unlock()
	if msgs < 128 {
		t.Fatalf("%d message stanzas from romeo; want the 128 data blocks as messages", msgs)
	}
}

// IBB-20: a read deadline wakes a blocked Read with a timeout error that unwraps to
// os.ErrDeadlineExceeded; Close wakes blocked Reads and Writes with net.ErrClosed.
func TestIBB20_DeadlinesAndClose(t *testing.T) {
	w := newWorld(t, 1, nil, &ibb.Config{ReceiveWindow: 8})
	a, b := w.pair(t, "s1", 4096)
	start := time.Now()
	b.SetReadDeadline(start.Add(50 * time.Millisecond))
	_, err := b.Read(make([]byte, 10))
	assertTimeout(t, err)
	// A writer blocks once the peer's buffer and the window are full; its deadline wakes it.
	a.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	var n int
	for err = nil; err == nil; {
		var k int
		k, err = a.Write(make([]byte, 64<<10))
		n += k
	}
	assertTimeout(t, err)
	if n > 1<<20 { // the peer holds at most ReceiveWindow+Window blocks
		t.Fatalf("wrote %d bytes before blocking", n)
	}
	// Close unblocks a blocked Read.
	b.SetReadDeadline(time.Time{})
	buf := make([]byte, n+1)
	if _, err := io.ReadFull(b, buf[:n]); err != nil {
		t.Fatalf("reading what was written: %v", err)
	}
	done := make(chan error, 1)
	go func() { _, err := b.Read(buf); done <- err }()
	time.Sleep(20 * time.Millisecond)
	b.Close()
	if err := <-done; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Read after Close: %v; want net.ErrClosed", err)
	}
}

// IBB-10, IBB-20: the sender never has more than Config.Window data IQs unacknowledged
// (counted on the wire, with delays that keep acks late).
func TestIBB10_WindowBound(t *testing.T) {
	const win = 3
	w := newWorld(t, 4, &ibb.Config{Window: win}, nil)
	var mu sync.Mutex
	outstanding, peak := 0, 0
	dataIDs := map[string]bool{}
	w.net.Observe(func(s xmpptest.Stanza) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case s.From == romeoJID && s.Type == "set" && strings.HasPrefix(string(s.Payload), "<data "):
			dataIDs[s.ID] = true
			outstanding++
			peak = max(peak, outstanding)
		case s.From == julietJID && (s.Type == "result" || s.Type == "error") && dataIDs[s.ID]:
			outstanding--
		}
	})
	a, b := w.pair(t, "win", 512)
	w.net.SetFaults("", "", xmpptest.Faults{Delay: 0.5, MaxDelay: 2 * time.Millisecond})
	data := randomBytes(4, 200<<10)
	got, werr, rerr := transfer(a, b, data)
	if werr != nil || rerr != nil {
		t.Fatalf("write %v, read %v", werr, rerr)
	}
	sameBytes(t, data, got)
	mu.Lock()
	defer mu.Unlock()
	if peak > win {
		t.Fatalf("%d data IQs unacknowledged at once; window is %d", peak, win)
	}
	if peak < 2 {
		t.Fatalf("peak %d: the window was never used", peak)
	}
}

// IBB-14: with a window of 32 the data stanzas still leave in seq order (receivers such as
// slixmpp process them in wire order and close the stream on a swap).
func TestIBB14_SentInSeqOrder(t *testing.T) {
	w := newWorld(t, 6, &ibb.Config{Window: 32}, nil)
	var mu sync.Mutex
	var seqs []uint16
	w.net.Observe(func(s xmpptest.Stanza) {
		if s.From != romeoJID || s.Type != "set" || !strings.HasPrefix(string(s.Payload), "<data ") {
			return
		}
		d, err := ibb.ParseData(s.Payload)
		if err != nil {
			t.Errorf("invalid data: %v", err)
			return
		}
		mu.Lock()
		seqs = append(seqs, d.Seq)
		mu.Unlock()
	})
	a, b := w.pair(t, "order", 256)
	w.net.SetFaults("", "", xmpptest.Faults{Delay: 0.5, MaxDelay: time.Millisecond})
	data := randomBytes(6, 256*2000)
	got, werr, rerr := transfer(a, b, data)
	if werr != nil || rerr != nil {
		t.Fatalf("write %v, read %v", werr, rerr)
	}
	sameBytes(t, data, got)
	mu.Lock()
	defer mu.Unlock()
	for i, s := range seqs {
		if s != uint16(i) {
			t.Fatalf("stanza %d on the wire carries seq %d", i, s)
		}
	}
}
