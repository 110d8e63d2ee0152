package main

import (
	"bufio"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// slixPython returns a Python 3 that imports slixmpp ≥ 1.8. Debian's python3-slixmpp lives only
// under /usr/bin/python3, which need not be the python3 first on PATH (pyenv), so it is tried
// first.
func slixPython() (string, error) {
	for _, py := range []string{"/usr/bin/python3", "python3"} {
		path, err := exec.LookPath(py)
		if err != nil {
			continue
		}
		if exec.Command(path, "-c", "import slixmpp, sys; sys.exit(0 if slixmpp.__version__ >= '1.8' else 1)").Run() == nil {
			return path, nil
		}
	}
	return "", errors.New("no python3 with slixmpp ≥ 1.8 (Debian python3-slixmpp) found in /usr/bin/python3 or on PATH")
}

// slix runs interop/slixmpp/ibb_peer.py pairs: slixmpp sends to slixmpp through the same Prosody.
type slix struct {
	py, script, ca string
}

func (b *bench) newSlix() (*slix, error) {
	py, err := slixPython()
	if err != nil {
		return nil, err
	}
	script, err := filepath.Abs(b.o.slixScript)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(script); err != nil {
		return nil, fmt.Errorf("slixmpp peer script: %w (run from the repository root or set -slixmpp-peer)", err)
	}
	dir, err := os.MkdirTemp("", "xtlsbench-slix")
	if err != nil {
		return nil, err
	}
	b.later(func() { os.RemoveAll(dir) })
	ca := filepath.Join(dir, "server.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: b.srv.Certificate.Raw}), 0o600); err != nil {
		return nil, err
	}
	return &slix{py: py, script: script, ca: ca}, nil
}

// slixProc is one running ibb_peer.py; lines holds its READY / TIMING / RESULT lines.
type slixProc struct {
	cmd    *exec.Cmd
	lines  chan []string
	done   chan error
	stderr strings.Builder
	once   sync.Once
	errOut string
}

func (b *bench) startSlix(s *slix, resource string, args ...string) (*slixProc, error) {
	jid, pw, err := b.srv.Register()
	if err != nil {
		return nil, err
	}
	host, port, _ := net.SplitHostPort(b.srv.Addr)
	full := append([]string{s.script, "--jid", jid + "/" + resource, "--host", host, "--port", port, "--ca", s.ca, "--timing"}, args...)
	cmd := exec.Command(s.py, full...)
	cmd.Env = append(os.Environ(), "IBB_PEER_PASSWORD="+pw)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	p := &slixProc{cmd: cmd, lines: make(chan []string, 8), done: make(chan error, 1)}
	cmd.Stderr = &p.stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if f := strings.Fields(sc.Text()); len(f) > 0 {
				p.lines <- f
			}
		}
		p.done <- cmd.Wait()
	}()
	return p, nil
}

// stop kills the process (if still running) and waits for it; stderr is read only after.
func (p *slixProc) stop() string {
	p.once.Do(func() {
		p.cmd.Process.Kill()
		<-p.done
		p.errOut = strings.TrimSpace(p.stderr.String())
	})
	return p.errOut
}

// wait returns the next line that starts with word.
func (p *slixProc) wait(word string, n int, d time.Duration) ([]string, error) {
	timeout := time.After(d)
	for {
		select {
		case f := <-p.lines:
			if f[0] == word && len(f) == n {
				return f, nil
			}
		case err := <-p.done:
			p.done <- err // stop() waits on it again
			return nil, fmt.Errorf("slixmpp peer exited before %s: %v", word, err)
		case <-timeout:
			return nil, fmt.Errorf("slixmpp peer: no %s within %v", word, d)
		}
	}
}

// slixIBB is one slixmpp → slixmpp XEP-0047 transfer of ibbBytes in 4096-byte blocks in IQs
// through the same Prosody. slixmpp's sender waits for each data IQ's result before the next
// (no window). Time: the sender's, from the accepted open to the acknowledged close; the receiver
// must report the same SHA-256 and length.
func (b *bench) slixIBB(s *slix) (float64, string, error) {
	recv, err := b.startSlix(s, "slix-recv", "--mode", "recv")
	if err != nil {
		return 0, "", err
	}
	defer recv.stop()
	f, err := recv.wait("READY", 2, 30*time.Second)
	if err != nil {
		return 0, "", fmt.Errorf("%w: %s", err, recv.stop())
	}
	size := b.ibbBytes()
	send, err := b.startSlix(s, "slix-send", "--mode", "send", "--peer", f[1],
		"--sid", fmt.Sprintf("bench%d", time.Now().UnixNano()), "--size", strconv.FormatInt(size, 10), "--block-size", "4096")
	if err != nil {
		return 0, "", err
	}
	defer send.stop()
	tm, err := send.wait("TIMING", 3, 150*time.Second)
	if err != nil {
		return 0, "", fmt.Errorf("sender: %w: %s", err, send.stop())
	}
	sent, err := send.wait("RESULT", 3, 10*time.Second)
	if err != nil {
		return 0, "", fmt.Errorf("sender: %w: %s", err, send.stop())
	}
	got, err := recv.wait("RESULT", 3, 30*time.Second)
	if err != nil {
		return 0, "", fmt.Errorf("receiver: %w: %s", err, recv.stop())
	}
	if got[1] != sent[1] || got[2] != sent[2] || sent[2] != strconv.FormatInt(size, 10) {
		return 0, "", fmt.Errorf("slixmpp receiver got %s bytes sha256 %s; sender sent %s bytes sha256 %s", got[2], got[1], sent[2], sent[1])
	}
	secs, err := strconv.ParseFloat(tm[1], 64)
	if err != nil || secs <= 0 {
		return 0, "", fmt.Errorf("bad TIMING %q", tm)
	}
	return float64(size) / 1e6 / secs, "", nil
}
