package main

import (
	"context"
	"encoding/hex"
	"io"
	"time"

	"github.com/xtlsjingle/xtlsjingle/filetransfer"
	"github.com/xtlsjingle/xtlsjingle/xtls"
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

// connEvents emits the session (and pinned) events of a secured transfer.
func connEvents(ew *eventWriter, st *store, c *xtls.Conn) {
	sev, pinned := securedEvent(st, c.Peer, c.Method, c.Transport, c.PeerFingerprint, c.Pinned)
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
	err = g.send(ctx, c.eng, st, openOptions{peer: o.to, transport: o.transport, method: o.method, password: shared, timeout: o.timeout},
		func(conn *xtls.Conn) { connEvents(ew, st, conn) }, progressEvents(ew, o.to, g.file.Name, "out"))
	if err != nil {
		return failEvent(ew, o.to, transferExit(err))
	}
	ew.emit(event{Event: evFile, Peer: o.to, Dir: "out", Name: g.file.Name, Size: g.file.Size, Hash: "sha-256", SHA256: g.sumHex()})
	return nil
}

// listenFiles is the file receiver of "xtlschat listen": offers from --from go to
// --download-dir (declined without one); every finished transfer is reported to ended.
func listenFiles(ctx context.Context, o *options, st *store, ew *eventWriter, shared string, ended func(error)) *fileReceiver {
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
			}
			ew.emit(event{Event: evFileOffer, Peer: in.Peer, Name: fo.file.Name, Size: fo.file.Size, Methods: in.Methods, Fingerprint: groupsOrEmpty(in.Fingerprint)})
			return fileDecision{dir: o.downloadDir, password: shared}
		},
		begin: func(c *xtls.Conn, f *filetransfer.File) (context.Context, func(filetransfer.Progress), func(*filetransfer.Result, error)) {
			connEvents(ew, st, c)
			return ctx, progressEvents(ew, c.Peer, f.Name, "in"), func(r *filetransfer.Result, err error) {
				if err != nil {
					err = transferExit(err)
					ew.emit(event{Event: evError, Peer: c.Peer, Name: f.Name, Message: describe(err), Code: exitCode(err)})
					ended(err)
					return
				}
				ew.emit(event{Event: evFile, Peer: c.Peer, Dir: "in", Name: f.Name, Path: r.Path, Size: r.Size, Hash: r.Verified, SHA256: hex.EncodeToString(r.SHA256)})
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
