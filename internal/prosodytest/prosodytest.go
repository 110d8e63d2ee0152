// Package prosodytest starts a private Prosody XMPP server on 127.0.0.1 for integration tests.
//
// Each server gets a temporary directory with its own configuration, data directory, log file
// and a freshly generated self-signed certificate for the domain "localhost"; it listens for
// client connections (c2s, STARTTLS required) and runs mod_proxy65 (XEP-0065) as the component
// "proxy.localhost", both on free loopback ports. Accounts are created on demand with
// prosodyctl. Stream management (smacks) and rate limits (mod_limits) are not loaded unless an
// option asks for them; mod_posix is never loaded, so the server runs in the foreground as a
// child of the test binary and dies with it (Pdeathsig).
//
// When Prosody is not installed, Start and Shared skip the test with a clear message, except
// when the environment variable CI is "true": then the test fails.
//
//	func TestMain(m *testing.M) { prosodytest.Main(m) }
//
//	func TestSomething(t *testing.T) {
//		srv := prosodytest.Shared(t)
//		jid, password := srv.Account(t)
//		// dial srv.Addr with tls.Config{RootCAs: srv.RootCAs, ServerName: srv.Domain}
//	}
package prosodytest

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xtlsjingle/xtlsjingle/internal/servertest"
)

// Domain is the XMPP domain every server serves.
const Domain = "localhost"

// ProxyDomain is the JID of the mod_proxy65 component.
const ProxyDomain = "proxy.localhost"

// StartTimeout bounds how long Start waits for the c2s and proxy ports to accept connections.
const StartTimeout = 15 * time.Second

// Server is a running Prosody. Its fields are read-only. ProxyJID is the mod_proxy65
// component; the proxy advertises ProxyAddr as its stream host.
type Server struct {
	servertest.Endpoint
	// Dir is the temporary directory with the configuration, data and log.
	Dir string

	cfgPath string
	run     servertest.Run
	nextAcc atomic.Uint64
}

type config struct {
	limits     bool
	limitsRate string
	modules    []string
	debugLog   bool
}

// Option changes how Start configures the server.
type Option func(*config)

// WithLimits loads mod_limits with the given c2s rate (e.g. "10kb/s"; "" keeps Prosody's
// default, which is 10kb/s with a burst of 2s), for tests of behaviour under server rate limits.
func WithLimits(rate string) Option {
	return func(c *config) { c.limits, c.limitsRate = true, rate }
}

// WithModules loads additional Prosody modules (e.g. "smacks").
func WithModules(names ...string) Option {
	return func(c *config) { c.modules = append(c.modules, names...) }
}

// WithDebugLog writes the log at debug level (every stanza), for diagnosing a failing test.
func WithDebugLog() Option {
	return func(c *config) { c.debugLog = true }
}

// binary returns the path of the prosody executable, or "" when it is not installed.
func binary() string {
	if p, err := exec.LookPath("prosody"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/bin/prosody"); err == nil {
		return "/usr/bin/prosody"
	}
	return ""
}

func ctlBinary(prosody string) string {
	p := filepath.Join(filepath.Dir(prosody), "prosodyctl")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	if p, err := exec.LookPath("prosodyctl"); err == nil {
		return p
	}
	return ""
}

// skipOrFail skips t when Prosody is missing, or fails it when CI=true.
func skipOrFail(t testing.TB, msg string) {
	t.Helper()
	servertest.SkipOrFail(t, "prosodytest", msg, "the Debian package prosody")
}

// Start starts a new Prosody for t and stops it when t's cleanup runs.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	var c config
	for _, o := range opts {
		o(&c)
	}
	s, err := launch(c)
	if errors.Is(err, ErrNotInstalled) {
		skipOrFail(t, "prosody is not installed")
	}
	if err != nil {
		t.Fatalf("prosodytest: %v", err)
	}
	servertest.StopAtCleanup(t, "prosodytest", s.Addr, s)
	return s
}

// ErrNotInstalled is returned by Launch when no prosody executable is found.
var ErrNotInstalled = errors.New("prosodytest: prosody is not installed")

// Launch starts a new Prosody outside of a test (e.g. a benchmark command). The caller must
// call Stop; the process also dies with the calling program. When Prosody is missing the error
// is ErrNotInstalled.
func Launch(opts ...Option) (*Server, error) {
	var c config
	for _, o := range opts {
		o(&c)
	}
	return launch(c)
}

func launch(c config) (*Server, error) {
	bin := binary()
	if bin == "" {
		return nil, ErrNotInstalled
	}
	return start(bin, c)
}

// Register is Account for code without a testing.TB: it registers a fresh account and returns
// its bare JID and password.
func (s *Server) Register() (jid, password string, err error) { return s.register() }

// NagleOff reports the network setting every server gets: Nagle's algorithm is disabled
// (network_settings = { nagle = false }), recorded by benchmarks next to their numbers.
const NagleOff = true

var shared servertest.Shared[*Server]

// Shared returns the one server of this test binary, starting it on first use. It stays up
// until Main's cleanup, or until the test binary exits (it dies with its parent).
func Shared(t testing.TB) *Server {
	t.Helper()
	bin := binary()
	if bin == "" {
		skipOrFail(t, "prosody is not installed")
	}
	return shared.Get(t, "prosodytest", func() (*Server, error) { return start(bin, config{}) })
}

// Main runs the tests of m and then stops the shared server, if one was started:
//
//	func TestMain(m *testing.M) { prosodytest.Main(m) }
func Main(m *testing.M) { servertest.Main(m, StopShared) }

// StopShared stops the shared server, if one was started: for a TestMain that also stops
// other helpers' servers after m.Run.
func StopShared() { shared.Stop() }

func freePort() (int, error) { return servertest.FreePort() }

// start starts a server; a free port can be taken between freePort and Prosody's bind, so it
// retries a few times.
func start(bin string, c config) (*Server, error) {
	return servertest.Retry(3, errBind, func() (*Server, error) { return startOnce(bin, c) })
}

var errBind = errors.New("prosody could not bind its ports")

func startOnce(bin string, c config) (*Server, error) {
	c2sPort, err := freePort()
	if err != nil {
		return nil, err
	}
	proxyPort, err := freePort()
	if err != nil {
		return nil, err
	}
	return launchAt(bin, c, placement{ip: "127.0.0.1", c2sPort: c2sPort, proxyPort: proxyPort})
}

// placement is where a Prosody runs: on 127.0.0.1 (Start, Shared) or inside a network
// namespace (StartIn).
type placement struct {
	ip                 string
	c2sPort, proxyPort int
	// exec is the command prefix that runs Prosody (nil: run it directly).
	exec []string
	// dial connects to the server's ports to wait for them (nil: from here).
	dial func(addr string) (net.Conn, error)
}

// launchAt writes a configuration for p and starts Prosody with it.
func launchAt(bin string, c config, p placement) (*Server, error) {
	dir, err := os.MkdirTemp("", "prosodytest-")
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*Server, error) {
		os.RemoveAll(dir)
		return nil, err
	}
	ep, certPEM, keyPEM, err := servertest.NewEndpoint(Domain, ProxyDomain)
	if err != nil {
		return fail(err)
	}
	s := &Server{Endpoint: ep, Dir: dir}
	s.run.Dir = dir
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
	s.Addr = net.JoinHostPort(p.ip, strconv.Itoa(p.c2sPort))
	s.ProxyAddr = net.JoinHostPort(p.ip, strconv.Itoa(p.proxyPort))
	s.run.LogPath = filepath.Join(dir, "prosody.log")
	s.cfgPath = filepath.Join(dir, "prosody.cfg.lua")
	text := configText(dir, certPath, keyPath, s.run.LogPath, p.c2sPort, p.proxyPort, c)
	// Every interface and the proxy's advertised address are at p.ip.
	text = strings.ReplaceAll(text, strconv.Quote("127.0.0.1"), strconv.Quote(p.ip))
	if err := os.WriteFile(s.cfgPath, []byte(text), 0o600); err != nil {
		return fail(err)
	}

	argv := append(append([]string{}, p.exec...), bin, "--config", s.cfgPath)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	s.run.Proc, err = servertest.StartProcess(cmd)
	if err != nil {
		return fail(fmt.Errorf("starting %s: %w", bin, err))
	}
	// c2s comes up before the proxy65 component: wait for both.
	addrs := []string{s.Addr, s.ProxyAddr}
	var pending string
	if p.dial != nil {
		pending, err = servertest.WaitListeningDial(s.run.Proc, addrs, StartTimeout, p.dial)
	} else {
		pending, err = servertest.WaitListening(s.run.Proc, addrs, StartTimeout)
	}
	switch {
	case errors.Is(err, servertest.ErrExited):
		tail := s.LogTail()
		os.RemoveAll(dir)
		err := fmt.Errorf("prosody exited during start-up: %v\nlog tail:\n%s", s.run.Proc.Err, tail)
		if strings.Contains(tail, "Failed to open server port") || strings.Contains(tail, "address already in use") {
			err = fmt.Errorf("%w: %v", errBind, err)
		}
		return nil, err
	case err != nil:
		tail := s.LogTail()
		s.Stop()
		return nil, fmt.Errorf("prosody did not accept connections on %s within %v\nlog tail:\n%s", pending, StartTimeout, tail)
	}
	return s, nil
}

func configText(dir, certPath, keyPath, logPath string, c2sPort, proxyPort int, c config) string {
	q := strconv.Quote
	modules := []string{"roster", "saslauth", "tls", "disco", "ping", "presence", "version"}
	if c.limits {
		modules = append(modules, "limits")
	}
	modules = append(modules, c.modules...)
	var b strings.Builder
	fmt.Fprintf(&b, "-- generated by internal/prosodytest\n")
	fmt.Fprintf(&b, "run_as_root = true\ndaemonize = false\n")
	// Prosody leaves Nagle's algorithm on by default, which holds every small stanza ~40 ms
	// behind the previous one's ACK: XTLS setup took 150–280 ms instead of 5–8 ms. Deployments
	// should set the same (README, "Running a server").
	fmt.Fprintf(&b, "network_settings = { nagle = false }\n")
	fmt.Fprintf(&b, "pidfile = %s\n", q(filepath.Join(dir, "prosody.pid")))
	fmt.Fprintf(&b, "data_path = %s\n", q(filepath.Join(dir, "data")))
	fmt.Fprintf(&b, "certificates = %s\n", q(dir))
	fmt.Fprintf(&b, "modules_enabled = {")
	for _, m := range modules {
		fmt.Fprintf(&b, " %s;", q(m))
	}
	fmt.Fprintf(&b, " }\n")
	fmt.Fprintf(&b, "modules_disabled = { \"posix\"; \"s2s\"; \"offline\"; }\n")
	fmt.Fprintf(&b, "interfaces = { \"127.0.0.1\" }\nlocal_interfaces = { \"127.0.0.1\" }\n")
	fmt.Fprintf(&b, "c2s_ports = { %d }\nc2s_interfaces = { \"127.0.0.1\" }\n", c2sPort)
	fmt.Fprintf(&b, "c2s_direct_tls_ports = {}\nlegacy_ssl_ports = {}\ns2s_ports = {}\nhttp_ports = {}\nhttps_ports = {}\ncomponent_ports = {}\n")
	fmt.Fprintf(&b, "proxy65_ports = { %d }\nproxy65_interfaces = { \"127.0.0.1\" }\n", proxyPort)
	fmt.Fprintf(&b, "c2s_require_encryption = true\nallow_registration = false\n")
	fmt.Fprintf(&b, "authentication = \"internal_hashed\"\nstorage = \"internal\"\n")
	level := "info"
	if c.debugLog {
		level = "debug"
	}
	fmt.Fprintf(&b, "log = { { levels = { min = %s }, to = \"file\", filename = %s } }\n", q(level), q(logPath))
	fmt.Fprintf(&b, "ssl = { certificate = %s; key = %s; }\n", q(certPath), q(keyPath))
	if c.limits && c.limitsRate != "" {
		fmt.Fprintf(&b, "limits = { c2s = { rate = %s; burst = \"2s\" } }\n", q(c.limitsRate))
	}
	fmt.Fprintf(&b, "VirtualHost %s\n", q(Domain))
	fmt.Fprintf(&b, "Component %s \"proxy65\"\n", q(ProxyDomain))
	fmt.Fprintf(&b, "\tproxy65_address = \"127.0.0.1\"\n")
	return b.String()
}

// Account registers a fresh account with a random password and returns its bare JID and
// password. Register accounts before the test connects with them.
func (s *Server) Account(t testing.TB) (jid, password string) {
	t.Helper()
	return servertest.Account(t, "prosodytest", s.register)
}

func (s *Server) register() (jid, password string, err error) {
	user, password, err := servertest.Credentials(s.nextAcc.Add(1))
	if err != nil {
		return "", "", err
	}
	ctl := ctlBinary(binary())
	if ctl == "" {
		return "", "", errors.New("prosodyctl not found next to prosody")
	}
	cmd := exec.Command(ctl, "--config", s.cfgPath, "register", user, s.Domain, password)
	cmd.Dir = s.Dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", "", fmt.Errorf("prosodyctl register %s: %v: %s", user, err, bytes.TrimSpace(out))
	}
	if _, err := os.Stat(filepath.Join(s.Dir, "data", s.Domain, "accounts", user+".dat")); err != nil {
		return "", "", fmt.Errorf("prosodyctl register %s did not create the account: %v", user, err)
	}
	return user + "@" + s.Domain, password, nil
}

// Running reports whether the Prosody process is still running.
func (s *Server) Running() bool { return s.run.Running() }

// LogTail returns the last 8 KiB of the server's log (and its console output if it exited).
func (s *Server) LogTail() string { return s.run.LogTail() }

// Stop terminates the server (SIGTERM, then SIGKILL after 5 s) and removes its directory.
// It is safe to call more than once.
func (s *Server) Stop() { s.run.Stop() }
