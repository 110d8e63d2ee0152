package integration

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/xtlsjingle/xtlsjingle/gosrcxmpp"
	"github.com/xtlsjingle/xtlsjingle/ibb"
	"github.com/xtlsjingle/xtlsjingle/internal/prosodytest"
)

// ibbPair is two adapter clients on one server with an ibb.Handler each.
type ibbPair struct {
	a, b   *gosrcxmpp.Client
	ha, hb *ibb.Handler
}

func newIBBPair(t testing.TB, srv *server, cfg *ibb.Config) *ibbPair {
	t.Helper()
	p := &ibbPair{a: dialOn(t, srv, "ibb-a", nil), b: dialOn(t, srv, "ibb-b", nil)}
	p.ha, p.hb = ibb.NewHandler(p.a, cfg), ibb.NewHandler(p.b, cfg)
	t.Cleanup(func() { p.ha.Close(); p.hb.Close() })
	return p
}

// open opens sid from a to b.
func (p *ibbPair) open(t testing.TB, sid string) (*ibb.Conn, *ibb.Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	ch := make(chan *ibb.Conn, 1)
	go func() {
		c, err := p.hb.Accept(ctx)
		if err != nil {
			t.Errorf("Accept: %v", err)
		}
		ch <- c
	}()
	var a *ibb.Conn
	var err error
	for {
		a, err = p.ha.Open(ctx, p.b.LocalJID(), sid, 4096)
		if err == nil || ctx.Err() != nil || !strings.Contains(err.Error(), "not-acceptable") {
			break
		}
		time.Sleep(5 * time.Millisecond) // Accept not waiting yet
	}
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	b := <-ch
	if b == nil {
		t.FailNow()
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

func randomData(t testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// IBB-7, IBB-9, IBB-14, IBB-15 through a real server (Prosody, ejabberd): 4 MiB of random
// bytes each way at once over one bytestream, SHA-256 checked, with the adapter's unordered
// dispatch.
func TestIBB4MiBEachWay(t *testing.T) {
	forEachServer(t, runIBB4MiBEachWay)
}

func runIBB4MiBEachWay(t *testing.T, srv *server) {
	before := runtime.NumGoroutine()
	p := newIBBPair(t, srv, nil)
	a, b := p.open(t, "ibb4mib")
	ab, ba := randomData(t, 4<<20), randomData(t, 4<<20)
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	sums := make([][32]byte, 2)
	wg.Add(4)
	go func() { defer wg.Done(); _, err := a.Write(ab); errs <- err }()
	go func() { defer wg.Done(); _, err := b.Write(ba); errs <- err }()
	read := func(c net.Conn, n int, i int) {
		defer wg.Done()
		h := sha256.New()
		_, err := io.CopyN(h, c, int64(n))
		copy(sums[i][:], h.Sum(nil))
		errs <- err
	}
	go read(b, len(ab), 0)
	go read(a, len(ba), 1)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("transfer: %v\n%s log:\n%s", err, srv.Name, srv.LogTail())
		}
	}
	el := time.Since(start)
	if sums[0] != sha256.Sum256(ab) || sums[1] != sha256.Sum256(ba) {
		t.Fatal("SHA-256 of the received data differs")
	}
	if err := a.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := b.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("Read after the peer's close: %v; want io.EOF", err)
	}
	t.Logf("8 MiB (4 MiB each way) through %s in %v: %.2f MB/s total", srv.Name, el, float64(8<<20)/el.Seconds()/1e6)
	b.Close()
	p.ha.Close()
	p.hb.Close()
	p.a.Close()
	p.b.Close()
	checkGoroutines(t, before, 2)
}

// BenchmarkIBBProsody measures payload MB/s through Prosody at windows 1, 8 and 32 for
// (a) raw IBB-shaped data IQs (the ceiling: W requests in flight, the receiver parses and
// acks) and (b) ibb.Conn, 4096-byte blocks, plus the CPU seconds per MB of both clients
// (one process).
func BenchmarkIBBProsody(b *testing.B) {
	srv := prosodyServer(prosodytest.Shared(b))
	for _, win := range []int{1, 8, 32} {
		b.Run(fmt.Sprintf("raw/window=%d", win), func(b *testing.B) {
			p := newIBBPair(b, srv, nil)
			remove := p.b.HandleIQ(ibb.NS, "data", func(ctx context.Context, from, to, typ string, payload []byte) ([]byte, error) {
				_, err := ibb.ParseData(payload)
				return nil, err
			})
			defer remove()
			block := make([]byte, 4096)
			rand.Read(block)
			b.SetBytes(4096)
			cpu0 := cpuTime()
			b.ResetTimer()
			sem := make(chan struct{}, win)
			var wg sync.WaitGroup
			var failed error
			var mu sync.Mutex
			for i := 0; i < b.N; i++ {
				sem <- struct{}{}
				wg.Add(1)
				payload := ibb.AppendData(nil, "raw", uint16(i), block)
				go func() {
					defer wg.Done()
					defer func() { <-sem }()
					if _, err := p.a.Request(context.Background(), p.b.LocalJID(), "set", payload); err != nil {
						mu.Lock()
						failed = err
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			if failed != nil {
				b.Fatal(failed)
			}
			b.ReportMetric((cpuTime()-cpu0).Seconds()/(float64(b.N)*4096/1e6), "cpu-s/MB")
		})
		b.Run(fmt.Sprintf("conn/window=%d", win), func(b *testing.B) {
			p := newIBBPair(b, srv, &ibb.Config{Window: win})
			a, c := p.open(b, "bench")
			block := make([]byte, 4096)
			rand.Read(block)
			done := make(chan error, 1)
			go func() {
				_, err := io.Copy(io.Discard, c)
				done <- err
			}()
			b.SetBytes(4096)
			cpu0 := cpuTime()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := a.Write(block); err != nil {
					b.Fatal(err)
				}
			}
			if err := a.Close(); err != nil {
				b.Fatal(err)
			}
			if err := <-done; err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			b.ReportMetric((cpuTime()-cpu0).Seconds()/(float64(b.N)*4096/1e6), "cpu-s/MB")
		})
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// slixPython returns a Python 3 that has slixmpp (Debian python3-slixmpp), or skips (fails
// under CI=true).
func slixPython(t *testing.T) string {
	t.Helper()
	for _, py := range []string{"/usr/bin/python3", "python3"} {
		path, err := exec.LookPath(py)
		if err != nil {
			continue
		}
		if exec.Command(path, "-c", "import slixmpp, sys; sys.exit(0 if slixmpp.__version__ >= '1.8' else 1)").Run() == nil {
			return path
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("python3 with slixmpp ≥ 1.8 (python3-slixmpp) is required under CI")
	}
	t.Skip("python3 with slixmpp not found; install python3-slixmpp")
	return ""
}

// slixPeer is one run of interop/slixmpp/ibb_peer.py.
type slixPeer struct {
	cmd    *exec.Cmd
	jid    chan string
	result chan string
	stderr *strings.Builder
	done   chan error
}

func startSlix(t *testing.T, srv *server, args ...string) *slixPeer {
	t.Helper()
	py := slixPython(t)
	jid, password := srv.Account(t)
	dir := t.TempDir()
	ca := filepath.Join(dir, "server.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(srv.Addr)
	script, err := filepath.Abs("../../interop/slixmpp/ibb_peer.py")
	if err != nil {
		t.Fatal(err)
	}
	full := append([]string{script, "--jid", jid + "/slix", "--host", host, "--port", port, "--ca", ca}, args...)
	cmd := exec.Command(py, full...)
	cmd.Env = append(os.Environ(), "IBB_PEER_PASSWORD="+password)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	sp := &slixPeer{cmd: cmd, jid: make(chan string, 1), result: make(chan string, 1), stderr: &strings.Builder{}, done: make(chan error, 1)}
	cmd.Stderr = &lockedWriter{w: sp.stderr}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			switch {
			case len(f) == 2 && f[0] == "READY":
				sp.jid <- f[1]
			case len(f) == 3 && f[0] == "RESULT":
				sp.result <- f[1] + " " + f[2]
			}
		}
		sp.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-sp.done
	})
	return sp
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return fmt.Sprint(l.w)
}

func (sp *slixPeer) waitJID(t *testing.T) string {
	t.Helper()
	select {
	case j := <-sp.jid:
		return j
	case err := <-sp.done:
		t.Fatalf("slixmpp peer exited before its session started: %v\n%s", err, sp.cmd.Stderr)
	case <-time.After(30 * time.Second):
		t.Fatalf("slixmpp peer did not start\n%s", sp.cmd.Stderr)
	}
	return ""
}

func (sp *slixPeer) waitResult(t *testing.T) (sum string, n int) {
	t.Helper()
	select {
	case r := <-sp.result:
		f := strings.Fields(r)
		n, _ = strconv.Atoi(f[1])
		return f[0], n
	case err := <-sp.done:
		t.Fatalf("slixmpp peer exited without a result: %v\n%s", err, sp.cmd.Stderr)
	case <-time.After(150 * time.Second):
		t.Fatalf("slixmpp peer gave no result\n%s", sp.cmd.Stderr)
	}
	return "", 0
}

// IBB-3, IBB-7, IBB-9, IBB-15, IBB-17: interop with slixmpp 1.8.3's XEP-0047 plugin through
// Prosody and through ejabberd: it sends 1 MiB to us and we send 1 MiB to it, in IQ and in
// message stanzas, SHA-256 checked.
func TestIBBSlixmppInterop(t *testing.T) {
	forEachServer(t, runIBBSlixmppInterop)
}

func runIBBSlixmppInterop(t *testing.T, srv *server) {
	for _, stanza := range []string{ibb.StanzaIQ, ibb.StanzaMessage} {
		t.Run("slixmpp-sends/"+stanza, func(t *testing.T) {
			c := dialOn(t, srv, "go", nil)
			h := ibb.NewHandler(c, nil)
			defer h.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
			defer cancel()
			accepted := make(chan *ibb.Conn, 1)
			go func() {
				conn, err := h.Accept(ctx)
				if err != nil {
					t.Errorf("Accept: %v", err)
				}
				accepted <- conn
			}()
			args := []string{"--mode", "send", "--peer", c.LocalJID(), "--sid", "slix-" + stanza, "--size", strconv.Itoa(1 << 20)}
			if stanza == ibb.StanzaMessage {
				args = append(args, "--messages")
			}
			sp := startSlix(t, srv, args...)
			conn := <-accepted
			if conn == nil {
				t.FailNow()
			}
			defer conn.Close()
			conn.SetReadDeadline(time.Now().Add(120 * time.Second))
			h256 := sha256.New()
			n, err := io.Copy(h256, conn)
			if err != nil {
				t.Fatalf("read after %d bytes: %v\nslixmpp: %s", n, err, sp.cmd.Stderr)
			}
			sum, size := sp.waitResult(t)
			if got := hex.EncodeToString(h256.Sum(nil)); got != sum || int(n) != size {
				t.Fatalf("received %d bytes sha256 %s; slixmpp sent %d bytes sha256 %s", n, got, size, sum)
			}
		})
		t.Run("go-sends/"+stanza, func(t *testing.T) {
			// slixmpp processes blocks strictly in wire order (IBB-14): with the default
			// window of 8 the blocks must still leave in seq order.
			c := dialOn(t, srv, "go", nil)
			h := ibb.NewHandler(c, &ibb.Config{Stanza: stanza})
			defer h.Close()
			sp := startSlix(t, srv, "--mode", "recv")
			peer := sp.waitJID(t)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			conn, err := h.Open(ctx, peer, "go-"+stanza, 4096)
			if err != nil {
				t.Fatalf("Open to slixmpp: %v\n%s", err, sp.cmd.Stderr)
			}
			data := randomData(t, 1<<20)
			conn.SetWriteDeadline(time.Now().Add(120 * time.Second))
			if _, err := conn.Write(data); err != nil {
				t.Fatalf("Write: %v\nslixmpp: %s", err, sp.cmd.Stderr)
			}
			if err := conn.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			sum, size := sp.waitResult(t)
			want := sha256.Sum256(data)
			if sum != hex.EncodeToString(want[:]) || size != len(data) {
				t.Fatalf("slixmpp received %d bytes sha256 %s; sent %d bytes sha256 %x", size, sum, len(data), want)
			}
		})
	}
}
