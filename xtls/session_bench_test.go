package xtls_test

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/xtlsjingle/xtlsjingle/internal/xmpptest"
	"github.com/xtlsjingle/xtlsjingle/xtls"
)

// benchPair returns two clients over the in-memory network with each other's certificates
// pinned (x509 sessions).
func benchPair(b *testing.B, policy xtls.TransportPolicy, listener bool) (romeo, juliet *party) {
	n := xmpptest.NewNetwork(99)
	romeo = newParty(b, n, romeoJID, partyOpts{transports: policy, listener: listener})
	juliet = newParty(b, n, julietJID, partyOpts{listener: listener})
	pinEachOther(b, romeo, juliet)
	return romeo, juliet
}

// BenchmarkSessionSetup measures Open → first stanza delivered for x509 and srp sessions over the
// in-memory link (issue 6 benchmark; the Prosody numbers are logged by the integration test).
func BenchmarkSessionSetup(b *testing.B) {
	for _, bc := range []struct {
		name     string
		policy   xtls.TransportPolicy
		listener bool
	}{{"x509-ibb", xtls.TransportIBB, false}, {"x509-s5b", xtls.TransportS5B, true}, {"srp-ibb", xtls.TransportIBB, false}} {
		b.Run(bc.name, func(b *testing.B) {
			romeo, juliet := benchPair(b, bc.policy, bc.listener)
			ctx := context.Background()
			var opts *xtls.OpenOptions
			srp := bc.name == "srp-ibb"
			if srp {
				opts = &xtls.OpenOptions{Password: "bench"}
				juliet.setPassword("bench")
			}
			unpin := func() {
				_ = romeo.trust.Unpin("juliet@capulet.lit", juliet.id.Fingerprint())
				_ = juliet.trust.Unpin("romeo@montague.lit", romeo.id.Fingerprint())
			}
			if srp {
				unpin()
			}
			for b.Loop() {
				ch := make(chan *xtls.Session, 1)
				go func() {
					s, _ := juliet.client.Accept(ctx)
					ch <- s
				}()
				sa, err := romeo.client.Open(ctx, julietJID, opts)
				if err != nil {
					b.Fatal(err)
				}
				sb := <-ch
				if err := sa.Stream.Send(ctx, []byte("<message><body>hi</body></message>")); err != nil {
					b.Fatal(err)
				}
				if _, err := sb.Stream.Next(ctx); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if srp && sa.Method != xtls.MethodSRP {
					b.Fatalf("method %s", sa.Method)
				}
				_ = sa.Close()
				<-sb.Done()
				if srp {
					unpin()
				}
				b.StartTimer()
			}
		})
	}
}

// BenchmarkIdleSession opens b.N x509 sessions over IBB on the in-memory link and keeps them
// open, reporting the heap held per session end (both ends live in this process) and goroutines
// per session end (issue 6 goal: ≤ 32 KiB per idle session end).
func BenchmarkIdleSession(b *testing.B) {
	romeo, juliet := benchPair(b, xtls.TransportIBB, false)
	ctx := context.Background()
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before, g0 := ms.HeapAlloc, runtime.NumGoroutine()
	var all []*xtls.Session
	for b.Loop() {
		ch := make(chan *xtls.Session, 1)
		go func() {
			s, _ := juliet.client.Accept(ctx)
			ch <- s
		}()
		sa, err := romeo.client.Open(ctx, julietJID, nil)
		if err != nil {
			b.Fatal(err)
		}
		all = append(all, sa, <-ch)
	}
	b.StopTimer()
	time.Sleep(50 * time.Millisecond)
	runtime.GC()
	runtime.ReadMemStats(&ms)
	ends := float64(len(all))
	b.ReportMetric(float64(int64(ms.HeapAlloc)-int64(before))/ends/1024, "KiB/end")
	b.ReportMetric(float64(runtime.NumGoroutine()-g0)/ends, "goroutines/end")
	for i := 0; i < len(all); i += 2 {
		_ = all[i].Close()
		<-all[i+1].Done()
	}
}
