package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/xtlsjingle/xtlsjingle/disco"
	"github.com/xtlsjingle/xtlsjingle/filetransfer"
	"github.com/xtlsjingle/xtlsjingle/jingle"
	"github.com/xtlsjingle/xtlsjingle/xtls"
)

// File transfer (XEP-0234) between xtlschat clients always runs over XTLS: the offer goes out
// with xtls.Client.OpenConn, incoming offers arrive through the xtls.Application below, and
// filetransfer sends and receives the bytes on the secured *tls.Conn. With a peer whose
// client has no XTLS at all (Libervia, for instance) a transfer runs unencrypted only when
// the user allowed it for that one transfer (--allow-plaintext, /send --allow-plaintext,
// /accept --plaintext, --allow-plaintext-from): xtls.Client.OpenPlaintext and
// xtls.Application.Plaintext, which refuse peers that advertise XTLS or are pinned.

// fileOffer is an incoming offer for the mode to decide on.
type fileOffer struct {
	in   *xtls.IncomingConn
	file *filetransfer.File
	// plaintext: offered without <security/> by a peer without XTLS; in carries only Peer,
	// SID and Content then.
	plaintext bool
}

// fileDecision is a mode's answer to a fileOffer: decline, or accept into dir (with the
// shared password for srp when the peer is not pinned). A plaintext offer is accepted only
// with plaintext set: the user's consent for this one transfer.
type fileDecision struct {
	decline   bool
	dir       string
	password  string
	plaintext bool
}

// xferConn is the bytestream of a transfer: secured by XTLS, or (plain) unencrypted with the
// user's consent for this transfer.
type xferConn struct {
	secure *xtls.Conn
	plain  *xtls.PlaintextConn
}

func (x xferConn) encrypted() bool { return x.secure != nil }

func (x xferConn) conn() net.Conn {
	if x.secure != nil {
		return x.secure
	}
	return x.plain
}

func (x xferConn) peer() string {
	if x.secure != nil {
		return x.secure.Peer
	}
	return x.plain.Peer
}

func (x xferConn) transport() string {
	if x.secure != nil {
		return x.secure.Transport
	}
	return x.plain.Transport
}

// fileHooks is what a mode does with incoming transfers.
type fileHooks struct {
	// decide decides on an offer; nil declines every offer.
	decide func(ctx context.Context, o *fileOffer) fileDecision
	// begin is called once an accepted transfer is secured; it returns the context of the
	// receive (cancelling it cancels the transfer), a progress callback and the callback
	// that gets the outcome.
	begin func(c xferConn, f *filetransfer.File) (ctx context.Context, progress func(filetransfer.Progress), end func(*filetransfer.Result, error))
	// refused is told about accepted offers that cannot be received (the name exists, too
	// large, a name that would leave the directory): they are declined.
	refused func(o *fileOffer, err error)
	// failed is told about accepted offers whose set-up failed (security, transport).
	failed func(peer string, err error)
}

// fileReceiver is the file-transfer xtls.Application of one connection.
type fileReceiver struct {
	hooks   fileHooks
	maxSize int64

	mu      sync.Mutex
	pending map[offerKey]pendingFile // between decide and the bytestream
	closed  bool
	wg      sync.WaitGroup
}

// offerKey names an incoming session: a Jingle session is identified by its initiator and
// sid together (XEP-0166), so two peers may pick the same sid.
type offerKey struct{ peer, sid string }

type pendingFile struct {
	dir       string
	file      *filetransfer.File
	plaintext bool
}

func newFileReceiver(h fileHooks, maxSize int64) *fileReceiver {
	return &fileReceiver{hooks: h, maxSize: maxSize, pending: map[offerKey]pendingFile{}}
}

// application is the receiver as an xtls.Application.
func (r *fileReceiver) application() xtls.Application {
	return xtls.Application{
		Namespace: filetransfer.NS,
		Features:  []string{filetransfer.NSHashes},
		Decide:    r.decide,
		Secured:   r.secured,
		Failed: func(peer, sid string, err error) {
			r.mu.Lock()
			delete(r.pending, offerKey{peer, sid})
			r.mu.Unlock()
			var xe *xtls.Error
			if errors.As(err, &xe) && xe.Condition == jingle.Decline && !xe.Remote {
				return // our own decline, reported by decide already
			}
			if r.hooks.failed != nil {
				r.hooks.failed(peer, err)
			}
		},
		Plaintext: &xtls.PlaintextHandler{
			Decide: func(ctx context.Context, in *xtls.PlaintextOffer) xtls.PlaintextDecision {
				ic := &xtls.IncomingConn{Incoming: xtls.Incoming{Peer: in.Peer, SID: in.SID}, Content: in.Content}
				d, accept := r.decideOffer(ctx, ic, true)
				return xtls.PlaintextDecision{AcceptPlaintext: accept != nil && d.plaintext, Description: accept}
			},
			Ready: func(c *xtls.PlaintextConn) {
				r.receive(xferConn{plain: c}, c.Jingle, c.Content, offerKey{c.Peer, c.SID})
			},
		},
	}
}

func (r *fileReceiver) decide(ctx context.Context, in *xtls.IncomingConn) xtls.ConnDecision {
	d, accept := r.decideOffer(ctx, in, false)
	if accept == nil {
		return xtls.ConnDecision{Decision: xtls.Decision{Decline: true}}
	}
	return xtls.ConnDecision{Decision: xtls.Decision{Password: d.password}, Description: accept}
}

// decideOffer asks the mode about an offer and returns its decision and the description to
// accept with (nil: decline).
func (r *fileReceiver) decideOffer(ctx context.Context, in *xtls.IncomingConn, plaintext bool) (fileDecision, []byte) {
	f, err := filetransfer.ParseDescription(in.Content.Description)
	if err != nil || r.hooks.decide == nil {
		return fileDecision{decline: true}, nil
	}
	fo := &fileOffer{in: in, file: f, plaintext: plaintext}
	d := r.hooks.decide(ctx, fo)
	if d.decline || plaintext && !d.plaintext {
		return d, nil
	}
	_, accept, err := filetransfer.Answer(in.Content.Description, filetransfer.ReceiveOptions{Dir: d.dir, MaxSize: r.maxSize})
	if err != nil {
		if r.hooks.refused != nil {
			r.hooks.refused(fo, err)
		}
		return d, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return d, nil
	}
	r.pending[offerKey{in.Peer, in.SID}] = pendingFile{dir: d.dir, file: f, plaintext: plaintext}
	return d, accept
}

func (r *fileReceiver) secured(c *xtls.Conn) {
	r.receive(xferConn{secure: c}, c.Jingle, c.Content, offerKey{c.Peer, c.SID})
}

// receive runs an accepted transfer on its bytestream.
func (r *fileReceiver) receive(x xferConn, js *jingle.Session, content string, key offerKey) {
	conn := x.conn()
	r.mu.Lock()
	p, ok := r.pending[key]
	delete(r.pending, key)
	if r.closed || !ok || r.hooks.begin == nil || p.plaintext == x.encrypted() {
		r.mu.Unlock()
		_ = conn.Close()
		_ = js.Terminate(context.Background(), &jingle.Reason{Condition: jingle.Gone})
		return
	}
	r.wg.Add(1)
	r.mu.Unlock()
	defer r.wg.Done()
	ctx, progress, end := r.hooks.begin(x, p.file)
	res, err := filetransfer.Receive(ctx, js, content, conn, p.file, filetransfer.ReceiveOptions{Dir: p.dir, MaxSize: r.maxSize,
		Progress: progress, AllowPlaintext: p.plaintext})
	end(res, err)
}

// close stops taking transfers and waits for the running ones (their contexts must end).
func (r *fileReceiver) close() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.wg.Wait()
}

// outgoing is a file about to be sent: opened, hashed, described.
type outgoing struct {
	f    *os.File
	file *filetransfer.File
}

// prepareFile opens path, checks it is a regular file whose name a receiver accepts, and
// computes its SHA-256 for the offer.
func prepareFile(path string) (*outgoing, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, usageErr(err)
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("%s is not a regular file", path)
	}
	name := filepath.Base(path)
	if err == nil && !filetransfer.ValidName(name) {
		err = fmt.Errorf("the receiver would refuse the name %q (hidden, or with control or invisible formatting characters such as U+202E); rename the file", name)
	}
	h := sha256.New()
	if err == nil {
		_, err = io.Copy(h, f)
	}
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		f.Close()
		return nil, usageErr(err)
	}
	return &outgoing{f: f, file: &filetransfer.File{Name: name, Size: fi.Size(), Date: fi.ModTime(),
		Hashes: []filetransfer.Hash{{Algo: "sha-256", Value: h.Sum(nil)}}}}, nil
}

// send offers the file to o.peer over XTLS (method and transport as for a chat session; the
// set-up is bounded by o.timeout) and sends it; secured is told about the secured bytestream
// before the first byte. It returns nil when the receiver verified the file. A peer without
// XTLS gets the file unencrypted only with allowPlaintext (the user's consent for this
// transfer); without it the error is a *plaintextNeeded that says how to give it.
func (g *outgoing) send(ctx context.Context, c *conn, st *store, o openOptions, allowPlaintext bool, how string, secured func(xferConn), progress func(filetransfer.Progress)) error {
	defer g.f.Close()
	xo, err := xtlsOpenOptions(st, o)
	if err != nil {
		return err
	}
	desc, err := g.file.Description()
	if err != nil {
		return err
	}
	js, content, bs, plain, err := g.dial(ctx, c, o, xo, allowPlaintext, how, jingle.Content{Name: "file", Senders: jingle.SendersInitiator, Description: desc})
	if err != nil {
		return err
	}
	if secured != nil {
		secured(bs)
	}
	// AllowPlaintext is set only for the bytestream of OpenPlaintext.
	return filetransfer.Send(ctx, js, content, bs.conn(), g.f, g.file, filetransfer.SendOptions{Progress: progress, AllowPlaintext: plain})
}

// dial opens the transfer's session: XTLS, or, for a peer without XTLS and only with
// allowPlaintext, unencrypted (plain true).
func (g *outgoing) dial(ctx context.Context, c *conn, o openOptions, xo *xtls.OpenOptions, allowPlaintext bool, how string, offer jingle.Content) (js *jingle.Session, content string, bs xferConn, plain bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	sc, err := c.eng.OpenConn(ctx, o.peer, offer, xo)
	if err == nil {
		return sc.Jingle, sc.Content, xferConn{secure: sc}, false, nil
	}
	// ErrDowngrade (pinned, XTLS gone) and every security failure end here.
	if !errors.Is(err, xtls.ErrNotSupported) {
		return nil, "", xferConn{}, false, err
	}
	if !allowPlaintext {
		return nil, "", xferConn{}, false, &plaintextNeeded{peer: o.peer, how: how, err: err}
	}
	if hexDigestsPeer(ctx, c, o.peer) {
		g.file.HexDigests = true
		if offer.Description, err = g.file.Description(); err != nil {
			return nil, "", xferConn{}, false, err
		}
	}
	pc, err := c.eng.OpenPlaintext(ctx, o.peer, offer, xo)
	if err != nil {
		return nil, "", xferConn{}, false, err
	}
	return pc.Jingle, pc.Content, xferConn{plain: pc}, true, nil
}

// plaintextNeeded: the peer has no XTLS and the user did not allow this transfer unencrypted.
type plaintextNeeded struct {
	peer, how string
	err       error
}

func (e *plaintextNeeded) Error() string { return e.err.Error() }
func (e *plaintextNeeded) Unwrap() error { return e.err }

// peerInfo is the disco#info of peer through the plugin's cache (nil when unknown).
func peerInfo(ctx context.Context, c *conn, peer string) *disco.Info {
	if c.caps == nil {
		return nil
	}
	info, err := c.caps.Info(ctx, c.link, peer)
	if err != nil {
		return nil
	}
	return info
}

// advertisesXTLS reports whether peer advertises XTLS (true when that is unknown).
func advertisesXTLS(ctx context.Context, c *conn, peer string) bool {
	info := peerInfo(ctx, c, peer)
	return info == nil || info.Supports(xtls.NS)
}

// hexDigestsPeer reports whether peer is Libervia, which needs its digests as Base64 of the
// hex string (filetransfer.File.HexDigests), from its disco#info identity.
func hexDigestsPeer(ctx context.Context, c *conn, peer string) bool {
	info := peerInfo(ctx, c, peer)
	if info == nil {
		return false
	}
	for _, id := range info.Identities {
		if id.Category == "client" && strings.EqualFold(id.Name, "Libervia") {
			return true
		}
	}
	return false
}

// sumHex is the SHA-256 of an outgoing file in hex.
func (g *outgoing) sumHex() string { return hex.EncodeToString(g.file.Hashes[0].Value) }

// transferExit maps the failure of a transfer after set-up to an exit code (set-up failures
// are xtls errors, mapped by exitCode).
func transferExit(err error) error {
	var te *filetransfer.TerminatedError
	var xe *xtls.Error
	switch {
	case err == nil, errors.As(err, &xe), errors.Is(err, xtls.ErrNotSupported), errors.Is(err, xtls.ErrDowngrade),
		errors.Is(err, xtls.ErrPeerHasXTLS):
		return err // set-up failures: exitCode maps them
	case errors.As(err, &te) && te.Condition == jingle.SecurityError:
		return &exitError{code: exitSecurity, err: err}
	case errors.As(err, &te) && (te.Condition == jingle.Decline || te.Condition == jingle.Busy):
		return &exitError{code: exitPeer, err: err}
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return err
	}
	return &exitError{code: exitSession, err: err}
}

// refusal says why an offered file was declined (CheckOffer's errors).
func refusal(err error) string {
	switch {
	case errors.Is(err, filetransfer.ErrExists):
		return "a file of that name exists in the download directory (it is never replaced)"
	case errors.Is(err, filetransfer.ErrTooLarge):
		return "the file is larger than --max-size"
	case errors.Is(err, filetransfer.ErrBadName):
		return "the file name is not acceptable (hidden, a path, or control or invisible formatting characters)"
	}
	return describe(err)
}
