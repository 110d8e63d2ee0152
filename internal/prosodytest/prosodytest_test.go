package prosodytest

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	if os.Getenv("PROSODYTEST_CHILD") == "1" {
		childMain()
		return
	}
	Main(m)
}

// childMain starts a server, prints its pid and exits without stopping it: the parent test
// checks that Pdeathsig took the server down with this process.
func childMain() {
	bin := binary()
	s, err := start(bin, config{})
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(1)
	}
	fmt.Println("PID", s.proc.Cmd.Process.Pid, s.Dir)
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
// it, the certificate verifies against RootCAs for Domain, and an Account can authenticate.
func TestStartTLSAndAuth(t *testing.T) {
	s := Start(t)
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
	if !strings.Contains(feat, "PLAIN") {
		t.Fatalf("no PLAIN after TLS: %s", feat)
	}
	cred := "\x00" + user + "\x00" + password
	fmt.Fprintf(tc, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>%s</auth>", b64(cred))
	got := readUntil(t, tc, r, "/>")
	if !strings.Contains(got, "<success") {
		t.Fatalf("auth of fresh account failed: %s\n%s", got, s.LogTail())
	}
}

// TestProxy65Listens checks that the SOCKS5 proxy component listens on ProxyAddr.
func TestProxy65Listens(t *testing.T) {
	s := Start(t)
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
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "PROSODYTEST_CHILD=1")
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
		err := syscall.Kill(pid, 0)
		if err != nil {
			return
		}
		if b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); strings.Contains(string(b), ") Z ") {
			return // dead, waiting to be reaped by init
		}
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("prosody pid %d survived its parent test binary", pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
