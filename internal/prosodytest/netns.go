package prosodytest

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xtlsjingle/xtlsjingle/internal/servertest"
)

// Namespace runs a server inside a network namespace (internal/netnstest, issue 10) instead of
// on 127.0.0.1.
type Namespace struct {
	// Exec is the command prefix that runs a program inside the namespace, e.g.
	// {"ip", "netns", "exec", NAME}.
	Exec []string
	// IP is the namespace's address that c2s and mod_proxy65 listen on; the proxy advertises it
	// as its stream host.
	IP string
	// Dial connects to a TCP address from inside the namespace (to wait for the ports).
	Dial func(addr string) (net.Conn, error)
}

// Ports used inside a namespace, which has no other listeners: Prosody's defaults.
const (
	NamespaceC2SPort   = 5222
	NamespaceProxyPort = 5000
)

// StartIn starts a new Prosody inside the network namespace ns, listening on ns.IP, and stops
// it at t's cleanup. Accounts (Account) are created from outside the namespace: prosodyctl
// only writes the data directory. When Prosody is not installed it skips t, or fails it when
// CI=true.
func StartIn(t testing.TB, ns Namespace, opts ...Option) *Server {
	t.Helper()
	var c config
	for _, o := range opts {
		o(&c)
	}
	bin := binary()
	if bin == "" {
		skipOrFail(t, "prosody is not installed")
	}
	s, err := startIn(bin, ns, c)
	if err != nil {
		t.Fatalf("prosodytest: in namespace: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("prosodytest: log tail of %s:\n%s", s.Addr, s.LogTail())
		}
		s.Stop()
	})
	return s
}

func startIn(bin string, ns Namespace, c config) (*Server, error) {
	if len(ns.Exec) == 0 || ns.IP == "" || ns.Dial == nil {
		return nil, errors.New("Namespace needs Exec, IP and Dial")
	}
	dir, err := os.MkdirTemp("", "prosodytest-netns-")
	if err != nil {
		return nil, err
	}
	s := &Server{Dir: dir, Domain: Domain, ProxyJID: ProxyDomain}
	fail := func(err error) (*Server, error) {
		os.RemoveAll(dir)
		return nil, err
	}
	certPEM, keyPEM, cert, err := selfSigned()
	if err != nil {
		return fail(err)
	}
	s.Certificate = cert
	s.RootCAs = x509.NewCertPool()
	s.RootCAs.AddCert(cert)
	certPath := filepath.Join(dir, "localhost.crt")
	keyPath := filepath.Join(dir, "localhost.key")
	if err := os.WriteFile(certPath, certPEM, 0o600); err != nil {
		return fail(err)
	}
	if err := os.WriteFile(keyPath, keyPEM, 0o600); err != nil {
		return fail(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "data"), 0o700); err != nil {
		return fail(err)
	}
	s.Addr = net.JoinHostPort(ns.IP, strconv.Itoa(NamespaceC2SPort))
	s.ProxyAddr = net.JoinHostPort(ns.IP, strconv.Itoa(NamespaceProxyPort))
	s.logPath = filepath.Join(dir, "prosody.log")
	s.cfgPath = filepath.Join(dir, "prosody.cfg.lua")
	// The loopback configuration with every interface, and the proxy's advertised address,
	// moved to ns.IP.
	text := configText(dir, certPath, keyPath, s.logPath, NamespaceC2SPort, NamespaceProxyPort, c)
	text = strings.ReplaceAll(text, strconv.Quote("127.0.0.1"), strconv.Quote(ns.IP))
	if err := os.WriteFile(s.cfgPath, []byte(text), 0o600); err != nil {
		return fail(err)
	}
	args := append(append([]string{}, ns.Exec[1:]...), bin, "--config", s.cfgPath)
	cmd := exec.Command(ns.Exec[0], args...)
	cmd.Dir = dir
	s.proc, err = servertest.StartProcess(cmd)
	if err != nil {
		return fail(fmt.Errorf("starting %s: %w", bin, err))
	}
	deadline := time.Now().Add(StartTimeout)
	for _, addr := range []string{s.Addr, s.ProxyAddr} {
		for {
			conn, err := ns.Dial(addr)
			if err == nil {
				conn.Close()
				break
			}
			if !s.proc.Running() {
				tail := s.LogTail()
				os.RemoveAll(dir)
				return nil, fmt.Errorf("prosody exited during start-up: %v\nlog tail:\n%s", s.proc.Err, tail)
			}
			if time.Now().After(deadline) {
				tail := s.LogTail()
				s.Stop()
				return nil, fmt.Errorf("prosody did not accept connections on %s within %v\nlog tail:\n%s", addr, StartTimeout, tail)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return s, nil
}
