package integration

import (
	"bytes"
	"context"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/xtlsjingle/xtlsjingle/internal/prosodytest"
)

// repoRoot is the module root (this file is internal/integration/xtlschat_test.go).
func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("no caller information")
	}
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// buildXtlschat builds cmd/xtlschat into a temporary directory.
func buildXtlschat(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "xtlschat")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/xtlschat")
	cmd.Dir = repoRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/xtlschat: %v\n%s", err, out)
	}
	return bin
}

// TestXtlschatBinaryLoginFailures runs the built binary against Prosody: a wrong account
// password and an untrusted server certificate both end with exit status 2 and a message
// that says what to do next.
func TestXtlschatBinaryLoginFailures(t *testing.T) {
	srv := prosodytest.Shared(t)
	jid, _ := srv.Account(t)
	bin := buildXtlschat(t)
	dir := t.TempDir()
	certFile := filepath.Join(dir, "server.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		args []string
		hint string
	}{
		{"wrong password", []string{"--server-cert", certFile}, "check the JID and the password"},
		{"untrusted server certificate", nil, "--server-cert FILE.pem"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			args := append([]string{"listen", "--jid", jid, "--server", srv.Addr, "--config-dir", filepath.Join(dir, "cfg")}, tt.args...)
			cmd := exec.CommandContext(ctx, bin, args...)
			cmd.Env = append(os.Environ(), "XTLSCHAT_PASSWORD=not-the-password")
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 2 {
				t.Fatalf("exit: %v, want status 2; stderr: %s", err, stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.hint) {
				t.Errorf("stderr does not say %q: %s", tt.hint, stderr.String())
			}
			if !strings.Contains(stdout.String(), `"event":"error"`) || !strings.Contains(stdout.String(), `"code":2`) {
				t.Errorf("no JSON error event with code 2: %s", stdout.String())
			}
		})
	}
}

// TestXtlschatDemo runs scripts/demo (README command 1) as CI does: its own Prosody on
// 127.0.0.1, srp then x509 over S5B and IBB, only ciphertext in the server's log, exit 0.
func TestXtlschatDemo(t *testing.T) {
	if testing.Short() && os.Getenv("CI") != "true" {
		t.Skip("the demo builds xtlschat and starts its own Prosody; skipped with -short (not under CI)")
	}
	if _, err := exec.LookPath("prosody"); err != nil {
		if _, err := os.Stat("/usr/bin/prosody"); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatal("prosody is not installed (CI=true, so this is a failure)")
			}
			t.Skip("prosody is not installed; scripts/demo would install it with apt-get as root")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(repoRoot(t), "scripts", "demo"))
	cmd.Stdin = nil // the demo must not need standard input
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("scripts/demo: %v\n%s", err, out.String())
	}
	for _, want := range []string{
		"Session 1: method srp, transport s5b",
		"Session 2: method x509, transport s5b",
		"Session 3: method x509, transport ibb",
		"none of the three messages appears in the server's log",
		"FwMD",
		"demo: all three sessions worked",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out.String())
		}
	}
}
