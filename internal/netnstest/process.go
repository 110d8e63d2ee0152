package netnstest

import (
	"bufio"
	"bytes"
	"io"
	"os/exec"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Proc is a program running inside a namespace (NS.Start).
type Proc struct {
	// Lines delivers the program's standard output line by line; it is closed at EOF.
	Lines <-chan string
	// Exited is closed when the program has exited.
	Exited <-chan struct{}

	cmd    *exec.Cmd
	stdin  io.WriteCloser
	mu     sync.Mutex
	stderr bytes.Buffer
	err    error
}

// syncWriter guards a buffer written by exec's copying goroutine and read by the test.
type syncWriter struct{ p *Proc }

func (w syncWriter) Write(b []byte) (int, error) {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	return w.p.stderr.Write(b)
}

// Start runs name inside the namespace with extra environment variables env. The program dies
// with the test binary (Pdeathsig) and is killed at t's cleanup, with its process group; if the
// test failed, its standard error is logged then.
func (n *NS) Start(t testing.TB, env []string, name string, args ...string) *Proc {
	t.Helper()
	cmd := n.Command(name, args...)
	cmd.Env = append(cmd.Environ(), env...)
	p := &Proc{cmd: cmd}
	cmd.Stderr = syncWriter{p}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.stdin, err = cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 64)
	exited := make(chan struct{})
	p.Lines, p.Exited = lines, exited
	started := make(chan error, 1)
	// Pdeathsig fires when the thread that forked the child exits, so that thread stays
	// locked to this goroutine for the child's whole life.
	go func() {
		runtime.LockOSThread()
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
		if err := cmd.Start(); err != nil {
			started <- err
			close(lines)
			close(exited)
			return
		}
		started <- nil
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		err := cmd.Wait()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(exited)
	}()
	if err := <-started; err != nil {
		t.Fatalf("netnstest: starting %s in %s: %v", name, n.Name, err)
	}
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("netnstest: %s in %s: exit %v, stderr:\n%s", name, n.Name, p.Err(), p.Stderr())
		}
	})
	return p
}

// Pid is the program's process ID.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Send writes one line to the program's standard input.
func (p *Proc) Send(line string) error {
	_, err := io.WriteString(p.stdin, line+"\n")
	return err
}

// CloseInput closes the program's standard input.
func (p *Proc) CloseInput() error { return p.stdin.Close() }

// Wait waits up to timeout for the program to exit and reports whether it did.
func (p *Proc) Wait(timeout time.Duration) bool {
	select {
	case <-p.Exited:
		return true
	case <-time.After(timeout):
		return false
	}
}

// Kill kills the program's process group and waits for it to exit.
func (p *Proc) Kill() {
	select {
	case <-p.Exited:
		return
	default:
	}
	if p.cmd.Process != nil {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	}
	go func() { // unblock the reader if nobody reads the lines any more
		for range p.Lines {
		}
	}()
	<-p.Exited
}

// Err is the program's exit error (nil while it runs or after a clean exit).
func (p *Proc) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// Stderr is what the program wrote to standard error so far.
func (p *Proc) Stderr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}
