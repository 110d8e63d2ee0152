package ibb_test

import (
	"fmt"
	"io"
	"testing"

	"github.com/xtlsjingle/xtlsjingle/ibb"
)

// BenchmarkConnInMemory measures ibb.Conn throughput over the in-memory link (every stanza
// on its own goroutine, as the adapter's XMPP library does, GOSRC.md §3.A4) with 4096-byte blocks at windows 1, 8, 32.
// It shows the client-side cost; a real server adds ~1 ms per stanza.
func BenchmarkConnInMemory(b *testing.B) {
	for _, win := range []int{1, 8, 32} {
		b.Run(fmt.Sprintf("window=%d", win), func(b *testing.B) {
			cfg := &ibb.Config{Window: win}
			w := newWorld(b, 1, cfg, cfg)
			a, c := w.pair(b, "bench", 4096)
			chunk := make([]byte, 64<<10)
			done := make(chan error, 1)
			go func() {
				_, err := io.Copy(io.Discard, c)
				done <- err
			}()
			b.SetBytes(int64(len(chunk)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := a.Write(chunk); err != nil {
					b.Fatal(err)
				}
			}
			if err := a.Close(); err != nil {
				b.Fatal(err)
			}
			if err := <-done; err != nil {
				b.Fatal(err)
			}
		})
	}
}
