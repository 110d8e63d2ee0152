package integration

import (
	"context"
	"crypto/tls"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/xtlsjingle/xtlsjingle/gosrcxmpp"
	"github.com/xtlsjingle/xtlsjingle/internal/prosodytest"
)

// dialAccount registers a fresh account on srv and connects it through the adapter with the
// server certificate pinned. The client is closed at cleanup. resource may be "".
func dialAccount(t testing.TB, srv *prosodytest.Server, resource string, mod func(*gosrcxmpp.Config)) *gosrcxmpp.Client {
	t.Helper()
	jid, password := srv.Account(t)
	if resource != "" {
		jid += "/" + resource
	}
	cfg := gosrcxmpp.Config{
		Address:  srv.Addr,
		JID:      jid,
		Password: password,
		TLS:      &tls.Config{RootCAs: srv.RootCAs, ServerName: srv.Domain},
	}
	if mod != nil {
		mod(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	c, err := gosrcxmpp.Dial(ctx, cfg)
	if err != nil {
		t.Fatalf("dial %s: %v\nprosody log:\n%s", jid, err, srv.LogTail())
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// checkGoroutines fails t if, after a short wait, more goroutines run than before (plus
// slack), and prints the stacks that are new.
func checkGoroutines(t testing.TB, before int, slack int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= before+slack {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("goroutine leak: %d before, %d after\n%s", before, n, onlyAdapterStacks(string(buf)))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func onlyAdapterStacks(all string) string {
	var out []string
	for _, g := range strings.Split(all, "\n\n") {
		if strings.Contains(g, "gosrcxmpp") || strings.Contains(g, "gosrc.io") {
			out = append(out, g)
		}
	}
	return strings.Join(out, "\n\n")
}

// TestMain stops the shared Prosody (prosodytest.Shared) after all tests of the package.
// It is the package's only TestMain: other files must not declare one.
func TestMain(m *testing.M) { prosodytest.Main(m) }
