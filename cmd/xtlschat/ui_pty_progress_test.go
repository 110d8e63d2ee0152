//go:build linux

package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestInteractivePTYProgressBar (issue 8) receives a 6 MiB file over IBB through a real
// Prosody in the interactive mode on a pseudo-terminal: while bytes flow the prompt line shows
// the progress bar with percent, size, rate and ETA; when the file is verified the bar is
// erased (the line is cleared, x/term's ESC [K) and replaced by the final line with the
// SHA-256, after which the plain prompt is back. It fails, not skips, under CI=true without
// pseudo-terminals (openPTY) or Prosody (prosodytest).
func TestInteractivePTYProgressBar(t *testing.T) {
	const sharedPW = "parting is such sweet sorrow"
	e := newE2ESetup(t, sharedPW)
	alice, alicePW, bob, bobPW, dir, shared, common := e.alice, e.alicePW, e.bob, e.bobPW, e.dir, e.shared, e.common
	dl := filepath.Join(dir, "dl")
	if err := os.Mkdir(dl, 0o700); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr := startPTY(ctx, t, append([]string{"--jid", alice + "/pty", "--config-dir", filepath.Join(dir, "alice"), "--download-dir", dl}, common...), alicePW)
	sc, type_ := pr.sc, pr.type_
	pos := sc.waitFor(t, 0, "logged in as ")
	aliceJID := regexp.MustCompile(`^[^ .]+@[^ ]+/pty`).FindString(sc.String()[pos:])

	// IBB through Prosody (a few MB/s): the transfer takes long enough for several bars.
	path, _, sum := randomFile(t, dir, "big.bin", 6<<20)
	bobSent := make(chan error, 1)
	go func() {
		args := append([]string{"send", "--jid", bob + "/pty-peer", "--config-dir", filepath.Join(dir, "bob"), "--to", aliceJID,
			"--file", path, "--transport", "ibb", "--method", "srp", "--shared-password-file", shared}, common...)
		bobSent <- run(context.Background(), args, strings.NewReader(""), io.Discard, io.Discard, envOf(map[string]string{envPassword: bobPW}))
	}()
	pos = sc.waitFor(t, pos, `offers the file "big.bin" (6.0 MiB) over XTLS`)
	type_("/accept\r")
	pos = sc.waitFor(t, pos, "Shared password for "+bob)
	type_(sharedPW + "\r")
	pos = sc.waitFor(t, pos, "is secure: method srp, transport ibb")
	final := `** received "big.bin" from `
	end := sc.waitFor(t, pos, final)
	end = sc.waitFor(t, end, "sha-256 verified, sha-256 "+sum)
	end = sc.waitFor(t, end, "saved as "+escapeTerminal(filepath.Join(dl, "big.bin")))
	if err := <-bobSent; err != nil {
		t.Fatalf("bob's send: %v", err)
	}

	screen := sc.String()
	during := screen[pos:strings.LastIndex(screen[:end], final)]
	bar := regexp.MustCompile(`"big\.bin" \[[#-]{20}\] +(\d+)%  \d+\.\d/6\.0 MiB  \d+\.\d MiB/s  ETA \d+:\d\d > `)
	bars := bar.FindAllStringSubmatchIndex(during, -1)
	if len(bars) == 0 {
		t.Fatalf("no progress bar with percent, rate and ETA while the file came in; the terminal showed:\n%q", during)
	}
	last := bars[len(bars)-1]
	t.Logf("%d bars, the last: %q", len(bars), during[last[0]:last[1]])
	// Between the last bar and the final line x/term erases the prompt line.
	if !strings.Contains(during[last[1]:], "\x1b[K") {
		t.Fatalf("the bar was not erased before the final line: %q", during[last[1]:])
	}
	// After the final lines the plain prompt is back: no bar any more.
	time.Sleep(300 * time.Millisecond) // a late redraw would show up here
	after := sc.String()[end:]
	if strings.Contains(after, "ETA") || strings.Contains(after, "MiB/s") || !strings.Contains(after, "> ") {
		t.Fatalf("after the transfer the prompt line shows %q, want the plain prompt", after)
	}
	pr.quit(t)
}
