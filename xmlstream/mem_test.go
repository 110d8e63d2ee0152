package xmlstream_test

import (
	"context"
	"net"
	"runtime"
	"testing"

	"github.com/xtlsjingle/xtlsjingle/xmlstream"
)

// BenchmarkIdleStreamMemory reports the heap held per idle stream (one side of an open pair,
// after a message each way), for the many-sessions memory goal.
func BenchmarkIdleStreamMemory(b *testing.B) {
	const n = 500
	ctx := context.Background()
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before := ms.HeapAlloc
	g0 := runtime.NumGoroutine()
	var all []*xmlstream.Stream
	var conns []net.Conn
	for range n {
		c1, c2 := net.Pipe()
		conns = append(conns, c1, c2)
		ch := make(chan *xmlstream.Stream)
		go func() {
			s, err := xmlstream.Respond(ctx, c2, juliet, romeo, nil)
			if err != nil {
				b.Error(err)
			}
			ch <- s
		}()
		a, err := xmlstream.Initiate(ctx, c1, romeo, juliet, nil)
		if err != nil {
			b.Fatal(err)
		}
		r := <-ch
		_ = a.Send(ctx, []byte("<message><body>hi</body></message>"))
		_, _ = r.Next(ctx)
		_ = r.Send(ctx, []byte("<message><body>hi</body></message>"))
		_, _ = a.Next(ctx)
		all = append(all, a, r)
	}
	runtime.GC()
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.HeapAlloc-before)/float64(2*n), "heapB/stream")
	b.ReportMetric(float64(runtime.NumGoroutine()-g0)/float64(2*n), "goroutines/stream")
	var stacks runtime.MemStats
	runtime.ReadMemStats(&stacks)
	b.ReportMetric(float64(stacks.StackInuse)/float64(2*n), "stackB/stream")
	for i := 0; i < len(all); i += 2 {
		go all[i+1].Close()
		all[i].Close()
	}
	for _, c := range conns {
		c.Close()
	}
	for range b.N {
	}
}
