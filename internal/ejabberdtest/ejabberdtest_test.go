package ejabberdtest

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	if os.Getenv("EJABBERDTEST_CHILD") == "1" {
		childMain()
		return
	}
	Main(m)
}

// childMain starts a server, prints its pid and exits without stopping it: the parent test
// checks that Pdeathsig took the server down with this process.
func childMain() {
	s, err := Launch()
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(1)
	}
	fmt.Println("PID", s.Pid(), s.Dir)
	os.Exit(0)
}

// readUntil reads from r until the accumulated text contains want, or fails.
func readUntil(t *testing.T, c net.Conn, r *bufio.Reader, want string) string {
	t.Helper()
	var b strings.Builder
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for !strings.Contains(b.String(), want) {
		by, err := r.ReadByte()
		if err != nil {
			t.Fatalf("reading until %q: %v (got %q)", want, err, b.String())
		}
		b.WriteByte(by)
	}
	return b.String()
}

// TestStartTLSAndAuth checks what the helper promises: c2s on Addr offers STARTTLS and requires
// it, the certificate verifies against RootCAs for Domain, PLAIN is offered after TLS (the
// only mechanism gosrc.io/xmpp speaks) and an Account can authenticate with it.
func TestStartTLSAndAuth(t *testing.T) {
	s := Shared(t)
	jid, password := s.Account(t)
	user := strings.TrimSuffix(jid, "@"+s.Domain)

	c, err := net.DialTimeout("tcp", s.Addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	open := "<?xml version='1.0'?><stream:stream to='localhost' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"
	io.WriteString(c, open)
	r := bufio.NewReader(c)
	feat := readUntil(t, c, r, "</stream:features>")
	if !strings.Contains(feat, "urn:ietf:params:xml:ns:xmpp-tls") || !strings.Contains(feat, "<required") {
		t.Fatalf("STARTTLS not offered as required: %s", feat)
	}
	if strings.Contains(feat, "PLAIN") {
		t.Fatalf("PLAIN offered before TLS: %s", feat)
	}
	io.WriteString(c, "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
	readUntil(t, c, r, "<proceed")
	tc := tls.Client(c, &tls.Config{RootCAs: s.RootCAs, ServerName: s.Domain, MinVersion: tls.VersionTLS12})
	tc.SetDeadline(time.Now().Add(5 * time.Second))
	if err := tc.Handshake(); err != nil {
		t.Fatalf("TLS handshake with pinned certificate: %v", err)
	}
	io.WriteString(tc, open)
	r = bufio.NewReader(tc)
	feat = readUntil(t, tc, r, "</stream:features>")
	if !strings.Contains(feat, "<mechanism>PLAIN</mechanism>") {
		t.Fatalf("no PLAIN after TLS: %s", feat)
	}
	t.Logf("features after TLS: %s", feat)
	cred := "\x00" + user + "\x00" + password
	fmt.Fprintf(tc, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>%s</auth>", b64(cred))
	got := readUntil(t, tc, r, "/>")
	if !strings.Contains(got, "<success") {
		t.Fatalf("auth of fresh account failed: %s\n%s", got, s.LogTail())
	}
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
	s := Shared(t)
	c, err := net.DialTimeout("tcp", s.ProxyAddr, 5*time.Second)
	if err != nil {
		t.Fatalf("proxy65 at %s: %v", s.ProxyAddr, err)
	}
	defer c.Close()
	// SOCKS5 greeting: version 5, one method, no authentication.
	c.Write([]byte{5, 1, 0})
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var resp [2]byte
	if _, err := io.ReadFull(c, resp[:]); err != nil || resp != [2]byte{5, 0} {
		t.Fatalf("SOCKS5 greeting answer %v, %v", resp, err)
	}
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
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "EJABBERDTEST_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v: %s", err, out)
	}
	fields := strings.Fields(string(out))
	if len(fields) < 3 || fields[0] != "PID" {
		t.Fatalf("child output %q", out)
	}
	pid, _ := strconv.Atoi(fields[1])
	defer os.RemoveAll(fields[2])
	deadline := time.Now().Add(5 * time.Second)
	for {
		// Signal 0 only checks existence; a zombie reparented to init disappears quickly.
		if err := syscall.Kill(pid, 0); err != nil {
			return
		}
		if b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); strings.Contains(string(b), ") Z ") {
			return // dead, waiting to be reaped by init
		}
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("ejabberd pid %d survived its parent test binary", pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
