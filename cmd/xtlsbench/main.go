// Command xtlsbench measures the performance goals of issue 9 against their anchors, side by
// side in one run, on a private Prosody on 127.0.0.1 (internal/prosodytest.Launch), and writes a
// markdown table, a JSON file and a PNG plot of throughput by transport and window size.
//
//	go run ./cmd/xtlsbench -runs 5 -out bench-out
//
// "XTLS" in the throughput rows is the record path of an XTLS session: a TLS 1.3 connection
// configured by xtls.ClientConfig / xtls.ServerConfig (x509, pinned Ed25519 certificates) over
// the bytestream the transport negotiated, compared with the same bytestream carrying the bytes
// in the clear. Session setup and idle memory use the full xtls.Client (Jingle, disco, TLS,
// XSRP, end-to-end XML stream).
package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/xtlsjingle/xtlsjingle/gosrcxmpp"
	"github.com/xtlsjingle/xtlsjingle/ibb"
	"github.com/xtlsjingle/xtlsjingle/internal/prosodytest"
	"github.com/xtlsjingle/xtlsjingle/socks5"
	"github.com/xtlsjingle/xtlsjingle/xtls"
)

type options struct {
	runs      int
	streamMB  float64 // bytes per TCP / S5B / proxy65 run
	ibbMB     float64 // bytes per IBB run
	writeSize int
	windows   []int
	sessions  int
	out       string
	cpuprof   string
	setupProf string
	// setupLatency is the one-way latency added to each client's link to the server for the
	// second set of set-up measures; 0 leaves them out.
	setupLatency time.Duration
	memBudget    time.Duration
	slixScript   string
	slixWindow   int
	only         map[string]bool // sections to run; empty: all
}

// sections are the parts of a run that -only can select.
var sections = []string{"throughput", "slixmpp", "setup", "memory"}

func (o options) wants(section string) bool { return len(o.only) == 0 || o.only[section] }

func main() {
	var o options
	var windows string
	flag.IntVar(&o.runs, "runs", 5, "runs per measure (the median is reported)")
	flag.Float64Var(&o.streamMB, "stream-mb", 64, "MB per run over TCP, direct S5B and proxy65")
	flag.Float64Var(&o.ibbMB, "ibb-mb", 2, "MB per run over IBB")
	flag.IntVar(&o.writeSize, "write", 16384, "application write size in bytes")
	flag.StringVar(&windows, "windows", "1,8,32", "IBB windows")
	flag.IntVar(&o.sessions, "sessions", 10000, "idle XTLS sessions to hold for the memory measure")
	flag.StringVar(&o.out, "out", "bench-out", "output directory (results.md, results.json, throughput.png)")
	flag.DurationVar(&o.setupLatency, "setup-latency", 5*time.Millisecond, "one-way latency added to each client's link to Prosody for the second set of set-up measures (0: leave them out)")
	flag.StringVar(&o.setupProf, "setup-cpuprofile", "", "write a CPU profile of the x509-over-IBB session set-ups to this file")
	flag.StringVar(&o.cpuprof, "cpuprofile", "", "write a CPU profile of the XTLS-over-IBB runs at window 8 to this file")
	flag.DurationVar(&o.memBudget, "memory-budget", 3*time.Minute, "stop opening idle sessions after this long and report the count reached")
	flag.StringVar(&o.slixScript, "slixmpp-peer", "interop/slixmpp/ibb_peer.py", "the slixmpp XEP-0047 peer script (needs python3 with slixmpp ≥ 1.8; /usr/bin/python3 is tried first)")
	flag.IntVar(&o.slixWindow, "slixmpp-window", 8, "IBB window of the XTLS side of the slixmpp comparison")
	only := flag.String("only", "", "comma-separated sections to run (of "+strings.Join(sections, ", ")+"); empty: all")
	flag.Parse()
	if *only != "" {
		o.only = map[string]bool{}
		for _, sec := range strings.Split(*only, ",") {
			sec = strings.TrimSpace(sec)
			if !slices.Contains(sections, sec) {
				log.Fatalf("-only: unknown section %q (have %s)", sec, strings.Join(sections, ", "))
			}
			o.only[sec] = true
		}
	}
	for _, w := range strings.Split(windows, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(w))
		if err != nil || n < 1 {
			log.Fatalf("bad window %q", w)
		}
		o.windows = append(o.windows, n)
	}
	if err := run(o); err != nil {
		log.Fatal(err)
	}
}

// Report is what results.json holds.
type Report struct {
	Time       string            `json:"time"`
	Machine    map[string]string `json:"machine"`
	Settings   map[string]string `json:"settings"`
	Throughput []Pair            `json:"throughput"`
	CPU        *CPU              `json:"cpu_ibb"`
	Setup      []Setup           `json:"setup"`
	Memory     *Memory           `json:"memory"`
	// Slixmpp is the XTLS-over-IBB vs slixmpp XEP-0047 measure (also in Throughput); nil when
	// left out.
	Slixmpp     *Pair    `json:"slixmpp_ibb"`
	LeftOut     []string `json:"left_out"`
	WallSeconds float64  `json:"wall_seconds"`
}

// Pair is one throughput measure and its anchor, medians of the runs in MB/s.
type Pair struct {
	Name      string    `json:"name"`
	Transport string    `json:"transport"`
	Window    int       `json:"window,omitempty"`
	XTLS      []float64 `json:"xtls_mbps"`
	Anchor    []float64 `json:"anchor_mbps"`
	AnchorIs  string    `json:"anchor"`
	XTLSMed   float64   `json:"xtls_median_mbps"`
	AnchorMed float64   `json:"anchor_median_mbps"`
	Ratio     float64   `json:"ratio"`
	Goal      float64   `json:"goal_ratio,omitempty"`
	Cipher    string    `json:"cipher"`
}

// CPU is the process CPU per MB moved by XTLS over IBB (both ends live in this process).
type CPU struct {
	Window         int     `json:"window"`
	CPUSecPerMB    float64 `json:"cpu_s_per_mb_both_ends"`
	MBPerCoreSec   float64 `json:"mb_per_cpu_s_both_ends"`
	MBPerCoreSecOn float64 `json:"mb_per_cpu_s_one_end_estimate"`
}

// Setup is session setup time in units of one IQ round trip.
type Setup struct {
	Name         string    `json:"name"`
	MS           []float64 `json:"ms"`
	MedianMS     float64   `json:"median_ms"`
	RTTMS        float64   `json:"rtt_median_ms"`
	HandshakeMS  float64   `json:"local_tls_handshake_median_ms"`
	RTTs         float64   `json:"setup_in_rtt"`
	RTTsMinusHS  float64   `json:"setup_minus_handshake_in_rtt"`
	GoalRTTPlusH float64   `json:"goal_rtt_plus_one_handshake,omitempty"`
	// OneWayLatencyMS is the latency added to each client's link to the server (0: loopback).
	OneWayLatencyMS float64 `json:"one_way_latency_ms,omitempty"`
}

// Memory is the heap held per idle session end.
type Memory struct {
	Sessions         int     `json:"sessions"`
	XTLSKiBPerEnd    float64 `json:"xtls_kib_per_end"`
	TLSPairKiBPerEnd float64 `json:"tls_pair_kib_per_end"`
	GoroutinesPerEnd float64 `json:"goroutines_per_end"`
	DifferenceKiB    float64 `json:"difference_kib_per_end"`
	OpenSeconds      float64 `json:"open_seconds"`
	GoalKiB          float64 `json:"goal_kib"`
	TLSGoroutinesEnd float64 `json:"tls_goroutines_per_end"`
	Note             string  `json:"note"`
}

func run(o options) error {
	start := time.Now()
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	srv, err := prosodytest.Launch()
	if err != nil {
		return err
	}
	defer srv.Stop()
	rep := &Report{Time: time.Now().UTC().Format(time.RFC3339), Machine: machine(), Settings: map[string]string{
		"runs":           strconv.Itoa(o.runs),
		"stream_mb":      fmt.Sprint(o.streamMB),
		"ibb_mb":         fmt.Sprint(o.ibbMB),
		"write_size":     strconv.Itoa(o.writeSize),
		"ibb_block_size": "4096",
		"prosody_nagle":  "off (network_settings = { nagle = false }, internal/prosodytest)",
		"server":         "private Prosody on 127.0.0.1, c2s STARTTLS, mod_proxy65",
	}}
	b := &bench{srv: srv, o: o}
	defer b.closeAll()

	if o.wants("throughput") {
		if err := b.throughput(rep); err != nil {
			return err
		}
	}
	if o.wants("slixmpp") {
		if err := b.slixmpp(rep); err != nil {
			return err
		}
	}
	if o.wants("setup") {
		log.Printf("session setup")
		if rep.Setup, err = b.setup(); err != nil {
			return err
		}
	}
	if o.wants("memory") {
		log.Printf("memory: %d idle sessions", o.sessions)
		if rep.Memory, err = memory(o.sessions, o.memBudget); err != nil {
			return err
		}
	}
	rep.WallSeconds = time.Since(start).Seconds()
	return b.write(rep)
}

// throughput runs the transfer measures (direct S5B, proxy65, IBB at each window).
func (b *bench) throughput(rep *Report) error {
	o := b.o
	log.Printf("throughput: direct S5B vs crypto/tls over TCP")
	p, err := b.pair("XTLS over direct S5B", "s5b-direct", 0, "crypto/tls 1.3 over loopback TCP", 0.90, b.tlsTCP, b.xtlsS5B(false))
	if err != nil {
		return err
	}
	rep.Throughput = append(rep.Throughput, p)
	log.Printf("throughput: proxy65")
	p, err = b.pair("XTLS via proxy65", "s5b-proxy", 0, "raw relay through the same proxy65", 0.90, b.rawRelay, b.xtlsS5B(true))
	if err != nil {
		return err
	}
	rep.Throughput = append(rep.Throughput, p)
	for _, w := range o.windows {
		log.Printf("throughput: IBB window %d", w)
		w := w
		p, err = b.pair("XTLS over IBB", "ibb", w, "raw IBB-shaped data IQs, same window", 0.85,
			func() (float64, string, error) { return b.rawIBB(w) },
			func() (float64, string, error) { return b.xtlsIBB(w, true) })
		if err != nil {
			return err
		}
		rep.Throughput = append(rep.Throughput, p)
	}
	rep.CPU = b.cpu
	return nil
}

// slixmpp runs XTLS over IBB against slixmpp → slixmpp XEP-0047, or records why it cannot.
func (b *bench) slixmpp(rep *Report) error {
	o := b.o
	if s, err := b.newSlix(); err != nil {
		rep.LeftOut = append(rep.LeftOut, "slixmpp XEP-0047 comparison (goal ≥ 1.5×): left out — "+err.Error())
	} else {
		w := o.slixWindow
		log.Printf("throughput: XTLS over IBB window %d vs slixmpp → slixmpp XEP-0047", w)
		p, err := b.pair("XTLS over IBB vs slixmpp", "ibb-vs-slixmpp", w,
			"slixmpp 1.8 XEP-0047 → slixmpp, IQ, 4096-byte blocks, same Prosody", 1.5,
			func() (float64, string, error) { return b.slixIBB(s) },
			func() (float64, string, error) { return b.xtlsIBB(w, false) })
		if err != nil {
			return err
		}
		rep.Throughput = append(rep.Throughput, p)
		rep.Slixmpp = &p
	}
	return nil
}

// write stores results.json, results.md and throughput.png in the output directory.
func (b *bench) write(rep *Report) error {
	o := b.o
	js, _ := json.MarshalIndent(rep, "", "  ")
	if err := os.WriteFile(filepath.Join(o.out, "results.json"), append(js, '\n'), 0o644); err != nil {
		return err
	}
	md := markdown(rep)
	if err := os.WriteFile(filepath.Join(o.out, "results.md"), []byte(md), 0o644); err != nil {
		return err
	}
	if err := plot(filepath.Join(o.out, "throughput.png"), rep.Throughput); err != nil {
		return err
	}
	fmt.Print(md)
	return nil
}

func machine() map[string]string {
	m := map[string]string{"go": runtime.Version(), "goos/goarch": runtime.GOOS + "/" + runtime.GOARCH, "cpus": strconv.Itoa(runtime.NumCPU())}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				_, v, _ := strings.Cut(l, ":")
				m["cpu"] = strings.TrimSpace(v)
				break
			}
		}
	}
	var u syscall.Utsname
	if syscall.Uname(&u) == nil {
		m["kernel"] = cstr(u.Sysname[:]) + " " + cstr(u.Release[:])
	}
	if out, err := exec.Command("dpkg-query", "-W", "-f", "${Version}", "prosody").Output(); err == nil {
		m["prosody"] = string(out)
	} else {
		m["prosody"] = "unknown"
	}
	return m
}

func cstr(b []int8) string {
	var s []byte
	for _, c := range b {
		if c == 0 {
			break
		}
		s = append(s, byte(c))
	}
	return string(s)
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

type bench struct {
	srv        *prosodytest.Server
	o          options
	mu         sync.Mutex
	closers    []func()
	proxy      *socks5.Streamhost
	cpu        *CPU
	cpuSamples []float64
	profiling  bool
	ids        [2]*xtls.Identity
}

func (b *bench) closeAll() {
	for i := len(b.closers) - 1; i >= 0; i-- {
		b.closers[i]()
	}
}

func (b *bench) later(f func()) { b.closers = append(b.closers, f) }

// pair runs anchor then measure, alternating, o.runs times.
func (b *bench) pair(name, transport string, window int, anchorIs string, goal float64, anchor, measure func() (float64, string, error)) (Pair, error) {
	p := Pair{Name: name, Transport: transport, Window: window, AnchorIs: anchorIs, Goal: goal}
	for i := 0; i < b.o.runs; i++ {
		a, _, err := anchor()
		if err != nil {
			return p, fmt.Errorf("%s anchor: %w", name, err)
		}
		x, cipher, err := measure()
		if err != nil {
			return p, fmt.Errorf("%s: %w", name, err)
		}
		p.Anchor, p.XTLS, p.Cipher = append(p.Anchor, a), append(p.XTLS, x), cipher
		log.Printf("  run %d: anchor %.1f MB/s, xtls %.1f MB/s", i+1, a, x)
	}
	p.AnchorMed, p.XTLSMed = median(p.Anchor), median(p.XTLS)
	p.Ratio = p.XTLSMed / p.AnchorMed
	return p, nil
}

// dial connects a fresh account through the adapter.
func (b *bench) dial(resource string) (*gosrcxmpp.Client, error) {
	return b.dialAt(b.srv.Addr, resource)
}

// dialAt connects a fresh account through the adapter to addr (the server, or a relay to it).
func (b *bench) dialAt(addr, resource string) (*gosrcxmpp.Client, error) {
	jid, pw, err := b.srv.Register()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	c, err := gosrcxmpp.Dial(ctx, gosrcxmpp.Config{
		Address: addr, JID: jid + "/" + resource, Password: pw,
		TLS: &tls.Config{RootCAs: b.srv.RootCAs, ServerName: b.srv.Domain},
	})
	if err != nil {
		return nil, err
	}
	b.later(func() { c.Close() })
	return c, nil
}

// tlsPair returns the XTLS TLS configurations (x509, each side's certificate pinned).
func (b *bench) tlsPair() (*tls.Config, *tls.Config, error) {
	if b.ids[0] == nil {
		var err error
		if b.ids[0], err = xtls.NewIdentity("romeo@localhost", xtls.KeyEd25519); err != nil {
			return nil, nil, err
		}
		if b.ids[1], err = xtls.NewIdentity("juliet@localhost", xtls.KeyEd25519); err != nil {
			return nil, nil, err
		}
	}
	rs, js := xtls.NewMemoryStore(), xtls.NewMemoryStore()
	now := time.Now()
	rs.Pin("juliet@localhost", b.ids[1].Fingerprint(), xtls.VerifiedSRP, now)
	js.Pin("romeo@localhost", b.ids[0].Fingerprint(), xtls.VerifiedSRP, now)
	cc, err := xtls.ClientConfig(b.ids[0], "juliet@localhost", xtls.MethodX509, rs)
	if err != nil {
		return nil, nil, err
	}
	sc, err := xtls.ServerConfig(b.ids[1], "romeo@localhost", xtls.MethodX509, js)
	return cc, sc, err
}

// overTLS runs TLS 1.3 with the XTLS configuration on w→r and transfers total bytes.
func (b *bench) overTLS(w, r net.Conn, total int64, cpu *time.Duration) (float64, string, error) {
	cc, sc, err := b.tlsPair()
	if err != nil {
		return 0, "", err
	}
	tc, ts := tls.Client(w, cc), tls.Server(r, sc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- ts.HandshakeContext(ctx) }()
	if err := tc.HandshakeContext(ctx); err != nil {
		return 0, "", err
	}
	if err := <-errc; err != nil {
		return 0, "", err
	}
	cipher := tls.CipherSuiteName(tc.ConnectionState().CipherSuite)
	mbps, err := pump(tc, ts, total, b.o.writeSize, func() {
		tc.CloseWrite()
		if cw, ok := w.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		} else {
			w.Close()
		}
	}, cpu)
	tc.Close()
	ts.Close()
	return mbps, cipher, err
}

// pump writes total bytes to w in writes of size n, calls closeW, and returns the MB/s until
// the reader r has seen EOF after exactly total bytes.
func pump(w io.Writer, r io.Reader, total int64, n int, closeW func(), cpu *time.Duration) (float64, error) {
	buf := make([]byte, n)
	rand.Read(buf)
	done := make(chan int64, 1)
	go func() {
		got, _ := io.Copy(io.Discard, r)
		done <- got
	}()
	c0 := cpuTime()
	t0 := time.Now()
	var werr error
	for sent := int64(0); sent < total; sent += int64(n) {
		if _, werr = w.Write(buf); werr != nil {
			break
		}
	}
	closeW()
	var got int64
	select {
	case got = <-done:
	case <-time.After(120 * time.Second):
		return 0, errors.New("reader did not finish within 120 s")
	}
	d := time.Since(t0)
	if cpu != nil {
		*cpu += cpuTime() - c0
	}
	if werr != nil {
		return 0, werr
	}
	want := (total + int64(n) - 1) / int64(n) * int64(n)
	if got != want {
		return 0, fmt.Errorf("received %d of %d bytes", got, want)
	}
	return float64(got) / 1e6 / d.Seconds(), nil
}

func (b *bench) streamBytes() int64 { return int64(b.o.streamMB * 1e6) }
func (b *bench) ibbBytes() int64    { return int64(b.o.ibbMB * 1e6) }

// tlsTCP is the anchor of direct S5B: crypto/tls 1.3 over loopback TCP, same cipher and configs.
func (b *bench) tlsTCP() (float64, string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, "", err
	}
	defer ln.Close()
	ch := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		ch <- c
	}()
	w, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return 0, "", err
	}
	defer w.Close()
	r := <-ch
	if r == nil {
		return 0, "", errors.New("accept failed")
	}
	defer r.Close()
	return b.overTLS(w, r, b.streamBytes(), nil)
}

func (b *bench) discoverProxy() (socks5.Streamhost, error) {
	if b.proxy != nil {
		return *b.proxy, nil
	}
	c, err := b.dial("probe")
	if err != nil {
		return socks5.Streamhost{}, err
	}
	hosts, err := socks5.DiscoverProxies(context.Background(), c, b.srv.Domain, nil)
	if err != nil || len(hosts) == 0 {
		return socks5.Streamhost{}, fmt.Errorf("discover proxies: %v (%d)", err, len(hosts))
	}
	b.proxy = &hosts[0]
	return hosts[0], nil
}

// s5bConns negotiates a Jingle S5B bytestream (XEP-0260) between two fresh accounts: direct
// (listener on 127.0.0.1) or only through the proxy.
func (b *bench) s5bConns(viaProxy bool) (net.Conn, net.Conn, error) {
	a, err := b.dial("ini")
	if err != nil {
		return nil, nil, err
	}
	c, err := b.dial("res")
	if err != nil {
		return nil, nil, err
	}
	ic := socks5.Config{Link: a, PeerJID: c.LocalJID()}
	rc := socks5.Config{Link: c, PeerJID: a.LocalJID()}
	if viaProxy {
		p, err := b.discoverProxy()
		if err != nil {
			return nil, nil, err
		}
		ic.Proxies = []socks5.Streamhost{p}
	} else {
		l, err := socks5.Listen("127.0.0.1:0")
		if err != nil {
			return nil, nil, err
		}
		b.later(func() { l.Close() })
		ic.Listener = l
	}
	ini, err := socks5.NewJingleTransport(ic)
	if err != nil {
		return nil, nil, err
	}
	b.later(func() { ini.Close() })
	res, err := socks5.AcceptJingleTransport(rc, ini.Element())
	if err != nil {
		return nil, nil, err
	}
	b.later(func() { res.Close() })
	if err := ini.HandleAccept(res.Element()); err != nil {
		return nil, nil, err
	}
	rmA := a.HandleIQ(socks5.NSJingleS5B, "transport", func(ctx context.Context, from, to, typ string, payload []byte) ([]byte, error) {
		return nil, ini.HandleInfo(payload)
	})
	rmB := c.HandleIQ(socks5.NSJingleS5B, "transport", func(ctx context.Context, from, to, typ string, payload []byte) ([]byte, error) {
		return nil, res.HandleInfo(payload)
	})
	defer rmA()
	defer rmB()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var x, y net.Conn
	var errI, errR error
	wg.Add(2)
	go func() {
		defer wg.Done()
		x, errI = ini.Establish(ctx, func(ctx context.Context, t []byte) error {
			_, err := a.Request(ctx, c.LocalJID(), "set", t)
			return err
		})
	}()
	go func() {
		defer wg.Done()
		y, errR = res.Establish(ctx, func(ctx context.Context, t []byte) error {
			_, err := c.Request(ctx, a.LocalJID(), "set", t)
			return err
		})
	}()
	wg.Wait()
	if errI != nil || errR != nil {
		return nil, nil, fmt.Errorf("establish: initiator %v, responder %v", errI, errR)
	}
	if got := ini.Nominated().Type; viaProxy != (got == socks5.Proxy) {
		return nil, nil, fmt.Errorf("nominated candidate type %q", got)
	}
	b.later(func() { x.Close(); y.Close() })
	return x, y, nil
}

func (b *bench) xtlsS5B(viaProxy bool) func() (float64, string, error) {
	return func() (float64, string, error) {
		x, y, err := b.s5bConns(viaProxy)
		if err != nil {
			return 0, "", err
		}
		return b.overTLS(x, y, b.streamBytes(), nil)
	}
}

// rawRelay is the anchor of proxy65: two plain SOCKS5 connections and an activation.
func (b *bench) rawRelay() (float64, string, error) {
	p, err := b.discoverProxy()
	if err != nil {
		return 0, "", err
	}
	x, err := b.dial("x")
	if err != nil {
		return 0, "", err
	}
	y, err := b.dial("y")
	if err != nil {
		return 0, "", err
	}
	sid := fmt.Sprintf("raw%d", time.Now().UnixNano())
	dst := socks5.DstAddr(sid, x.LocalJID(), y.LocalJID())
	addr := net.JoinHostPort(p.Host, strconv.Itoa(p.Port))
	ctx := context.Background()
	target, err := socks5.Dial(ctx, addr, dst)
	if err != nil {
		return 0, "", err
	}
	defer target.Close()
	requester, err := socks5.Dial(ctx, addr, dst)
	if err != nil {
		return 0, "", err
	}
	defer requester.Close()
	if err := socks5.Activate(ctx, x, p.JID, sid, y.LocalJID()); err != nil {
		return 0, "", err
	}
	mbps, err := pump(requester, target, b.streamBytes(), b.o.writeSize, func() {
		requester.(interface{ CloseWrite() error }).CloseWrite()
	}, nil)
	return mbps, "", err
}

// ibbPair connects two fresh accounts with an ibb.Handler each.
func (b *bench) ibbPair(window int) (*gosrcxmpp.Client, *gosrcxmpp.Client, *ibb.Handler, *ibb.Handler, error) {
	a, err := b.dial("ibb-a")
	if err != nil {
		return nil, nil, nil, nil, err
	}
	c, err := b.dial("ibb-b")
	if err != nil {
		return nil, nil, nil, nil, err
	}
	cfg := &ibb.Config{Window: window}
	ha, hc := ibb.NewHandler(a, cfg), ibb.NewHandler(c, cfg)
	b.later(func() { ha.Close(); hc.Close() })
	return a, c, ha, hc, nil
}

// rawIBB is the anchor of IBB: IBB-shaped data IQs (4096-byte blocks), window requests in
// flight, the receiver parses each and acks.
func (b *bench) rawIBB(window int) (float64, string, error) {
	a, c, _, _, err := b.ibbPair(window)
	if err != nil {
		return 0, "", err
	}
	remove := c.HandleIQ(ibb.NS, "data", func(ctx context.Context, from, to, typ string, payload []byte) ([]byte, error) {
		_, err := ibb.ParseData(payload)
		return nil, err
	})
	defer remove()
	block := make([]byte, 4096)
	rand.Read(block)
	n := int((b.ibbBytes() + 4095) / 4096)
	sem := make(chan struct{}, window)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failed error
	t0 := time.Now()
	for i := 0; i < n; i++ {
		sem <- struct{}{}
		wg.Add(1)
		payload := ibb.AppendData(nil, "raw", uint16(i), block)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if _, err := a.Request(context.Background(), c.LocalJID(), "set", payload); err != nil {
				mu.Lock()
				failed = err
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if failed != nil {
		return 0, "", failed
	}
	return float64(n*4096) / 1e6 / time.Since(t0).Seconds(), "", nil
}

// xtlsIBB runs TLS 1.3 over an ibb.Conn (4096-byte blocks) at window; record: the run counts
// for the CPU-per-MB measure and may be profiled.
func (b *bench) xtlsIBB(window int, record bool) (float64, string, error) {
	_, c, ha, hc, err := b.ibbPair(window)
	if err != nil {
		return 0, "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	ch := make(chan *ibb.Conn, 1)
	go func() {
		x, _ := hc.Accept(ctx)
		ch <- x
	}()
	var x *ibb.Conn
	for {
		x, err = ha.Open(ctx, c.LocalJID(), "bench", 4096)
		if err == nil || ctx.Err() != nil || !strings.Contains(err.Error(), "not-acceptable") {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err != nil {
		return 0, "", err
	}
	y := <-ch
	if y == nil {
		return 0, "", errors.New("ibb accept failed")
	}
	defer x.Close()
	defer y.Close()
	var cpu time.Duration
	var prof *os.File
	if record && b.o.cpuprof != "" && window == 8 && !b.profiling {
		// Profile the first XTLS-over-IBB transfer at window 8 only (both ends, adapter included).
		if f, err := os.Create(b.o.cpuprof); err == nil && pprof.StartCPUProfile(f) == nil {
			b.profiling, prof = true, f
		}
	}
	mbps, cipher, err := b.overTLS(x, y, b.ibbBytes(), &cpu)
	if prof != nil {
		pprof.StopCPUProfile()
		prof.Close()
	}
	// CPU per MB is taken at window 8 (the default), or the first window measured.
	if err == nil && record && (b.cpu == nil || window == 8) {
		mb := float64(b.ibbBytes()) / 1e6
		if b.cpu == nil || b.cpu.Window != window {
			b.cpu = &CPU{Window: window}
			b.cpuSamples = nil
		}
		b.cpuSamples = append(b.cpuSamples, cpu.Seconds()/mb)
		b.cpu.CPUSecPerMB = median(b.cpuSamples)
		b.cpu.MBPerCoreSec = 1 / b.cpu.CPUSecPerMB
		b.cpu.MBPerCoreSecOn = 2 / b.cpu.CPUSecPerMB
	}
	return mbps, cipher, err
}
