package ejabberdtest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xtlsjingle/xtlsjingle/internal/servertest"
)

func TestMain(m *testing.M) {
	servertest.ChildMain("EJABBERDTEST_CHILD", func() (int, string, error) {
		s, err := Launch()
		if err != nil {
			return 0, "", err
		}
		return s.Pid(), s.Dir, nil
	})
	Main(m)
}

// TestStartTLSAndAuth checks what the helper promises: c2s on Addr offers STARTTLS and requires
// it, the certificate verifies against RootCAs for Domain, PLAIN is offered after TLS (the
// only mechanism the adapter's XMPP library speaks, GOSRC.md), not before, and an Account can authenticate with it.
func TestStartTLSAndAuth(t *testing.T) {
	s := Shared(t)
	jid, password := s.Account(t)
	before, after := servertest.CheckStartTLSAndAuth(t, s.Addr, s.Domain, s.RootCAs, jid, password, s.LogTail)
	if strings.Contains(before, "PLAIN") {
		t.Fatalf("PLAIN offered before TLS: %s", before)
	}
	t.Logf("features after TLS: %s", after)
}

// TestRegisterUnique: every Account is a new user with its own password.
func TestRegisterUnique(t *testing.T) {
	s := Shared(t)
	a, pa := s.Account(t)
	b, pb := s.Account(t)
	if a == b || pa == pb || !strings.HasSuffix(a, "@"+Domain) {
		t.Fatalf("accounts %s/%s, %s/%s", a, pa, b, pb)
	}
}

// TestProxy65Listens checks that the SOCKS5 proxy listens on ProxyAddr.
func TestProxy65Listens(t *testing.T) {
	servertest.CheckSOCKS5Greeting(t, Shared(t).ProxyAddr)
}

// TestShaperConfig checks that the shaper is off by default and WithDefaultShaper puts
// ejabberd's default on the c2s listener.
func TestShaperConfig(t *testing.T) {
	plain := Shared(t)
	b, err := os.ReadFile(plain.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if plain.Shaped || strings.Contains(string(b), "shaper: c2s_shaper") {
		t.Fatalf("shared server is shaped:\n%s", b)
	}
	s := Start(t, WithDefaultShaper())
	b, err = os.ReadFile(s.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if !s.Shaped || !strings.Contains(string(b), "shaper: c2s_shaper") || !strings.Contains(string(b), "rate: 3000") {
		t.Fatalf("shaper not configured:\n%s", b)
	}
	if !s.Running() {
		t.Fatalf("shaped server did not stay up:\n%s", s.LogTail())
	}
}

// listeningPorts returns the local addresses of the TCP sockets in state LISTEN that process
// pid holds, from /proc (hex "0100007F:1F90" → "127.0.0.1:8080").
func listeningPorts(t *testing.T, pid int) []string {
	t.Helper()
	inodes := map[string]bool{}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		l, err := os.Readlink(filepath.Join(fmt.Sprintf("/proc/%d/fd", pid), fd.Name()))
		if err == nil && strings.HasPrefix(l, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	var out []string
	for _, file := range []string{"tcp", "tcp6"} {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, file))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 10 || f[3] != "0A" || !inodes[f[9]] { // 0A: LISTEN
				continue
			}
			out = append(out, file+" "+f[1])
		}
	}
	return out
}

// TestLoopbackOnly: every socket the Erlang VM listens on is bound to 127.0.0.1 (c2s, proxy65,
// the registration API, and no Erlang distribution port), and no epmd was started for it.
func TestLoopbackOnly(t *testing.T) {
	s := Shared(t)
	ports := listeningPorts(t, s.Pid())
	if len(ports) < 3 {
		t.Fatalf("listening sockets %v, want at least c2s, proxy65 and api", ports)
	}
	for _, p := range ports {
		// 0100007F is 127.0.0.1 in /proc/net/tcp's little-endian hex.
		if !strings.HasPrefix(p, "tcp 0100007F:") {
			t.Errorf("ejabberd listens on %s, beyond 127.0.0.1", p)
		}
	}
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", s.Pid()))
	args := strings.Split(string(cmdline), "\x00")
	for i, a := range args {
		if a == "-sname" || a == "-name" {
			t.Errorf("Erlang distribution started: %q", args)
		}
		if a == "-start_epmd" && (i+1 >= len(args) || args[i+1] != "false") {
			t.Errorf("epmd not disabled: %q", args)
		}
	}
	t.Logf("listening: %v", ports)
}

// TestServerDiesWithTestBinary runs a child test binary that starts a server and exits
// without stopping it; the server must not survive it.
func TestServerDiesWithTestBinary(t *testing.T) {
	if erl, _ := install(); erl == "" {
		skipOrFail(t)
	}
	servertest.CheckDiesWithParent(t, "EJABBERDTEST_CHILD", "ejabberd")
}
