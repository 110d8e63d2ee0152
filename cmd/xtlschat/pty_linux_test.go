//go:build linux

package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openPTY returns a pseudo-terminal pair (Linux /dev/ptmx) with a 200x50 window.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no pseudo-terminals under CI: %v", err)
		}
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		t.Fatalf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		m.Close()
		t.Fatalf("ptsname: %v", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		t.Fatalf("open slave: %v", err)
	}
	if err := unix.IoctlSetWinsize(int(s.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 50, Col: 200}); err != nil {
		t.Fatalf("window size: %v", err)
	}
	return m, s
}

// screen accumulates what a program writes to the terminal.
type screen struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	notify chan struct{}
	done   chan struct{}
}

func readScreen(master *os.File) *screen {
	sc := &screen{notify: make(chan struct{}, 1), done: make(chan struct{})}
	go func() {
		defer close(sc.done)
		b := make([]byte, 4096)
		for {
			n, err := master.Read(b)
			if n > 0 {
				sc.mu.Lock()
				sc.buf.Write(b[:n])
				sc.mu.Unlock()
				select {
				case sc.notify <- struct{}{}:
				default:
				}
			}
			if err != nil {
				return
			}
		}
	}()
	return sc
}

func (sc *screen) String() string {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return sc.buf.String()
}

// waitFor waits until the screen shows want after offset from, and returns the offset after it.
func (sc *screen) waitFor(t *testing.T, from int, want string) int {
	t.Helper()
	deadline := time.After(60 * time.Second)
	for {
		s := sc.String()
		if i := strings.Index(s[from:], want); i >= 0 {
			return from + i + len(want)
		}
		select {
		case <-sc.notify:
		case <-deadline:
			t.Fatalf("the terminal did not show %q within 60 s; it shows:\n%s", want, s[from:])
		}
	}
}

// ptyRun is the interactive mode running on a pseudo-terminal.
type ptyRun struct {
	master, slave *os.File
	sc            *screen
	done          chan error
	type_         func(string)
}

// startPTY runs the interactive mode with args and the account password pw on a new
// pseudo-terminal; cancelling ctx ends it.
func startPTY(ctx context.Context, t *testing.T, args []string, pw string) *ptyRun {
	t.Helper()
	r := &ptyRun{done: make(chan error, 1)}
	r.master, r.slave = openPTY(t)
	t.Cleanup(func() { r.master.Close() })
	r.sc = readScreen(r.master)
	go func() { r.done <- run(ctx, args, r.slave, r.slave, r.slave, envOf(map[string]string{envPassword: pw})) }()
	r.type_ = func(s string) {
		if _, err := r.master.WriteString(s); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

// quit types /quit, waits for the end of the run and closes the terminal.
func (r *ptyRun) quit(t *testing.T) {
	t.Helper()
	r.type_("/quit\r")
	select {
	case err := <-r.done:
		if err != nil {
			t.Fatalf("interactive run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("/quit did not end the interactive run; screen:\n%s", r.sc.String())
	}
	r.slave.Close()
	r.master.Close()
	<-r.sc.done
}
