//go:build linux

package main

import (
	"context"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/xtlsjingle/xtlsjingle/internal/prosodytest"
)

// TestInteractivePTY drives the interactive mode through a pseudo-terminal against a real
// Prosody: an incoming session accepted with a shared password typed at the prompt (srp,
// XSRP-8), chat both ways, then /open to a peer that is now pinned (x509), chat, /quit.
func TestInteractivePTY(t *testing.T) {
	srv := prosodytest.Shared(t)
	alice, alicePW := srv.Account(t)
	bob, bobPW := srv.Account(t)
	const sharedPW = "a horse of a different colour"
	dir, certFile, shared := e2eFiles(t, srv, sharedPW)
	common := []string{"--server", srv.Addr, "--server-cert", certFile, "--s5b-listen", "127.0.0.1:0", "--timeout", "60s"}

	// os/signal starts one process-wide goroutine on first use, which never ends: start it
	// before counting.
	warm := make(chan os.Signal, 1)
	notifyResize(warm)
	signal.Stop(warm)
	baseline := runtime.NumGoroutine()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr := startPTY(ctx, t, append([]string{"--jid", alice + "/pty", "--config-dir", filepath.Join(dir, "alice")}, common...), alicePW)
	sc, type_ := pr.sc, pr.type_

	pos := sc.waitFor(t, 0, "logged in as ")
	aliceJID := regexp.MustCompile(`^[^ .]+@[^ ]+/pty`).FindString(sc.String()[pos:])
	if aliceJID == "" {
		t.Fatalf("no JID after 'logged in as': %q", sc.String()[pos:])
	}

	// Bob opens with the shared password; alice accepts and types it.
	bobOut := newEventBuf()
	bobDone := make(chan error, 1)
	go func() {
		args := append([]string{"open", "--jid", bob + "/pty-peer", "--config-dir", filepath.Join(dir, "bob"), "--to", aliceJID,
			"--method", "srp", "--shared-password-file", shared, "--message", "hi alice \u009b2J \u202eevil", "--wait", "1"}, common...)
		bobDone <- run(context.Background(), args, strings.NewReader(""), bobOut, os.Stderr, envOf(map[string]string{envPassword: bobPW}))
	}()
	pos = sc.waitFor(t, pos, "wants a secure session")
	type_("/accept\r")
	pos = sc.waitFor(t, pos, "Shared password for "+bob)
	type_(sharedPW + "\r")
	pos = sc.waitFor(t, pos, "is now pinned after the password check")
	pos = sc.waitFor(t, pos, "is secure: method srp")
	// Peer text is escaped: a C1 CSI (legal in XML, unlike ESC) and a bidi override arrive as
	// visible escapes, never as the characters themselves.
	pos = sc.waitFor(t, pos, `> hi alice \u009b2J \u202eevil`)
	if strings.ContainsAny(sc.String(), "\u009b\u202e") {
		t.Fatal("peer text reached the terminal unescaped")
	}
	if strings.Contains(sc.String(), sharedPW) {
		t.Fatal("the shared password was echoed")
	}
	type_("hello bob\r")
	pos = sc.waitFor(t, pos, "ended")
	if err := <-bobDone; err != nil {
		t.Fatalf("bob's open: %v; events %+v", err, bobOut.events(t))
	}
	if in := find(bobOut.events(t), func(e event) bool { return e.Event == evMessage && e.Dir == "in" }); len(in) != 1 || in[0].Text != "hello bob" {
		t.Fatalf("bob got %+v", in)
	}

	// Alice opens a session to bob, pinned now: x509, no password asked.
	listenOut := newEventBuf()
	listenDone := make(chan error, 1)
	go func() {
		args := append([]string{"listen", "--jid", bob + "/pty-peer", "--config-dir", filepath.Join(dir, "bob"), "--from", alice, "--echo", "--sessions", "1"}, common...)
		listenDone <- run(context.Background(), args, strings.NewReader(""), listenOut, os.Stderr, envOf(map[string]string{envPassword: bobPW}))
	}()
	ready := listenOut.waitFor(t, "ready", isEvent(evReady))
	type_("/open " + ready.JID + " --transport ibb\r")
	pos = sc.waitFor(t, pos, "is secure: method x509, transport ibb")
	type_("/fp\r")
	pos = sc.waitFor(t, pos, "ni:///sha-256;")
	pos = sc.waitFor(t, pos, "Compare these with your peer")
	type_("echo me\r")
	pos = sc.waitFor(t, pos, "/pty-peer> echo me") // the echo, not the line as typed
	type_("/pins\r")
	sc.waitFor(t, pos, bob+"  ")
	pr.quit(t)
	if err := <-listenDone; err != nil {
		t.Fatalf("bob's listen: %v; events %+v", err, listenOut.events(t))
	}
	if testing.Verbose() {
		t.Logf("the terminal showed:\n%s", sc.String())
	}
	// Nothing of the interactive client (input reader, resize watcher, session goroutines)
	// outlives run.
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > baseline && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > baseline {
		buf := make([]byte, 1<<20)
		t.Errorf("%d goroutines after the run, %d before:\n%s", n, baseline, buf[:runtime.Stack(buf, true)])
	}
}
