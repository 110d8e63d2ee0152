package netnstest_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xtlsjingle/xtlsjingle/internal/netnstest"
	"github.com/xtlsjingle/xtlsjingle/xtls"
)

// xtlschatEvent is the part of xtlschat's JSON events the test reads.
type xtlschatEvent struct {
	Event, Peer, JID, Method, Transport, Route, Dir, Name, Path, SHA256, Text, Message string
	KeyHint                                                                            string `json:"key_hint"`
	External                                                                           string
	Published                                                                          bool
	Code                                                                               int
}

// buildXtlschat builds cmd/xtlschat (the module root is two levels up from this package).
func buildXtlschat(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "xtlschat")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/xtlschat")
	cmd.Dir = filepath.Join("..", "..")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/xtlschat: %v\n%s", err, out)
	}
	return bin
}

// xtlschat runs the client in ns for the account jid ("bare/resource"); extra are the
// subcommand and its flags.
func (w *world) xtlschat(t *testing.T, bin string, ns *netnstest.NS, jid, password, shared string, extra ...string) *netnstest.Proc {
	t.Helper()
	dir := t.TempDir()
	cert := filepath.Join(dir, "server.pem")
	if err := os.WriteFile(cert, []byte(w.certPEM), 0o600); err != nil {
		t.Fatal(err)
	}
	args := append([]string{extra[0], "--jid", jid, "--server", w.prosody.Addr, "--server-cert", cert,
		"--config-dir", filepath.Join(dir, "cfg"), "--timeout", "60s"}, extra[1:]...)
	return ns.Start(t, []string{"XTLSCHAT_PASSWORD=" + password, "XTLSCHAT_SHARED_PASSWORD=" + shared}, bin, args...)
}

// nextEvent returns the next event of p named one of names, failing on an error event.
func nextEvent(t *testing.T, p *netnstest.Proc, timeout time.Duration, names ...string) xtlschatEvent {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case line, ok := <-p.Lines:
			if !ok {
				p.Wait(5 * time.Second)
				t.Fatalf("xtlschat exited (%v) before %v: %s", p.Err(), names, p.Stderr())
			}
			var e xtlschatEvent
			if err := json.Unmarshal([]byte(line), &e); err != nil {
				t.Fatalf("xtlschat line %q: %v", line, err)
			}
			if e.Event == "error" {
				t.Fatalf("xtlschat error event: %s\n%s", line, p.Stderr())
			}
			for _, n := range names {
				if e.Event == n {
					return e
				}
			}
		case <-deadline:
			t.Fatalf("no %v event from xtlschat within %v: %s", names, timeout, p.Stderr())
		}
	}
}

// TestXtlschatNAT (issue 10, SEED-1, JS5B-2, STUN-4): the xtlschat binary in the NAT topology,
// with its --stun, --s5b-forward, --publish-p2p and --subscribe flags. A file goes from home 1
// to home 2 through the port forward (route direct-external on both sides, the receiver's
// SHA-256 equal to the sender's, the plaintext marker inside the file never on the wire), and
// a chat message and its echo go between the two hosts of home 1 (route direct-local).
func TestXtlschatNAT(t *testing.T) {
	w := newWorld(t)
	tp := w.tp
	bin := buildXtlschat(t)
	shared := randomHex(t, 8)
	stun := []string{"--stun", stunAddr, "--publish-p2p", "--method", "srp"}
	account := func(resource string) (bare, full, password string) {
		bare, password = w.prosody.Account(t)
		return bare, bare + "/" + resource, password
	}

	t.Run("FileThroughForward", func(t *testing.T) {
		marker := []byte("NETNSTEST-PLAINTEXT-" + randomHex(t, 8))
		var file bytes.Buffer // random data with the marker every 4 KiB
		for file.Len() < 256<<10 {
			file.Write(marker)
			file.WriteString(randomHex(t, 2048))
		}
		sum := sha256.Sum256(file.Bytes())
		path := filepath.Join(t.TempDir(), "netns.bin")
		if err := os.WriteFile(path, file.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		capPub := tp.Public.Capture(t, "", marker)
		sBare, sFull, sPw := account("h1a")
		rBare, rFull, rPw := account("h2")
		fwd := ":" + strconv.Itoa(netnstest.ForwardPort)
		dl := t.TempDir()
		recv := w.xtlschat(t, bin, tp.Host2, rFull, rPw, shared, append([]string{"listen", "--download-dir", dl, "--sessions", "1",
			"--s5b-listen", listenOn(netnstest.Host2IP, netnstest.ForwardPort), "--s5b-forward", fwd, "--subscribe", sBare}, stun...)...)
		rr := nextEvent(t, recv, 30*time.Second, "ready")
		t.Logf("receiver ready: external %s, published %v", rr.External, rr.Published)
		// send (unlike open) does not wait for the peer's presence: the receiver is online first.
		sender := w.xtlschat(t, bin, tp.Host1A, sFull, sPw, shared, append([]string{"send", "--to", rFull, "--file", path,
			"--s5b-listen", listenOn(netnstest.Host1AIP, 7777), "--subscribe", rBare}, stun...)...)
		ss := nextEvent(t, sender, 60*time.Second, "session")
		rs := nextEvent(t, recv, 60*time.Second, "session")
		sf := nextEvent(t, sender, 60*time.Second, "file")
		rf := nextEvent(t, recv, 60*time.Second, "file")
		st := capPub.Stop()
		t.Logf("sender: %s over %s, route %s, key hint %s; receiver: route %s", ss.Method, ss.Transport, ss.Route, ss.KeyHint, rs.Route)
		if ss.Transport != xtls.TransportNameS5BDirect || ss.Route != xtls.PathDirectExternal || rs.Route != xtls.PathDirectExternal {
			t.Errorf("transport %s, routes %s/%s; want %s, %s", ss.Transport, ss.Route, rs.Route, xtls.TransportNameS5BDirect, xtls.PathDirectExternal)
		}
		want := hex.EncodeToString(sum[:])
		if sf.SHA256 != want || rf.SHA256 != want {
			t.Fatalf("sha-256 sent %s, received %s, file %s", sf.SHA256, rf.SHA256, want)
		}
		got, err := os.ReadFile(rf.Path)
		if err != nil || !bytes.Equal(got, file.Bytes()) {
			t.Fatalf("received file %s differs (%v)", rf.Path, err)
		}
		encrypted(t, "public segment", st, file.Len(), between(netnstest.Router1IP, 0, netnstest.Router2IP, netnstest.ForwardPort))
		for _, p := range []*netnstest.Proc{sender, recv} {
			if !p.Wait(30*time.Second) || p.Err() != nil {
				t.Errorf("xtlschat did not exit cleanly: %v\n%s", p.Err(), p.Stderr())
			}
		}
	})

	t.Run("ChatSameLAN", func(t *testing.T) {
		text := "NETNSTEST-PLAINTEXT-" + randomHex(t, 8)
		capLAN := tp.Switch1.Capture(t, "", []byte(text))
		capPub := tp.Public.Capture(t, "", []byte(text))
		oBare, oFull, oPw := account("h1a")
		lBare, lFull, lPw := account("h1b")
		opener := w.xtlschat(t, bin, tp.Host1A, oFull, oPw, shared, append([]string{"open", "--to", lFull, "--message", text, "--wait", "1",
			"--s5b-listen", listenOn(netnstest.Host1AIP, 7777), "--subscribe", lBare}, stun...)...)
		nextEvent(t, opener, 30*time.Second, "ready")
		listener := w.xtlschat(t, bin, tp.Host1B, lFull, lPw, shared, append([]string{"listen", "--echo", "--sessions", "1",
			"--s5b-listen", listenOn(netnstest.Host1BIP, 7777), "--subscribe", oBare}, stun...)...)
		nextEvent(t, listener, 30*time.Second, "ready")
		oe := nextEvent(t, opener, 60*time.Second, "session")
		ls := nextEvent(t, listener, 60*time.Second, "session")
		var echoed bool
		for !echoed {
			m := nextEvent(t, opener, 60*time.Second, "message")
			echoed = m.Dir == "in" && strings.Contains(m.Text, text)
		}
		for _, p := range []*netnstest.Proc{opener, listener} {
			if !p.Wait(30*time.Second) || p.Err() != nil {
				t.Errorf("xtlschat did not exit cleanly: %v\n%s", p.Err(), p.Stderr())
			}
		}
		lan, pub := capLAN.Stop(), capPub.Stop()
		t.Logf("opener: %s over %s, route %s, key hint %s; listener: route %s", oe.Method, oe.Transport, oe.Route, oe.KeyHint, ls.Route)
		if oe.Transport != xtls.TransportNameS5BDirect || oe.Route != xtls.PathDirectLocal || ls.Route != xtls.PathDirectLocal {
			t.Errorf("transport %s, routes %s/%s; want %s, %s", oe.Transport, oe.Route, ls.Route, xtls.TransportNameS5BDirect, xtls.PathDirectLocal)
		}
		encrypted(t, "home 1 LAN", lan, 2*len(text), between(netnstest.Host1AIP, 0, netnstest.Host1BIP, 0))
		if pub.Marker != 0 || pub.Dropped != 0 {
			t.Errorf("public segment: %s", pub)
		}
	})
}
