package ibb_test

import (
	"strings"
	"sync"
	"testing"

	"github.com/xtlsjingle/xtlsjingle/ibb"
	"github.com/xtlsjingle/xtlsjingle/internal/xmpptest"
)

// IBB-1, issue 11: the default block-size is 4096 (≤ 5120, what real servers carry without
// extra delay), and a Write of at most one block leaves as exactly one data stanza, so a TLS
// record that fits a block is never split; a larger Write is cut at block boundaries.
func TestIBB1_OneWriteOneBlock(t *testing.T) {
	w := newWorld(t, 1, nil, nil)
	var mu sync.Mutex
	var sizes []int
	w.net.Observe(func(s xmpptest.Stanza) {
		if s.From != romeoJID || !strings.HasPrefix(string(s.Payload), "<data ") {
			return
		}
		d, err := ibb.ParseData(s.Payload)
		if err != nil {
			t.Errorf("invalid data element: %v", err)
			return
		}
		mu.Lock()
		sizes = append(sizes, len(d.Payload))
		mu.Unlock()
	})
	a, b := w.pair(t, "blocks", 0)
	if a.BlockSize() != ibb.DefaultBlockSize || ibb.DefaultBlockSize != 4096 {
		t.Fatalf("block-size %d, default %d; want 4096", a.BlockSize(), ibb.DefaultBlockSize)
	}
	writes := []int{4096, 1, 4074, 4097, 10000}
	total := 0
	for _, n := range writes {
		total += n
	}
	data := randomBytes(1, total)
	go func() {
		off := 0
		for _, n := range writes {
			if _, err := a.Write(data[off : off+n]); err != nil {
				t.Errorf("write: %v", err)
				return
			}
			off += n
		}
		_ = a.Close()
	}()
	got, err := readErr(t, b)
	if err != nil {
		t.Fatal(err)
	}
	sameBytes(t, data, got)
	mu.Lock()
	defer mu.Unlock()
	want := []int{4096, 1, 4074, 4096, 1, 4096, 4096, 1808}
	if len(sizes) != len(want) {
		t.Fatalf("blocks %v, want %v", sizes, want)
	}
	for i := range want {
		if sizes[i] != want[i] {
			t.Fatalf("blocks %v, want %v", sizes, want)
		}
	}
}
