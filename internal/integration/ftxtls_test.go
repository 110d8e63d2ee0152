package integration

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xtlsjingle/xtlsjingle/filetransfer"
	"github.com/xtlsjingle/xtlsjingle/internal/prosodytest"
	"github.com/xtlsjingle/xtlsjingle/jingle"
	"github.com/xtlsjingle/xtlsjingle/socks5"
	"github.com/xtlsjingle/xtlsjingle/xtls"
)

// ftParty is an XTLS party on the test Prosody with the file-transfer application: incoming
// offers are accepted into dir (with password for srp) and received; outcomes are reported.
type ftParty struct {
	*xtlsParty
	dir     string
	mu      sync.Mutex
	pw      string
	secured chan *xtls.Conn
	results chan ftOutcome
	failed  chan error
}

type ftOutcome struct {
	r   *filetransfer.Result
	err error
}

func newFTParty(t *testing.T, srv *prosodytest.Server, resource string, o xtlsOpts) *ftParty {
	t.Helper()
	p := &ftParty{dir: t.TempDir(), secured: make(chan *xtls.Conn, 4), results: make(chan ftOutcome, 4), failed: make(chan error, 4)}
	ctx := t.Context()
	o.apps = []xtls.Application{{
		Namespace: filetransfer.NS,
		Features:  []string{filetransfer.NSHashes},
		Decide: func(_ context.Context, in *xtls.IncomingConn) xtls.ConnDecision {
			_, accept, err := filetransfer.Answer(in.Content.Description, filetransfer.ReceiveOptions{Dir: p.dir})
			p.mu.Lock()
			defer p.mu.Unlock()
			return xtls.ConnDecision{Decision: xtls.Decision{Decline: err != nil, Password: p.pw}, Description: accept}
		},
		Secured: func(c *xtls.Conn) {
			p.secured <- c
			offer, err := filetransfer.Offered(c.Jingle, c.Content)
			if err != nil {
				p.results <- ftOutcome{nil, err}
				return
			}
			r, err := filetransfer.Receive(ctx, c.Jingle, c.Content, c, offer, filetransfer.ReceiveOptions{Dir: p.dir})
			p.results <- ftOutcome{r, err}
		},
		Failed: func(peer, sid string, err error) { p.failed <- err },
	}}
	p.xtlsParty = newXTLSParty(t, prosodyServer(srv), resource, o)
	return p
}

func (p *ftParty) setPassword(pw string) {
	p.mu.Lock()
	p.pw = pw
	p.mu.Unlock()
}

// pinFT pins both identities for each other (as after comparing fingerprints).
func pinFT(t *testing.T, a, b *ftParty) {
	t.Helper()
	ba, _ := xtls.BareJID(a.link.LocalJID())
	bb, _ := xtls.BareJID(b.link.LocalJID())
	if err := a.trust.Pin(bb, b.id.Fingerprint(), xtls.VerifiedManual, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := b.trust.Pin(ba, a.id.Fingerprint(), xtls.VerifiedManual, time.Now()); err != nil {
		t.Fatal(err)
	}
}

// sendFT sends data as name from a to b over XTLS (filetransfer.SendTo over OpenConn) and
// returns the sender's Conn and the receiver's outcome.
func sendFT(t *testing.T, a, b *ftParty, name string, data []byte, opts *xtls.OpenOptions) (*xtls.Conn, *xtls.Conn, ftOutcome, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 120*time.Second)
	defer cancel()
	sum := sha256.Sum256(data)
	f := &filetransfer.File{Name: name, Size: int64(len(data)), Hashes: []filetransfer.Hash{{Algo: "sha-256", Value: sum[:]}}}
	var sent *xtls.Conn
	dial := func(ctx context.Context, peer string, offer jingle.Content) (*jingle.Session, string, net.Conn, error) {
		c, err := a.client.OpenConn(ctx, peer, offer, opts)
		if err != nil {
			return nil, "", nil, err
		}
		sent = c
		return c.Jingle, c.Content, c, nil
	}
	err := filetransfer.SendTo(ctx, dial, b.link.LocalJID(), bytes.NewReader(data), f, filetransfer.SendOptions{})
	if err != nil {
		return sent, nil, ftOutcome{}, err
	}
	got := <-b.secured
	return sent, got, <-b.results, nil
}

// TestFileTransferXTLSProsody (issue 8, XTLS-D6, XS-9, JS5B-14): 8 MiB random from one of our
// clients to another through Prosody, secured by XTLS (x509, pinned), over a direct SOCKS5
// connection, through Prosody's proxy65, and in band; sha-256 checked by the receiver and
// byte for byte by the test.
func TestFileTransferXTLSProsody(t *testing.T) {
	srv := prosodytest.Shared(t)
	probe := dialAccount(t, srv, "ft-probe", nil)
	proxy := discoverProxy(t, srv, probe)
	for _, tc := range []struct {
		name   string
		ao, bo xtlsOpts
		want   string
	}{
		{"s5b-direct", xtlsOpts{listener: true}, xtlsOpts{listener: true}, xtls.TransportNameS5BDirect},
		{"s5b-proxy", xtlsOpts{proxies: []socks5.Streamhost{proxy}}, xtlsOpts{}, xtls.TransportNameS5BProxy},
		{"ibb", xtlsOpts{transports: xtls.TransportIBB}, xtlsOpts{}, xtls.TransportNameIBB},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newFTParty(t, srv, "ft-orchard", tc.ao)
			b := newFTParty(t, srv, "ft-balcony", tc.bo)
			pinFT(t, a, b)
			data := randomData(t, 8<<20)
			start := time.Now()
			sent, got, res, err := sendFT(t, a, b, "rose.bin", data, nil)
			if err != nil {
				t.Fatalf("send: %v", err)
			}
			el := time.Since(start)
			if res.err != nil || res.r.Verified != "sha-256" {
				t.Fatalf("receive: %+v", res)
			}
			if b2, err := os.ReadFile(filepath.Join(b.dir, "rose.bin")); err != nil || !bytes.Equal(b2, data) {
				t.Fatalf("file differs: %v", err)
			}
			if sent.Method != xtls.MethodX509 || got.Method != xtls.MethodX509 || sent.Transport != tc.want || got.Transport != tc.want {
				t.Fatalf("%s/%s over %s/%s, want x509 over %s", sent.Method, got.Method, sent.Transport, got.Transport, tc.want)
			}
			t.Logf("%s: 8 MiB over XTLS x509 through Prosody in %v (%.1f MB/s, set-up %v)", tc.want, el, float64(len(data))/el.Seconds()/1e6, sent.SetupTime)
		})
	}
}

// leaked reports whether any 16-byte aligned block of data occurs in captured: any plaintext
// run of 31 bytes or more of the file would contain one.
func leaked(data, captured []byte) bool {
	blocks := make(map[[16]byte]struct{}, len(data)/16)
	for i := 0; i+16 <= len(data); i += 16 {
		blocks[[16]byte(data[i:i+16])] = struct{}{}
	}
	for i := 0; i+16 <= len(captured); i++ {
		if _, ok := blocks[[16]byte(captured[i:i+16])]; ok {
			return true
		}
	}
	return false
}

// TestFileTransferXTLSProsodyNoPlaintext (issue 8, XTLS-8): a first-contact transfer (srp,
// which pins both certificates) of 2 MiB through Prosody over IBB, direct S5B and proxy65;
// every stanza both clients exchange with the server (IBB blocks decoded) and every byte of
// the SOCKS5 connections (direct, or both legs through the proxy) is recorded, and no
// 16-byte block of the file appears in them.
func TestFileTransferXTLSProsodyNoPlaintext(t *testing.T) {
	srv := prosodytest.Shared(t)
	probe := dialAccount(t, srv, "ft-probe", nil)
	proxy := discoverProxy(t, srv, probe)
	for _, tc := range []struct {
		name string
		want string
	}{{"ibb", xtls.TransportNameIBB}, {"s5b-direct", xtls.TransportNameS5BDirect}, {"s5b-proxy", xtls.TransportNameS5BProxy}} {
		t.Run(tc.name, func(t *testing.T) {
			rec, tcp := &recorder{}, &recorder{}
			wrap := func(l xtls.Link) xtls.Link { return &recordingLink{Link: l, rec: rec} }
			ao, bo := xtlsOpts{wrap: wrap}, xtlsOpts{wrap: wrap}
			switch tc.name {
			case "ibb":
				ao.transports = xtls.TransportIBB
			case "s5b-direct":
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				ao.transports = xtls.TransportS5B
				bo.netListener = &recordingListener{Listener: ln, rec: tcp}
			case "s5b-proxy":
				via := proxy
				fwd := newRecordingProxy(t, net.JoinHostPort(proxy.Host, strconv.Itoa(proxy.Port)), tcp)
				via.Port = fwd.ln.Addr().(*net.TCPAddr).Port
				ao.proxies, ao.transports = []socks5.Streamhost{via}, xtls.TransportS5B
			}
			a := newFTParty(t, srv, "ft-orchard", ao)
			b := newFTParty(t, srv, "ft-balcony", bo)
			b.setPassword("by yonder blessed moon")
			data := randomData(t, 2<<20)
			sent, _, res, err := sendFT(t, a, b, "letter.bin", data, &xtls.OpenOptions{Password: "by yonder blessed moon"})
			if err != nil || res.err != nil {
				t.Fatalf("send: %v, receive: %v", err, res.err)
			}
			if sent.Method != xtls.MethodSRP || sent.Transport != tc.want {
				t.Fatalf("%s over %s, want srp over %s", sent.Method, sent.Transport, tc.want)
			}
			rec.mu.Lock()
			stanzas := bytes.Clone(rec.buf)
			rec.mu.Unlock()
			tcp.mu.Lock()
			stream := bytes.Clone(tcp.buf)
			tcp.mu.Unlock()
			// The recorders work: they saw the signalling, and for S5B at least the file's size in TCP bytes.
			if !bytes.Contains(stanzas, []byte("session-initiate")) || (tc.name != "ibb" && len(stream) < len(data)) ||
				(tc.name == "ibb" && len(stanzas) < len(data)) {
				t.Fatalf("recording incomplete: %d stanza bytes, %d TCP bytes", len(stanzas), len(stream))
			}
			if leaked(data, stanzas) || leaked(data, stream) {
				t.Fatal("file bytes seen on the wire")
			}
			if !leaked(data, data[1000:2000]) { // the detector detects
				t.Fatal("leak detector broken")
			}
			t.Logf("%s: %d stanza bytes (IBB decoded) and %d TCP bytes checked, no file bytes", tc.name, len(stanzas), len(stream))
		})
	}
}

// TestFileTransferXTLSProsodyRefused (issue 8, XTLS-D3, XSRP-8): through Prosody, a transfer
// to an unpinned peer without a password and one with the wrong password end with
// <security-error/> on both sides; no file (not even a partial one) is written.
func TestFileTransferXTLSProsodyRefused(t *testing.T) {
	srv := prosodytest.Shared(t)
	for _, tc := range []struct{ name, ours, theirs, text string }{
		{"untrusted", "", "", "not pinned and no password"},
		{"wrong-password", "lark", "nightingale", "wrong password or attack"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newFTParty(t, srv, "ft-orchard", xtlsOpts{listener: true})
			b := newFTParty(t, srv, "ft-balcony", xtlsOpts{listener: true})
			b.setPassword(tc.theirs)
			_, _, _, err := sendFT(t, a, b, "letter.bin", randomData(t, 64<<10), &xtls.OpenOptions{Password: tc.ours})
			var e *xtls.Error
			if !errors.As(err, &e) || e.Condition != jingle.SecurityError || !strings.Contains(e.Text, tc.text) {
				t.Fatalf("send = %v, want security-error %q", err, tc.text)
			}
			select {
			case rerr := <-b.failed:
				if !errors.As(rerr, &e) || e.Condition != jingle.SecurityError {
					t.Fatalf("receiver: %v", rerr)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("receiver reported nothing")
			}
			if es, _ := os.ReadDir(b.dir); len(es) != 0 {
				t.Fatalf("files written: %v", es)
			}
		})
	}
}
