package servertest

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Endpoint is what a test dials: the addresses and identity of one server. The helpers'
// Server types embed it; its fields are read-only.
type Endpoint struct {
	// Addr is the c2s listener, "127.0.0.1:port" (STARTTLS, encryption required).
	Addr string
	// Domain is the server's XMPP domain ("localhost"); use it as the TLS ServerName.
	Domain string
	// RootCAs holds only the server's self-signed certificate: pin it in tls.Config.RootCAs.
	RootCAs *x509.CertPool
	// Certificate is the server's certificate (also in RootCAs).
	Certificate *x509.Certificate
	// ProxyJID is the JID of the SOCKS5 bytestream proxy (XEP-0065).
	ProxyJID string
	// ProxyAddr is the proxy's stream host, "127.0.0.1:port", as the proxy advertises it.
	ProxyAddr string
}

// NewEndpoint returns the Endpoint of a server for domain with the proxy proxyJID and a
// fresh self-signed certificate (SelfSigned), which it also returns as PEM for the server's
// configuration. The addresses are left to the caller.
func NewEndpoint(domain, proxyJID string) (ep Endpoint, certPEM, keyPEM []byte, err error) {
	certPEM, keyPEM, cert, err := SelfSigned(domain)
	if err != nil {
		return Endpoint{}, nil, nil, err
	}
	ep = Endpoint{Domain: domain, ProxyJID: proxyJID, Certificate: cert, RootCAs: x509.NewCertPool()}
	ep.RootCAs.AddCert(cert)
	return ep, certPEM, keyPEM, nil
}

// Run is one started server: its process, its temporary directory and its log file. The
// helpers keep one in their Server and forward Running, LogTail and Stop to it.
type Run struct {
	Proc    *Process
	Dir     string
	LogPath string

	stopMu  sync.Mutex
	stopped atomic.Bool
}

// Running reports whether the process is still running and Stop was not called.
func (r *Run) Running() bool { return r.Proc.Running() && !r.stopped.Load() }

// LogTail returns the last 8 KiB of the log (and the process's exit and output if it exited).
func (r *Run) LogTail() string {
	out := Tail(r.LogPath, 8<<10)
	if !r.Proc.Running() && r.Proc.Err != nil {
		out += "\n(process exit: " + r.Proc.Err.Error() + ")"
	}
	return out
}

// Stop terminates the process (SIGTERM, then SIGKILL after 5 s) and removes the directory.
// It is safe to call more than once.
func (r *Run) Stop() {
	r.stopMu.Lock()
	defer r.stopMu.Unlock()
	if r.stopped.Swap(true) {
		return
	}
	r.Proc.Stop(5 * time.Second)
	os.RemoveAll(r.Dir)
}

// Server is what the shared-instance and cleanup helpers need from a helper's server.
type Server interface {
	Running() bool
	LogTail() string
	Stop()
}

// Shared is the one lazily started server of a test binary.
type Shared[S Server] struct {
	mu      sync.Mutex
	srv     S
	started bool
	err     error
}

// Get returns the server, starting it with start on first use; a start error or a server that
// has exited fails t. pkg names the helper in messages.
func (sh *Shared[S]) Get(t testing.TB, pkg string, start func() (S, error)) S {
	t.Helper()
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if !sh.started {
		sh.srv, sh.err = start()
		sh.started = true
	}
	if sh.err != nil {
		t.Fatalf("%s: shared server: %v", pkg, sh.err)
	}
	if !sh.srv.Running() {
		t.Fatalf("%s: shared server has exited:\n%s", pkg, sh.srv.LogTail())
	}
	return sh.srv
}

// Stop stops the server, if one was started.
func (sh *Shared[S]) Stop() {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.started && sh.err == nil {
		sh.srv.Stop()
	}
}

// Main runs the tests of m, then calls every stop (e.g. the helpers' StopShared) and exits.
func Main(m *testing.M, stop ...func()) {
	code := m.Run()
	for _, f := range stop {
		f()
	}
	os.Exit(code)
}

// StopAtCleanup stops s when t's cleanup runs, logging the end of its log first if t failed.
func StopAtCleanup(t testing.TB, pkg, addr string, s Server) {
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s: log tail of %s:\n%s", pkg, addr, s.LogTail())
		}
		s.Stop()
	})
}

// Retry calls start up to attempts times while it fails with an error that wraps retryable
// (a free port taken between FreePort and the server's bind).
func Retry[S any](attempts int, retryable error, start func() (S, error)) (S, error) {
	var (
		s   S
		err error
	)
	for range attempts {
		s, err = start()
		if err == nil || !errors.Is(err, retryable) {
			break
		}
	}
	return s, err
}

// Credentials returns the n-th account's user name (letters and digits only, so that no
// server escapes it in file names) and a fresh random password.
func Credentials(n uint64) (user, password string, err error) {
	var rnd [12]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return "", "", err
	}
	return "u" + strconv.FormatUint(n, 10) + "x" + hex.EncodeToString(rnd[:3]), hex.EncodeToString(rnd[3:]), nil
}

// Account calls register and fails t if it fails.
func Account(t testing.TB, pkg string, register func() (jid, password string, err error)) (jid, password string) {
	t.Helper()
	jid, password, err := register()
	if err != nil {
		t.Fatalf("%s: %v", pkg, err)
	}
	return jid, password
}
