package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/xtlsjingle/xtlsjingle/internal/prosodytest"
)

// TestInteractiveFiles (issue 8) runs the interactive mode (standard input a pipe) through a
// real Prosody with a second in-process client: a file whose name carries a bidi override is
// refused before sending; bob sends a file, alice is offered it, accepts it with /accept and the shared
// password (srp), gets it in --download-dir with its SHA-256 printed; then alice sends a file
// back with /send (x509 now) to bob's listen --download-dir.
func TestInteractiveFiles(t *testing.T) {
	srv := prosodytest.Shared(t)
	alice, alicePW := srv.Account(t)
	bob, bobPW := srv.Account(t)
	const sharedPW = "mercutio's wit"
	dir, certFile, shared := e2eFiles(t, srv, sharedPW)
	common := []string{"--server", srv.Addr, "--server-cert", certFile, "--s5b-listen", "127.0.0.1:0", "--timeout", "60s"}
	aliceDL, bobDL := filepath.Join(dir, "alice-dl"), filepath.Join(dir, "bob-dl")
	for _, d := range []string{aliceDL, bobDL} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}

	ir := startInteractive(t, append([]string{"--jid", alice + "/ui", "--config-dir", filepath.Join(dir, "alice"), "--download-dir", aliceDL}, common...), alicePW)
	out, inW, aliceDone, typeLine := ir.out, ir.inW, ir.done, ir.typeLine
	pos := out.waitFor(t, 0, "logged in as ")
	aliceJID := regexp.MustCompile(`^[^ .]+@[^ ]+/ui`).FindString(out.String()[pos:])

	// 0. A name with a bidi override (shown as "reportexe.png") is refused before anything
	// is sent: receivers refuse such names (filetransfer.ValidName).
	bidi, _, _ := randomFile(t, dir, "report\u202egnp.exe", 1<<10)
	o0 := newEventBuf()
	err0 := run(context.Background(), append([]string{"send", "--jid", bob + "/ui-peer", "--config-dir", filepath.Join(dir, "bob"), "--to", alice + "/ui",
		"--file", bidi}, common...), strings.NewReader(""), o0, io.Discard, envOf(map[string]string{envPassword: bobPW}))
	if exitCode(err0) != exitUsage || !strings.Contains(err0.Error(), `\u202e`) {
		t.Fatalf("send of a bidi name: %v (exit %d)", err0, exitCode(err0))
	}

	// 1. bob → alice, first contact (srp).
	name := "report 2026.pdf"
	path, data, sum := randomFile(t, dir, name, 3<<20)
	bobSent := make(chan error, 1)
	go func() {
		o := newEventBuf()
		args := append([]string{"send", "--jid", bob + "/ui-peer", "--config-dir", filepath.Join(dir, "bob"), "--to", aliceJID,
			"--file", path, "--method", "srp", "--shared-password-file", shared}, common...)
		bobSent <- run(context.Background(), args, strings.NewReader(""), o, io.Discard, envOf(map[string]string{envPassword: bobPW}))
	}()
	pos = out.waitFor(t, pos, `offers the file "report 2026.pdf" (3.0 MiB) over XTLS`)
	typeLine("/accept")
	pos = out.waitFor(t, pos, "Shared password for "+bob)
	typeLine(sharedPW)
	pos = out.waitFor(t, pos, "is secure: method srp")
	pos = out.waitFor(t, pos, `** received "report 2026.pdf" from `)
	pos = out.waitFor(t, pos, "sha-256 verified, sha-256 "+sum)
	pos = out.waitFor(t, pos, "saved as "+escapeTerminal(filepath.Join(aliceDL, name)))
	if err := <-bobSent; err != nil {
		t.Fatalf("bob's send: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(aliceDL, name)); err != nil || !bytes.Equal(b, data) {
		t.Fatalf("received file differs: %v", err)
	}
	if strings.ContainsRune(out.String(), '\u202e') || strings.Contains(out.String(), sharedPW) {
		t.Fatal("an unescaped bidi override or the shared password reached the terminal")
	}

	// 2. alice → bob with /send: x509, pinned by the first transfer.
	bobOut := newEventBuf()
	bobDone := make(chan error, 1)
	go func() {
		args := append([]string{"listen", "--jid", bob + "/ui-peer", "--config-dir", filepath.Join(dir, "bob"), "--from", alice,
			"--download-dir", bobDL, "--sessions", "1"}, common...)
		bobDone <- run(context.Background(), args, strings.NewReader(""), bobOut, io.Discard, envOf(map[string]string{envPassword: bobPW}))
	}()
	bobJID := bobOut.waitFor(t, "ready", isEvent(evReady)).JID
	path, data, sum = randomFile(t, dir, "reply.txt", 100<<10)
	typeLine("/send " + bobJID + " --transport ibb " + path)
	pos = out.waitFor(t, pos, "is secure: method x509, transport ibb")
	out.waitFor(t, pos, `** sent "reply.txt" to `+bobJID+" (0.1 MiB); the receiver verified sha-256 "+sum)
	if err := <-bobDone; err != nil {
		t.Fatalf("bob's listen: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(bobDL, "reply.txt")); err != nil || !bytes.Equal(b, data) {
		t.Fatalf("bob's file differs: %v", err)
	}
	inW.Close()
	select {
	case err := <-aliceDone:
		if err != nil {
			t.Fatalf("interactive run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("end of input did not end the interactive run")
	}
}
