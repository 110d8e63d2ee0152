package main

import (
	"bytes"
	"context"
	"io"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xtlsjingle/xtlsjingle/internal/prosodytest"
)

// textBuf collects output for a test to wait on.
type textBuf struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	notify chan struct{}
}

func (b *textBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	select {
	case b.notify <- struct{}{}:
	default:
	}
	return len(p), nil
}

func (b *textBuf) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *textBuf) waitFor(t *testing.T, from int, want string) int {
	t.Helper()
	deadline := time.After(60 * time.Second)
	for {
		s := b.String()
		if i := strings.Index(s[from:], want); i >= 0 {
			return from + i + len(want)
		}
		select {
		case <-b.notify:
		case <-deadline:
			t.Fatalf("output did not show %q within 60 s; it shows:\n%s", want, s[from:])
		}
	}
}

// TestInteractivePipe runs the interactive mode with standard input that is not a terminal
// (bufio line reading, e.g. under a script or an editor's shell): an incoming srp session is
// accepted with the password given on the next line, chat arrives, /decline refuses a second
// offer, end of input quits.
func TestInteractivePipe(t *testing.T) {
	srv := prosodytest.Shared(t)
	alice, alicePW := srv.Account(t)
	bob, bobPW := srv.Account(t)
	const sharedPW = "seven blue ravens"
	dir, certFile, shared := e2eFiles(t, srv, sharedPW)
	common := []string{"--server", srv.Addr, "--server-cert", certFile, "--timeout", "60s"}

	ir := startInteractive(t, append([]string{"--jid", alice + "/pipe", "--config-dir", filepath.Join(dir, "alice")}, common...), alicePW)
	out, inW, aliceDone, typeLine := ir.out, ir.inW, ir.done, ir.typeLine
	pos := out.waitFor(t, 0, "logged in as ")
	aliceJID := regexp.MustCompile(`^[^ .]+@[^ ]+/pipe`).FindString(out.String()[pos:])

	openAsBob := func(password string) ([]event, error) {
		o := newEventBuf()
		args := append([]string{"open", "--jid", bob + "/pipe-peer", "--config-dir", filepath.Join(dir, "bob"), "--to", aliceJID,
			"--method", "srp", "--shared-password-file", password, "--message", "over the pipe", "--wait", "0", "--transport", "ibb"}, common...)
		err := run(context.Background(), args, strings.NewReader(""), o, io.Discard, envOf(map[string]string{envPassword: bobPW}))
		return o.events(t), err
	}
	bobDone := make(chan error, 1)
	go func() {
		evs, err := openAsBob(shared)
		if err == nil && len(find(evs, isEvent(evSession))) != 1 {
			err = io.ErrUnexpectedEOF
		}
		bobDone <- err
	}()
	pos = out.waitFor(t, pos, "wants a secure session")
	typeLine("/accept")
	pos = out.waitFor(t, pos, "Shared password for "+bob)
	typeLine(sharedPW)
	pos = out.waitFor(t, pos, "is secure: method srp, transport ibb")
	pos = out.waitFor(t, pos, "/pipe-peer> over the pipe")
	if err := <-bobDone; err != nil {
		t.Fatalf("bob's open: %v", err)
	}
	pos = out.waitFor(t, pos, "ended: success")

	// A second offer, declined: bob's open fails with "peer declined" (exit 4).
	go func() {
		_, err := openAsBob(shared)
		bobDone <- err
	}()
	pos = out.waitFor(t, pos, "wants a secure session")
	typeLine("/decline")
	out.waitFor(t, pos, "-- declined")
	if err := <-bobDone; exitCode(err) != exitPeer {
		t.Fatalf("declined session: %v (exit %d), want exit %d", err, exitCode(err), exitPeer)
	}
	if strings.Contains(out.String(), sharedPW) {
		t.Fatal("the shared password was printed")
	}
	inW.Close() // end of input quits
	select {
	case err := <-aliceDone:
		if err != nil {
			t.Fatalf("interactive run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("end of input did not end the interactive run")
	}
}
