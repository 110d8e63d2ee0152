package integration

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xtlsjingle/xtlsjingle/filetransfer"
	"github.com/xtlsjingle/xtlsjingle/internal/prosodytest"
	"github.com/xtlsjingle/xtlsjingle/xtls"
)

// The tests of this file run file transfers between xtlschat and Libervia 0.9, which has no
// XTLS, through the consent API (xtls.OpenPlaintext, xtls.Application.Plaintext) as xtlschat
// uses it: nothing flows without the user's explicit consent for that transfer (XTLS-15),
// and with it the file arrives, sha-256 checked (XTLS-10, issue 8).

// xtlschatProc is one run of the xtlschat binary with its JSON events.
type xtlschatProc struct {
	cmd    *exec.Cmd
	events chan map[string]any
	stderr bytes.Buffer
	done   chan error
}

// startXtlschat runs bin with args for the account jid/password on srv.
func startXtlschat(ctx context.Context, t *testing.T, bin string, srv *prosodytest.Server, jid, password, cfgDir string, args ...string) *xtlschatProc {
	t.Helper()
	certFile := filepath.Join(cfgDir, "server.pem")
	if err := os.MkdirAll(cfgDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	all := append(args, "--jid", jid, "--server", srv.Addr, "--server-cert", certFile, "--config-dir", filepath.Join(cfgDir, "cfg"),
		"--s5b-listen", "127.0.0.1:0", "--timeout", "60s")
	p := &xtlschatProc{cmd: exec.CommandContext(ctx, bin, all...), events: make(chan map[string]any, 64), done: make(chan error, 1)}
	p.cmd.Env = append(os.Environ(), "XTLSCHAT_PASSWORD="+password)
	p.cmd.Stderr = &p.stderr
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var ev map[string]any
			if json.Unmarshal(sc.Bytes(), &ev) == nil {
				t.Logf("xtlschat %s: %s", args[0], sc.Bytes())
				p.events <- ev
			}
		}
		close(p.events)
		p.done <- p.cmd.Wait()
	}()
	return p
}

// waitEvent returns the next event of kind (failing on the end of output).
func (p *xtlschatProc) waitEvent(ctx context.Context, t *testing.T, kind string) map[string]any {
	t.Helper()
	for {
		select {
		case ev, ok := <-p.events:
			if !ok {
				t.Fatalf("xtlschat ended without a %q event: %v; stderr: %s", kind, <-p.done, p.stderr.String())
			}
			if ev["event"] == kind {
				return ev
			}
		case <-ctx.Done():
			t.Fatalf("no %q event from xtlschat", kind)
		}
	}
}

// rest drains the remaining events and returns them with the exit error.
func (p *xtlschatProc) rest() ([]map[string]any, error) {
	var evs []map[string]any
	for ev := range p.events {
		evs = append(evs, ev)
	}
	return evs, <-p.done
}

// xtlschatLiberviaSetup starts Libervia, builds xtlschat and makes an account for it.
func xtlschatLiberviaSetup(t *testing.T) (srv *prosodytest.Server, lib *libervia, bin, us, pw, dir string) {
	srv = prosodytest.Shared(t)
	lib = startLibervia(t, srv)
	bin = buildXtlschat(t)
	acct, pw := srv.Account(t)
	return srv, lib, bin, acct + "/xtlschat", pw, t.TempDir()
}

// waitLiberviaCopy waits until Libervia has written all of data to path and compares it.
func waitLiberviaCopy(t *testing.T, path string, data []byte) {
	t.Helper()
	var got []byte
	var err error
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if got, err = os.ReadFile(path); err == nil && len(got) == len(data) {
			break
		}
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("Libervia's copy differs (%d bytes, %v)", len(got), err)
	}
}

func exitStatus(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

func randomPayload(t *testing.T, dir string) (string, []byte, string) {
	t.Helper()
	data := make([]byte, 1<<20)
	_, _ = rand.Read(data)
	path := filepath.Join(dir, "payload.bin")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return path, data, hex.EncodeToString(sum[:])
}

// TestFileTransferLiberviaToXtlschatPlaintextConsent (XTLS-10, XTLS-15, J-8, J-23, issue 8):
// Libervia 0.9 (no XTLS) offers 1 MiB to "xtlschat listen". Without --allow-plaintext-from
// the offer is declined (event "declined", "encrypted": false) and nothing is written; with
// --allow-plaintext-from naming Libervia's JID it is received over S5B (Libervia's first
// choice), sha-256 verified, and the "file" event says "encrypted": false.
func TestFileTransferLiberviaToXtlschatPlaintextConsent(t *testing.T) {
	srv, lib, bin, us, pw, dir := xtlschatLiberviaSetup(t)
	dl := filepath.Join(dir, "dl")
	if err := os.Mkdir(dl, 0o700); err != nil {
		t.Fatal(err)
	}
	src, data, sum := randomPayload(t, t.TempDir())
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	libSend := func() chan []byte {
		ch := make(chan []byte, 1)
		go func() {
			out, err := lib.command(ctx, "file", "send", "-p", "test", "--pwd", "pw", "-c", src, us).CombinedOutput()
			if err != nil {
				out = append(out, []byte(" ("+err.Error()+")")...)
			}
			ch <- out
		}()
		return ch
	}

	// 1. No consent: declined.
	lctx, lcancel := context.WithCancel(ctx)
	p := startXtlschat(lctx, t, bin, srv, us, pw, dir, "listen", "--download-dir", dl)
	p.waitEvent(ctx, t, "ready")
	sent := libSend()
	ev := p.waitEvent(ctx, t, "declined")
	if ev["encrypted"] != false || !strings.Contains(ev["reason"].(string), "--allow-plaintext-from") {
		t.Fatalf("declined event %v, want encrypted false and how to allow it", ev)
	}
	select {
	case out := <-sent:
		t.Logf("libervia-cli without consent: %s", out)
	case <-time.After(30 * time.Second):
		t.Log("libervia-cli did not end after the decline")
	}
	lcancel()
	p.rest()
	if es, _ := os.ReadDir(dl); len(es) != 0 {
		t.Fatalf("files written without consent: %v", es)
	}

	// 2. Consent for Libervia's bare JID: received, sha-256 verified.
	bare, _, _ := strings.Cut(lib.jid, "/")
	p = startXtlschat(ctx, t, bin, srv, us, pw, dir, "listen", "--download-dir", dl, "--sessions", "1", "--allow-plaintext-from", bare)
	p.waitEvent(ctx, t, "ready")
	sent = libSend()
	if ev := p.waitEvent(ctx, t, "file-offer"); ev["encrypted"] != false {
		t.Fatalf("file-offer %v, want encrypted false", ev)
	}
	if ev := p.waitEvent(ctx, t, "session"); ev["encrypted"] != false || ev["method"] != nil {
		t.Fatalf("session %v, want encrypted false and no method", ev)
	}
	ev = p.waitEvent(ctx, t, "file")
	if ev["encrypted"] != false || ev["sha256"] != sum || ev["hash"] != "sha-256" {
		t.Fatalf("file event %v, want encrypted false, sha-256 %s", ev, sum)
	}
	if _, err := p.rest(); err != nil {
		t.Fatalf("listen: %v; stderr %s", err, p.stderr.String())
	}
	got, err := os.ReadFile(filepath.Join(dl, "payload.bin"))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("received file differs: %v", err)
	}
	t.Logf("libervia-cli: %s", <-sent)
}

// TestFileTransferXtlschatToLiberviaPlaintextConsent (XTLS-2, XTLS-15, issue 8): "xtlschat
// send" to Libervia 0.9 (no XTLS) without --allow-plaintext exits 4 with a message that says
// the peer has no end-to-end encryption and how to allow this one transfer, and Libervia gets
// no offer; with --allow-plaintext 1 MiB arrives at Libervia byte for byte (digests in
// Libervia's base64-of-hex form, chosen from its disco identity) and the "file" event says
// "encrypted": false.
func TestFileTransferXtlschatToLiberviaPlaintextConsent(t *testing.T) {
	srv, lib, bin, us, pw, dir := xtlschatLiberviaSetup(t)
	src, data, sum := randomPayload(t, t.TempDir())
	dl := t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	recvCtx, recvCancel := context.WithCancel(ctx)
	defer recvCancel()
	recvOut := make(chan []byte, 1)
	go func() {
		out, _ := lib.command(recvCtx, "file", "receive", "-p", "test", "--pwd", "pw", "-c", "--path", dl).CombinedOutput()
		recvOut <- out
	}()
	time.Sleep(5 * time.Second) // harness: libervia-cli connects and listens for offers

	// 1. Without consent.
	p := startXtlschat(ctx, t, bin, srv, us, pw, dir, "send", "--to", lib.jid, "--file", src)
	evs, err := p.rest()
	if exitStatus(err) != 4 {
		t.Fatalf("send without --allow-plaintext: %v, want exit 4; stderr %s", err, p.stderr.String())
	}
	var msg string
	for _, ev := range evs {
		if ev["event"] == "error" {
			msg, _ = ev["message"].(string)
		}
		if ev["event"] == "session" || ev["event"] == "file" {
			t.Fatalf("something was sent without consent: %v", ev)
		}
	}
	if !strings.Contains(msg, "no end-to-end encryption") || !strings.Contains(msg, "--allow-plaintext") {
		t.Fatalf("error message %q does not say what happened and how to allow it", msg)
	}

	// 2. With consent for this transfer.
	p = startXtlschat(ctx, t, bin, srv, us, pw, dir, "send", "--to", lib.jid, "--file", src, "--allow-plaintext")
	if ev := p.waitEvent(ctx, t, "session"); ev["encrypted"] != false {
		t.Fatalf("session %v, want encrypted false", ev)
	}
	ev := p.waitEvent(ctx, t, "file")
	if ev["encrypted"] != false || ev["sha256"] != sum {
		t.Fatalf("file event %v", ev)
	}
	if _, err := p.rest(); err != nil {
		t.Fatalf("send: %v; stderr %s", err, p.stderr.String())
	}
	waitLiberviaCopy(t, filepath.Join(dl, "payload.bin"), data)
	recvCancel()
	<-recvOut
}

// TestFileTransferLiberviaToUsIBBPlaintextConsent (XTLS-10, XTLS-15, JS5B-14, issue 8): the
// library's consent API directly: an xtls.Client whose file-transfer Application has a
// Plaintext handler that consents; our S5B is made to fail (no candidates, a connect timeout
// that cannot be met), so Libervia replaces the transport with IBB, which the responder side
// of Application.Plaintext accepts; 1 MiB arrives sha-256 verified through Ready.
func TestFileTransferLiberviaToUsIBBPlaintextConsent(t *testing.T) {
	srv := prosodytest.Shared(t)
	us := dialAccount(t, srv, "ft-consent", nil)
	lib := startLibervia(t, srv)
	bare, _ := xtls.BareJID(us.LocalJID())
	id, err := xtls.NewIdentity(bare, xtls.KeyEd25519)
	if err != nil {
		t.Fatal(err)
	}
	dl := t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	offers := make(chan *xtls.PlaintextOffer, 1)
	results := make(chan error, 1)
	var got *filetransfer.Result
	cfg := xtls.Config{Identity: id, Trust: xtls.NewMemoryStore(), Applications: []xtls.Application{{
		Namespace: filetransfer.NS,
		Features:  []string{filetransfer.NSHashes},
		Plaintext: &xtls.PlaintextHandler{
			Decide: func(_ context.Context, in *xtls.PlaintextOffer) xtls.PlaintextDecision {
				offers <- in
				_, accept, err := filetransfer.Answer(in.Content.Description, filetransfer.ReceiveOptions{Dir: dl, AllowPlaintext: true})
				return xtls.PlaintextDecision{AcceptPlaintext: err == nil, Description: accept}
			},
			Ready: func(c *xtls.PlaintextConn) {
				offer, err := filetransfer.Offered(c.Jingle, c.Content)
				if err == nil {
					if c.Transport != xtls.TransportNameIBB {
						t.Errorf("transport %s, want ibb after the forced S5B failure", c.Transport)
					}
					got, err = filetransfer.Receive(ctx, c.Jingle, c.Content, c, offer, filetransfer.ReceiveOptions{Dir: dl, AllowPlaintext: true})
				}
				results <- err
			},
		},
	}}}
	cfg.S5B.ConnectTimeout = time.Nanosecond // make S5B fail on purpose
	c, err := xtls.NewClient(us, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	src, data, _ := randomPayload(t, t.TempDir())
	sent := make(chan []byte, 1)
	go func() {
		out, _ := lib.command(ctx, "file", "send", "-p", "test", "--pwd", "pw", "-c", src, us.LocalJID()).CombinedOutput()
		sent <- out
	}()
	select {
	case in := <-offers:
		if in.Peer != lib.jid {
			t.Fatalf("offer from %s, want %s", in.Peer, lib.jid)
		}
	case out := <-sent:
		t.Fatalf("libervia-cli ended without an offer: %s", out)
	case <-ctx.Done():
		t.Fatal("no offer from Libervia")
	}
	select {
	case err := <-results:
		if err != nil {
			t.Fatalf("receive: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("the transfer did not end")
	}
	b, err := os.ReadFile(got.Path)
	if err != nil || !bytes.Equal(b, data) || got.Verified != "sha-256" {
		t.Fatalf("file differs or unverified (%v): %+v", err, got)
	}
	t.Logf("libervia-cli: %s", <-sent)
}
