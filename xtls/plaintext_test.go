package xtls_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xtlsjingle/xtlsjingle/disco"
	"github.com/xtlsjingle/xtlsjingle/filetransfer"
	"github.com/xtlsjingle/xtlsjingle/ibb"
	"github.com/xtlsjingle/xtlsjingle/internal/xmpptest"
	"github.com/xtlsjingle/xtlsjingle/jingle"
	"github.com/xtlsjingle/xtlsjingle/xtls"
)

// The tests of this file run file transfers between an XTLS client and a plain party: a
// XEP-0234 client without XTLS (like Libervia), built from jingle, ibb and filetransfer only,
// that advertises file transfer and IBB but not urn:xmpp:jingle:security:xtls:0 (XTLS-1,
// XTLS-10). A plaintext transfer happens only with the caller's explicit consent for that
// transfer (XTLS-15) and never with a peer that advertises XTLS or whose certificates are
// pinned (XTLS-25).

const plainJID = "benvolio@montague.lit/libervia"

// plainPeer is a file-transfer client without XTLS.
type plainPeer struct {
	link     *xmpptest.Party
	mgr      *jingle.Manager
	ibb      *ibb.Handler
	incoming chan *jingle.Session
}

func newPlainPeer(t *testing.T, n *xmpptest.Network, jid string, advertiseXTLS bool) *plainPeer {
	t.Helper()
	p := &plainPeer{link: n.Party(jid), incoming: make(chan *jingle.Session, 4)}
	info := &disco.Info{Identities: []disco.Identity{{Category: "client", Type: "pc", Name: "plain"}},
		Features: []string{disco.NSInfo, jingle.NS, filetransfer.NS, filetransfer.NSHashes, ibb.NSJingle}}
	if advertiseXTLS {
		info.Features = append(info.Features, xtls.NS)
	}
	remove := disco.Serve(p.link, info)
	p.ibb = ibb.NewHandler(p.link, nil)
	p.mgr = jingle.NewManager(p.link, jingle.Config{InfoNamespaces: []string{filetransfer.NS},
		Incoming: func(s *jingle.Session) { p.incoming <- s }})
	t.Cleanup(func() { p.mgr.Close(); p.ibb.Close(); remove(); p.link.Close() })
	return p
}

// receive accepts the next offer over IBB and receives it into dir with plaintext allowed.
func (p *plainPeer) receive(ctx context.Context, dir string) (*filetransfer.Result, error) {
	var s *jingle.Session
	select {
	case s = <-p.incoming:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	c := s.Contents()[0]
	offer, err := filetransfer.ParseDescription(c.Description)
	if err != nil {
		return nil, err
	}
	tr, err := ibb.NewJingleResponder(p.ibb, s.Peer(), c.Transport)
	if err != nil {
		return nil, err
	}
	if err := s.Accept(ctx, []jingle.Content{{Creator: c.Creator, Name: c.Name, Senders: c.Senders,
		Description: c.Description, Transport: tr.Element()}}, map[string]jingle.Transport{c.Name: tr}); err != nil {
		return nil, err
	}
	conn, err := s.Establish(ctx, c.Name)
	if err != nil {
		return nil, err
	}
	return filetransfer.Receive(ctx, s, c.Name, conn, offer, filetransfer.ReceiveOptions{Dir: dir, AllowPlaintext: true})
}

// offer offers f to peer over IBB; it returns the session and the reason when the peer
// terminated instead of accepting.
func (p *plainPeer) offer(ctx context.Context, t *testing.T, peer string, f *filetransfer.File) (*jingle.Session, *jingle.Reason) {
	t.Helper()
	desc, err := f.Description()
	if err != nil {
		t.Fatal(err)
	}
	tr, err := ibb.NewJingleTransport(p.ibb, peer, "plain-ibb", 0)
	if err != nil {
		t.Fatal(err)
	}
	s, err := p.mgr.Initiate(ctx, peer, []jingle.Content{{Creator: jingle.CreatorInitiator, Name: "f",
		Senders: jingle.SendersInitiator, Description: desc, Transport: tr.Element()}}, map[string]jingle.Transport{"f": tr})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-s.Events():
		if ev.Action == jingle.SessionAccept {
			return s, nil
		}
		if ev.Reason == nil {
			return s, &jingle.Reason{}
		}
		return s, ev.Reason
	case <-ctx.Done():
		t.Fatal("no answer to the plaintext offer")
	}
	return nil, nil
}

// plaintextDialer is the glue of an application that got the user's consent: OpenPlaintext.
func plaintextDialer(c *xtls.Client, got **xtls.PlaintextConn) filetransfer.Dialer {
	return func(ctx context.Context, peer string, offer jingle.Content) (*jingle.Session, string, net.Conn, error) {
		conn, err := c.OpenPlaintext(ctx, peer, offer, nil)
		if err != nil {
			return nil, "", nil, err
		}
		if got != nil {
			*got = conn
		}
		return conn.Jingle, conn.Content, conn, nil
	}
}

// plainReceiver is an xtls party's Application.Plaintext that records offers and accepts
// them when consent is set.
type plainReceiver struct {
	consent bool
	dir     string
	offers  chan *xtls.PlaintextOffer
	results chan ftResult
	ctx     context.Context
}

func (r *plainReceiver) handler() *xtls.PlaintextHandler {
	return &xtls.PlaintextHandler{
		Decide: func(ctx context.Context, in *xtls.PlaintextOffer) xtls.PlaintextDecision {
			r.offers <- in
			if !r.consent {
				return xtls.PlaintextDecision{}
			}
			_, accept, err := filetransfer.Answer(in.Content.Description, filetransfer.ReceiveOptions{Dir: r.dir, AllowPlaintext: true})
			return xtls.PlaintextDecision{AcceptPlaintext: err == nil, Description: accept}
		},
		Ready: func(c *xtls.PlaintextConn) {
			offer, err := filetransfer.Offered(c.Jingle, c.Content)
			if err != nil {
				r.results <- ftResult{nil, err}
				return
			}
			res, err := filetransfer.Receive(r.ctx, c.Jingle, c.Content, c, offer, filetransfer.ReceiveOptions{Dir: r.dir, AllowPlaintext: true})
			r.results <- ftResult{res, err}
		},
	}
}

// plainSetup is romeo (XTLS, file transfer, with plainReceiver when pr is set) and a plain
// party on the same network.
func plainSetup(t *testing.T, seed int64, pr *plainReceiver, advertiseXTLS bool) (*party, *ftReceiver, *plainPeer) {
	n := xmpptest.NewNetwork(seed)
	rr := newFTReceiver(t)
	app := rr.app()
	if pr != nil {
		pr.dir, pr.ctx = t.TempDir(), ctxT(t)
		pr.offers, pr.results = make(chan *xtls.PlaintextOffer, 4), make(chan ftResult, 4)
		app.Plaintext = pr.handler()
	}
	romeo := newParty(t, n, romeoJID, partyOpts{apps: []xtls.Application{app}})
	return romeo, rr, newPlainPeer(t, n, plainJID, advertiseXTLS)
}

func noSession(t *testing.T, p *plainPeer) {
	t.Helper()
	select {
	case s := <-p.incoming:
		t.Fatalf("the plain peer got a session %s", s.SID())
	case <-time.After(200 * time.Millisecond):
	}
}

// TestPlaintextSendNeedsConsent (XTLS-2, XTLS-15, issue 8): to a peer without XTLS, OpenConn
// (the normal path) fails with ErrNotSupported before any Jingle, so nothing leaves
// unencrypted; a bytestream of OpenPlaintext is not TLS, so filetransfer.Send refuses it too
// unless SendOptions.AllowPlaintext is also set.
func TestPlaintextSendNeedsConsent(t *testing.T) {
	checkGoroutines(t)
	romeo, _, plain := plainSetup(t, 41, nil, false)
	data, f := randomFile(t, "notes.txt", 10<<10)
	err := filetransfer.SendTo(ctxT(t), xtlsDialer(romeo.client, nil, nil), plainJID, bytes.NewReader(data), f, filetransfer.SendOptions{})
	if !errors.Is(err, xtls.ErrNotSupported) || errors.Is(err, xtls.ErrDowngrade) {
		t.Fatalf("SendTo over OpenConn = %v, want ErrNotSupported", err)
	}
	noSession(t, plain)

	// OpenPlaintext without SendOptions.AllowPlaintext: the session opens, but filetransfer
	// refuses the bytestream (<security-error/>) before the first byte.
	recvErr := make(chan error, 1)
	dir := t.TempDir()
	go func() { _, err := plain.receive(ctxT(t), dir); recvErr <- err }()
	err = filetransfer.SendTo(ctxT(t), plaintextDialer(romeo.client, nil), plainJID, bytes.NewReader(data), f, filetransfer.SendOptions{})
	if !errors.Is(err, filetransfer.ErrPlaintext) {
		t.Fatalf("SendTo without AllowPlaintext = %v, want ErrPlaintext", err)
	}
	// The receiver sees the <security-error/>, or only the end of the session when it came
	// while the bytestream was still being opened.
	var te *filetransfer.TerminatedError
	if err := <-recvErr; err == nil || errors.As(err, &te) && te.Condition != jingle.SecurityError {
		t.Fatalf("plain receiver: %v, want security-error", err)
	}
	// The plain receiver had accepted (its temporary file exists), but not one byte came.
	for _, name := range dirEntries(t, dir) {
		if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.Size() != 0 || name == f.Name {
			t.Fatalf("file bytes arrived: %s", name)
		}
	}
}

// TestPlaintextSendWithConsent (XTLS-15, XTLS-10, issue 8): with OpenPlaintext and
// SendOptions.AllowPlaintext the file reaches the plain peer, sha-256 verified.
func TestPlaintextSendWithConsent(t *testing.T) {
	checkGoroutines(t)
	romeo, _, plain := plainSetup(t, 42, nil, false)
	data, f := randomFile(t, "notes.bin", 300<<10)
	dir := t.TempDir()
	type res struct {
		r   *filetransfer.Result
		err error
	}
	done := make(chan res, 1)
	go func() { r, err := plain.receive(ctxT(t), dir); done <- res{r, err} }()
	var pc *xtls.PlaintextConn
	if err := filetransfer.SendTo(ctxT(t), plaintextDialer(romeo.client, &pc), plainJID, bytes.NewReader(data), f,
		filetransfer.SendOptions{AllowPlaintext: true}); err != nil {
		t.Fatalf("SendTo: %v", err)
	}
	r := <-done
	if r.err != nil {
		t.Fatalf("plain receiver: %v", r.err)
	}
	got, err := os.ReadFile(filepath.Join(dir, "notes.bin"))
	if err != nil || !bytes.Equal(got, data) || r.r.Verified != "sha-256" {
		t.Fatalf("file differs (%v) or unverified: %+v", err, r.r)
	}
	if pc.Transport != xtls.TransportNameIBB || !pc.Initiator || pc.Peer != plainJID {
		t.Fatalf("PlaintextConn %+v", pc)
	}
}

// TestPlaintextNeverWithXTLSPeer (XTLS-15, XTLS-D3, issue 8): OpenPlaintext refuses a peer
// that advertises XTLS — also right after an XTLS attempt with it failed for security
// (unpinned, no password) — and nothing reaches that peer unencrypted.
func TestPlaintextNeverWithXTLSPeer(t *testing.T) {
	checkGoroutines(t)
	romeo, _, _, jr := ftPair(t, 43, partyOpts{}, partyOpts{})
	data, f := randomFile(t, "secret.bin", 4<<10)
	err := filetransfer.SendTo(ctxT(t), xtlsDialer(romeo.client, nil, nil), julietJID, bytes.NewReader(data), f, filetransfer.SendOptions{})
	var e *xtls.Error
	if !errors.As(err, &e) || e.Condition != jingle.SecurityError {
		t.Fatalf("XTLS attempt = %v, want security-error (not pinned, no password)", err)
	}
	<-jr.failed
	err = filetransfer.SendTo(ctxT(t), plaintextDialer(romeo.client, nil), julietJID, bytes.NewReader(data), f, filetransfer.SendOptions{AllowPlaintext: true})
	if !errors.Is(err, xtls.ErrPeerHasXTLS) {
		t.Fatalf("OpenPlaintext to an XTLS peer = %v, want ErrPeerHasXTLS", err)
	}
	if names := dirEntries(t, jr.dir); len(names) != 0 {
		t.Fatalf("files written: %v", names)
	}
}

// TestPlaintextDowngradeRefused (XTLS-25, issue 8): romeo pins juliet in a real srp transfer;
// then juliet shows up with a client that does not advertise XTLS (same bare JID). OpenConn
// fails with ErrDowngrade, and so does OpenPlaintext — the option never helps; her plaintext
// offer is refused with <security-error/> without asking the application.
func TestPlaintextDowngradeRefused(t *testing.T) {
	checkGoroutines(t)
	n := xmpptest.NewNetwork(44)
	rr, jr := newFTReceiver(t), newFTReceiver(t)
	pr := &plainReceiver{consent: true, dir: t.TempDir(), ctx: ctxT(t), offers: make(chan *xtls.PlaintextOffer, 4), results: make(chan ftResult, 4)}
	app := rr.app()
	app.Plaintext = pr.handler()
	romeo := newParty(t, n, romeoJID, partyOpts{apps: []xtls.Application{app}})
	juliet := newParty(t, n, julietJID, partyOpts{apps: []xtls.Application{jr.app()}})
	jr.password = "swear not by the moon"
	data, f := randomFile(t, "first.bin", 8<<10)
	if err := filetransfer.SendTo(ctxT(t), xtlsDialer(romeo.client, &xtls.OpenOptions{Password: jr.password}, nil), julietJID,
		bytes.NewReader(data), f, filetransfer.SendOptions{}); err != nil {
		t.Fatalf("srp transfer: %v", err)
	}
	if res := <-jr.results; res.err != nil || len(pinned(t, romeo, julietJID)) != 1 {
		t.Fatalf("srp transfer: %v, pins %v", res.err, pinned(t, romeo, julietJID))
	}
	_ = juliet.client.Close()

	const downgraded = "juliet@capulet.lit/plain"
	plain := newPlainPeer(t, n, downgraded, false)
	_, f2 := randomFile(t, "second.bin", 8<<10)
	for name, dial := range map[string]filetransfer.Dialer{
		"OpenConn":      xtlsDialer(romeo.client, nil, nil),
		"OpenPlaintext": plaintextDialer(romeo.client, nil),
	} {
		err := filetransfer.SendTo(ctxT(t), dial, downgraded, bytes.NewReader(data), f2, filetransfer.SendOptions{AllowPlaintext: true})
		if !errors.Is(err, xtls.ErrDowngrade) {
			t.Fatalf("%s = %v, want ErrDowngrade", name, err)
		}
	}
	noSession(t, plain)

	_, reason := plain.offer(ctxT(t), t, romeoJID, f2)
	if reason == nil || reason.Condition != jingle.SecurityError {
		t.Fatalf("plaintext offer from a pinned peer answered %+v, want security-error", reason)
	}
	select {
	case err := <-rr.failed:
		if !errors.Is(err, xtls.ErrDowngrade) {
			t.Fatalf("Failed: %v, want ErrDowngrade", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the refused downgrade was not reported")
	}
	select {
	case in := <-pr.offers:
		t.Fatalf("Plaintext.Decide was asked about %s", in.SID)
	default:
	}
}

// TestPlaintextReceiveDeclinedByDefault (J-8, J-23, XTLS-10, issue 8): an offer without
// <security/> from a peer without XTLS is declined with <decline/> when the application has
// no Plaintext handler, and when its Decide does not consent; Decide sees the offer.
func TestPlaintextReceiveDeclinedByDefault(t *testing.T) {
	checkGoroutines(t)
	for _, tc := range []struct {
		name string
		pr   *plainReceiver
	}{{"no-handler", nil}, {"no-consent", &plainReceiver{}}} {
		t.Run(tc.name, func(t *testing.T) {
			romeo, rr, plain := plainSetup(t, 45, tc.pr, false)
			_ = romeo
			_, f := randomFile(t, "unasked.bin", 4<<10)
			_, reason := plain.offer(ctxT(t), t, romeoJID, f)
			if reason == nil || reason.Condition != jingle.Decline {
				t.Fatalf("answer %+v, want decline", reason)
			}
			if tc.pr != nil {
				in := <-tc.pr.offers
				if in.Peer != plainJID || jingle.Namespace(in.Content.Description) != filetransfer.NS {
					t.Fatalf("offer %+v", in)
				}
				if names := dirEntries(t, tc.pr.dir); len(names) != 0 {
					t.Fatalf("files written: %v", names)
				}
			}
			select {
			case err := <-rr.failed:
				t.Fatalf("a decline was reported as failure: %v", err)
			case c := <-rr.secured:
				t.Fatalf("a plaintext offer reached Secured (%s)", c.SID)
			default:
			}
		})
	}
}

// TestPlaintextReceiveWithConsent (XTLS-10, XTLS-15, issue 8): when Plaintext.Decide consents
// the file from the plain peer arrives through Ready, sha-256 verified.
func TestPlaintextReceiveWithConsent(t *testing.T) {
	checkGoroutines(t)
	pr := &plainReceiver{consent: true}
	_, _, plain := plainSetup(t, 46, pr, false)
	data, f := randomFile(t, "gift.bin", 300<<10)
	s, reason := plain.offer(ctxT(t), t, romeoJID, f)
	if reason != nil {
		t.Fatalf("offer refused: %+v", reason)
	}
	conn, err := s.Establish(ctxT(t), "f")
	if err != nil {
		t.Fatal(err)
	}
	if err := filetransfer.Send(ctxT(t), s, "f", conn, bytes.NewReader(data), f, filetransfer.SendOptions{AllowPlaintext: true}); err != nil {
		t.Fatalf("Send: %v", err)
	}
	r := <-pr.results
	if r.err != nil {
		t.Fatalf("Receive: %v", r.err)
	}
	got, err := os.ReadFile(r.r.Path)
	if err != nil || !bytes.Equal(got, data) || r.r.Verified != "sha-256" {
		t.Fatalf("file differs (%v) or unverified: %+v", err, r.r)
	}
}

// TestPlaintextOfferFromXTLSPeerRefused (XTLS-25, issue 8): a peer that advertises XTLS but
// offers without <security/> (something stripped the precondition) is refused with
// <security-error/>, even though the application would consent.
func TestPlaintextOfferFromXTLSPeerRefused(t *testing.T) {
	checkGoroutines(t)
	pr := &plainReceiver{consent: true}
	_, rr, plain := plainSetup(t, 47, pr, true)
	_, f := randomFile(t, "stripped.bin", 4<<10)
	_, reason := plain.offer(ctxT(t), t, romeoJID, f)
	if reason == nil || reason.Condition != jingle.SecurityError || !strings.Contains(reason.Text, "XTLS") {
		t.Fatalf("answer %+v, want security-error", reason)
	}
	if err := <-rr.failed; !errors.Is(err, xtls.ErrPeerHasXTLS) {
		t.Fatalf("Failed: %v", err)
	}
	select {
	case in := <-pr.offers:
		t.Fatalf("Decide was asked about %s", in.SID)
	default:
	}
}

// TestPlaintextAcceptWithSecurityRefused (XTLS-25, XTLS-11, issue 8): a peer whose disco#info
// does not show XTLS (stripped on the way, or a stale cache) but that answers a plaintext
// offer with <security/> in session-accept does support XTLS: OpenPlaintext ends the session
// with <security-error/> and ErrPeerHasXTLS before any byte flows.
func TestPlaintextAcceptWithSecurityRefused(t *testing.T) {
	checkGoroutines(t)
	romeo, _, plain := plainSetup(t, 48, nil, false)
	_, f := randomFile(t, "secret.bin", 4<<10)
	desc, err := f.Description()
	if err != nil {
		t.Fatal(err)
	}
	reason := make(chan *jingle.Reason, 1)
	go func() {
		s := <-plain.incoming
		c := s.Contents()[0]
		tr, err := ibb.NewJingleResponder(plain.ibb, s.Peer(), c.Transport)
		if err != nil {
			reason <- nil
			return
		}
		sec := []byte("<security xmlns='" + xtls.NS + "'><method name='x509'/></security>")
		if err := s.Accept(ctxT(t), []jingle.Content{{Creator: c.Creator, Name: c.Name, Senders: c.Senders,
			Description: c.Description, Transport: tr.Element(), Security: sec}}, map[string]jingle.Transport{c.Name: tr}); err != nil {
			reason <- nil
			return
		}
		for ev := range s.Events() {
			if ev.Action == jingle.SessionTerminate {
				reason <- ev.Reason
				return
			}
		}
		reason <- nil
	}()
	policy := xtls.TransportIBB
	pc, err := romeo.client.OpenPlaintext(ctxT(t), plainJID, jingle.Content{Description: desc}, &xtls.OpenOptions{Transports: &policy})
	if !errors.Is(err, xtls.ErrPeerHasXTLS) {
		if pc != nil {
			pc.Close()
		}
		t.Fatalf("OpenPlaintext = %v, want ErrPeerHasXTLS", err)
	}
	if r := <-reason; r == nil || r.Condition != jingle.SecurityError {
		t.Fatalf("the peer saw %+v, want security-error", r)
	}
}
