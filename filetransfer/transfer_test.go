package filetransfer_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xtlsjingle/xtlsjingle/filetransfer"
	"github.com/xtlsjingle/xtlsjingle/ibb"
	"github.com/xtlsjingle/xtlsjingle/internal/xmpptest"
	"github.com/xtlsjingle/xtlsjingle/jingle"
	"github.com/xtlsjingle/xtlsjingle/socks5"
	"github.com/xtlsjingle/xtlsjingle/xtls"
)

const (
	romeoJID  = "romeo@montague.lit/orchard"
	julietJID = "juliet@capulet.lit/balcony"
)

var (
	_ jingle.Transport = (*ibb.JingleTransport)(nil)
	_ jingle.Transport = (*socks5.JingleTransport)(nil)
)

// setup is one run: Romeo offers data as file to Juliet, who receives into dir.
type setup struct {
	transport string // "ibb" or "s5b"
	file      filetransfer.File
	// offer, if set, is what the description says instead of file (a lying sender).
	offer *filetransfer.File
	data  []byte
	// source replaces bytes.NewReader(data) (e.g. to lie or to block).
	source io.Reader
	recv   filetransfer.ReceiveOptions
	send   filetransfer.SendOptions
	// wrap secures both bytestreams (nil: plaintext).
	wrap func(t *testing.T, ini, res net.Conn) (net.Conn, net.Conn)
	// sendCtx / recvCtx bound each side (default: the test's).
	sendCtx, recvCtx context.Context
	// acceptFile, if set, replaces the offer in Juliet's session-accept (e.g. a resume range).
	acceptFile func(offer *filetransfer.File, resume int64) *filetransfer.File
	// observe sees every stanza.
	observe func(xmpptest.Stanza)
}

type outcome struct {
	sendErr, recvErr, checkErr error
	res                        *filetransfer.Result
	declined                   *jingle.Reason
}

func checkGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > before {
			buf := make([]byte, 1<<20)
			t.Errorf("%d goroutines leaked:\n%s", n-before, buf[:runtime.Stack(buf, true)])
		}
	})
}

func run(t *testing.T, su setup) outcome {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	if su.sendCtx == nil {
		su.sendCtx = ctx
	}
	if su.recvCtx == nil {
		su.recvCtx = ctx
	}
	var err error
	n := xmpptest.NewNetwork(7)
	if su.observe != nil {
		n.Observe(su.observe)
	}
	romeo, juliet := n.Party(romeoJID), n.Party(julietJID)
	defer romeo.Close()
	defer juliet.Close()
	hr, hj := ibb.NewHandler(romeo, nil), ibb.NewHandler(juliet, nil)
	defer hr.Close()
	defer hj.Close()
	incoming := make(chan *jingle.Session, 1)
	mr := jingle.NewManager(romeo, jingle.Config{InfoNamespaces: []string{filetransfer.NS}})
	mj := jingle.NewManager(juliet, jingle.Config{InfoNamespaces: []string{filetransfer.NS},
		Incoming: func(s *jingle.Session) { incoming <- s }})
	defer mr.Close()
	defer mj.Close()

	var lnR, lnJ *socks5.Listener
	if su.transport == "s5b" {
		if lnR, err = socks5.Listen("127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		defer lnR.Close()
		if lnJ, err = socks5.Listen("127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		defer lnJ.Close()
	}
	var ini jingle.Transport
	switch su.transport {
	case "s5b":
		tr, err := socks5.NewJingleTransport(socks5.Config{Link: romeo, PeerJID: julietJID, Listener: lnR})
		if err != nil {
			t.Fatal(err)
		}
		ini = tr
	default:
		tr, err := ibb.NewJingleTransport(hr, julietJID, "ft1", 0)
		if err != nil {
			t.Fatal(err)
		}
		ini = tr
	}
	offered := su.file
	if su.offer != nil {
		offered = *su.offer
	}
	desc, err := offered.Description()
	if err != nil {
		t.Fatal(err)
	}
	sr, err := mr.Initiate(ctx, julietJID, []jingle.Content{{Creator: jingle.CreatorInitiator, Name: "f",
		Senders: jingle.SendersInitiator, Description: desc, Transport: ini.Element()}}, map[string]jingle.Transport{"f": ini})
	if err != nil {
		t.Fatal(err)
	}

	var out outcome
	var wg sync.WaitGroup
	connR := make(chan net.Conn, 1)
	connJ := make(chan net.Conn, 1)
	wg.Add(1)
	go func() { // Juliet
		defer wg.Done()
		defer close(connJ)
		sj := <-incoming
		c := sj.Contents()[0]
		offer, err := filetransfer.ParseDescription(c.Description)
		if err != nil {
			out.checkErr = err
			sj.Terminate(ctx, &jingle.Reason{Condition: jingle.FailedApplication})
			return
		}
		resume, err := filetransfer.CheckOffer(offer, su.recv)
		if err != nil {
			out.checkErr = err
			sj.Terminate(ctx, &jingle.Reason{Condition: filetransfer.ReasonFor(err), Text: err.Error()})
			return
		}
		acc := offer
		if su.acceptFile != nil {
			acc = su.acceptFile(offer, resume)
		}
		ad, err := acc.Description()
		if err != nil {
			out.checkErr = err
			return
		}
		var res jingle.Transport
		if su.transport == "s5b" {
			res, err = socks5.AcceptJingleTransport(socks5.Config{Link: juliet, PeerJID: romeoJID, Listener: lnJ}, c.Transport)
		} else {
			res, err = ibb.NewJingleResponder(hj, romeoJID, c.Transport)
		}
		if err != nil {
			out.recvErr = err
			return
		}
		if err := sj.Accept(ctx, []jingle.Content{{Creator: c.Creator, Name: c.Name, Senders: c.Senders,
			Description: ad, Transport: res.Element()}}, map[string]jingle.Transport{"f": res}); err != nil {
			out.recvErr = err
			return
		}
		conn, err := sj.Establish(ctx, "f")
		if err != nil {
			out.recvErr = err
			return
		}
		if su.wrap != nil {
			connJ <- conn
			c, ok := <-connR
			if !ok {
				sj.Terminate(ctx, &jingle.Reason{Condition: jingle.FailedTransport})
				return
			}
			conn = c
		}
		out.res, out.recvErr = filetransfer.Receive(su.recvCtx, sj, "f", conn, offer, su.recv)
	}()

	// Romeo: wait for session-accept, then establish and send.
	var ev jingle.Event
	select {
	case ev = <-sr.Events():
	case <-ctx.Done():
		t.Fatal("no answer")
	}
	if ev.Action != jingle.SessionAccept {
		out.declined = ev.Reason
		wg.Wait()
		return out
	}
	conn, err := sr.Establish(ctx, "f")
	if err != nil { // e.g. the receiver refused a plaintext bytestream at once
		out.sendErr = err
		close(connR)
		wg.Wait()
		return out
	}
	if su.wrap != nil {
		cj, ok := <-connJ
		if !ok {
			t.Fatal("juliet failed")
		}
		wi, wj := su.wrap(t, conn, cj)
		conn = wi
		connR <- wj
	}
	src := su.source
	if src == nil {
		src = bytes.NewReader(su.data)
	}
	f := su.file
	out.sendErr = filetransfer.Send(su.sendCtx, sr, "f", conn, src, &f, su.send)
	wg.Wait()
	return out
}

func randomFile(t *testing.T, n int) ([]byte, filetransfer.File) {
	data := make([]byte, n)
	rand.Read(data)
	sum := sha256.Sum256(data)
	return data, filetransfer.File{Name: "payload.bin", Size: int64(n), MediaType: "application/octet-stream",
		Date:   time.Date(2026, 11, 22, 5, 0, 0, 0, time.UTC),
		Hashes: []filetransfer.Hash{{Algo: "sha-256", Value: sum[:]}}}
}

// TestFT2_OneMiBOverIBB: 1 MiB of random bytes over XEP-0261 IBB (plaintext allowed explicitly
// for this transfer), hash-checked against the offer, placed atomically under its name,
// progress reported up to the size, no temporary file left, no goroutine left.
func TestFT2_OneMiBOverIBB(t *testing.T) {
	checkGoroutines(t)
	data, f := randomFile(t, 1<<20)
	dir := t.TempDir()
	var last atomic.Int64
	var calls atomic.Int32
	var mu sync.Mutex
	var wire bytes.Buffer
	out := run(t, setup{file: f, data: data,
		observe: func(s xmpptest.Stanza) {
			mu.Lock()
			wire.Write(ibbDecode(s.Payload))
			mu.Unlock()
		},
		send: filetransfer.SendOptions{AllowPlaintext: true},
		recv: filetransfer.ReceiveOptions{Dir: dir, AllowPlaintext: true, MaxSize: 2 << 20,
			Progress: func(p filetransfer.Progress) { last.Store(p.Done); calls.Add(1) }}})
	if out.sendErr != nil || out.recvErr != nil || out.checkErr != nil {
		t.Fatalf("send %v, recv %v, check %v", out.sendErr, out.recvErr, out.checkErr)
	}
	got, err := os.ReadFile(filepath.Join(dir, "payload.bin"))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("file differs (%v)", err)
	}
	if out.res.Verified != "sha-256" || out.res.Path != filepath.Join(dir, "payload.bin") || out.res.Size != 1<<20 {
		t.Fatalf("result %+v", out.res)
	}
	if last.Load() != 1<<20 || calls.Load() < 2 {
		t.Fatalf("progress: last %d after %d calls", last.Load(), calls.Load())
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("directory holds %d entries", len(ents))
	}
	// Control for TestFT8's capture: plaintext IBB shows the file bytes.
	mu.Lock()
	defer mu.Unlock()
	if visible(data, wire.Bytes()) < 0 {
		t.Fatal("plaintext transfer not visible in the capture: the capture method is broken")
	}
}

// TestFT2_OneMiBOverS5B: the same over a direct XEP-0260 SOCKS5 candidate on 127.0.0.1, the
// offer carrying only <hash-used/> (as Libervia does) so the digest comes in the checksum
// session-info.
func TestFT2_OneMiBOverS5B(t *testing.T) {
	checkGoroutines(t)
	data, f := randomFile(t, 1<<20)
	f.Hashes, f.HashUsed = nil, []string{"sha-256"}
	dir := t.TempDir()
	var sawChecksum atomic.Bool
	out := run(t, setup{transport: "s5b", file: f, data: data,
		observe: func(s xmpptest.Stanza) {
			if bytes.Contains(s.Payload, []byte("<checksum")) {
				sawChecksum.Store(true)
			}
		},
		send: filetransfer.SendOptions{AllowPlaintext: true},
		recv: filetransfer.ReceiveOptions{Dir: dir, AllowPlaintext: true}})
	if out.sendErr != nil || out.recvErr != nil || out.checkErr != nil {
		t.Fatalf("send %v, recv %v, check %v", out.sendErr, out.recvErr, out.checkErr)
	}
	got, err := os.ReadFile(filepath.Join(dir, "payload.bin"))
	if err != nil || !bytes.Equal(got, data) || out.res.Verified != "sha-256" || !sawChecksum.Load() {
		t.Fatalf("file differs (%v) or not verified by checksum: %+v, checksum seen %v", err, out.res, sawChecksum.Load())
	}
}

// TestFT3_PathEscapeRefused: names that would leave the download directory (or hide a dot
// file in it) are refused before accepting: the session ends with <decline/> and nothing is
// written.
func TestFT3_PathEscapeRefused(t *testing.T) {
	checkGoroutines(t)
	for _, name := range []string{"../../../.ssh/authorized_keys", "../x", "/etc/passwd", "a/b", `a\b`, ".bashrc", "..", ".", "", "x\x00y", "c:x", "x\ny"} {
		if filetransfer.ValidName(name) {
			t.Errorf("ValidName(%q)", name)
		}
	}
	for _, name := range []string{"payload.bin", "Résumé 2026.pdf", "a..b", "x."} {
		if !filetransfer.ValidName(name) {
			t.Errorf("!ValidName(%q)", name)
		}
	}
	data, f := randomFile(t, 100)
	f.Name = "../../../.ssh/authorized_keys"
	dir := filepath.Join(t.TempDir(), "a", "b", "c")
	os.MkdirAll(dir, 0o700)
	out := run(t, setup{file: f, data: data, recv: filetransfer.ReceiveOptions{Dir: dir, AllowPlaintext: true}})
	if !errors.Is(out.checkErr, filetransfer.ErrBadName) || out.declined == nil || out.declined.Condition != jingle.Decline {
		t.Fatalf("check %v, declined %+v", out.checkErr, out.declined)
	}
	if _, err := os.Stat(filepath.Join(dir, "../../../.ssh")); err == nil {
		t.Fatal("escaped")
	}
}

// TestFT4_OverLimitRefused: an offer above the receiver's MaxSize is declined before any byte.
func TestFT4_OverLimitRefused(t *testing.T) {
	checkGoroutines(t)
	data, f := randomFile(t, 4096)
	out := run(t, setup{file: f, data: data, recv: filetransfer.ReceiveOptions{Dir: t.TempDir(), MaxSize: 4095, AllowPlaintext: true}})
	if !errors.Is(out.checkErr, filetransfer.ErrTooLarge) || out.declined == nil || out.declined.Condition != jingle.Decline {
		t.Fatalf("check %v, declined %+v", out.checkErr, out.declined)
	}
}

// slowReader yields data in small pieces and calls at once after n bytes.
type slowReader struct {
	r    io.Reader
	n    int
	at   func()
	read int
}

func (s *slowReader) Read(p []byte) (int, error) {
	if len(p) > 4096 {
		p = p[:4096]
	}
	n, err := s.r.Read(p)
	s.read += n
	if s.at != nil && s.read >= s.n {
		s.at()
		s.at = nil
	}
	return n, err
}

// TestFT5_CancelBySender: the sender cancels mid-way; its session ends with <cancel/>, the
// receiver reports the peer's <cancel/>, no final file appears and the partial file is kept
// for a resumed transfer.
func TestFT5_CancelBySender(t *testing.T) {
	checkGoroutines(t)
	data, f := randomFile(t, 1<<20)
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	out := run(t, setup{file: f, data: data, sendCtx: ctx,
		source: &slowReader{r: bytes.NewReader(data), n: 256 << 10, at: cancel},
		send:   filetransfer.SendOptions{AllowPlaintext: true},
		recv:   filetransfer.ReceiveOptions{Dir: dir, AllowPlaintext: true}})
	if !errors.Is(out.sendErr, context.Canceled) {
		t.Fatalf("send: %v", out.sendErr)
	}
	var te *filetransfer.TerminatedError
	if !errors.As(out.recvErr, &te) || te.Condition != jingle.Cancel || !te.ByPeer {
		t.Fatalf("recv: %v", out.recvErr)
	}
	if _, err := os.Stat(filepath.Join(dir, "payload.bin")); err == nil {
		t.Fatal("final file exists")
	}
	if fi, err := os.Stat(filepath.Join(dir, ".payload.bin.part")); err != nil || fi.Size() == 0 || fi.Size() >= 1<<20 {
		t.Fatalf("partial file: %v %v", fi, err)
	}
}

// TestFT5_CancelByReceiver: the receiver cancels mid-way; the sender sees the peer's <cancel/>.
func TestFT5_CancelByReceiver(t *testing.T) {
	checkGoroutines(t)
	data, f := randomFile(t, 1<<20)
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	out := run(t, setup{file: f, data: data, recvCtx: ctx,
		send: filetransfer.SendOptions{AllowPlaintext: true},
		recv: filetransfer.ReceiveOptions{Dir: dir, AllowPlaintext: true, Progress: func(p filetransfer.Progress) {
			if p.Done >= 256<<10 {
				cancel()
			}
		}}})
	if !errors.Is(out.recvErr, context.Canceled) {
		t.Fatalf("recv: %v", out.recvErr)
	}
	var te *filetransfer.TerminatedError
	if !errors.As(out.sendErr, &te) || te.Condition != jingle.Cancel || !te.ByPeer {
		t.Fatalf("send: %v", out.sendErr)
	}
}

// TestFT6_HashMismatch: bytes that do not match the offered sha-256 are detected; the
// receiver ends with <media-error/>, deletes the partial file and creates nothing.
func TestFT6_HashMismatch(t *testing.T) {
	checkGoroutines(t)
	data, f := randomFile(t, 64<<10)
	bad := bytes.Clone(data)
	bad[1000] ^= 1
	dir := t.TempDir()
	// The sender's own check would refuse a changed source, so the lie is in the offer.
	out := run(t, setup{file: f, data: bad, send: filetransfer.SendOptions{AllowPlaintext: true},
		recv: filetransfer.ReceiveOptions{Dir: dir, AllowPlaintext: true}})
	// Send refuses to send a source that no longer matches its offer.
	if !errors.Is(out.sendErr, filetransfer.ErrHashMismatch) {
		t.Fatalf("send: %v", out.sendErr)
	}
	// The receiver got all bytes (the mismatch is found by the sender after the last write).
	if out.recvErr == nil {
		t.Fatal("receiver accepted a file whose hash does not match")
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if e.Name() == "payload.bin" {
			t.Fatal("final file created")
		}
	}
}

// TestFT6_LyingHashDetectedByReceiver: a sender whose offer's hash is wrong (no sender-side
// check: the offer claims sha3-256 that the sender never verifies) is caught by the receiver.
func TestFT6_LyingHashDetectedByReceiver(t *testing.T) {
	checkGoroutines(t)
	data, f := randomFile(t, 64<<10)
	wrong := make([]byte, 32)
	f.Hashes = []filetransfer.Hash{{Algo: "sha3-256", Value: wrong}}
	dir := t.TempDir()
	out := run(t, setup{file: f, data: data, send: filetransfer.SendOptions{AllowPlaintext: true},
		recv: filetransfer.ReceiveOptions{Dir: dir, AllowPlaintext: true}})
	if !errors.Is(out.recvErr, filetransfer.ErrHashMismatch) {
		t.Fatalf("recv: %v", out.recvErr)
	}
	var te *filetransfer.TerminatedError
	if !errors.As(out.sendErr, &te) || te.Condition != jingle.MediaError {
		t.Fatalf("send: %v", out.sendErr)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 0 {
		t.Fatalf("left %v", ents)
	}
}

// TestFT6_LyingSize: a sender that sends more, or fewer, bytes than its offer said is caught:
// the receiver ends with <media-error/> and no final file appears.
func TestFT6_LyingSize(t *testing.T) {
	checkGoroutines(t)
	for _, tc := range []struct {
		name      string
		offerSize int64
	}{{"more", 32 << 10}, {"fewer", 128 << 10}} {
		t.Run(tc.name, func(t *testing.T) {
			data, f := randomFile(t, 64<<10)
			offer := f
			offer.Size, offer.Hashes = tc.offerSize, nil
			dir := t.TempDir()
			out := run(t, setup{file: f, offer: &offer, data: data, send: filetransfer.SendOptions{AllowPlaintext: true},
				recv: filetransfer.ReceiveOptions{Dir: dir, AllowPlaintext: true}})
			if !errors.Is(out.recvErr, filetransfer.ErrSizeMismatch) {
				t.Fatalf("recv: %v", out.recvErr)
			}
			var te *filetransfer.TerminatedError
			if !errors.As(out.sendErr, &te) || te.Condition != jingle.MediaError {
				t.Fatalf("send: %v", out.sendErr)
			}
			if _, err := os.Stat(filepath.Join(dir, "payload.bin")); err == nil {
				t.Fatal("final file created")
			}
		})
	}
}

// TestFT7_PlaintextRefusedByDefault: without AllowPlaintext, neither side moves a byte over a
// bytestream that is not TLS; the session ends with <security-error/>.
func TestFT7_PlaintextRefusedByDefault(t *testing.T) {
	checkGoroutines(t)
	data, f := randomFile(t, 4096)
	dir := t.TempDir()
	out := run(t, setup{file: f, data: data, recv: filetransfer.ReceiveOptions{Dir: dir}})
	if !errors.Is(out.recvErr, filetransfer.ErrPlaintext) && !errors.Is(out.sendErr, filetransfer.ErrPlaintext) {
		t.Fatalf("send %v, recv %v", out.sendErr, out.recvErr)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 0 {
		t.Fatalf("left %v", ents)
	}
}

// tlsWrap secures both bytestreams with xtls's TLS profile (x509, pinned fingerprints):
// Romeo, the Jingle initiator, is the TLS client (XTLS-3).
func tlsWrap(t *testing.T, ini, res net.Conn) (net.Conn, net.Conn) {
	idR, err := xtls.NewIdentity("romeo@montague.lit", xtls.KeyEd25519)
	if err != nil {
		t.Fatal(err)
	}
	idJ, err := xtls.NewIdentity("juliet@capulet.lit", xtls.KeyEd25519)
	if err != nil {
		t.Fatal(err)
	}
	pinsR, pinsJ := xtls.NewMemoryStore(), xtls.NewMemoryStore()
	pinsR.Pin("juliet@capulet.lit", idJ.Fingerprint(), xtls.VerifiedSRP, time.Now())
	pinsJ.Pin("romeo@montague.lit", idR.Fingerprint(), xtls.VerifiedSRP, time.Now())
	cc, err := xtls.ClientConfig(idR, "juliet@capulet.lit", xtls.MethodX509, pinsR)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := xtls.ServerConfig(idJ, "romeo@montague.lit", xtls.MethodX509, pinsJ)
	if err != nil {
		t.Fatal(err)
	}
	c, s := tls.Client(ini, cc), tls.Server(res, sc)
	errc := make(chan error, 1)
	go func() { errc <- s.HandshakeContext(t.Context()) }()
	if err := c.HandshakeContext(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	return c, s
}

// TestFT8_OverXTLS_IBB: 8 MiB; with the bytestream wrapped in TLS by xtls's profile (x509, pinned),
// the transfer runs without AllowPlaintext, and no 16-byte window of the file appears in any
// stanza (the IBB payloads are decoded).
func TestFT8_OverXTLS_IBB(t *testing.T) {
	checkGoroutines(t)
	data, f := randomFile(t, 8<<20)
	dir := t.TempDir()
	var mu sync.Mutex
	var wire bytes.Buffer
	out := run(t, setup{file: f, data: data, wrap: tlsWrap,
		observe: func(s xmpptest.Stanza) {
			mu.Lock()
			wire.Write(ibbDecode(s.Payload))
			mu.Unlock()
		},
		recv: filetransfer.ReceiveOptions{Dir: dir}})
	if out.sendErr != nil || out.recvErr != nil || out.checkErr != nil {
		t.Fatalf("send %v, recv %v, check %v", out.sendErr, out.recvErr, out.checkErr)
	}
	got, err := os.ReadFile(filepath.Join(dir, "payload.bin"))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatal("file differs")
	}
	mu.Lock()
	defer mu.Unlock()
	if wire.Len() < 8<<20 {
		t.Fatalf("only %d bytes of IBB payload observed", wire.Len())
	}
	if i := visible(data, wire.Bytes()); i >= 0 {
		t.Fatalf("file bytes at %d visible on the wire", i)
	}
}

// visible returns the offset of a 16-byte window of data (sampled every 4 KiB) that occurs in
// wire, or -1.
func visible(data, wire []byte) int {
	windows := map[[16]byte]int{}
	for i := 0; i+16 <= len(data); i += 4096 {
		windows[[16]byte(data[i:i+16])] = i
	}
	for j := 0; j+16 <= len(wire); j++ {
		if i, ok := windows[[16]byte(wire[j:j+16])]; ok {
			return i
		}
	}
	return -1
}

// ibbDecode returns the decoded payload of an IBB <data/> stanza (nil otherwise).
func ibbDecode(p []byte) []byte {
	d, err := ibb.ParseData(p)
	if err != nil {
		return nil
	}
	return d.Payload
}

// TestFT9_Resume: a partial download left by an earlier transfer is resumed: CheckOffer reports
// its length, the receiver asks for <range offset/> in session-accept, the sender skips (but
// hashes) that prefix, only the rest crosses, and the whole file is verified.
func TestFT9_Resume(t *testing.T) {
	checkGoroutines(t)
	data, f := randomFile(t, 1<<20)
	dir := t.TempDir()
	const have = 600 << 10
	if err := os.WriteFile(filepath.Join(dir, ".payload.bin.part"), data[:have], 0o600); err != nil {
		t.Fatal(err)
	}
	var first atomic.Int64
	first.Store(-1)
	out := run(t, setup{file: f, data: data,
		acceptFile: func(offer *filetransfer.File, resume int64) *filetransfer.File {
			if resume != have {
				t.Errorf("resume offset %d", resume)
			}
			a := *offer
			a.Range = &filetransfer.Range{Offset: resume}
			return &a
		},
		send: filetransfer.SendOptions{AllowPlaintext: true, Progress: func(p filetransfer.Progress) {
			first.CompareAndSwap(-1, p.Done)
		}},
		recv: filetransfer.ReceiveOptions{Dir: dir, AllowPlaintext: true}})
	if out.sendErr != nil || out.recvErr != nil || out.checkErr != nil {
		t.Fatalf("send %v, recv %v, check %v", out.sendErr, out.recvErr, out.checkErr)
	}
	got, err := os.ReadFile(filepath.Join(dir, "payload.bin"))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatal("file differs")
	}
	if d := first.Load(); d <= have || d > have+64<<10 {
		t.Fatalf("sender's first progress %d: the prefix was sent again", d)
	}
}

// TestFT9_ResumeCorruptPrefix: a partial file whose prefix is not the offered file's is caught
// by the hash over the whole file; the partial file is deleted.
func TestFT9_ResumeCorruptPrefix(t *testing.T) {
	checkGoroutines(t)
	data, f := randomFile(t, 256<<10)
	dir := t.TempDir()
	bad := bytes.Clone(data[:100<<10])
	bad[5] ^= 0xff
	os.WriteFile(filepath.Join(dir, ".payload.bin.part"), bad, 0o600)
	out := run(t, setup{file: f, data: data,
		acceptFile: func(offer *filetransfer.File, resume int64) *filetransfer.File {
			a := *offer
			a.Range = &filetransfer.Range{Offset: resume}
			return &a
		},
		send: filetransfer.SendOptions{AllowPlaintext: true},
		recv: filetransfer.ReceiveOptions{Dir: dir, AllowPlaintext: true}})
	if !errors.Is(out.recvErr, filetransfer.ErrHashMismatch) {
		t.Fatalf("recv %v", out.recvErr)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("left %v", ents)
	}
}

// TestFT3_ExistingFileNotReplaced: an offer for a name that exists is refused (ErrExists).
func TestFT3_ExistingFileNotReplaced(t *testing.T) {
	checkGoroutines(t)
	data, f := randomFile(t, 100)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "payload.bin"), []byte("mine"), 0o600)
	out := run(t, setup{file: f, data: data, recv: filetransfer.ReceiveOptions{Dir: dir, AllowPlaintext: true}})
	if !errors.Is(out.checkErr, filetransfer.ErrExists) || out.declined == nil {
		t.Fatalf("check %v", out.checkErr)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "payload.bin")); string(b) != "mine" {
		t.Fatal("replaced")
	}
}

// srpWrap secures both bytestreams with xtls's srp method: TLS 1.3 with fresh identities, then
// XSRP with the shared password on the TLS connection (XSRP-8); nothing is read or written
// before XSRP succeeded (XTLS-D6).
func srpWrap(password string) func(t *testing.T, ini, res net.Conn) (net.Conn, net.Conn) {
	return func(t *testing.T, ini, res net.Conn) (net.Conn, net.Conn) {
		idR, _ := xtls.NewIdentity("romeo@montague.lit", xtls.KeyEd25519)
		idJ, _ := xtls.NewIdentity("juliet@capulet.lit", xtls.KeyEd25519)
		cc, err := xtls.ClientConfig(idR, "juliet@capulet.lit", xtls.MethodSRP, xtls.NewMemoryStore())
		if err != nil {
			t.Fatal(err)
		}
		sc, err := xtls.ServerConfig(idJ, "romeo@montague.lit", xtls.MethodSRP, xtls.NewMemoryStore())
		if err != nil {
			t.Fatal(err)
		}
		c, s := tls.Client(ini, cc), tls.Server(res, sc)
		errc := make(chan error, 1)
		go func() {
			_, err := xtls.ServerXSRP(t.Context(), s, idJ, "romeo@montague.lit", password)
			errc <- err
		}()
		fp, err := xtls.ClientXSRP(t.Context(), c, idR, "romeo@montague.lit", password)
		if err != nil {
			t.Fatal(err)
		}
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
		if fp != idJ.Fingerprint() {
			t.Fatal("XSRP returned another fingerprint than Juliet's")
		}
		return c, s
	}
}

// TestFT8_OverXSRP_S5B: 8 MiB over a direct SOCKS5 bytestream secured with xtls's srp method
// and XSRP, no plaintext permission needed.
func TestFT8_OverXSRP_S5B(t *testing.T) {
	checkGoroutines(t)
	data, f := randomFile(t, 8<<20)
	dir := t.TempDir()
	out := run(t, setup{transport: "s5b", file: f, data: data, wrap: srpWrap("wherefore art thou"),
		recv: filetransfer.ReceiveOptions{Dir: dir}})
	if out.sendErr != nil || out.recvErr != nil || out.checkErr != nil {
		t.Fatalf("send %v, recv %v, check %v", out.sendErr, out.recvErr, out.checkErr)
	}
	got, err := os.ReadFile(filepath.Join(dir, "payload.bin"))
	if err != nil || !bytes.Equal(got, data) || out.res.Verified != "sha-256" {
		t.Fatal("file differs")
	}
}

// TestHASH4_GajimStyleBlake2bOffer: an offer carrying only blake2b-512 (as Gajim 1.5.3 sends)
// is verified with it; a wrong blake2b-512 is caught.
func TestHASH4_GajimStyleBlake2bOffer(t *testing.T) {
	checkGoroutines(t)
	for _, lie := range []bool{false, true} {
		data, f := randomFile(t, 200<<10)
		h := filetransfer.Blake2b512(data)
		if lie {
			h[0] ^= 1
		}
		f.Hashes = []filetransfer.Hash{{Algo: "blake2b-512", Value: h}}
		dir := t.TempDir()
		out := run(t, setup{file: f, data: data, send: filetransfer.SendOptions{AllowPlaintext: true},
			recv: filetransfer.ReceiveOptions{Dir: dir, AllowPlaintext: true}})
		if lie {
			if !errors.Is(out.recvErr, filetransfer.ErrHashMismatch) {
				t.Fatalf("lying blake2b: recv %v", out.recvErr)
			}
			continue
		}
		if out.recvErr != nil || out.sendErr != nil || out.res.Verified != "blake2b-512" {
			t.Fatalf("send %v recv %v res %+v", out.sendErr, out.recvErr, out.res)
		}
	}
}
