package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/xtlsjingle/xtlsjingle/disco"
	"github.com/xtlsjingle/xtlsjingle/filetransfer"
	"github.com/xtlsjingle/xtlsjingle/gosrcxmpp"
	"github.com/xtlsjingle/xtlsjingle/ibb"
	"github.com/xtlsjingle/xtlsjingle/internal/prosodytest"
	"github.com/xtlsjingle/xtlsjingle/jingle"
)

// plainClient is a XEP-0234 client without XTLS on the shared Prosody (like Libervia or a
// client without end-to-end encryption): disco without urn:xmpp:jingle:security:xtls:0, IBB.
type plainClient struct {
	link     *gosrcxmpp.Client
	mgr      *jingle.Manager
	ibb      *ibb.Handler
	incoming chan *jingle.Session
}

func newPlainClient(t *testing.T, srv *prosodytest.Server) *plainClient {
	t.Helper()
	jid, pw := srv.Account(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	link, err := gosrcxmpp.Dial(ctx, gosrcxmpp.Config{Address: srv.Addr, JID: jid + "/plain", Password: pw,
		TLS: &tls.Config{RootCAs: srv.RootCAs, ServerName: srv.Domain}})
	if err != nil {
		t.Fatal(err)
	}
	p := &plainClient{link: link, incoming: make(chan *jingle.Session, 4)}
	remove := disco.Serve(link, &disco.Info{Identities: []disco.Identity{{Category: "client", Type: "pc", Name: "plain"}},
		Features: []string{disco.NSInfo, jingle.NS, filetransfer.NS, filetransfer.NSHashes, ibb.NSJingle}})
	p.ibb = ibb.NewHandler(link, nil)
	p.mgr = jingle.NewManager(link, jingle.Config{InfoNamespaces: []string{filetransfer.NS},
		Incoming: func(s *jingle.Session) { p.incoming <- s }})
	t.Cleanup(func() { p.mgr.Close(); p.ibb.Close(); remove(); link.Close() })
	return p
}

// TestInteractivePlaintextConsent (issue 8, XTLS-10, XTLS-15): the interactive mode with a
// peer whose client has no XTLS. Its offer is listed as NOT end-to-end encrypted; /accept
// refuses it with an explanation and keeps it waiting; /accept --plaintext N takes it, and the
// file arrives sha-256 verified, marked unencrypted. /send to that peer fails with a message
// that says how to allow this one transfer, without asking for a password and without
// sending anything; /send --allow-plaintext delivers it — until the peer is pinned (XTLS-25).
func TestInteractivePlaintextConsent(t *testing.T) {
	srv := prosodytest.Shared(t)
	e := newE2ESetup(t, "unused")
	plain := newPlainClient(t, srv)
	dl := filepath.Join(e.dir, "dl")
	if err := os.Mkdir(dl, 0o700); err != nil {
		t.Fatal(err)
	}
	ir := startInteractive(t, append([]string{"--jid", e.alice + "/ui", "--config-dir", filepath.Join(e.dir, "alice"), "--download-dir", dl}, e.common...), e.alicePW)
	out, typeLine := ir.out, ir.typeLine
	pos := out.waitFor(t, 0, "logged in as ")
	aliceJID := regexp.MustCompile(`^[^ .]+@[^ ]+/ui`).FindString(out.String()[pos:])
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// 1. The plain client offers a file.
	path, data, sum := randomFile(t, e.dir, "open letter.txt", 200<<10)
	f := &filetransfer.File{Name: "open letter.txt", Size: int64(len(data))}
	desc, _ := f.Description()
	tr, err := ibb.NewJingleTransport(plain.ibb, aliceJID, "plain1", 0)
	if err != nil {
		t.Fatal(err)
	}
	s, err := plain.mgr.Initiate(ctx, aliceJID, []jingle.Content{{Creator: jingle.CreatorInitiator, Name: "f",
		Senders: jingle.SendersInitiator, Description: desc, Transport: tr.Element()}}, map[string]jingle.Transport{"f": tr})
	if err != nil {
		t.Fatal(err)
	}
	pos = out.waitFor(t, pos, `offers the file "open letter.txt" (0.2 MiB) — NOT end-to-end encrypted`)
	pos = out.waitFor(t, pos, "/accept --plaintext 1 saves it unencrypted")
	typeLine("/accept 1")
	pos = out.waitFor(t, pos, "!! offer 1 is NOT end-to-end encrypted")
	pos = out.waitFor(t, pos, "/accept --plaintext 1 [DIR] accepts this one file unencrypted anyway")
	typeLine("/sessions")
	pos = out.waitFor(t, pos, "(NOT end-to-end encrypted: /accept --plaintext)")
	typeLine("/accept --plaintext 1")
	pos = out.waitFor(t, pos, "-- accepted the UNENCRYPTED file")
	select {
	case ev := <-s.Events():
		if ev.Action != jingle.SessionAccept {
			t.Fatalf("answer %v %+v", ev.Action, ev.Reason)
		}
	case <-ctx.Done():
		t.Fatal("no session-accept")
	}
	conn, err := s.Establish(ctx, "f")
	if err != nil {
		t.Fatal(err)
	}
	src, _ := os.Open(path)
	defer src.Close()
	if err := filetransfer.Send(ctx, s, "f", conn, src, f, filetransfer.SendOptions{AllowPlaintext: true}); err != nil {
		t.Fatalf("plain send: %v", err)
	}
	pos = out.waitFor(t, pos, "is NOT end-to-end encrypted (the peer has no XTLS; you allowed it for this file)")
	pos = out.waitFor(t, pos, `(0.2 MiB) NOT end-to-end encrypted: sha-256 verified, sha-256 `+sum)
	if b, err := os.ReadFile(filepath.Join(dl, "open letter.txt")); err != nil || !bytes.Equal(b, data) {
		t.Fatalf("received file differs: %v", err)
	}

	// 2. /send without --allow-plaintext: refused with the way out, no password asked.
	plainJID := plain.link.LocalJID()
	out2, data2, sum2 := randomFile(t, e.dir, "reply.bin", 100<<10)
	typeLine("/send " + plainJID + " --transport ibb " + out2)
	pos = out.waitFor(t, pos, "has no end-to-end encryption: its client does not support XTLS")
	pos = out.waitFor(t, pos, "/send "+plainJID+" --allow-plaintext "+out2)
	if strings.Contains(out.String(), "Shared password for") {
		t.Fatal("a password was asked for a peer without XTLS")
	}
	select {
	case s := <-plain.incoming:
		t.Fatalf("the plain client got a session without consent: %s", s.SID())
	default:
	}

	// 3. With --allow-plaintext.
	typeLine("/send " + plainJID + " --transport ibb --allow-plaintext " + out2)
	var rs *jingle.Session
	select {
	case rs = <-plain.incoming:
	case <-ctx.Done():
		t.Fatal("no offer at the plain client")
	}
	c := rs.Contents()[0]
	if c.Security != nil {
		t.Fatal("the offer carries <security/>")
	}
	offer, err := filetransfer.ParseDescription(c.Description)
	if err != nil {
		t.Fatal(err)
	}
	rt, err := ibb.NewJingleResponder(plain.ibb, rs.Peer(), c.Transport)
	if err != nil {
		t.Fatal(err)
	}
	if err := rs.Accept(ctx, []jingle.Content{{Creator: c.Creator, Name: c.Name, Senders: c.Senders, Description: c.Description,
		Transport: rt.Element()}}, map[string]jingle.Transport{c.Name: rt}); err != nil {
		t.Fatal(err)
	}
	rconn, err := rs.Establish(ctx, c.Name)
	if err != nil {
		t.Fatal(err)
	}
	pdir := t.TempDir()
	res, err := filetransfer.Receive(ctx, rs, c.Name, rconn, offer, filetransfer.ReceiveOptions{Dir: pdir, AllowPlaintext: true})
	if err != nil || res.Verified != "sha-256" {
		t.Fatalf("plain receive: %v %+v", err, res)
	}
	if b, _ := os.ReadFile(res.Path); !bytes.Equal(b, data2) {
		t.Fatal("the plain client's copy differs")
	}
	pos = out.waitFor(t, pos, `** sent "reply.bin" to `+plainJID+" (0.1 MiB) NOT end-to-end encrypted; the receiver verified sha-256 "+sum2)

	// 4. XTLS-25: once a certificate of the peer is pinned, --allow-plaintext does not apply:
	// the missing XTLS is a possible downgrade attack and nothing is sent.
	plainBare, _, _ := strings.Cut(plainJID, "/")
	typeLine("/verify " + plainBare + " " + strings.Repeat("ab", 32))
	pos = out.waitFor(t, pos, "** pinned ")
	typeLine("/send " + plainJID + " --transport ibb --allow-plaintext " + out2)
	pos = out.waitFor(t, pos, "possible downgrade attack")
	select {
	case s := <-plain.incoming:
		t.Fatalf("the pinned peer got an unencrypted session: %s", s.SID())
	case <-time.After(300 * time.Millisecond):
	}
	ir.inW.Close()
	<-ir.done
}
