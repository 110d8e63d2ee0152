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

// TestIdleSessionMemory logs the heap held per idle x509 session (both ends in this process,
// IBB over the in-memory link). Measured, not asserted (issue 6: goal ≤ 32 KiB per session end).
func TestIdleSessionMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("memory measurement")
	}
	const sessions = 200
	n := xmpptest.NewNetwork(98)
	romeo := newParty(t, n, romeoJID, partyOpts{transports: xtls.TransportIBB})
	juliet := newParty(t, n, julietJID, partyOpts{})
	pinEachOther(t, romeo, juliet)
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before := ms.HeapAlloc
	var all []*xtls.Session
	for range sessions {
		sa, sb, err := openAccept(t, romeo, juliet, nil)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, sa, sb)
	}
	time.Sleep(100 * time.Millisecond)
	runtime.GC()
	runtime.ReadMemStats(&ms)
	per := float64(ms.HeapAlloc-before) / float64(2*sessions)
	t.Logf("%d idle sessions (both ends here): %.1f KiB heap per session end, %d goroutines", sessions, per/1024, runtime.NumGoroutine())
	for i := 0; i < len(all); i += 2 {
		_ = all[i].Close()
		<-all[i+1].Done()
	}
}
