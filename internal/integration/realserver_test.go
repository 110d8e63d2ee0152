package integration

// Real servers as deployed (issue 11): request/response through Prosody's mod_proxy65 and
// IBB under Prosody's default c2s rate limit.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/xtlsjingle/xtlsjingle/internal/prosodytest"
	"github.com/xtlsjingle/xtlsjingle/socks5"
	"github.com/xtlsjingle/xtlsjingle/xtls"
)

// percentiles returns p50, p99 and max of ds (sorted in place).
func percentiles(ds []time.Duration) (p50, p99, max time.Duration) {
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds[len(ds)/2], ds[len(ds)*99/100], ds[len(ds)-1]
}

// echoServer answers every message on s with the same body until the stream ends.
func echoServer(s *xtls.Session) {
	for {
		st, err := s.Stream.Next(context.Background())
		if err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = s.Stream.Send(ctx, st.Raw)
		cancel()
		if err != nil {
			return
		}
	}
}

// TestXTLSProsodyProxyEcho1000: 1,000 messages through an XTLS session over Prosody's
// mod_proxy65 (proxy candidates only), each waiting for its echo; one in four is 8–16 KiB.
// mod_proxy65 holds back up to 4096 bytes of a burst larger than 4096 bytes until the same
// sender writes again (TestS5BProsodyProxyEcho); without the session's keepalive nudge
// (xtls/nudge.go, CORE-11) every large message stalled here. The one-second bound per echo is
// the correctness check for that stall, not a speed goal.
func TestXTLSProsodyProxyEcho1000(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		srv := prosodytest.Shared(t)
		probe := dialAccount(t, srv, "probe", nil)
		proxy := discoverProxy(t, srv, probe)
		a := newXTLSParty(t, srv, "orchard", xtlsOpts{proxies: []socks5.Streamhost{proxy}})
		b := newXTLSParty(t, srv, "balcony", xtlsOpts{})
		b.mu.Lock()
		b.password = "parting is such sweet sorrow"
		b.mu.Unlock()
		sa, sb, _ := openAcceptXTLS(t, a, b, &xtls.OpenOptions{Password: "parting is such sweet sorrow"})
		if sa.Transport != xtls.TransportNameS5BProxy || sb.Transport != xtls.TransportNameS5BProxy {
			t.Fatalf("transport %s/%s, want %s", sa.Transport, sb.Transport, xtls.TransportNameS5BProxy)
		}
		go echoServer(sb)

		rng := rand.New(rand.NewPCG(11, 65))
		var small, large []time.Duration
		for i := range 1000 {
			n := 16 + rng.IntN(400)
			if i%4 == 3 {
				n = 8<<10 + rng.IntN(8<<10+1)
			}
			body := fmt.Sprintf("%d:%s", i, strings.Repeat(string(rune('a'+i%26)), n))
			msg := []byte("<message><body>" + body + "</body></message>")
			ctx, cancel := context.WithTimeout(t.Context(), time.Second)
			start := time.Now()
			if err := sa.Stream.Send(ctx, msg); err != nil {
				cancel()
				t.Fatalf("message %d (%d B): send: %v", i, len(msg), err)
			}
			st, err := sa.Stream.Next(ctx)
			d := time.Since(start)
			cancel()
			if err != nil {
				t.Fatalf("message %d (%d B): no echo within one second: %v", i, len(msg), err)
			}
			if !strings.Contains(string(st.Raw), "<body>"+body+"</body>") {
				t.Fatalf("message %d: echo differs", i)
			}
			if n > 4096 {
				large = append(large, d)
			} else {
				small = append(small, d)
			}
		}
		p50, p99, max := percentiles(small)
		t.Logf("%d small echoes via mod_proxy65 (XTLS): p50 %v, p99 %v, max %v", len(small), p50, p99, max)
		p50, p99, max = percentiles(large)
		t.Logf("%d 8–16 KiB echoes via mod_proxy65 (XTLS): p50 %v, p99 %v, max %v", len(large), p50, p99, max)
		closeXTLS(t, sa, sb)
		_ = a.client.Close()
		_ = b.client.Close()
		a.link.Close()
		b.link.Close()
		probe.Close()
	}()
	checkGoroutines(t, before, 4)
}
