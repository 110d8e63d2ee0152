package servertest

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
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

// The checks below are what the helpers' own tests share: each helper proves with them that
// its server is what it promises.

// ReadUntil reads from r (reading c) until the text read contains want, or fails t.
func ReadUntil(t testing.TB, c net.Conn, r *bufio.Reader, want string) string {
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

// CheckStartTLSAndAuth checks c2s on addr: STARTTLS offered as required, the certificate
// verifies against roots for domain, PLAIN offered after TLS (the only mechanism the adapter's
// XMPP library speaks, GOSRC.md) and the account jid authenticates with it. It returns the stream features before
// and after TLS for further checks; logTail is shown when authentication fails.
func CheckStartTLSAndAuth(t testing.TB, addr, domain string, roots *x509.CertPool, jid, password string, logTail func() string) (before, after string) {
	t.Helper()
	user := strings.TrimSuffix(jid, "@"+domain)
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	open := "<?xml version='1.0'?><stream:stream to='" + domain + "' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"
	io.WriteString(c, open)
	r := bufio.NewReader(c)
	before = ReadUntil(t, c, r, "</stream:features>")
	if !strings.Contains(before, "urn:ietf:params:xml:ns:xmpp-tls") || !strings.Contains(before, "<required") {
		t.Fatalf("STARTTLS not offered as required: %s", before)
	}
	io.WriteString(c, "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
	ReadUntil(t, c, r, "<proceed")
	tc := tls.Client(c, &tls.Config{RootCAs: roots, ServerName: domain, MinVersion: tls.VersionTLS12})
	tc.SetDeadline(time.Now().Add(5 * time.Second))
	if err := tc.Handshake(); err != nil {
		t.Fatalf("TLS handshake with pinned certificate: %v", err)
	}
	io.WriteString(tc, open)
	r = bufio.NewReader(tc)
	after = ReadUntil(t, tc, r, "</stream:features>")
	if !strings.Contains(after, "<mechanism>PLAIN</mechanism>") {
		t.Fatalf("no PLAIN after TLS: %s", after)
	}
	cred := base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + password))
	fmt.Fprintf(tc, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>%s</auth>", cred)
	if got := ReadUntil(t, tc, r, "/>"); !strings.Contains(got, "<success") {
		t.Fatalf("auth of fresh account failed: %s\n%s", got, logTail())
	}
	return before, after
}

// CheckSOCKS5Greeting checks that a SOCKS5 server (the XEP-0065 proxy) listens on addr and
// accepts version 5 without authentication.
func CheckSOCKS5Greeting(t testing.TB, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("proxy65 at %s: %v", addr, err)
	}
	defer c.Close()
	c.Write([]byte{5, 1, 0}) // version 5, one method, no authentication
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var resp [2]byte
	if _, err := io.ReadFull(c, resp[:]); err != nil || resp != [2]byte{5, 0} {
		t.Fatalf("SOCKS5 greeting answer %v, %v", resp, err)
	}
}

// ChildMain is for a helper's TestMain: when the environment variable env is "1", the test
// binary is the child of CheckDiesWithParent. It starts a server with launch, prints its pid
// and directory and exits without stopping it, and ChildMain does not return.
func ChildMain(env string, launch func() (pid int, dir string, err error)) {
	if os.Getenv(env) != "1" {
		return
	}
	pid, dir, err := launch()
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(1)
	}
	fmt.Println("PID", pid, dir)
	os.Exit(0)
}

// CheckDiesWithParent runs the test binary again as a child (env=1, see ChildMain) that
// starts a server and exits without stopping it: the server, name in messages, must not
// survive it (Pdeathsig).
func CheckDiesWithParent(t testing.TB, env, name string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), env+"=1")
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
			t.Fatalf("%s pid %d survived its parent test binary", name, pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
