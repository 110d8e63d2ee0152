package prosodytest

import (
	"errors"
	"net"
	"testing"
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
	return launchAt(bin, c, placement{ip: ns.IP, c2sPort: NamespaceC2SPort, proxyPort: NamespaceProxyPort, exec: ns.Exec, dial: ns.Dial})
}
