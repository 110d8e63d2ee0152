package main

import (
	"context"
	"encoding/hex"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/xtlsjingle/xtlsjingle/filetransfer"
	"github.com/xtlsjingle/xtlsjingle/xtls"
)

// File transfers in interactive mode: /send, incoming offers answered with /accept and
// /decline like session offers, a progress bar with rate and ETA in the prompt line (on a
// terminal; a line every few seconds otherwise), /cancel, and the SHA-256 at the end. Every
// name comes from a peer or the file system and is escaped like all peer text.

type (
	msgFileOffer struct {
		fo    *fileOffer
		reply chan fileDecision
	}
	msgTransferStart struct {
		t *transfer
		c xferConn
	}
	msgProgress struct {
		t *transfer
		p filetransfer.Progress
	}
	msgTransferDone struct {
		t   *transfer
		res *filetransfer.Result // incoming
		sum string               // outgoing: the SHA-256 the receiver verified
		err error
	}
	msgFileRefused struct {
		fo  *fileOffer
		err error
	}
	msgFileFailed struct {
		peer string
		err  error
	}
	// msgDo runs on the loop.
	msgDo func()
)

// transfer is a running file transfer as the UI sees it.
type transfer struct {
	n        int
	in       bool
	peer     string
	name     string
	size     int64
	cancel   context.CancelFunc
	plain    bool // unencrypted (a peer without XTLS, the user's choice)
	m        meter
	lastLine time.Time // of the last progress line without a terminal
}

// progressPoster returns a progress callback that posts at most five updates a second (and
// the last one) to the loop.
func (u *ui) progressPoster(t *transfer) func(filetransfer.Progress) {
	var last time.Time
	return func(p filetransfer.Progress) {
		if now := time.Now(); p.Done >= p.Total || now.Sub(last) >= 200*time.Millisecond {
			last = now
			u.post(msgProgress{t, p})
		}
	}
}

// downloadDir is where accepted files go: --download-dir, or the current directory.
func (u *ui) downloadDir() string {
	d := u.o.downloadDir
	if d == "" {
		d = "."
	}
	if abs, err := filepath.Abs(d); err == nil {
		return abs
	}
	return d
}

// fileReceiver is the interactive mode's file-transfer application: offers wait for /accept.
func (u *ui) fileReceiver() *fileReceiver {
	return newFileReceiver(fileHooks{
		decide: func(ctx context.Context, fo *fileOffer) fileDecision {
			reply := make(chan fileDecision, 1)
			u.post(msgFileOffer{fo: fo, reply: reply})
			select {
			case d := <-reply:
				return d
			case <-ctx.Done():
				return fileDecision{decline: true}
			}
		},
		begin: func(c xferConn, f *filetransfer.File) (context.Context, func(filetransfer.Progress), func(*filetransfer.Result, error)) {
			ctx, cancel := context.WithCancel(u.ctx)
			t := &transfer{in: true, peer: c.peer(), name: f.Name, size: f.Size, cancel: cancel}
			u.post(msgTransferStart{t, c})
			return ctx, u.progressPoster(t), func(r *filetransfer.Result, err error) {
				cancel()
				u.post(msgTransferDone{t: t, res: r, err: err})
			}
		},
		refused: func(fo *fileOffer, err error) { u.post(msgFileRefused{fo, err}) },
		failed:  func(peer string, err error) { u.post(msgFileFailed{peer, err}) },
	}, u.o.maxSize)
}

// answer answers an offer: a session offer with d, a file offer with d and the directory.
func (p *pendingOffer) answer(d xtls.Decision) {
	if p.file == nil {
		p.reply <- d
		return
	}
	p.freply <- fileDecision{decline: d.Decline, password: d.Password, dir: p.dir, plaintext: p.plaintext && !d.Decline}
}

// chooseDir sets the directory of an accepted file offer: DIR after N in /accept N DIR, or
// the download directory. It reports false (and says why) when that is not a directory.
func (u *ui) chooseDir(p *pendingOffer, args []string) bool {
	p.dir = u.downloadDir()
	if len(args) > 1 {
		p.dir = strings.Join(args[1:], " ")
	}
	if fi, err := os.Stat(p.dir); err != nil || !fi.IsDir() {
		u.say("%s is not a directory; /accept %d DIR with an existing one", escapeTerminal(p.dir), p.n)
		return false
	}
	return true
}

func (u *ui) handleFile(m any) {
	switch m := m.(type) {
	case msgFileOffer:
		u.nextOff++
		in := &m.fo.in.Incoming
		p := &pendingOffer{n: u.nextOff, in: in, file: m.fo, freply: m.reply}
		u.offers = append(u.offers, p)
		f := m.fo.file
		if m.fo.plaintext {
			u.say("?? %s offers the file %s (%s MiB) — NOT end-to-end encrypted: its client has no XTLS, so the servers in between can read it",
				escapeTerminal(in.Peer), fileName(f.Name), mib(f.Size))
			u.say("   /accept --plaintext %d saves it unencrypted in %s (or /accept --plaintext %d DIR), /decline %d refuses", p.n, escapeTerminal(u.downloadDir()), p.n, p.n)
			return
		}
		trust := "its certificate is pinned (x509)"
		if !in.Trusted {
			trust = "it is not verified yet — /accept asks for the password you agreed on"
			if u.shared != "" {
				trust = "it is not verified yet — /accept checks the shared password you set"
			}
		}
		u.say("?? %s offers the file %s (%s MiB) over XTLS; %s", escapeTerminal(in.Peer), fileName(f.Name), mib(f.Size), trust)
		u.say("   /accept %d saves it in %s (or /accept %d DIR), /decline %d refuses", p.n, escapeTerminal(u.downloadDir()), p.n, p.n)
	case msgTransferStart:
		u.addTransfer(m.t)
		dir := "to"
		if m.t.in {
			dir = "from"
		}
		if !m.c.encrypted() {
			m.t.plain = true
			u.say("!! transfer %d of %s %s %s is NOT end-to-end encrypted (the peer has no XTLS; you allowed it for this file): transport %s",
				m.t.n, fileName(m.t.name), dir, escapeTerminal(m.c.peer()), m.c.transport())
			break
		}
		c := m.c.secure
		sev, pinned := securedEvent(u.st, c.Peer, c.Method, c.Transport, c.PeerFingerprint, c.Pinned)
		if pinned != nil {
			u.say("** %s's certificate %s is now pinned after the password check", escapeTerminal(pinned.Peer), pinned.Fingerprint)
		}
		u.say("** transfer %d of %s %s %s is secure: method %s, transport %s (%s), peer fingerprint %s", m.t.n, fileName(m.t.name),
			dir, escapeTerminal(c.Peer), c.Method, c.Transport, pathText(c.Path), sev.Fingerprint)
	case msgProgress:
		now := time.Now()
		m.t.m.update(m.p.Done, m.p.Total, now)
		if u.t != nil {
			u.showPrompt()
		} else if now.Sub(m.t.lastLine) >= 2*time.Second && m.p.Done < m.p.Total {
			m.t.lastLine = now
			u.say("   %d %s %s", m.t.n, fileName(m.t.name), m.t.m.bar(now, 20))
		}
	case msgTransferDone:
		u.removeTransfer(m.t)
		t := m.t
		switch {
		case m.err != nil:
			u.say("!! transfer %d of %s with %s failed: %s", t.n, fileName(t.name), escapeTerminal(t.peer), describe(transferExit(m.err)))
		case t.in:
			u.say("** received %s from %s (%s MiB)%s: %s verified, sha-256 %s", fileName(t.name), escapeTerminal(t.peer), mib(m.res.Size),
				unencryptedNote(t), m.res.Verified, hex.EncodeToString(m.res.SHA256))
			u.say("   saved as %s", escapeTerminal(m.res.Path))
		default:
			u.say("** sent %s to %s (%s MiB)%s; the receiver verified sha-256 %s", fileName(t.name), escapeTerminal(t.peer), mib(t.size),
				unencryptedNote(t), m.sum)
		}
	case msgFileRefused:
		u.say("-- declined the file %s from %s: %s", fileName(m.fo.file.Name), escapeTerminal(m.fo.in.Peer), escapeTerminal(refusal(m.err)))
	case msgFileFailed:
		u.say("!! incoming file from %s failed: %s", escapeTerminal(m.peer), describe(m.err))
	}
}

func (u *ui) addTransfer(t *transfer) {
	if t.n != 0 {
		return // an outgoing transfer is listed from /send on
	}
	u.nextXfer++
	t.n = u.nextXfer
	u.transfers = append(u.transfers, t)
}

func (u *ui) removeTransfer(t *transfer) {
	for i, x := range u.transfers {
		if x == t {
			u.transfers = append(u.transfers[:i], u.transfers[i+1:]...)
			break
		}
	}
	if u.t != nil {
		u.showPrompt()
	}
}

// showPrompt puts the progress of the latest transfer into the prompt line (redrawn at once
// by an empty write) or restores the plain prompt.
func (u *ui) showPrompt() {
	prompt := "> "
	if n := len(u.transfers); n > 0 {
		t := u.transfers[n-1]
		more := ""
		if n > 1 {
			more = " (+" + strconv.Itoa(n-1) + ")"
		}
		prompt = fileName(t.name) + " " + t.m.bar(time.Now(), 20) + more + " > "
	}
	u.t.SetPrompt(prompt)
	_, _ = u.t.Write(nil)
}

func (u *ui) listTransfers() {
	now := time.Now()
	for _, t := range u.transfers {
		dir, with := "out", "to"
		if t.in {
			dir, with = "in", "from"
		}
		u.say("> %d  %s %s %s %s  %s", t.n, dir, fileName(t.name), with, escapeTerminal(t.peer), t.m.bar(now, 10))
	}
}

func (u *ui) cmdSend(args []string) {
	o, peer, bare, rest, ok := u.sessionArgs("send", args, true)
	if !ok {
		return
	}
	path := strings.Join(rest, " ")
	allow := o.allowPlaintext
	how := "/send " + peer + " --allow-plaintext " + path
	send := func(password string) {
		oo := openOptions{peer: peer, transport: o.transport, method: o.method, password: password, timeout: u.o.timeout}
		ctx, cancel := context.WithCancel(u.ctx)
		u.nextXfer++
		t := &transfer{n: u.nextXfer, peer: peer, name: filepath.Base(path), cancel: cancel}
		u.transfers = append(u.transfers, t)
		u.say("-- transfer %d: offering %s to %s (transport %s, method %s) …", t.n, fileName(t.name), escapeTerminal(peer), o.transport, o.method)
		u.wg.Add(1)
		go func() {
			defer u.wg.Done()
			defer cancel()
			g, err := prepareFile(path)
			if err != nil {
				u.post(msgTransferDone{t: t, err: err})
				return
			}
			t.size = g.file.Size // read by the loop only after the post below
			err = g.send(ctx, u.c, u.st, oo, allow, how, func(c xferConn) { u.post(msgTransferStart{t, c}) }, u.progressPoster(t))
			u.post(msgTransferDone{t: t, sum: g.sumHex(), err: err})
		}()
	}
	pins, _ := u.st.trust.Pins(bare)
	if o.method != "auto" || len(pins) > 0 || u.shared != "" {
		u.withPassword(bare, o.method, send)
		return
	}
	// The shared password is asked for only if the peer has XTLS (disco, off the loop): a
	// peer without it gets the file unencrypted or not at all, never with a password.
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		ctx, cancel := context.WithTimeout(u.ctx, u.o.timeout)
		defer cancel()
		has := advertisesXTLS(ctx, u.c, peer)
		u.post(msgDo(func() {
			if has {
				u.withPassword(bare, o.method, send)
			} else {
				send("")
			}
		}))
	}()
}

func (u *ui) cmdCancel(args []string) {
	if len(u.transfers) == 0 {
		u.say("no file transfer is running")
		return
	}
	t := u.transfers[len(u.transfers)-1]
	if len(args) > 0 {
		t = nil
		n, _ := strconv.Atoi(args[0])
		for _, x := range u.transfers {
			if x.n == n {
				t = x
			}
		}
		if t == nil {
			u.say("no transfer %s; /sessions lists them", escapeTerminal(args[0]))
			return
		}
	}
	u.say("-- cancelling transfer %d of %s …", t.n, fileName(t.name))
	t.cancel()
}

// unencryptedNote marks the outcome of an unencrypted transfer.
func unencryptedNote(t *transfer) string {
	if t.plain {
		return " NOT end-to-end encrypted"
	}
	return ""
}

// fileName shows a file name (peer text) escaped and in quotes.
func fileName(name string) string { return "\"" + escapeTerminal(name) + "\"" }
