package integration

// Real servers as deployed (issue 11): request/response through Prosody's mod_proxy65 and
// IBB under Prosody's default c2s rate limit.

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xtlsjingle/xtlsjingle/gosrcxmpp"
	"github.com/xtlsjingle/xtlsjingle/internal/ejabberdtest"
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

// TestXTLSProxyEcho1000: 1,000 messages through an XTLS session over the server's
// mod_proxy65 (proxy candidates only), each waiting for its echo; one in four is 8–16 KiB.
// Prosody's mod_proxy65 holds back up to 4096 bytes of a burst larger than 4096 bytes until
// the same sender writes again (TestS5BProxyEcho); without the session's keepalive nudge
// (xtls/nudge.go, CORE-11) every large message stalled here. ejabberd's relay holds nothing
// back (TestS5BProxyNudge). The one-second bound per echo is the correctness check for that
// stall, not a speed goal.
func TestXTLSProxyEcho1000(t *testing.T) {
	forEachServer(t, runXTLSProxyEcho1000)
}

func runXTLSProxyEcho1000(t *testing.T, srv *server) {
	before := runtime.NumGoroutine()
	func() {
		probe := dialOn(t, srv, "probe", nil)
		proxy := discoverProxyOn(t, srv, probe)
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
		t.Logf("%d small echoes via %s's mod_proxy65 (XTLS): p50 %v, p99 %v, max %v", len(small), srv.Name, p50, p99, max)
		p50, p99, max = percentiles(large)
		t.Logf("%d 8–16 KiB echoes via %s's mod_proxy65 (XTLS): p50 %v, p99 %v, max %v", len(large), srv.Name, p50, p99, max)
		closeXTLS(t, sa, sb)
		_ = a.client.Close()
		_ = b.client.Close()
		a.link.Close()
		b.link.Close()
		probe.Close()
	}()
	checkGoroutines(t, before, 4)
}

// dataCountingLink counts the data IQs a party sends: their payload bytes and an estimate of
// the bytes the server reads for each (payload plus the <iq/> envelope gosrc writes), and when
// each was acknowledged.
type dataCountingLink struct {
	xtls.Link
	mu          sync.Mutex
	blocks      int
	wire        int
	errs        int
	maxInFlight int
	inFlight    int
	acked       []ackedIQ
}

type ackedIQ struct {
	at   time.Time
	wire int
}

// ackedBetween returns the wire bytes of the data IQs acknowledged in (from, to].
func (l *dataCountingLink) ackedBetween(from, to time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, a := range l.acked {
		if a.at.After(from) && !a.at.After(to) {
			n += a.wire
		}
	}
	return n
}

func (l *dataCountingLink) Request(ctx context.Context, to, typ string, payload []byte) ([]byte, error) {
	data := bytes.HasPrefix(payload, []byte("<data"))
	wire := len(payload) + len(to) + len(`<iq xmlns="jabber:client" type="set" id="00000000-0000-0000-0000-000000000000" to=""></iq>`)
	if data {
		l.mu.Lock()
		l.blocks++
		l.wire += wire
		l.inFlight++
		l.maxInFlight = max(l.maxInFlight, l.inFlight)
		l.mu.Unlock()
	}
	res, err := l.Link.Request(ctx, to, typ, payload)
	if data {
		l.mu.Lock()
		l.inFlight--
		if err != nil {
			l.errs++
		} else {
			l.acked = append(l.acked, ackedIQ{time.Now(), wire})
		}
		l.mu.Unlock()
	}
	return res, err
}

func (l *dataCountingLink) snapshot() (blocks, wire int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.blocks, l.wire
}

// rateLimit describes a server's limit on the bytes it reads from each client connection.
type rateLimit struct {
	rate  float64 // bytes per second, steady state
	burst float64 // bytes that pass at once before the rate applies
	// n1 bulk messages in phase 1, of which the first skip only use up the burst (the
	// payload rate is measured from the arrival of message skip on).
	n1, skip int
	// minShare, if > 0, is the share phase 1 must reach both of the ceiling payload rate for
	// the stanzas sent and of what one 4 KiB block per message would carry at the limit.
	minShare float64
}

// TestXTLSProsodyIBBRateLimit (issue 11, IBB-10, IBB-11): runIBBRateLimit through a Prosody
// with its default mod_limits (c2s 10 KiB/s read from each client; Prosody 0.12's epoll
// backend applies it with conn:setlimit, which pauses reading after each read for what it
// cost and has no burst). The first messages are not timed, so that the pacer has measured
// the limit.
func TestXTLSProsodyIBBRateLimit(t *testing.T) {
	srv := prosodyServer(prosodytest.Start(t, prosodytest.WithLimits("")))
	runIBBRateLimit(t, srv, rateLimit{rate: 10240, n1: 24, skip: 4, minShare: 0.9})
}

// TestXTLSEjabberdIBBShaper (issue 11, IBB-10, IBB-11): runIBBRateLimit through an ejabberd
// with the shaper it ships (3000 B/s of what it reads from each client after TLS, burst
// 20000 B). The first stanzas use up the burst; then the rest are timed. The ceiling is the
// payload rate a perfect sender of these stanzas reaches: the shaper's 3000 wire B/s times
// payload/wire of the very stanzas sent (base64 4/3, the IQ and <data/> envelope, the TLS
// record and xmlstream framing of the XTLS layer), so the 90% bound (issue 11) measures the
// sender's pacing alone. The shaper, not this machine's CPU, sets the time (a 2-core runner
// moves these bytes in milliseconds), so the bound is robust under load.
//
// Under the limit the pacer cuts blocks to ≤ 0.85 s of the rate (ibb/pace.go), so these
// stanzas cost more envelope than 4 KiB blocks would; the payload rate must reach 90% of the
// 4 KiB ceiling too (the old sender's blocks, which kept chat waiting for seconds), so the
// smaller blocks may not cost more than a tenth of the payload. The pacer measures the limit only once the burst is used up
// and the first blocks queue (~10 s here), so phase 1 is long enough (22 messages) for the
// share to show the paced state, not mainly that start.
func TestXTLSEjabberdIBBShaper(t *testing.T) {
	srv := ejabberdServer(ejabberdtest.Start(t, ejabberdtest.WithDefaultShaper()))
	runIBBRateLimit(t, srv, rateLimit{rate: ejabberdtest.ShaperRate, burst: ejabberdtest.ShaperBurst, n1: 22, skip: 5, minShare: 0.9})
}

// runIBBRateLimit: an XTLS session over IBB through srv under lim. Phase 1 moves ~4 KB
// messages and logs the payload rate against the ceiling the limit allows for these stanzas;
// phase 2 runs a bulk transfer (1 KiB stanzas) while chat messages go every 400 ms, each of
// which must arrive within one second. The session must survive and neither client may be
// disconnected by the server (a c2s reconnect or an IBB error would end it).
func runIBBRateLimit(t *testing.T, srv *server, lim rateLimit) {
	before := runtime.NumGoroutine()
	func() {
		var disconnects atomic.Int32
		onEvent := func(e gosrcxmpp.Event) {
			if e.Kind == gosrcxmpp.Disconnected {
				disconnects.Add(1)
			}
		}
		var counter *dataCountingLink
		a := newXTLSParty(t, srv, "orchard", xtlsOpts{onEvent: onEvent, transports: xtls.TransportIBB, wrap: func(l xtls.Link) xtls.Link {
			counter = &dataCountingLink{Link: l}
			return counter
		}})
		b := newXTLSParty(t, srv, "balcony", xtlsOpts{onEvent: onEvent})
		b.mu.Lock()
		b.password = "swift as a shadow"
		b.mu.Unlock()
		sa, sb, setup := openAcceptXTLS(t, a, b, &xtls.OpenOptions{Password: "swift as a shadow"})
		if sa.Transport != xtls.TransportNameIBB {
			t.Fatalf("transport %s, want ibb", sa.Transport)
		}
		t.Logf("srp over IBB under %s's limit: setup %v", srv.Name, setup)

		type arrival struct {
			at   time.Time
			size int
		}
		arrivals := make(chan arrival, 1024)
		chats := make(chan int, 64)
		go func() {
			defer close(arrivals)
			for {
				st, err := sb.Stream.Next(context.Background())
				if err != nil {
					return
				}
				raw := string(st.Raw)
				if i := strings.Index(raw, "<body>chat "); i >= 0 {
					var n int
					fmt.Sscanf(raw[i+len("<body>chat "):], "%d", &n)
					chats <- n
					continue
				}
				arrivals <- arrival{time.Now(), len(st.Raw)}
			}
		}()
		send := func(ctx context.Context, body string) {
			t.Helper()
			if err := sa.Stream.Send(ctx, []byte("<message><body>"+body+"</body></message>")); err != nil {
				t.Errorf("send: %v", err)
			}
		}

		// Phase 1: bulk only.
		ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
		defer cancel()
		n1 := lim.n1
		const size1 = 4000
		blocks0, wire0 := counter.snapshot()
		go func() {
			for i := range n1 {
				send(ctx, fmt.Sprintf("bulk %03d %s", i, strings.Repeat("x", size1)))
			}
		}()
		var first, last time.Time
		app := 0
		for i := range n1 {
			select {
			case ar, ok := <-arrivals:
				if !ok {
					t.Fatalf("stream ended after %d bulk messages: %v / %v", i, sa.Err(), sb.Err())
				}
				if i == lim.skip {
					first = ar.at
				} else if i > lim.skip {
					app += size1
				}
				last = ar.at
			case <-ctx.Done():
				t.Fatalf("only %d of %d bulk messages arrived", i, n1)
			}
		}
		blocks1, wire1 := counter.snapshot()
		el := last.Sub(first).Seconds()
		// The limit is on the bytes the server reads. Of the data IQs the server passed while
		// the timed messages arrived (acknowledged in that span), app/wire is payload, so the
		// limit allows rate·app/wire bytes/s of payload for these stanzas. (The pacer changes
		// the block size once it has measured the limit, so the messages differ on the wire.)
		wire := float64(counter.ackedBetween(first, last))
		limitPayload := lim.rate * float64(app) / wire
		share := float64(app) / el / limitPayload
		t.Logf("phase 1 (%s): %d B of messages in %.1f s = %.0f B/s; limit's payload rate for these stanzas %.0f B/s → %.0f%% (%d data IQs, %.0f wire B/s of %.0f; %.0f wire B per %d B message)",
			srv.Name, app, el, float64(app)/el, limitPayload, 100*share, blocks1-blocks0, wire/el, lim.rate, float64(wire1-wire0)/float64(n1), size1)
		// For comparison: one 4096-byte block per message (what the sender used before it cut
		// blocks to the rate): base64 of the XTLS record plus ~250 B of <data/> and IQ.
		full := lim.rate * size1 / (float64(size1+72)*4/3 + 250)
		t.Logf("phase 1 (%s): %.0f%% of the ≈ %.0f B/s ceiling of one 4 KiB block per message", srv.Name, 100*float64(app)/el/full, full)
		if perMsg := float64(wire1-wire0) / float64(n1); lim.minShare > 0 && float64(lim.skip)*perMsg < lim.burst {
			t.Fatalf("phase 1: the %d untimed messages (%.0f wire B) do not use up the %.0f B burst", lim.skip, float64(lim.skip)*perMsg, lim.burst)
		}
		if lim.minShare > 0 && share < lim.minShare {
			t.Errorf("phase 1: payload rate %.0f B/s is %.0f%% of the limit's %.0f B/s, want ≥ %.0f%%", float64(app)/el, 100*share, limitPayload, 100*lim.minShare)
		}
		if lim.minShare > 0 && float64(app)/el < lim.minShare*full {
			t.Errorf("phase 1: payload rate %.0f B/s is %.0f%% of the %.0f B/s one 4 KiB block per message carries, want ≥ %.0f%%", float64(app)/el, 100*float64(app)/el/full, full, 100*lim.minShare)
		}

		// Phase 2: bulk in 1 KiB stanzas with chat messages every 400 ms.
		stop := make(chan struct{})
		bulkDone := make(chan struct{})
		go func() {
			defer close(bulkDone)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				send(ctx, fmt.Sprintf("bulk2 %04d %s", i, strings.Repeat("y", 1000)))
			}
		}()
		go func() { // drain bulk arrivals
			for range arrivals {
			}
		}()
		var lat []time.Duration
		for i := range 15 {
			time.Sleep(400 * time.Millisecond)
			start := time.Now()
			send(ctx, fmt.Sprintf("chat %d but soft", i))
			select {
			case n := <-chats:
				if n != i {
					t.Fatalf("chat %d arrived, want %d", n, i)
				}
				lat = append(lat, time.Since(start))
			case <-time.After(5 * time.Second):
				t.Fatalf("chat %d: not delivered within 5 s under load", i)
			}
		}
		close(stop)
		<-bulkDone
		// Issue 11: every chat message written while the bulk transfer runs (behind the bulk
		// stanza under way, on the same stream) arrives within one second, so p50 and max do.
		for i, d := range lat {
			if d >= time.Second {
				t.Errorf("chat %d took %v under load (want < 1 s)", i, d)
			}
		}
		p50, p99, mx := percentiles(lat)
		counter.mu.Lock()
		t.Logf("phase 2 (%s): chat latency under bulk load p50 %v, p99 %v, max %v; data IQs in flight at most %d, data IQ errors %d; disconnects %d",
			srv.Name, p50, p99, mx, counter.maxInFlight, counter.errs, disconnects.Load())
		counter.mu.Unlock()
		if n := disconnects.Load(); n != 0 {
			t.Errorf("the server disconnected a client %d times", n)
		}
		if sa.Err() != nil || sb.Err() != nil {
			t.Fatalf("session ended: %v / %v", sa.Err(), sb.Err())
		}
		closeXTLS(t, sa, sb)
		_ = a.client.Close()
		_ = b.client.Close()
		a.link.Close()
		b.link.Close()
	}()
	checkGoroutines(t, before, 4)
}
