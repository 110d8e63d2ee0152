package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xtlsjingle/xtlsjingle/internal/prosodytest"
)

// TestE2E_FileTransferProsody (issue 8) runs "xtlschat listen --download-dir" and
// "xtlschat send" in process through a real Prosody: an 8 MiB random file on first contact
// (srp over SOCKS5, pins both certificates), the same name again (declined: never
// overwritten, exit 4), then another file with the pinned certificates (x509 over IBB). The
// receiver's file-offer, session, progress and file events and the sender's file event carry
// the SHA-256 the test computed.
func TestE2E_FileTransferProsody(t *testing.T) {
	srv := prosodytest.Shared(t)
	alice, alicePW := srv.Account(t)
	bob, bobPW := srv.Account(t)
	dir, certFile, shared := e2eFiles(t, srv, "correct horse battery staple")
	downloads := filepath.Join(dir, "downloads")
	if err := os.Mkdir(downloads, 0o700); err != nil {
		t.Fatal(err)
	}
	common := []string{"--server", srv.Addr, "--server-cert", certFile, "--s5b-listen", "127.0.0.1:0", "--timeout", "60s"}

	bobOut := newEventBuf()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	bobDone := make(chan error, 1)
	go func() {
		args := append([]string{"listen", "--jid", bob + "/files", "--config-dir", filepath.Join(dir, "bob"), "--from", alice,
			"--download-dir", downloads, "--sessions", "2", "--shared-password-file", shared}, common...)
		bobDone <- run(ctx, args, strings.NewReader(""), bobOut, os.Stderr, envOf(map[string]string{envPassword: bobPW}))
	}()
	bobJID := bobOut.waitFor(t, "ready", isEvent(evReady)).JID

	send := func(path string, extra ...string) ([]event, error) {
		out := newEventBuf()
		args := append([]string{"send", "--jid", alice + "/files", "--config-dir", filepath.Join(dir, "alice"), "--to", bobJID, "--file", path}, common...)
		args = append(args, extra...)
		err := run(context.Background(), args, strings.NewReader(""), out, os.Stderr, envOf(map[string]string{envPassword: alicePW}))
		return out.events(t), err
	}

	// 1. First contact: srp over SOCKS5, 8 MiB.
	path, data, sum := randomFile(t, dir, "rose.bin", 8<<20)
	evs, err := send(path, "--method", "srp", "--transport", "s5b", "--shared-password-file", shared)
	if err != nil {
		t.Fatalf("send: %v; events %+v", err, evs)
	}
	if s := find(evs, isEvent(evSession)); len(s) != 1 || s[0].Method != "srp" || !strings.HasPrefix(s[0].Transport, "s5b") {
		t.Fatalf("sender's session event: %+v", s)
	}
	if f := find(evs, isEvent(evFile)); len(f) != 1 || f[0].SHA256 != sum || f[0].Dir != "out" || f[0].Size != 8<<20 {
		t.Fatalf("sender's file event: %+v (want sha256 %s)", f, sum)
	}
	got := bobOut.waitFor(t, "file in", func(e event) bool { return e.Event == evFile && e.Name == "rose.bin" })
	if got.SHA256 != sum || got.Hash != "sha-256" || got.Path != filepath.Join(downloads, "rose.bin") {
		t.Fatalf("receiver's file event: %+v", got)
	}
	if b, err := os.ReadFile(got.Path); err != nil || !bytes.Equal(b, data) {
		t.Fatalf("received file differs: %v", err)
	}
	if o := find(bobOut.events(t), isEvent(evFileOffer)); len(o) != 1 || o[0].Name != "rose.bin" || o[0].Size != 8<<20 {
		t.Fatalf("receiver's offer event: %+v", o)
	}

	// 2. The same name again: declined, the received file stays as it is.
	other, _, _ := randomFile(t, dir, "other.bin", 1000)
	if err := os.Rename(other, path); err != nil {
		t.Fatal(err)
	}
	evs, err = send(path)
	if exitCode(err) != exitPeer {
		t.Fatalf("second send of rose.bin: %v (exit %d), want exit %d; events %+v", err, exitCode(err), exitPeer, evs)
	}
	d := bobOut.waitFor(t, "declined", func(e event) bool { return e.Event == evDeclined && e.Name == "rose.bin" })
	if !strings.Contains(d.Reason, "never replaced") {
		t.Errorf("decline reason %q", d.Reason)
	}
	if b, err := os.ReadFile(got.Path); err != nil || !bytes.Equal(b, data) {
		t.Fatalf("the received file changed: %v", err)
	}

	// 3. Pinned now: x509 over IBB.
	path, data, sum = randomFile(t, dir, "letter.txt", 300<<10)
	evs, err = send(path, "--method", "x509", "--transport", "ibb")
	if err != nil {
		t.Fatalf("x509 send: %v; events %+v", err, evs)
	}
	if s := find(evs, isEvent(evSession)); len(s) != 1 || s[0].Method != "x509" || s[0].Transport != "ibb" {
		t.Fatalf("sender's session event: %+v", s)
	}
	got = bobOut.waitFor(t, "file in", func(e event) bool { return e.Event == evFile && e.Name == "letter.txt" })
	if got.SHA256 != sum {
		t.Fatalf("receiver's file event: %+v", got)
	}
	if b, err := os.ReadFile(got.Path); err != nil || !bytes.Equal(b, data) {
		t.Fatalf("received file differs: %v", err)
	}
	select {
	case err := <-bobDone:
		if err != nil {
			t.Fatalf("listen: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("listen did not exit after --sessions 2")
	}
}

// randomFile writes size random bytes to dir/name and returns the path, the bytes and their
// SHA-256 in hex.
func randomFile(t *testing.T, dir, name string, size int) (string, []byte, string) {
	t.Helper()
	data := make([]byte, size)
	_, _ = rand.Read(data)
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return p, data, hex.EncodeToString(sum[:])
}

// interactiveRun is the interactive mode running with a pipe as standard input.
type interactiveRun struct {
	out      *textBuf
	inW      *io.PipeWriter
	done     chan error
	typeLine func(string)
}

// startInteractive runs the interactive mode with args and the account password pw.
func startInteractive(t *testing.T, args []string, pw string) *interactiveRun {
	in, inW := io.Pipe()
	r := &interactiveRun{out: &textBuf{notify: make(chan struct{}, 1)}, inW: inW, done: make(chan error, 1)}
	go func() {
		r.done <- run(context.Background(), args, in, r.out, r.out, envOf(map[string]string{envPassword: pw}))
	}()
	r.typeLine = func(s string) {
		if _, err := io.WriteString(inW, s+"\n"); err != nil {
			t.Fatal(err)
		}
	}
	return r
}
