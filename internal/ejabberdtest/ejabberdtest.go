// Package ejabberdtest starts a private ejabberd XMPP server (Debian package ejabberd 23.01)
// on 127.0.0.1 for integration tests, as internal/prosodytest does for Prosody.
//
// Each server gets a temporary directory with its own configuration (ejabberd.yml), Mnesia
// spool, logs and a freshly generated self-signed certificate for the domain "localhost"; it
// listens for client connections (c2s, STARTTLS required, SASL PLAIN offered after TLS) and
// runs mod_proxy65 (XEP-0065) as "proxy.localhost", both on free loopback ports. Accounts are
// created on demand through mod_http_api's register command on a third loopback port, which
// only 127.0.0.1 may use for that command.
//
// The Erlang VM is started directly (erl -s ejabberd, as `ejabberdctl foreground` does, but
// without its `su ejabberd`): it runs in the foreground as a child of the test binary and
// dies with it (Pdeathsig). It starts without Erlang distribution (node nonode@nohost,
// -start_epmd false): no node name can collide between parallel test binaries, no epmd is
// started, and nothing listens beyond loopback.
//
// The c2s listener has no shaper unless WithDefaultShaper asks for the one ejabberd ships
// (shaper "normal": 3000 B/s with a 20000-byte burst, for every user but admins), for tests
// of behaviour under the server's rate limit.
//
// When ejabberd is not installed, Start and Shared skip the test with a clear message, except
// when the environment variable CI is "true": then the test fails.
//
//	func TestMain(m *testing.M) { code := m.Run(); ejabberdtest.StopShared(); os.Exit(code) }
//
//	func TestSomething(t *testing.T) {
//		srv := ejabberdtest.Shared(t)
//		jid, password := srv.Account(t)
//		// dial srv.Addr with tls.Config{RootCAs: srv.RootCAs, ServerName: srv.Domain}
//	}
package ejabberdtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
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

// ProxyDomain is the JID of the mod_proxy65 service.
const ProxyDomain = "proxy.localhost"

// StartTimeout bounds how long Start waits for the c2s, proxy and API ports to accept
// connections (ejabberd starts in about a second on an idle machine).
const StartTimeout = 30 * time.Second

// Default shaper of the Debian package's /etc/ejabberd/ejabberd.yml (shaper "normal"), which
// WithDefaultShaper keeps: the bytes ejabberd reads from each client connection (after TLS).
const (
	ShaperRate  = 3000  // bytes per second
	ShaperBurst = 20000 // bytes
)

// Server is a running ejabberd. Its fields are read-only. ProxyJID is the mod_proxy65
// service; the proxy advertises ProxyAddr as its stream host.
type Server struct {
	servertest.Endpoint
	// Shaped reports whether the c2s listener has ejabberd's default shaper (ShaperRate).
	Shaped bool
	// Dir is the temporary directory with the configuration, spool and logs.
	Dir string

	apiAddr string
	cfgPath string
	run     servertest.Run
	nextAcc atomic.Uint64
}

type config struct {
	shaper   bool
	debugLog bool
}

// Option changes how Start configures the server.
type Option func(*config)

// WithDefaultShaper keeps ejabberd's default c2s shaper (ShaperRate bytes/s, ShaperBurst
// burst), as the Debian package configures it.
func WithDefaultShaper() Option { return func(c *config) { c.shaper = true } }

// WithDebugLog writes the log at debug level (every stanza), for diagnosing a failing test.
func WithDebugLog() Option { return func(c *config) { c.debugLog = true } }

// ErrNotInstalled is returned by Launch when ejabberd (or Erlang) is not installed.
var ErrNotInstalled = errors.New("ejabberdtest: ejabberd is not installed")

// install finds the Erlang runtime and the directory that holds ejabberd's Erlang
// applications (ERL_LIBS), or returns "" when ejabberd is not installed.
func install() (erl, libs string) {
	erl = "/usr/bin/erl"
	if _, err := os.Stat(erl); err != nil {
		p, err := exec.LookPath("erl")
		if err != nil {
			return "", ""
		}
		erl = p
	}
	m, _ := filepath.Glob("/usr/lib/*/ejabberd-*/ebin/ejabberd.beam")
	if len(m) == 0 {
		m, _ = filepath.Glob("/usr/lib/ejabberd-*/ebin/ejabberd.beam")
	}
	if len(m) == 0 {
		return "", ""
	}
	return erl, filepath.Dir(filepath.Dir(filepath.Dir(m[0])))
}

func skipOrFail(t testing.TB) {
	t.Helper()
	servertest.SkipOrFail(t, "ejabberdtest", "ejabberd is not installed", "the Debian package ejabberd")
}

// Start starts a new ejabberd for t and stops it when t's cleanup runs.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s, err := Launch(opts...)
	if errors.Is(err, ErrNotInstalled) {
		skipOrFail(t)
	}
	if err != nil {
		t.Fatalf("ejabberdtest: %v", err)
	}
	servertest.StopAtCleanup(t, "ejabberdtest", s.Addr, s)
	return s
}

// Launch starts a new ejabberd outside of a test (e.g. a benchmark command). The caller must
// call Stop; the process also dies with the calling program. When ejabberd is missing the
// error is ErrNotInstalled.
func Launch(opts ...Option) (*Server, error) {
	var c config
	for _, o := range opts {
		o(&c)
	}
	erl, libs := install()
	if erl == "" {
		return nil, ErrNotInstalled
	}
	// A free port can be taken between FreePort and ejabberd's bind: retry a few times.
	return servertest.Retry(3, errBind, func() (*Server, error) { return startOnce(erl, libs, c) })
}

var shared servertest.Shared[*Server]

// Shared returns the one unshaped server of this test binary, starting it on first use. It
// stays up until StopShared, or until the test binary exits (it dies with its parent).
func Shared(t testing.TB) *Server {
	t.Helper()
	if erl, _ := install(); erl == "" {
		skipOrFail(t)
	}
	return shared.Get(t, "ejabberdtest", func() (*Server, error) { return Launch() })
}

// StopShared stops the shared server, if one was started. Call it from TestMain after m.Run.
func StopShared() { shared.Stop() }

// Main runs the tests of m and then stops the shared server:
//
//	func TestMain(m *testing.M) { ejabberdtest.Main(m) }
func Main(m *testing.M) { servertest.Main(m, StopShared) }

var errBind = errors.New("ejabberd could not bind its ports")

func startOnce(erl, libs string, c config) (*Server, error) {
	dir, err := os.MkdirTemp("", "ejabberdtest-")
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
	s := &Server{Endpoint: ep, Shaped: c.shaper, Dir: dir}
	s.run.Dir = dir
	pemPath := filepath.Join(dir, "localhost.pem") // ejabberd's certfiles: certificate and key in one file
	if err := os.WriteFile(pemPath, append(certPEM, keyPEM...), 0o600); err != nil {
		return fail(err)
	}
	spool := filepath.Join(dir, "db")
	if err := os.Mkdir(spool, 0o700); err != nil {
		return fail(err)
	}
	var ports [3]int
	for i := range ports {
		if ports[i], err = servertest.FreePort(); err != nil {
			return fail(err)
		}
	}
	c2sPort, proxyPort, apiPort := ports[0], ports[1], ports[2]
	s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(c2sPort))
	s.ProxyAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(proxyPort))
	s.apiAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(apiPort))
	s.run.LogPath = filepath.Join(dir, "ejabberd.log")
	s.cfgPath = filepath.Join(dir, "ejabberd.yml")
	if err := os.WriteFile(s.cfgPath, []byte(configText(pemPath, c2sPort, proxyPort, apiPort, c)), 0o600); err != nil {
		return fail(err)
	}

	// What `ejabberdctl --config-dir DIR --config DIR/ejabberd.yml --logs DIR --spool DIR/db
	// foreground` runs, minus the distribution (-sname) and the su to the ejabberd user.
	cmd := exec.Command(erl, "-noinput", "-start_epmd", "false", "+K", "true",
		"-mnesia", "dir", strconv.Quote(spool), "-s", "ejabberd")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"HOME="+dir,
		"ERL_LIBS="+libs,
		"EJABBERD_CONFIG_PATH="+s.cfgPath,
		"EJABBERD_LOG_PATH="+s.run.LogPath,
		"ERL_CRASH_DUMP_BYTES=0",
	)
	s.run.Proc, err = servertest.StartProcess(cmd)
	if err != nil {
		return fail(fmt.Errorf("starting %s: %w", erl, err))
	}
	pending, err := servertest.WaitListening(s.run.Proc, []string{s.Addr, s.ProxyAddr, s.apiAddr}, StartTimeout)
	switch {
	case errors.Is(err, servertest.ErrExited):
		tail := s.LogTail()
		os.RemoveAll(dir)
		err := fmt.Errorf("ejabberd exited during start-up: %v\nlog tail:\n%s", s.run.Proc.Err, tail)
		if strings.Contains(tail, "eaddrinuse") {
			err = fmt.Errorf("%w: %v", errBind, err)
		}
		return nil, err
	case err != nil:
		tail := s.LogTail()
		s.Stop()
		if strings.Contains(tail, "eaddrinuse") {
			return nil, fmt.Errorf("%w: %s\nlog tail:\n%s", errBind, pending, tail)
		}
		return nil, fmt.Errorf("ejabberd did not accept connections on %s within %v\nlog tail:\n%s", pending, StartTimeout, tail)
	}
	return s, nil
}

func configText(pemPath string, c2sPort, proxyPort, apiPort int, c config) string {
	q := strconv.Quote
	var b strings.Builder
	level := "info"
	if c.debugLog {
		level = "debug"
	}
	fmt.Fprintf(&b, "# generated by internal/ejabberdtest\n")
	fmt.Fprintf(&b, "hosts:\n  - %s\n", q(Domain))
	fmt.Fprintf(&b, "loglevel: %s\nlog_rotate_count: 0\n", level)
	fmt.Fprintf(&b, "certfiles:\n  - %s\n", q(pemPath))
	// The TLS options of the Debian configuration.
	fmt.Fprintf(&b, "c2s_ciphers: \"HIGH:!aNULL:!eNULL:!3DES:@STRENGTH\"\n")
	fmt.Fprintf(&b, "c2s_protocol_options:\n  - \"no_sslv3\"\n  - \"no_tlsv1\"\n  - \"no_tlsv1_1\"\n  - \"cipher_server_preference\"\n  - \"no_compression\"\n")
	fmt.Fprintf(&b, "listen:\n")
	fmt.Fprintf(&b, "  -\n    port: %d\n    ip: \"127.0.0.1\"\n    module: ejabberd_c2s\n    max_stanza_size: 262144\n    access: c2s\n    starttls_required: true\n    backlog: 128\n", c2sPort)
	if c.shaper {
		fmt.Fprintf(&b, "    shaper: c2s_shaper\n")
	}
	fmt.Fprintf(&b, "  -\n    port: %d\n    ip: \"127.0.0.1\"\n    module: ejabberd_http\n    request_handlers:\n      /api: mod_http_api\n", apiPort)
	// As deployed: SCRAM-hashed passwords; PLAIN stays offered after TLS (the adapter's
	// XMPP library speaks only PLAIN, GOSRC.md).
	fmt.Fprintf(&b, "disable_sasl_mechanisms:\n  - \"digest-md5\"\n  - \"X-OAUTH2\"\n")
	fmt.Fprintf(&b, "auth_password_format: scram\n")
	fmt.Fprintf(&b, "acl:\n  admin:\n    user:\n      - \"\"\n  local:\n    user_regexp: \"\"\n  loopback:\n    ip:\n      - 127.0.0.0/8\n")
	fmt.Fprintf(&b, "access_rules:\n  local:\n    allow: local\n  c2s:\n    deny: blocked\n    allow: all\n")
	fmt.Fprintf(&b, "api_permissions:\n  \"loopback register\":\n    from:\n      - mod_http_api\n    who:\n      ip: 127.0.0.1/8\n    what:\n      - register\n")
	fmt.Fprintf(&b, "shaper:\n  normal:\n    rate: %d\n    burst_size: %d\n  fast: 200000\n", ShaperRate, ShaperBurst)
	fmt.Fprintf(&b, "shaper_rules:\n  c2s_shaper:\n    none: admin\n    normal: all\n")
	fmt.Fprintf(&b, "modules:\n")
	for _, m := range []string{"mod_caps", "mod_disco", "mod_ping", "mod_roster", "mod_version", "mod_http_api"} {
		fmt.Fprintf(&b, "  %s: {}\n", m)
	}
	fmt.Fprintf(&b, "  mod_proxy65:\n    ip: \"127.0.0.1\"\n    port: %d\n    hostname: \"127.0.0.1\"\n    access: local\n", proxyPort)
	return b.String()
}

// Account registers a fresh account with a random password and returns its bare JID and
// password. Register accounts before the test connects with them.
func (s *Server) Account(t testing.TB) (jid, password string) {
	t.Helper()
	return servertest.Account(t, "ejabberdtest", s.Register)
}

// Register is Account for code without a testing.TB: it registers a fresh account and returns
// its bare JID and password.
func (s *Server) Register() (jid, password string, err error) {
	user, password, err := servertest.Credentials(s.nextAcc.Add(1))
	if err != nil {
		return "", "", err
	}
	body, _ := json.Marshal(map[string]string{"user": user, "host": s.Domain, "password": password})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+s.apiAddr+"/api/register", bytes.NewReader(body))
	if err != nil {
		return "", "", err
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", "", fmt.Errorf("register %s: %w", user, err)
	}
	defer res.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
	if res.StatusCode != http.StatusOK || !bytes.Contains(msg, []byte("successfully registered")) {
		return "", "", fmt.Errorf("register %s: HTTP %d: %s", user, res.StatusCode, bytes.TrimSpace(msg))
	}
	return user + "@" + s.Domain, password, nil
}

// Running reports whether the ejabberd process is still running.
func (s *Server) Running() bool { return s.run.Running() }

// Pid returns the process id of the Erlang VM.
func (s *Server) Pid() int { return s.run.Proc.Cmd.Process.Pid }

// LogTail returns the last 8 KiB of the server's log (and its console output if it exited).
func (s *Server) LogTail() string { return s.run.LogTail() }

// Stop terminates the server (SIGTERM, then SIGKILL after 5 s) and removes its directory.
// It is safe to call more than once.
func (s *Server) Stop() { s.run.Stop() }
