// Package netnstest builds real network stacks for tests: Linux network namespaces joined by
// veth pairs and bridges, with nftables NAT in the namespaces that play home routers (issue 10,
// SPEC §17). Nothing is changed in the namespace the test runs in: every link is created
// directly inside its namespace (ip -n NS link add … peer … netns OTHER), ip_forward is set and
// nft rules are loaded only inside the router namespaces, and only documentation and private
// addresses are used, which exist only inside the namespaces.
//
// Every namespace gets a name unique to the test run ("xjnt-PID-RANDOM-role"); t.Cleanup kills
// the processes started in them and deletes them, also when the test fails. Namespaces left
// behind by a test binary that was killed (its PID no longer runs) are deleted by the next run.
//
// Code runs inside a namespace in two ways: NS.Do switches one locked OS thread into it, for
// sockets the test process itself uses (a STUN server, a packet capture; a socket stays in the
// namespace it was created in), and NS.Command runs a program under "ip netns exec".
//
// It needs root and the programs ip (iproute2) and nft (nftables). Without them Require skips
// the test, or fails it when the environment variable CI is "true".
package netnstest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// prefix starts the name of every namespace this package creates.
const prefix = "xjnt-"

// Require skips t (or fails it when CI=true) unless the test runs as root with ip and nft
// installed and network namespaces can be created.
func Require(t testing.TB) {
	t.Helper()
	fail := func(msg string) {
		t.Helper()
		if os.Getenv("CI") == "true" {
			t.Fatalf("netnstest: %s (CI=true, so this is a failure, not a skip)", msg)
		}
		t.Skipf("netnstest: %s; run as root with the Debian packages iproute2 and nftables", msg)
	}
	if os.Geteuid() != 0 {
		fail("not running as root")
	}
	for _, p := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(p); err != nil {
			fail(p + " is not installed")
		}
	}
	// Root in a container may still lack the right to create namespaces.
	probe := fmt.Sprintf("%s%d-probe", prefix, os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", probe).CombinedOutput(); err != nil {
		fail(fmt.Sprintf("cannot create a network namespace: %v: %s", err, bytes.TrimSpace(out)))
	}
	if out, err := exec.Command("ip", "netns", "del", probe).CombinedOutput(); err != nil {
		t.Fatalf("netnstest: ip netns del %s: %v: %s", probe, err, bytes.TrimSpace(out))
	}
}

// NS is a network namespace created by New or Topology.
type NS struct {
	// Name is the namespace's name (under /run/netns).
	Name string
	t    testing.TB
}

// NewNS creates a namespace whose name ends in role, with its loopback up, and deletes it at
// t's cleanup (after the cleanups registered later, e.g. of processes running in it).
func NewNS(t testing.TB, run, role string) *NS {
	t.Helper()
	n := &NS{Name: prefix + run + "-" + role, t: t}
	if out, err := exec.Command("ip", "netns", "add", n.Name).CombinedOutput(); err != nil {
		t.Fatalf("netnstest: ip netns add %s: %v: %s", n.Name, err, bytes.TrimSpace(out))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", n.Name).CombinedOutput(); err != nil {
			t.Errorf("netnstest: ip netns del %s: %v: %s", n.Name, err, bytes.TrimSpace(out))
		}
	})
	n.IP("link", "set", "lo", "up")
	return n
}

// RunID returns a fresh run identifier "PID-RANDOM" for namespace names, after deleting the
// namespaces of earlier runs whose test binary no longer exists.
func RunID(t testing.TB) string {
	t.Helper()
	removeStale(t)
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return strconv.Itoa(os.Getpid()) + "-" + hex.EncodeToString(b[:])
}

// removeStale deletes namespaces named xjnt-PID-… whose PID does not run any more.
func removeStale(t testing.TB) {
	entries, err := os.ReadDir("/run/netns")
	if err != nil {
		return
	}
	for _, e := range entries {
		name := e.Name()
		rest, ok := strings.CutPrefix(name, prefix)
		if !ok {
			continue
		}
		pidText, _, ok := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if !ok || err != nil || pid <= 0 {
			continue
		}
		if _, err := os.Stat(filepath.Join("/proc", pidText)); err == nil {
			continue
		}
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Logf("netnstest: stale namespace %s: %v: %s", name, err, bytes.TrimSpace(out))
		} else {
			t.Logf("netnstest: deleted stale namespace %s of process %d", name, pid)
		}
	}
}

// IP runs "ip -n NAME args…" and fails the test on error.
func (n *NS) IP(args ...string) {
	n.t.Helper()
	cmd := exec.Command("ip", append([]string{"-n", n.Name}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		n.t.Fatalf("netnstest: ip -n %s %s: %v: %s", n.Name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
}

// Exec runs a program inside the namespace and fails the test on error; stdin, if not empty,
// is its input.
func (n *NS) Exec(stdin string, name string, args ...string) string {
	n.t.Helper()
	cmd := n.Command(name, args...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		n.t.Fatalf("netnstest: in %s: %s %s: %v: %s", n.Name, name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return string(out)
}

// Command returns a command that runs name inside the namespace (ip netns exec).
func (n *NS) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
}

// Nft loads an nftables ruleset into the namespace.
func (n *NS) Nft(ruleset string) {
	n.t.Helper()
	n.Exec(ruleset, "nft", "-f", "-")
}

// Sysctl sets a sysctl of the namespace (only per-namespace keys such as net.ipv4.ip_forward).
func (n *NS) Sysctl(key, value string) {
	n.t.Helper()
	path := filepath.Join("/proc/sys", strings.ReplaceAll(key, ".", "/"))
	n.Exec("", "sh", "-c", "echo "+value+" > "+path)
}

// Do runs f on an OS thread switched into the namespace. Sockets f creates stay in the
// namespace after Do returns, whichever thread uses them later. f must not start goroutines
// that create sockets (they would run on other threads).
func (n *NS) Do(f func() error) error {
	target, err := os.Open(filepath.Join("/run/netns", n.Name))
	if err != nil {
		return err
	}
	defer target.Close()
	var ferr error
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("setns %s: %w", n.Name, err)
			return
		}
		ferr = f()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			// The thread stays locked: it ends with this goroutine and is not reused.
			errc <- fmt.Errorf("setns back from %s: %w", n.Name, err)
			return
		}
		runtime.UnlockOSThread()
		errc <- nil
	}()
	if err := <-errc; err != nil {
		return err
	}
	return ferr
}

// in runs f inside n (Do) and returns its result.
func in[T any](n *NS, f func() (T, error)) (T, error) {
	var v T
	err := n.Do(func() error {
		var err error
		v, err = f()
		return err
	})
	return v, err
}

// Dial connects to a TCP address from inside the namespace.
func (n *NS) Dial(addr string, timeout time.Duration) (net.Conn, error) {
	return in(n, func() (net.Conn, error) { return net.DialTimeout("tcp", addr, timeout) })
}

// Listen opens a TCP listener inside the namespace.
func (n *NS) Listen(addr string) (net.Listener, error) {
	return in(n, func() (net.Listener, error) { return net.Listen("tcp", addr) })
}

// ListenPacket opens a UDP socket inside the namespace.
func (n *NS) ListenPacket(addr string) (net.PacketConn, error) {
	return in(n, func() (net.PacketConn, error) { return net.ListenPacket("udp", addr) })
}
