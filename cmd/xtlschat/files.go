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
	"sync"

	"github.com/xtlsjingle/xtlsjingle/filetransfer"
	"github.com/xtlsjingle/xtlsjingle/jingle"
	"github.com/xtlsjingle/xtlsjingle/xtls"
)

// File transfer (XEP-0234) between xtlschat clients always runs over XTLS: the offer goes out
// with xtls.Client.OpenConn, incoming offers arrive through the xtls.Application below, and
// filetransfer sends and receives the bytes on the secured *tls.Conn.

// fileOffer is an incoming offer for the mode to decide on.
type fileOffer struct {
	in   *xtls.IncomingConn
	file *filetransfer.File
}

// fileDecision is a mode's answer to a fileOffer: decline, or accept into dir (with the
// shared password for srp when the peer is not pinned).
type fileDecision struct {
	decline  bool
	dir      string
	password string
}

// fileHooks is what a mode does with incoming transfers.
type fileHooks struct {
	// decide decides on an offer; nil declines every offer.
	decide func(ctx context.Context, o *fileOffer) fileDecision
	// begin is called once an accepted transfer is secured; it returns the context of the
	// receive (cancelling it cancels the transfer), a progress callback and the callback
	// that gets the outcome.
	begin func(c *xtls.Conn, f *filetransfer.File) (ctx context.Context, progress func(filetransfer.Progress), end func(*filetransfer.Result, error))
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
	pending map[string]pendingFile // by Jingle sid, between decide and the secured conn
	closed  bool
	wg      sync.WaitGroup
}

type pendingFile struct {
	dir  string
	file *filetransfer.File
}

func newFileReceiver(h fileHooks, maxSize int64) *fileReceiver {
	return &fileReceiver{hooks: h, maxSize: maxSize, pending: map[string]pendingFile{}}
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
			delete(r.pending, sid)
			r.mu.Unlock()
			var xe *xtls.Error
			if errors.As(err, &xe) && xe.Condition == jingle.Decline && !xe.Remote {
				return // our own decline, reported by decide already
			}
			if r.hooks.failed != nil {
				r.hooks.failed(peer, err)
			}
		},
	}
}

func (r *fileReceiver) decide(ctx context.Context, in *xtls.IncomingConn) xtls.ConnDecision {
	decline := xtls.ConnDecision{Decision: xtls.Decision{Decline: true}}
	f, err := filetransfer.ParseDescription(in.Content.Description)
	if err != nil || r.hooks.decide == nil {
		return decline
	}
	d := r.hooks.decide(ctx, &fileOffer{in: in, file: f})
	if d.decline {
		return decline
	}
	_, accept, err := filetransfer.Answer(in.Content.Description, filetransfer.ReceiveOptions{Dir: d.dir, MaxSize: r.maxSize})
	if err != nil {
		if r.hooks.refused != nil {
			r.hooks.refused(&fileOffer{in: in, file: f}, err)
		}
		return decline
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return decline
	}
	r.pending[in.SID] = pendingFile{dir: d.dir, file: f}
	return xtls.ConnDecision{Decision: xtls.Decision{Password: d.password}, Description: accept}
}

func (r *fileReceiver) secured(c *xtls.Conn) {
	r.mu.Lock()
	p, ok := r.pending[c.SID]
	delete(r.pending, c.SID)
	if r.closed || !ok || r.hooks.begin == nil {
		r.mu.Unlock()
		_ = c.Terminate(context.Background(), &jingle.Reason{Condition: jingle.Gone})
		return
	}
	r.wg.Add(1)
	r.mu.Unlock()
	defer r.wg.Done()
	ctx, progress, end := r.hooks.begin(c, p.file)
	res, err := filetransfer.Receive(ctx, c.Jingle, c.Content, c, p.file, filetransfer.ReceiveOptions{Dir: p.dir, MaxSize: r.maxSize, Progress: progress})
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
// before the first byte. It returns nil when the receiver verified the file.
func (g *outgoing) send(ctx context.Context, eng engine, st *store, o openOptions, secured func(*xtls.Conn), progress func(filetransfer.Progress)) error {
	defer g.f.Close()
	xo, err := xtlsOpenOptions(st, o)
	if err != nil {
		return err
	}
	dial := func(ctx context.Context, peer string, offer jingle.Content) (*jingle.Session, string, net.Conn, error) {
		sctx, cancel := context.WithTimeout(ctx, o.timeout)
		defer cancel()
		c, err := eng.OpenConn(sctx, peer, offer, xo)
		if err != nil {
			return nil, "", nil, err
		}
		if secured != nil {
			secured(c)
		}
		return c.Jingle, c.Content, c, nil
	}
	return filetransfer.SendTo(ctx, dial, o.peer, g.f, g.file, filetransfer.SendOptions{Progress: progress})
}

// sumHex is the SHA-256 of an outgoing file in hex.
func (g *outgoing) sumHex() string { return hex.EncodeToString(g.file.Hashes[0].Value) }

// transferExit maps the failure of a transfer after set-up to an exit code (set-up failures
// are xtls errors, mapped by exitCode).
func transferExit(err error) error {
	var te *filetransfer.TerminatedError
	var xe *xtls.Error
	switch {
	case err == nil, errors.As(err, &xe):
		return err
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
