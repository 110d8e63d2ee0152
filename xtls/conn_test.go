package xtls_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xtlsjingle/xtlsjingle/filetransfer"
	"github.com/xtlsjingle/xtlsjingle/internal/xmpptest"
	"github.com/xtlsjingle/xtlsjingle/jingle"
	"github.com/xtlsjingle/xtlsjingle/xtls"
)

// The tests of this file run XEP-0234 file transfer, the application that motivated
// OpenConn and Config.Applications (issue 8), through the hook over the in-memory network.
// filetransfer is imported by the tests only; package xtls knows no application.

// ftReceiver is the receiving application of a party: it accepts offers into dir (with the
// party's password for srp) and reports results and failures.
type ftReceiver struct {
	dir      string
	password string
	decline  bool
	secured  chan *xtls.Conn             // every secured Conn, before Receive runs
	results  chan ftResult               // Receive's outcome
	failed   chan error                  // Application.Failed
	onConn   func(*xtls.Conn)            // replaces Receive when set
	progress func(filetransfer.Progress) // passed to Receive
	ctx      context.Context
	mu       sync.Mutex
}

type ftResult struct {
	r   *filetransfer.Result
	err error
}

func newFTReceiver(t *testing.T) *ftReceiver {
	return &ftReceiver{dir: t.TempDir(), secured: make(chan *xtls.Conn, 4), results: make(chan ftResult, 4), failed: make(chan error, 4), ctx: ctxT(t)}
}

func (r *ftReceiver) app() xtls.Application {
	return xtls.Application{
		Namespace: filetransfer.NS,
		Features:  []string{filetransfer.NSHashes},
		Decide: func(ctx context.Context, in *xtls.IncomingConn) xtls.ConnDecision {
			r.mu.Lock()
			defer r.mu.Unlock()
			_, accept, err := filetransfer.Answer(in.Content.Description, filetransfer.ReceiveOptions{Dir: r.dir})
			return xtls.ConnDecision{Decision: xtls.Decision{Decline: r.decline || err != nil, Password: r.password}, Description: accept}
		},
		Secured: func(c *xtls.Conn) {
			r.secured <- c
			if r.onConn != nil {
				r.onConn(c)
				return
			}
			offer, err := filetransfer.Offered(c.Jingle, c.Content)
			if err != nil {
				r.results <- ftResult{nil, err}
				return
			}
			res, err := filetransfer.Receive(r.ctx, c.Jingle, c.Content, c, offer, filetransfer.ReceiveOptions{Dir: r.dir, Progress: r.progress})
			r.results <- ftResult{res, err}
		},
		Failed: func(peer, sid string, err error) { r.failed <- err },
	}
}

// xtlsDialer is the glue of an application: filetransfer.Dialer over OpenConn.
func xtlsDialer(c *xtls.Client, opts *xtls.OpenOptions, got **xtls.Conn) filetransfer.Dialer {
	return func(ctx context.Context, peer string, offer jingle.Content) (*jingle.Session, string, net.Conn, error) {
		conn, err := c.OpenConn(ctx, peer, offer, opts)
		if err != nil {
			return nil, "", nil, err
		}
		if got != nil {
			*got = conn
		}
		return conn.Jingle, conn.Content, conn, nil
	}
}

func randomFile(t testing.TB, name string, size int) ([]byte, *filetransfer.File) {
	data := make([]byte, size)
	_, _ = rand.Read(data)
	sum := sha256.Sum256(data)
	return data, &filetransfer.File{Name: name, Size: int64(size), Hashes: []filetransfer.Hash{{Algo: "sha-256", Value: sum[:]}}}
}

// ftPair is romeo (sender) and juliet (receiver), both with the file-transfer application.
func ftPair(t *testing.T, seed int64, ro, jo partyOpts) (romeo, juliet *party, rr, jr *ftReceiver) {
	n := xmpptest.NewNetwork(seed)
	rr, jr = newFTReceiver(t), newFTReceiver(t)
	ro.apps = []xtls.Application{rr.app()}
	jo.apps = []xtls.Application{jr.app()}
	return newParty(t, n, romeoJID, ro), newParty(t, n, julietJID, jo), rr, jr
}

func dirEntries(t *testing.T, dir string) []string {
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

// TestConnFileTransferX509 (issue 8, XTLS-D3, XTLS-D6, XS-9, JS5B-14): a 1 MiB file through
// OpenConn with pinned certificates over IBB, direct S5B, and S5B that fails over to IBB;
// the bytes arrive sha-256 verified, the receiver's checksum and <received/> session-info
// flow over Jingle, and both ends agree on method and transport.
func TestConnFileTransferX509(t *testing.T) {
	for _, tc := range []struct {
		name   string
		ro, jo partyOpts
		want   string
	}{
		{"ibb", partyOpts{transports: xtls.TransportIBB}, partyOpts{}, xtls.TransportNameIBB},
		{"s5b-direct", partyOpts{listener: true}, partyOpts{listener: true}, xtls.TransportNameS5BDirect},
		{"s5b-fallback", partyOpts{}, partyOpts{}, xtls.TransportNameIBB}, // no candidates at all
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkGoroutines(t)
			romeo, juliet, _, jr := ftPair(t, 21, tc.ro, tc.jo)
			pinEachOther(t, romeo, juliet)
			data, f := randomFile(t, "letter.bin", 1<<20)
			var sent *xtls.Conn
			if err := filetransfer.SendTo(ctxT(t), xtlsDialer(romeo.client, nil, &sent), julietJID, bytes.NewReader(data), f, filetransfer.SendOptions{}); err != nil {
				t.Fatalf("SendTo: %v", err)
			}
			got := <-jr.secured
			res := <-jr.results
			if res.err != nil {
				t.Fatalf("Receive: %v", res.err)
			}
			if res.r.Verified != "sha-256" {
				t.Fatalf("verified with %q", res.r.Verified)
			}
			b, err := os.ReadFile(filepath.Join(jr.dir, "letter.bin"))
			if err != nil || !bytes.Equal(b, data) {
				t.Fatalf("file differs: %v", err)
			}
			if sent.Method != xtls.MethodX509 || got.Method != xtls.MethodX509 || sent.Transport != tc.want || got.Transport != tc.want {
				t.Fatalf("method %s/%s transport %s/%s, want x509 over %s", sent.Method, got.Method, sent.Transport, got.Transport, tc.want)
			}
			if !sent.PeerFingerprint.Equal(juliet.id.Fingerprint()) || !got.PeerFingerprint.Equal(romeo.id.Fingerprint()) {
				t.Fatal("peer fingerprints are not the pinned ones")
			}
			if !got.ConnectionState().HandshakeComplete || got.ConnectionState().Version != 0x0304 {
				t.Fatal("not a completed TLS 1.3 connection")
			}
		})
	}
}

// TestConnFileTransferSRPThenX509 (XSRP-8, XTLS-D3): the first transfer to an unpinned peer
// runs srp with the shared password and pins both certificates; the second one runs x509
// without a password.
func TestConnFileTransferSRPThenX509(t *testing.T) {
	checkGoroutines(t)
	romeo, juliet, _, jr := ftPair(t, 22, partyOpts{listener: true}, partyOpts{listener: true})
	jr.password = "swear not by the moon"
	for i, want := range []string{xtls.MethodSRP, xtls.MethodX509} {
		opts := &xtls.OpenOptions{}
		if i == 0 {
			opts.Password = "swear not by the moon"
		}
		data, f := randomFile(t, []string{"one.bin", "two.bin"}[i], 200<<10)
		var sent *xtls.Conn
		if err := filetransfer.SendTo(ctxT(t), xtlsDialer(romeo.client, opts, &sent), julietJID, bytes.NewReader(data), f, filetransfer.SendOptions{}); err != nil {
			t.Fatalf("transfer %d: %v", i, err)
		}
		if res := <-jr.results; res.err != nil {
			t.Fatalf("Receive %d: %v", i, res.err)
		}
		if got := <-jr.secured; sent.Method != want || got.Method != want {
			t.Fatalf("transfer %d: method %s/%s, want %s", i, sent.Method, got.Method, want)
		}
		if i == 0 && (!sent.Pinned || len(pinned(t, juliet, romeoJID)) != 1) {
			t.Fatal("srp pinned nothing")
		}
		jr.mu.Lock()
		jr.password = ""
		jr.mu.Unlock()
	}
}

// TestConnSecurityFailures (XTLS-D3, XTLS-16, XSRP-8): an unpinned peer without a password, a
// wrong password, and a changed certificate all end the transfer with <security-error/> on
// both sides before any file byte; nothing is written.
func TestConnSecurityFailures(t *testing.T) {
	for _, tc := range []struct {
		name       string
		pin        bool
		changeCert bool
		password   string
		theirs     string
		text       string
	}{
		{name: "untrusted", text: "not pinned and no password"},
		{name: "wrong-password", password: "lark", theirs: "nightingale", text: "wrong password or attack"},
		{name: "changed-certificate", pin: true, changeCert: true, text: "changed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkGoroutines(t)
			romeo, juliet, _, jr := ftPair(t, 23, partyOpts{listener: true}, partyOpts{listener: true})
			jr.password = tc.theirs
			if tc.pin {
				pinEachOther(t, romeo, juliet)
			}
			if tc.changeCert {
				// romeo's pin of juliet names a certificate she no longer has.
				other, err := xtls.NewIdentity(julietJID, xtls.KeyEd25519)
				if err != nil {
					t.Fatal(err)
				}
				_ = romeo.trust.Unpin("juliet@capulet.lit", juliet.id.Fingerprint())
				_ = romeo.trust.Pin("juliet@capulet.lit", other.Fingerprint(), xtls.VerifiedManual, time.Now())
			}
			data, f := randomFile(t, "secret.bin", 64<<10)
			err := filetransfer.SendTo(ctxT(t), xtlsDialer(romeo.client, &xtls.OpenOptions{Password: tc.password}, nil), julietJID, bytes.NewReader(data), f, filetransfer.SendOptions{})
			var e *xtls.Error
			if !errors.As(err, &e) || e.Condition != jingle.SecurityError || !strings.Contains(e.Text, tc.text) {
				t.Fatalf("SendTo = %v, want security-error %q", err, tc.text)
			}
			select {
			case rerr := <-jr.failed:
				if !errors.As(rerr, &e) || e.Condition != jingle.SecurityError {
					t.Fatalf("receiver: %v, want security-error", rerr)
				}
			case c := <-jr.secured:
				t.Fatalf("receiver got a secured conn (%s)", c.Method)
			case <-time.After(10 * time.Second):
				t.Fatal("receiver reported nothing")
			}
			if names := dirEntries(t, jr.dir); len(names) != 0 {
				t.Fatalf("files written: %v", names)
			}
		})
	}
}

// TestConnNotSupported (XTLS-2, issue 8): a peer that speaks XTLS but not the application is
// refused before any Jingle with ErrNotSupported; so is a peer without XTLS, and once its
// certificate is pinned that becomes ErrDowngrade. OpenConn refuses applications that are not
// registered.
func TestConnNotSupported(t *testing.T) {
	checkGoroutines(t)
	n := xmpptest.NewNetwork(24)
	rr := newFTReceiver(t)
	romeo := newParty(t, n, romeoJID, partyOpts{apps: []xtls.Application{rr.app()}})
	juliet := newParty(t, n, julietJID, partyOpts{}) // XTLS, no file transfer
	_, f := randomFile(t, "x.bin", 10)
	desc, _ := f.Description()
	offer := jingle.Content{Description: desc, Senders: jingle.SendersInitiator}
	if _, err := romeo.client.OpenConn(ctxT(t), julietJID, offer, nil); !errors.Is(err, xtls.ErrNotSupported) {
		t.Fatalf("OpenConn to a peer without file transfer = %v", err)
	}
	pinEachOther(t, romeo, juliet)
	if _, err := romeo.client.OpenConn(ctxT(t), julietJID, offer, nil); !errors.Is(err, xtls.ErrDowngrade) {
		t.Fatalf("OpenConn to a pinned peer without file transfer = %v", err)
	}
	if _, err := juliet.client.OpenConn(ctxT(t), romeoJID, offer, nil); err == nil || !strings.Contains(err.Error(), "not in Config.Applications") {
		t.Fatalf("OpenConn of an unregistered application = %v", err)
	}
	if _, err := romeo.client.OpenConn(ctxT(t), julietJID, jingle.Content{Description: []byte("<description xmlns='" + xtls.NSXMLStream + "'/>")}, nil); err == nil {
		t.Fatal("OpenConn accepted the xmlstream application")
	}
}

// TestConnCancel (issue 8): cancelling a transfer on either side ends it with <cancel/> on
// both; the receiver keeps only the partial file, and the next offer of it resumes there.
func TestConnCancel(t *testing.T) {
	for _, side := range []string{"sender", "receiver"} {
		t.Run(side, func(t *testing.T) {
			checkGoroutines(t)
			romeo, juliet, _, jr := ftPair(t, 25, partyOpts{transports: xtls.TransportIBB}, partyOpts{})
			pinEachOther(t, romeo, juliet)
			ctx, cancel := context.WithCancel(ctxT(t))
			defer cancel()
			rctx, rcancel := context.WithCancel(ctxT(t))
			defer rcancel()
			jr.ctx = rctx
			sopts := filetransfer.SendOptions{}
			if side == "sender" {
				sopts.Progress = func(p filetransfer.Progress) {
					if p.Done >= 128<<10 {
						cancel()
					}
				}
			} else {
				jr.progress = func(p filetransfer.Progress) {
					if p.Done >= 128<<10 {
						rcancel()
					}
				}
			}
			data, f := randomFile(t, "long.bin", 4<<20)
			err := filetransfer.SendTo(ctx, xtlsDialer(romeo.client, nil, nil), julietJID, bytes.NewReader(data), f, sopts)
			res := <-jr.results
			var te *filetransfer.TerminatedError
			if side == "sender" {
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("sender: %v, want context.Canceled", err)
				}
				if !errors.As(res.err, &te) || te.Condition != jingle.Cancel || !te.ByPeer {
					t.Fatalf("receiver: %v, want the sender's <cancel/>", res.err)
				}
			} else {
				if !errors.Is(res.err, context.Canceled) {
					t.Fatalf("receiver: %v, want context.Canceled", res.err)
				}
				if !errors.As(err, &te) || te.Condition != jingle.Cancel || !te.ByPeer {
					t.Fatalf("sender: %v, want the receiver's <cancel/>", err)
				}
			}
			if names := dirEntries(t, jr.dir); len(names) != 1 || names[0] != ".long.bin.part" {
				t.Fatalf("directory after cancel: %v", names)
			}
			// The same offer again resumes from the partial file (<range offset/>) and is
			// verified over the whole file.
			jr.progress, jr.ctx = nil, ctxT(t)
			var first int64 = -1
			resumed := filetransfer.SendOptions{Progress: func(p filetransfer.Progress) {
				if first < 0 {
					first = p.Done
				}
			}}
			if err := filetransfer.SendTo(ctxT(t), xtlsDialer(romeo.client, nil, nil), julietJID, bytes.NewReader(data), f, resumed); err != nil {
				t.Fatalf("resumed transfer: %v", err)
			}
			if res := <-jr.results; res.err != nil || res.r.Verified != "sha-256" {
				t.Fatalf("resumed receive: %+v", res)
			}
			if b, err := os.ReadFile(filepath.Join(jr.dir, "long.bin")); err != nil || !bytes.Equal(b, data) {
				t.Fatalf("resumed file differs: %v", err)
			}
			if first <= 32<<10 { // one chunk: the transfer started at 0
				t.Fatalf("the second transfer did not resume (first progress at %d)", first)
			}
			t.Logf("resumed after %d bytes", first)
		})
	}
}

// TestConnLyingSender (issue 8): a sender whose bytes do not match the offered hash, or who
// sends more or fewer bytes than the offered size, is caught by the receiver inside XTLS:
// <media-error/>, no file under the offered name.
func TestConnLyingSender(t *testing.T) {
	for _, tc := range []struct {
		name  string
		write func(data []byte) []byte // what the liar sends for the offered data
		want  error
	}{
		{"hash", func(d []byte) []byte { b := bytes.Clone(d); b[len(b)/2] ^= 1; return b }, filetransfer.ErrHashMismatch},
		{"size-longer", func(d []byte) []byte { return append(bytes.Clone(d), "tail"...) }, filetransfer.ErrSizeMismatch},
		{"size-shorter", func(d []byte) []byte { return d[:len(d)-1000] }, filetransfer.ErrSizeMismatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkGoroutines(t)
			romeo, juliet, _, jr := ftPair(t, 26, partyOpts{listener: true}, partyOpts{listener: true})
			pinEachOther(t, romeo, juliet)
			data, f := randomFile(t, "honest.bin", 256<<10)
			desc, _ := f.Description()
			conn, err := romeo.client.OpenConn(ctxT(t), julietJID, jingle.Content{Name: "f", Senders: jingle.SendersInitiator, Description: desc}, nil)
			if err != nil {
				t.Fatal(err)
			}
			go func() {
				_, _ = conn.Write(tc.write(data))
				_ = conn.Close()
			}()
			res := <-jr.results
			if !errors.Is(res.err, tc.want) {
				t.Fatalf("Receive = %v, want %v", res.err, tc.want)
			}
			if filetransfer.ReasonFor(res.err) != jingle.MediaError {
				t.Fatalf("reason %s", filetransfer.ReasonFor(res.err))
			}
			select {
			case <-conn.Jingle.Done():
			case <-time.After(10 * time.Second):
				t.Fatal("session not ended")
			}
			if r, byPeer := conn.Jingle.Reason(); !byPeer || r.Condition != jingle.MediaError {
				t.Fatalf("sender saw %+v (by peer %v)", r, byPeer)
			}
			if _, err := os.Stat(filepath.Join(jr.dir, "honest.bin")); !os.IsNotExist(err) {
				t.Fatalf("the file was placed: %v", err)
			}
		})
	}
}
