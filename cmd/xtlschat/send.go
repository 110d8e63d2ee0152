package main

import (
	"context"
	"encoding/hex"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/xtlsjingle/xtlsjingle/filetransfer"
)

// progressEvents returns a filetransfer progress callback that emits at most one progress
// event a second (and the last one).
func progressEvents(ew *eventWriter, peer, name, dir string) func(filetransfer.Progress) {
	var m meter
	return func(p filetransfer.Progress) {
		now := time.Now()
		m.update(p.Done, p.Total, now)
		if m.due(now, time.Second) {
			ew.emit(event{Event: evProgress, Peer: peer, Name: name, Dir: dir, Done: p.Done, Size: p.Total, Rate: m.rate(now)})
		}
	}
}

// connEvents emits the session (and pinned) events of a transfer's bytestream: secured by
// XTLS, or unencrypted ("encrypted": false, no method) with the user's consent.
func connEvents(ew *eventWriter, st *store, x xferConn) {
	if !x.encrypted() {
		ew.emit(event{Event: evSession, Peer: x.peer(), Transport: x.transport(), Encrypted: encrypted(false)})
		return
	}
	c := x.secure
	sev, pinned := securedEvent(st, c.Peer, c.Method, c.Transport, c.PeerFingerprint, c.Pinned)
	sev.Encrypted = encrypted(true)
	ew.emit(withPath(sev, c.Path, c.KeyHint))
	if pinned != nil {
		ew.emit(*pinned)
	}
}

// runSend is "xtlschat send": one file to --to over XTLS, then exit.
func runSend(ctx context.Context, o *options, st *store, password string, stdout, stderr io.Writer, env environment) error {
	ew := newEventWriter(stdout)
	shared, err := sharedPassword(o, env)
	if err != nil {
		return err
	}
	g, err := prepareFile(o.file)
	if err != nil {
		return failEvent(ew, o.to, err)
	}
	c, err := connectInitiator(ctx, o, st, password, stderr, ew, "send")
	if err != nil {
		g.f.Close()
		return failEvent(ew, "", err)
	}
	defer c.close()
	ew.emit(readyEvent(c, st))
	enc := true
	err = g.send(ctx, c, st, openOptions{peer: o.to, transport: o.transport, method: o.method, password: shared, timeout: o.timeout},
		o.allowPlaintext, "repeat the command with --allow-plaintext.",
		func(x xferConn) { enc = x.encrypted(); connEvents(ew, st, x) }, progressEvents(ew, o.to, g.file.Name, "out"))
	if err != nil {
		return failEvent(ew, o.to, transferExit(err))
	}
	ew.emit(event{Event: evFile, Peer: o.to, Dir: "out", Name: g.file.Name, Size: g.file.Size, Hash: "sha-256", SHA256: g.sumHex(), Encrypted: encrypted(enc)})
	return nil
}

// listenFiles is the file receiver of "xtlschat listen": offers from --from go to
// --download-dir (declined without one); unencrypted offers (a peer without XTLS) only from
// a peer named with --allow-plaintext-from, one file per use of the flag. Every finished
// transfer is reported to ended.
func listenFiles(ctx context.Context, o *options, st *store, ew *eventWriter, shared string, ended func(error)) *fileReceiver {
	allow := newPlaintextAllowance(o.allowPlaintextFrom)
	return newFileReceiver(fileHooks{
		decide: func(_ context.Context, fo *fileOffer) fileDecision {
			in := fo.in
			switch {
			case !matchPeer(o.from, in.Peer):
				ew.emit(event{Event: evDeclined, Peer: in.Peer, Name: fo.file.Name, Reason: "not the peer given with --from"})
				return fileDecision{decline: true}
			case o.downloadDir == "":
				ew.emit(event{Event: evDeclined, Peer: in.Peer, Name: fo.file.Name, Reason: "no --download-dir: files are declined"})
				return fileDecision{decline: true}
			case fo.plaintext && !allow.take(in.Peer):
				ew.emit(event{Event: evDeclined, Peer: in.Peer, Name: fo.file.Name, Encrypted: encrypted(false),
					Reason: "NOT end-to-end encrypted (the peer's client has no XTLS); to accept one unencrypted file from this peer, listen with --allow-plaintext-from " + in.Peer})
				return fileDecision{decline: true}
			}
			ew.emit(event{Event: evFileOffer, Peer: in.Peer, Name: fo.file.Name, Size: fo.file.Size, Methods: in.Methods,
				Fingerprint: groupsOrEmpty(in.Fingerprint), Encrypted: encrypted(!fo.plaintext)})
			return fileDecision{dir: o.downloadDir, password: shared, plaintext: fo.plaintext}
		},
		begin: func(c xferConn, f *filetransfer.File) (context.Context, func(filetransfer.Progress), func(*filetransfer.Result, error)) {
			connEvents(ew, st, c)
			peer := c.peer()
			return ctx, progressEvents(ew, peer, f.Name, "in"), func(r *filetransfer.Result, err error) {
				if err != nil {
					err = transferExit(err)
					ew.emit(event{Event: evError, Peer: peer, Name: f.Name, Message: describe(err), Code: exitCode(err)})
					ended(err)
					return
				}
				ew.emit(event{Event: evFile, Peer: peer, Dir: "in", Name: f.Name, Path: r.Path, Size: r.Size, Hash: r.Verified,
					SHA256: hex.EncodeToString(r.SHA256), Encrypted: encrypted(c.encrypted())})
				ended(nil)
			}
		},
		refused: func(fo *fileOffer, err error) {
			ew.emit(event{Event: evDeclined, Peer: fo.in.Peer, Name: fo.file.Name, Reason: refusal(err)})
		},
		failed: func(peer string, err error) {
			ew.emit(event{Event: evError, Peer: peer, Message: describe(err), Code: exitCode(err)})
			ended(err)
		},
	}, o.maxSize)
}

// plaintextAllowance is the consent of --allow-plaintext-from: each use of the flag allows
// ONE unencrypted file from the JID it names (bare: any of its resources), so the consent is
// per transfer (issue 8: "only when the user explicitly allows it for that transfer"), never
// a standing permission for a peer. Safe for concurrent use (offers are decided on goroutines
// of their own).
type plaintextAllowance struct {
	mu   sync.Mutex
	left []string // one entry per file still allowed
}

func newPlaintextAllowance(jids []string) *plaintextAllowance {
	return &plaintextAllowance{left: slices.Clone(jids)}
}

// take consumes one allowance that matches peer and reports whether there was one. The most
// specific one goes first: a full JID before the bare JID that would also match.
func (a *plaintextAllowance) take(peer string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	i := slices.Index(a.left, peer)
	if i < 0 {
		i = slices.IndexFunc(a.left, func(j string) bool { return matchPeer(j, peer) })
	}
	if i < 0 {
		return false
	}
	a.left = slices.Delete(a.left, i, i+1)
	return true
}
