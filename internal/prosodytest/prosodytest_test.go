package prosodytest

import (
	"os"
	"strings"
	"testing"

	"github.com/xtlsjingle/xtlsjingle/internal/servertest"
)

func TestMain(m *testing.M) {
	servertest.ChildMain("PROSODYTEST_CHILD", func() (int, string, error) {
		s, err := start(binary(), config{})
		if err != nil {
			return 0, "", err
		}
		return s.run.Proc.Cmd.Process.Pid, s.Dir, nil
	})
	Main(m)
}

// TestStartTLSAndAuth checks what the helper promises: c2s on Addr offers STARTTLS and requires
// it, the certificate verifies against RootCAs for Domain, and an Account can authenticate.
func TestStartTLSAndAuth(t *testing.T) {
	s := Start(t)
	jid, password := s.Account(t)
	servertest.CheckStartTLSAndAuth(t, s.Addr, s.Domain, s.RootCAs, jid, password, s.LogTail)
}

// TestProxy65Listens checks that the SOCKS5 proxy component listens on ProxyAddr.
func TestProxy65Listens(t *testing.T) {
	servertest.CheckSOCKS5Greeting(t, Start(t).ProxyAddr)
}

// TestLimitsConfig checks that WithLimits loads mod_limits.
func TestLimitsConfig(t *testing.T) {
	s := Start(t, WithLimits("10kb/s"))
	b, err := os.ReadFile(s.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"limits"`) || !strings.Contains(string(b), `rate = "10kb/s"`) {
		t.Fatalf("limits not configured:\n%s", b)
	}
	if !s.Running() {
		t.Fatalf("server with limits did not stay up:\n%s", s.LogTail())
	}
}

// TestSharedOnce checks that Shared returns the same server.
func TestSharedOnce(t *testing.T) {
	a := Shared(t)
	b := Shared(t)
	if a != b || !a.Running() {
		t.Fatalf("Shared returned %p and %p (running %v)", a, b, a.Running())
	}
}

// TestServerDiesWithTestBinary runs a child test binary that starts a server and exits
// without stopping it; the server must not survive it.
func TestServerDiesWithTestBinary(t *testing.T) {
	if binary() == "" {
		skipOrFail(t, "prosody is not installed")
	}
	servertest.CheckDiesWithParent(t, "PROSODYTEST_CHILD", "prosody")
}
