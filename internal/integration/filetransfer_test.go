package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/xtlsjingle/xtlsjingle/filetransfer"
	"github.com/xtlsjingle/xtlsjingle/gosrcxmpp"
	"github.com/xtlsjingle/xtlsjingle/ibb"
	"github.com/xtlsjingle/xtlsjingle/internal/prosodytest"
	"github.com/xtlsjingle/xtlsjingle/jingle"
	"github.com/xtlsjingle/xtlsjingle/socks5"
	"github.com/xtlsjingle/xtlsjingle/xtls"
)

// ftSecure wraps both bytestreams in TLS with xtls's x509 profile and pinned fingerprints
// (the initiator is the TLS client, XTLS-3).
func ftSecure(t *testing.T, a, b *gosrcxmpp.Client, ini, res net.Conn) (net.Conn, net.Conn) {
	t.Helper()
	bareA, _ := xtls.BareJID(a.LocalJID())
	bareB, _ := xtls.BareJID(b.LocalJID())
	idA, err := xtls.NewIdentity(bareA, xtls.KeyEd25519)
	if err != nil {
		t.Fatal(err)
	}
	idB, err := xtls.NewIdentity(bareB, xtls.KeyEd25519)
	if err != nil {
		t.Fatal(err)
	}
	pa, pb := xtls.NewMemoryStore(), xtls.NewMemoryStore()
	pa.Pin(bareB, idB.Fingerprint(), xtls.VerifiedSRP, time.Now())
	pb.Pin(bareA, idA.Fingerprint(), xtls.VerifiedSRP, time.Now())
	cc, err := xtls.ClientConfig(idA, bareB, xtls.MethodX509, pa)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := xtls.ServerConfig(idB, bareA, xtls.MethodX509, pb)
	if err != nil {
		t.Fatal(err)
	}
	c, s := tls.Client(ini, cc), tls.Server(res, sc)
	errc := make(chan error, 1)
	go func() { errc <- s.HandshakeContext(t.Context()) }()
	if err := c.HandshakeContext(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	return c, s
}

// ftRun transfers size random bytes from a to b through Prosody with XEP-0234 over transport
// ("ibb" or "proxy": S5B through Prosody's mod_proxy65 only), the bytestream secured with TLS,
// and checks the received file byte for byte.
func ftRun(t *testing.T, transport string, size int) {
	srv := prosodytest.Shared(t)
	a := dialAccount(t, srv, "ft-a", nil)
	b := dialAccount(t, srv, "ft-b", nil)
	ha, hb := ibb.NewHandler(a, nil), ibb.NewHandler(b, nil)
	defer ha.Close()
	defer hb.Close()
	incoming := make(chan *jingle.Session, 1)
	ma := jingle.NewManager(a, jingle.Config{InfoNamespaces: []string{filetransfer.NS}})
	mb := jingle.NewManager(b, jingle.Config{InfoNamespaces: []string{filetransfer.NS},
		Incoming: func(s *jingle.Session) { incoming <- s }})
	defer ma.Close()
	defer mb.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 120*time.Second)
	defer cancel()

	data := make([]byte, size)
	rand.Read(data)
	sum := sha256.Sum256(data)
	file := filetransfer.File{Name: "payload.bin", Size: int64(size), MediaType: "application/octet-stream",
		Hashes: []filetransfer.Hash{{Algo: "sha-256", Value: sum[:]}}}
	desc, err := file.Description()
	if err != nil {
		t.Fatal(err)
	}
	var ini jingle.Transport
	var proxy []socks5.Streamhost
	if transport == "proxy" {
		proxy = []socks5.Streamhost{discoverProxy(t, srv, a)}
		tr, err := socks5.NewJingleTransport(socks5.Config{Link: a, PeerJID: b.LocalJID(), Proxies: proxy})
		if err != nil {
			t.Fatal(err)
		}
		ini = tr
	} else {
		tr, err := ibb.NewJingleTransport(ha, b.LocalJID(), "ft-ibb", 0)
		if err != nil {
			t.Fatal(err)
		}
		ini = tr
	}
	s, err := ma.Initiate(ctx, b.LocalJID(), []jingle.Content{{Creator: jingle.CreatorInitiator, Name: "f",
		Senders: jingle.SendersInitiator, Description: desc, Transport: ini.Element()}}, map[string]jingle.Transport{"f": ini})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	connB := make(chan net.Conn, 1)
	connA := make(chan net.Conn, 1)
	type result struct {
		r   *filetransfer.Result
		err error
	}
	done := make(chan result, 1)
	go func() {
		sb := <-incoming
		c := sb.Contents()[0]
		offer, err := filetransfer.ParseDescription(c.Description)
		if err == nil {
			_, err = filetransfer.CheckOffer(offer, filetransfer.ReceiveOptions{Dir: dir})
		}
		var res jingle.Transport
		if err == nil {
			if transport == "proxy" {
				res, err = socks5.AcceptJingleTransport(socks5.Config{Link: b, PeerJID: a.LocalJID()}, c.Transport)
			} else {
				res, err = ibb.NewJingleResponder(hb, a.LocalJID(), c.Transport)
			}
		}
		if err == nil {
			err = sb.Accept(ctx, []jingle.Content{{Creator: c.Creator, Name: c.Name, Senders: c.Senders,
				Description: c.Description, Transport: res.Element()}}, map[string]jingle.Transport{"f": res})
		}
		var conn net.Conn
		if err == nil {
			conn, err = sb.Establish(ctx, "f")
		}
		if err != nil {
			close(connB)
			sb.Terminate(ctx, &jingle.Reason{Condition: jingle.FailedApplication})
			done <- result{nil, err}
			return
		}
		connB <- conn
		select {
		case conn = <-connA:
		case <-ctx.Done(): // the test failed before securing the bytestream
			sb.Terminate(context.Background(), &jingle.Reason{Condition: jingle.Cancel})
			done <- result{nil, ctx.Err()}
			return
		}
		r, err := filetransfer.Receive(ctx, sb, "f", conn, offer, filetransfer.ReceiveOptions{Dir: dir})
		done <- result{r, err}
	}()
	if ev := <-s.Events(); ev.Action != jingle.SessionAccept {
		t.Fatalf("not accepted: %v %+v; receiver: %v", ev.Action, ev.Reason, (<-done).err)
	}
	conn, err := s.Establish(ctx, "f")
	if err != nil {
		t.Fatal(err)
	}
	cb, ok := <-connB
	if !ok {
		t.Fatalf("receiver: %v", (<-done).err)
	}
	wa, wb := ftSecure(t, a, b, conn, cb)
	connA <- wb
	start := time.Now()
	if err := filetransfer.Send(ctx, s, "f", wa, bytes.NewReader(data), &file, filetransfer.SendOptions{}); err != nil {
		t.Fatalf("send: %v", err)
	}
	r := <-done
	if r.err != nil {
		t.Fatalf("receive: %v", r.err)
	}
	el := time.Since(start)
	got, err := os.ReadFile(filepath.Join(dir, "payload.bin"))
	if err != nil || !bytes.Equal(got, data) || r.r.Verified != "sha-256" {
		t.Fatalf("file differs (%v), %+v", err, r.r)
	}
	t.Logf("%s: %d bytes over TLS through Prosody in %v (%.1f MB/s)", transport, size, el, float64(size)/el.Seconds()/1e6)
}

// TestFileTransferProsodyIBB: XEP-0234 over XEP-0261 IBB through Prosody, bytestream in TLS,
// 1 MiB sha-256 checked (issue 8).
func TestFileTransferProsodyIBB(t *testing.T) { ftRun(t, "ibb", 1<<20) }

// TestFileTransferProsodyProxy: XEP-0234 over XEP-0260 S5B through Prosody's proxy65,
// bytestream in TLS, 8 MiB sha-256 checked (issue 8).
func TestFileTransferProsodyProxy(t *testing.T) { ftRun(t, "proxy", 8<<20) }
