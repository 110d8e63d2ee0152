package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xtlsjingle/xtlsjingle/gosrcxmpp"
	"github.com/xtlsjingle/xtlsjingle/xtls"
)

func envOf(m map[string]string) environment {
	return environment{getenv: func(k string) string { return m[k] }}
}

func TestParseArgs(t *testing.T) {
	ok := []struct {
		args []string
		cmd  string
		chk  func(*options) error
	}{
		{[]string{"--jid", "romeo@example.org"}, "", func(o *options) error {
			if o.transport != "auto" || o.method != "auto" || o.timeout != 2*time.Minute {
				return fmt.Errorf("defaults: %+v", o)
			}
			return nil
		}},
		{[]string{"open", "--jid", "romeo@example.org/laptop", "--to", "juliet@example.org/phone", "--message", "a", "--message", "b c", "--wait", "2", "--transport", "ibb", "--method", "srp"}, "open", func(o *options) error {
			if o.to != "juliet@example.org/phone" || len(o.messages) != 2 || o.messages[1] != "b c" || o.wait != 2 || o.transport != "ibb" || o.method != "srp" {
				return fmt.Errorf("open: %+v", o)
			}
			return nil
		}},
		{[]string{"listen", "-jid=juliet@example.org", "--from", "romeo@example.org", "--echo", "--sessions", "3", "--server", "127.0.0.1:5222", "--server-cert", "s.pem", "--s5b-listen", "127.0.0.1:0"}, "listen", func(o *options) error {
			if o.from != "romeo@example.org" || !o.echo || o.sessions != 3 || o.server != "127.0.0.1:5222" || o.serverCert != "s.pem" || o.s5bListen != "127.0.0.1:0" {
				return fmt.Errorf("listen: %+v", o)
			}
			return nil
		}},
		{[]string{"send", "--jid", "romeo@example.org", "--to", "benvolio@example.org/libervia", "--file", "f", "--allow-plaintext"}, "send", func(o *options) error {
			if !o.allowPlaintext {
				return fmt.Errorf("send --allow-plaintext: %+v", o)
			}
			return nil
		}},
		{[]string{"listen", "--jid", "romeo@example.org", "--allow-plaintext-from", "benvolio@example.org", "--allow-plaintext-from", "x@y/z"}, "listen", func(o *options) error {
			if len(o.allowPlaintextFrom) != 2 || o.allowPlaintextFrom[0] != "benvolio@example.org" || o.allowPlaintext {
				return fmt.Errorf("listen --allow-plaintext-from: %+v", o)
			}
			return nil
		}},
		{[]string{"listen", "--jid", "juliet@example.org", "--s5b-listen", "0.0.0.0:5000", "--stun", "127.0.0.1:3478", "--stun", "stun.example.org", "--s5b-forward", "203.0.113.5:40000", "--publish-p2p"}, "listen", func(o *options) error {
			f := o.p2pFlags()
			if len(f.stun) != 2 || f.stun[1] != "stun.example.org" || len(f.forward) != 1 || f.forward[0] != "203.0.113.5:40000" || !f.publish {
				return fmt.Errorf("p2p flags: %+v", f)
			}
			return nil
		}},
		{[]string{"fp", "--jid", "romeo@example.org", "--config-dir", "/x"}, "fp", func(o *options) error {
			if o.configDir != "/x" {
				return fmt.Errorf("fp: %+v", o)
			}
			return nil
		}},
		{[]string{"--help"}, "help", nil},
		{[]string{"help"}, "help", nil},
		{[]string{"-h"}, "help", nil},
		{[]string{"open", "-h"}, "help", nil},
	}
	for _, tt := range ok {
		cmd, o, err := parseArgs(tt.args, io.Discard)
		if err != nil || cmd != tt.cmd {
			t.Errorf("%q: cmd %q err %v, want %q", tt.args, cmd, err, tt.cmd)
			continue
		}
		if tt.chk != nil {
			if err := tt.chk(o); err != nil {
				t.Errorf("%q: %v", tt.args, err)
			}
		}
	}

	bad := []struct {
		args []string
		want string // part of the message: it must say what to do
	}{
		{nil, "--jid is required"},
		{[]string{"--jid", "example.org"}, "not an account JID"},
		{[]string{"--jid", "romeo@example.org/"}, "not an account JID"},
		{[]string{"--jid", "romeo@example.org", "--transport", "tcp"}, "--transport must be"},
		{[]string{"--jid", "romeo@example.org", "--method", "none"}, "--method must be"},
		{[]string{"--jid", "romeo@example.org", "--password", "secret"}, "not defined"},
		{[]string{"--jid", "romeo@example.org", "hello"}, "unexpected argument"},
		{[]string{"open", "--jid", "romeo@example.org"}, "full JID"},
		{[]string{"open", "--jid", "romeo@example.org", "--to", "juliet@example.org"}, "full JID"},
		{[]string{"open", "--jid", "romeo@example.org", "--to", "j@e/r", "--wait", "-1"}, "--wait"},
		{[]string{"listen", "--jid", "romeo@example.org", "--sessions", "-1"}, "--sessions"},
		{[]string{"listen", "--jid", "romeo@example.org", "--timeout", "0s"}, "--timeout"},
		{[]string{"fp", "--jid", "romeo@example.org", "--method", "srp"}, "not defined"},
		{[]string{"--jid", "romeo@example.org", "--stun", "127.0.0.1:3478"}, "need --s5b-listen"},
		{[]string{"--jid", "romeo@example.org", "--publish-p2p"}, "need --s5b-listen"},
		{[]string{"--jid", "romeo@example.org", "--s5b-listen", ":0", "--s5b-forward", "203.0.113.5"}, "not EXTIP:PORT"},
	}
	for _, tt := range bad {
		_, _, err := parseArgs(tt.args, io.Discard)
		if err == nil || exitCode(err) != exitUsage || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: err %v (code %d), want usage error containing %q", tt.args, err, exitCode(err), tt.want)
		}
	}
}

func TestRunHelp(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"--help"}, strings.NewReader(""), &out, io.Discard, envOf(nil)); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"xtlschat open --to FULL-JID", "XTLSCHAT_PASSWORD", "--server-cert", "Exit status:", "3  security failure"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("help lacks %q", want)
		}
	}
}

// The account password never comes from argv: without env, file or terminal, run refuses and
// says where to put it.
func TestRunNoPasswordSource(t *testing.T) {
	dir := t.TempDir()
	err := run(context.Background(), []string{"listen", "--jid", "romeo@example.org", "--config-dir", dir}, strings.NewReader(""), io.Discard, io.Discard, envOf(nil))
	if exitCode(err) != exitUsage || !strings.Contains(err.Error(), envPassword) || !strings.Contains(err.Error(), "--password-file") {
		t.Fatalf("err %v (code %d)", err, exitCode(err))
	}
}

func TestRunFP(t *testing.T) {
	dir := t.TempDir()
	var out bytes.Buffer
	if err := run(context.Background(), []string{"fp", "--jid", "Romeo@Example.org/laptop", "--config-dir", dir}, nil, &out, io.Discard, envOf(nil)); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 || lines[0] != "romeo@example.org" || !strings.HasPrefix(lines[2], "ni:///sha-256;") {
		t.Fatalf("fp output %q", out.String())
	}
	fp, err := xtls.ParseFingerprintText(lines[1])
	if err != nil {
		t.Fatal(err)
	}
	ni, err := xtls.ParseNI(lines[2])
	if err != nil || !ni.Equal(fp) {
		t.Fatalf("ni %v does not match the hex fingerprint", err)
	}
	// The same identity is loaded the second time.
	var again bytes.Buffer
	if err := run(context.Background(), []string{"fp", "--jid", "romeo@example.org", "--config-dir", dir}, nil, &again, io.Discard, envOf(nil)); err != nil || again.String() != out.String() {
		t.Fatalf("second run: %v %q", err, again.String())
	}
	// XTLSCHAT_CONFIG_DIR is the default config dir.
	var viaEnv bytes.Buffer
	if err := run(context.Background(), []string{"fp", "--jid", "romeo@example.org"}, nil, &viaEnv, io.Discard, envOf(map[string]string{envConfigDir: dir})); err != nil || viaEnv.String() != out.String() {
		t.Fatalf("XTLSCHAT_CONFIG_DIR: %v %q", err, viaEnv.String())
	}
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

// DESIGN "State on disk": 0700 directories, 0600 files; an identity others can read is refused.
func TestConfigPermissions(t *testing.T) {
	root := filepath.Join(t.TempDir(), "cfg")
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := ensurePrivateDir(root); err != nil {
		t.Fatal(err)
	}
	if m := mode(t, root); m != 0o700 {
		t.Errorf("config dir mode %o, want 700 (tightened)", m)
	}
	st, err := openStore(root, "romeo@example.org")
	if err != nil {
		t.Fatal(err)
	}
	if !st.created {
		t.Error("identity not reported as created")
	}
	if m := mode(t, st.dir); m != 0o700 {
		t.Errorf("account dir mode %o", m)
	}
	idPath := filepath.Join(st.dir, identityFile)
	if m := mode(t, idPath); m != 0o600 {
		t.Errorf("identity mode %o", m)
	}
	fp, _ := xtls.ParseFingerprintText(strings.Repeat("ab", 32))
	if err := st.trust.Pin("juliet@example.org", fp, xtls.VerifiedManual, time.Now()); err != nil {
		t.Fatal(err)
	}
	if m := mode(t, filepath.Join(st.dir, pinsFile)); m != 0o600 {
		t.Errorf("pins mode %o", m)
	}
	entries, _ := os.ReadDir(st.dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".tmp") {
			t.Errorf("temporary file left behind: %s", e.Name())
		}
	}

	st2, err := openStore(root, "romeo@example.org")
	if err != nil || st2.created || !st2.identity.Fingerprint().Equal(st.identity.Fingerprint()) {
		t.Fatalf("reopen: %v created=%v", err, st2 != nil && st2.created)
	}
	if pins, _ := st2.trust.Pins("juliet@example.org"); len(pins) != 1 {
		t.Errorf("pins not persisted: %v", pins)
	}

	if err := os.Chmod(idPath, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := openStore(root, "romeo@example.org"); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("world-readable identity accepted: %v", err)
	}

	for _, bad := range []string{"", "..", ".hidden@x", "a/b@c", `a\b@c`} {
		if _, err := accountDir(root, bad); err == nil {
			t.Errorf("accountDir(%q) accepted", bad)
		}
	}
}

func TestReadSecretFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, perm os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), perm); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, perm); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if s, err := readSecretFile(write("a", "s3cret pass\r\nignored\n", 0o600)); err != nil || s != "s3cret pass" {
		t.Errorf("got %q %v", s, err)
	}
	if _, err := readSecretFile(write("b", "x\n", 0o644)); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("readable by others accepted: %v", err)
	}
	if _, err := readSecretFile(write("c", "\n", 0o600)); err == nil {
		t.Error("empty password accepted")
	}
	if _, err := readSecretFile(write("d", strings.Repeat("x", maxSecret+1), 0o600)); err == nil {
		t.Error("huge file accepted")
	}
}

func TestMatchPeer(t *testing.T) {
	for _, tt := range []struct {
		from, peer string
		want       bool
	}{
		{"", "a@b/c", true},
		{"a@b", "a@b/c", true},
		{"A@B", "a@b/c", true},
		{"a@b/c", "a@b/c", true},
		{"a@b/c", "a@b/d", false},
		{"a@b", "x@b/c", false},
	} {
		if got := matchPeer(tt.from, tt.peer); got != tt.want {
			t.Errorf("matchPeer(%q, %q) = %v", tt.from, tt.peer, got)
		}
	}
}

func TestExitCode(t *testing.T) {
	fp, _ := xtls.ParseFingerprintText(strings.Repeat("cd", 32))
	for _, tt := range []struct {
		err  error
		want int
	}{
		{nil, exitOK},
		{usagef("x"), exitUsage},
		{&exitError{code: exitConnect, err: errors.New("x")}, exitConnect},
		{fmt.Errorf("wrapped: %w", gosrcxmpp.ErrDisconnected), exitConnect},
		{&xtls.PinError{Peer: "a@b", Fingerprint: fp, Changed: true}, exitSecurity},
		{fmt.Errorf("x: %w", xtls.ErrXSRPFailed), exitSecurity},
		{&xtls.Error{Peer: "a@b", Condition: "security-error"}, exitSecurity},
		{&xtls.Error{Peer: "a@b", Condition: "decline", Remote: true}, exitPeer},
		{fmt.Errorf("x: %w", xtls.ErrNotSupported), exitPeer},
		{xtls.ErrNoMethod, exitPeer},
		{fmt.Errorf("x: %w", xtls.ErrPeerHasXTLS), exitSecurity},
		{&gosrcxmpp.StanzaError{Type: "cancel", Condition: "service-unavailable"}, exitPeer},
		{context.DeadlineExceeded, exitSession},
		{errors.New("something"), exitSession},
	} {
		if got := exitCode(tt.err); got != tt.want {
			t.Errorf("exitCode(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}

// Security events are told plainly (issue 7): a changed certificate says so and what to do.
func TestDescribeSecurity(t *testing.T) {
	fp, _ := xtls.ParseFingerprintText(strings.Repeat("cd", 32))
	msg := describe(&xtls.Error{Peer: "juliet@capulet.lit", Condition: "security-error", Err: &xtls.PinError{Peer: "juliet@capulet.lit", Fingerprint: fp, Changed: true}})
	if !strings.Contains(msg, "certificate of juliet@capulet.lit changed — session refused") || !strings.Contains(msg, "CDCD CDCD") {
		t.Errorf("changed certificate: %q", msg)
	}
	if msg := describe(fmt.Errorf("x: %w", xtls.ErrXSRPFailed)); !strings.Contains(msg, "wrong shared password or an attack") {
		t.Errorf("xsrp: %q", msg)
	}
	// issue 8, XTLS-15: a peer without XTLS; the message says what to do for this one file.
	pn := &plaintextNeeded{peer: "benvolio@example.org/libervia", how: "repeat the command with --allow-plaintext.", err: fmt.Errorf("x: %w", xtls.ErrNotSupported)}
	if msg := describe(pn); !strings.Contains(msg, "has no end-to-end encryption") || !strings.Contains(msg, "--allow-plaintext") || exitCode(transferExit(pn)) != exitPeer {
		t.Errorf("plaintext needed: %q (exit %d)", msg, exitCode(transferExit(pn)))
	}
	if msg := describe(fmt.Errorf("x: %w", xtls.ErrDowngrade)); !strings.Contains(msg, "even with --allow-plaintext") || exitCode(transferExit(fmt.Errorf("x: %w", xtls.ErrDowngrade))) != exitSecurity {
		t.Errorf("downgrade: %q", msg)
	}
}

// TestPlaintextAllowanceOnePerFlag (issue 8, XTLS-15): each --allow-plaintext-from allows one
// unencrypted file from the JID it names, the full JID's allowance before a bare JID's.
func TestPlaintextAllowanceOnePerFlag(t *testing.T) {
	a := newPlaintextAllowance([]string{"benvolio@example.org", "mercutio@example.org/libervia", "mercutio@example.org"})
	steps := []struct {
		peer string
		want bool
	}{
		{"tybalt@example.org/x", false},
		{"mercutio@example.org/libervia", true}, // the full JID's allowance
		{"mercutio@example.org/other", true},    // the bare JID's
		{"mercutio@example.org/libervia", false},
		{"benvolio@example.org/a", true},
		{"benvolio@example.org/a", false},
	}
	for i, s := range steps {
		if got := a.take(s.peer); got != s.want {
			t.Fatalf("step %d: take(%s) = %v, want %v", i, s.peer, got, s.want)
		}
	}
}
