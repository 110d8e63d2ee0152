// Package servertest holds what the real-server test helpers (internal/prosodytest,
// internal/ejabberdtest) share: a self-signed certificate for the test domain, free loopback
// ports, the skip-or-fail rule for a missing server, and starting a server process that dies
// with the test binary.
package servertest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// SelfSigned generates an ECDSA P-256 certificate for domain and *.domain, valid for a day,
// and returns it as PEM (certificate, PKCS #8 key) and parsed.
func SelfSigned(domain string) (certPEM, keyPEM []byte, cert *x509.Certificate, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return nil, nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: domain},
		DNSNames:              []string{domain, "*." + domain},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, nil, err
	}
	cert, err = x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, nil, err
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	return certPEM, keyPEM, cert, nil
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// SkipOrFail skips t because what is missing (e.g. "prosody is not installed") is not
// there, or fails it when the environment variable CI is "true". pkg names the helper and
// install what to install.
func SkipOrFail(t testing.TB, pkg, missing, install string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s: %s (CI=true, so this is a failure, not a skip)", pkg, missing)
	}
	t.Skipf("%s: %s; install %s to run this integration test", pkg, missing, install)
}

// Process is a server started by StartProcess.
type Process struct {
	Cmd *exec.Cmd
	// Exited is closed when the process has exited; Err is valid after that.
	Exited chan struct{}
	Err    error
}

// StartProcess starts cmd (its output is kept for Err) so that it dies with the test binary:
// Pdeathsig is delivered when the OS thread that forked the child exits, so the child is
// started from a goroutine locked to its thread for the child's whole life. The child gets
// its own process group.
func StartProcess(cmd *exec.Cmd) (*Process, error) {
	p := &Process{Cmd: cmd, Exited: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with this goroutine, after the child
		var out bytes.Buffer
		cmd.Stdout = &out
		cmd.Stderr = &out
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
		if err := cmd.Start(); err != nil {
			started <- err
			close(p.Exited)
			return
		}
		started <- nil
		err := cmd.Wait()
		if out.Len() > 0 {
			err = fmt.Errorf("%v; output: %s", err, bytes.TrimSpace(out.Bytes()))
		}
		p.Err = err
		close(p.Exited)
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return p, nil
}

// Stop sends SIGTERM, then SIGKILL after grace, and waits for the process to exit.
func (p *Process) Stop(grace time.Duration) {
	if p == nil || p.Cmd.Process == nil {
		return
	}
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.Exited:
	case <-time.After(grace):
		_ = p.Cmd.Process.Kill()
		<-p.Exited
	}
}

// Running reports whether the process has not exited yet.
func (p *Process) Running() bool {
	select {
	case <-p.Exited:
		return false
	default:
		return true
	}
}

// Tail returns the last max bytes of the file at path, starting at a line boundary.
func Tail(path string, max int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	if len(b) > max {
		b = b[len(b)-max:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return string(b)
}

// WaitListening waits until every address in addrs accepts a TCP connection, the process
// exits (errExited) or timeout passes.
func WaitListening(p *Process, addrs []string, timeout time.Duration) (pending string, err error) {
	return WaitListeningDial(p, addrs, timeout, func(addr string) (net.Conn, error) {
		return net.DialTimeout("tcp", addr, 500*time.Millisecond)
	})
}

// WaitListeningDial is WaitListening with the connections made by dial (e.g. from inside a
// network namespace).
func WaitListeningDial(p *Process, addrs []string, timeout time.Duration, dial func(addr string) (net.Conn, error)) (pending string, err error) {
	deadline := time.Now().Add(timeout)
	for {
		for len(addrs) > 0 {
			conn, err := dial(addrs[0])
			if err != nil {
				break
			}
			conn.Close()
			addrs = addrs[1:]
		}
		if len(addrs) == 0 {
			return "", nil
		}
		select {
		case <-p.Exited:
			return addrs[0], ErrExited
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return addrs[0], ErrTimeout
		}
	}
}

// Errors of WaitListening.
var (
	ErrExited  = fmt.Errorf("servertest: the server exited during start-up")
	ErrTimeout = fmt.Errorf("servertest: the server did not accept connections in time")
)
