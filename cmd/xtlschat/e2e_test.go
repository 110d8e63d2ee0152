package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xtlsjingle/xtlsjingle/internal/prosodytest"
	"github.com/xtlsjingle/xtlsjingle/internal/stuntest"
)

func TestMain(m *testing.M) { prosodytest.Main(m) }

// eventBuf collects the JSON lines a run prints, for a test to wait on.
type eventBuf struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	notify chan struct{}
}

func newEventBuf() *eventBuf { return &eventBuf{notify: make(chan struct{}, 1)} }

func (b *eventBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	select {
	case b.notify <- struct{}{}:
	default:
	}
	return len(p), nil
}

func (b *eventBuf) events(t *testing.T) []event {
	t.Helper()
	b.mu.Lock()
	data := append([]byte(nil), b.buf.Bytes()...)
	b.mu.Unlock()
	var out []event
	for _, line := range bytes.Split(data, []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var e event
		if err := json.Unmarshal(line, &e); err != nil {
			t.Fatalf("not a JSON event line: %q: %v", line, err)
		}
		out = append(out, e)
	}
	return out
}

func (b *eventBuf) waitFor(t *testing.T, what string, pred func(event) bool) event {
	t.Helper()
	deadline := time.After(60 * time.Second)
	for {
		for _, e := range b.events(t) {
			if pred(e) {
				return e
			}
		}
		select {
		case <-b.notify:
		case <-deadline:
			t.Fatalf("no %s event within 60 s; events: %+v", what, b.events(t))
		}
	}
}

func find(evs []event, pred func(event) bool) []event {
	var out []event
	for _, e := range evs {
		if pred(e) {
			out = append(out, e)
		}
	}
	return out
}

func isEvent(kind string) func(event) bool { return func(e event) bool { return e.Event == kind } }

// TestE2E_Prosody runs two xtlschat instances (run, in process) through a real Prosody: the
// first contact with a shared password (srp, XSRP-8 pinning on both sides) over SOCKS5, then
// pinned certificates (x509, XTLS-D3/XTLS-D4) over IBB, then a peer whose certificate changed,
// which must be refused with exit status 3, then a wrong shared password (exit 3 on both sides).
func TestE2E_Prosody(t *testing.T) {
	srv := prosodytest.Shared(t)
	alice, alicePW := srv.Account(t)
	bob, bobPW := srv.Account(t)
	dir, certFile, shared := e2eFiles(t, srv, "correct horse battery staple")
	baseline := runtime.NumGoroutine()
	common := []string{"--server", srv.Addr, "--server-cert", certFile, "--s5b-listen", "127.0.0.1:0", "--timeout", "60s"}
	aliceDir, bobDir := filepath.Join(dir, "alice"), filepath.Join(dir, "bob")

	listen := func(extra ...string) (*eventBuf, context.CancelFunc, chan error) {
		out := newEventBuf()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		args := append([]string{"listen", "--jid", bob + "/xtlschat-test", "--config-dir", bobDir, "--from", alice, "--echo"}, common...)
		args = append(args, extra...)
		go func() {
			done <- run(ctx, args, strings.NewReader(""), out, os.Stderr, envOf(map[string]string{envPassword: bobPW}))
		}()
		return out, cancel, done
	}
	open := func(extra ...string) ([]event, error) {
		out := newEventBuf()
		args := append([]string{"open", "--jid", alice + "/xtlschat-test", "--config-dir", aliceDir}, common...)
		args = append(args, extra...)
		err := run(context.Background(), args, strings.NewReader(""), out, os.Stderr, envOf(map[string]string{envPassword: alicePW}))
		return out.events(t), err
	}

	bobOut, bobCancel, bobDone := listen("--sessions", "2", "--shared-password-file", shared)
	defer bobCancel()
	ready := bobOut.waitFor(t, "ready", isEvent(evReady))
	bobJID := ready.JID
	if !strings.HasPrefix(bobJID, bob+"/") {
		t.Fatalf("bob's ready event: %+v", ready)
	}

	// 1. First contact: srp over SOCKS5.
	evs, err := open("--to", bobJID, "--method", "srp", "--transport", "s5b", "--shared-password-file", shared, "--message", "hello bob", "--wait", "1")
	if err != nil {
		t.Fatalf("srp session: %v; events %+v", err, evs)
	}
	s := find(evs, isEvent(evSession))
	if len(s) != 1 || s[0].Method != "srp" || !strings.HasPrefix(s[0].Transport, "s5b") || s[0].Peer != bobJID || s[0].Verified != "srp" ||
		s[0].Transport == "s5b-direct" && s[0].Route != "direct-local" || s[0].KeyHint != "none" {
		t.Fatalf("srp session event: %+v", s)
	}
	if p := find(evs, isEvent(evPinned)); len(p) != 1 || p[0].Peer != bob || p[0].Fingerprint != ready.Fingerprint || p[0].Verified != "srp" {
		t.Fatalf("alice did not pin bob's certificate after the password check: %+v (bob is %s)", p, ready.Fingerprint)
	}
	if in := find(evs, func(e event) bool { return e.Event == evMessage && e.Dir == "in" }); len(in) != 1 || in[0].Text != "hello bob" {
		t.Fatalf("echo: %+v", in)
	}

	// 2. Pinned now: x509 over IBB, with text that must arrive unchanged.
	text := "über \u009b31m \u202e done\nsecond line" // C1 and bidi are legal XML; C0 (ESC) is not
	evs, err = open("--to", bobJID, "--method", "x509", "--transport", "ibb", "--message", text, "--wait", "1")
	if err != nil {
		t.Fatalf("x509 session: %v; events %+v", err, evs)
	}
	s = find(evs, isEvent(evSession))
	if len(s) != 1 || s[0].Method != "x509" || s[0].Transport != "ibb" || s[0].Route != "ibb" {
		t.Fatalf("x509 session event: %+v", s)
	}
	if in := find(evs, func(e event) bool { return e.Event == evMessage && e.Dir == "in" }); len(in) != 1 || in[0].Text != text {
		t.Fatalf("echo: %+v", in)
	}
	select {
	case err := <-bobDone:
		if err != nil {
			t.Fatalf("bob's listen: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("bob's listen did not exit after --sessions 2")
	}
	bobEvs := bobOut.events(t)
	if n := len(find(bobEvs, isEvent(evSession))); n != 2 {
		t.Errorf("bob saw %d sessions", n)
	}
	aliceFP := bytes.Split(mustRun(t, "fp", "--jid", alice, "--config-dir", aliceDir), []byte("\n"))[1]
	if p := find(bobEvs, isEvent(evPinned)); len(p) != 1 || p[0].Fingerprint != string(aliceFP) || p[0].Verified != "srp" {
		t.Errorf("bob's pin of alice: %+v, alice is %s", p, aliceFP)
	}

	// 3. Bob's certificate changes (a new identity, or someone in between): x509 is refused.
	if err := os.Remove(filepath.Join(bobDir, bob, identityFile)); err != nil {
		t.Fatal(err)
	}
	bobOut, bobCancel2, bobDone := listen("--shared-password-file", shared)
	defer bobCancel2()
	ready2 := bobOut.waitFor(t, "ready", isEvent(evReady))
	if ready2.Fingerprint == ready.Fingerprint {
		t.Fatal("bob's identity did not change")
	}
	evs, err = open("--to", ready2.JID, "--method", "x509", "--message", "must not arrive", "--wait", "1")
	if exitCode(err) != exitSecurity {
		t.Fatalf("changed certificate: err %v (exit %d), want exit %d; events %+v", err, exitCode(err), exitSecurity, evs)
	}
	if e := find(evs, isEvent(evError)); len(e) != 1 || e[0].Code != exitSecurity || !strings.Contains(e[0].Message, "changed — session refused") {
		t.Fatalf("error event: %+v", e)
	}
	if m := find(evs, isEvent(evMessage)); len(m) != 0 {
		t.Fatalf("a message was sent over a refused session: %+v", m)
	}
	time.Sleep(500 * time.Millisecond) // let bob see the end of the refused session
	if m := find(bobOut.events(t), isEvent(evMessage)); len(m) != 0 {
		t.Fatalf("bob received a message on a refused session: %+v", m)
	}
	// 4. A wrong shared password (XSRP-8): refused on both sides, nothing pinned, exit 3.
	wrong := filepath.Join(dir, "wrong")
	if err := os.WriteFile(wrong, []byte("correct horse battery stapler\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	evs, err = open("--to", ready2.JID, "--method", "srp", "--shared-password-file", wrong, "--message", "must not arrive", "--wait", "1")
	if exitCode(err) != exitSecurity {
		t.Fatalf("wrong password: err %v (exit %d), want exit %d; events %+v", err, exitCode(err), exitSecurity, evs)
	}
	// Alice reads either bob's XSRP failure record or, when bob's session-terminate through
	// the server closes the bytestream first, his reason text: both say what happened.
	if e := find(evs, isEvent(evError)); len(e) != 1 || !strings.Contains(e[0].Message, "wrong shared password or an attack") &&
		!strings.Contains(e[0].Message, "(reported by the peer): wrong password or attack") {
		t.Fatalf("error event: %+v", e)
	}
	bobErr := bobOut.waitFor(t, "bob's error", isEvent(evError))
	if bobErr.Code != exitSecurity {
		t.Errorf("bob's error event: %+v", bobErr)
	}
	if p := find(append(evs, bobOut.events(t)...), isEvent(evPinned)); len(p) != 0 {
		t.Fatalf("pinned after a failed password check: %+v", p)
	}
	if m := find(bobOut.events(t), isEvent(evMessage)); len(m) != 0 {
		t.Fatalf("bob received a message on a refused session: %+v", m)
	}

	bobCancel2()
	if err := <-bobDone; err != nil {
		t.Errorf("interrupted listen returned %v, want nil", err)
	}

	// No goroutine of either client outlives its run.
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > baseline && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > baseline {
		buf := make([]byte, 1<<20)
		t.Errorf("%d goroutines after the runs, %d before:\n%s", n, baseline, buf[:runtime.Stack(buf, true)])
	}
}

// e2eFiles writes the server's certificate and a shared password into a fresh directory.
func e2eFiles(t *testing.T, srv *prosodytest.Server, sharedPW string) (dir, certFile, shared string) {
	t.Helper()
	dir = t.TempDir()
	certFile = filepath.Join(dir, "server.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	shared = filepath.Join(dir, "shared")
	if err := os.WriteFile(shared, []byte(sharedPW+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir, certFile, shared
}

func mustRun(t *testing.T, args ...string) []byte {
	t.Helper()
	var out bytes.Buffer
	if err := run(context.Background(), args, strings.NewReader(""), &out, os.Stderr, envOf(nil)); err != nil {
		t.Fatalf("run %q: %v", args, err)
	}
	return out.Bytes()
}

// e2eSetup is two accounts on the shared Prosody with the files of e2eFiles and the flags
// every run against it needs (with a direct SOCKS5 listener).
type e2eSetup struct {
	alice, alicePW, bob, bobPW string
	dir, shared                string
	common                     []string
}

func newE2ESetup(t *testing.T, sharedPW string) *e2eSetup {
	t.Helper()
	srv := prosodytest.Shared(t)
	e := &e2eSetup{}
	e.alice, e.alicePW = srv.Account(t)
	e.bob, e.bobPW = srv.Account(t)
	var certFile string
	e.dir, certFile, e.shared = e2eFiles(t, srv, sharedPW)
	e.common = []string{"--server", srv.Addr, "--server-cert", certFile, "--s5b-listen", "127.0.0.1:0", "--timeout", "60s"}
	return e
}

// TestE2E_STUNPublishSubscribe (SEED-1, STUN-4, JS5B-2): bob learns his listener's mapping
// from a STUN server (--stun), offers and publishes it (--publish-p2p) with his key; alice
// and bob subscribe to each other (--subscribe) through Prosody, so alice's open sees bob's
// presence first: her session line names the route and says that the key bob published
// matches his TLS certificate (a hint).
func TestE2E_STUNPublishSubscribe(t *testing.T) {
	srv := prosodytest.Shared(t)
	alice, alicePW := srv.Account(t)
	bob, bobPW := srv.Account(t)
	dir, certFile, shared := e2eFiles(t, srv, "correct horse battery staple")
	stunLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	stun := stuntest.Serve(stunLn, nil)
	defer stun.Close()
	common := []string{"--server", srv.Addr, "--server-cert", certFile, "--s5b-listen", "127.0.0.1:0", "--timeout", "60s"}

	bobOut, bobDone := runAsync(t, bobPW, append([]string{"listen", "--jid", bob + "/xtlschat-test", "--config-dir", filepath.Join(dir, "bob"), "--from", alice,
		"--echo", "--sessions", "1", "--shared-password-file", shared, "--stun", stunLn.Addr().String(), "--publish-p2p", "--subscribe", alice}, common...))
	ready := bobOut.waitFor(t, "ready", isEvent(evReady))
	if !ready.Published || !strings.HasPrefix(ready.External, "127.0.0.1:") || ready.Message != "" {
		t.Fatalf("bob's ready event: %+v, want the STUN mapping of his listener, published", ready)
	}
	out := newEventBuf()
	args := append([]string{"open", "--jid", alice + "/xtlschat-test", "--config-dir", filepath.Join(dir, "alice"), "--to", ready.JID,
		"--method", "srp", "--transport", "s5b", "--shared-password-file", shared, "--subscribe", bob, "--message", "hi", "--wait", "1"}, common...)
	if err := run(context.Background(), args, strings.NewReader(""), out, os.Stderr, envOf(map[string]string{envPassword: alicePW})); err != nil {
		t.Fatalf("open: %v; events %+v", err, out.events(t))
	}
	s := find(out.events(t), isEvent(evSession))
	if len(s) != 1 || s[0].KeyHint != "matches" || (s[0].Route != "direct-local" && s[0].Route != "direct-external") {
		t.Fatalf("alice's session event %+v, want key_hint matches and a direct route", s)
	}
	t.Logf("alice's route to bob: %s (%s)", s[0].Route, s[0].Transport)
	if err := <-bobDone; err != nil {
		t.Fatalf("bob's listen: %v", err)
	}
}

// runAsync runs xtlschat with args and the account password pw on a goroutine until it exits
// (or the test ends) and returns its events and its result.
func runAsync(t *testing.T, pw string, args []string) (*eventBuf, <-chan error) {
	out := newEventBuf()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, args, strings.NewReader(""), out, os.Stderr, envOf(map[string]string{envPassword: pw}))
	}()
	return out, done
}
