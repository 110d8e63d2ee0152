package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"

	"golang.org/x/term"

	"github.com/xtlsjingle/xtlsjingle/gosrcxmpp"
	"github.com/xtlsjingle/xtlsjingle/xtls"
)

// Interactive mode. One goroutine (loop) owns all UI state and is the only writer to the
// terminal; everything else (input, XTLS callbacks, session readers, opens in progress) sends
// it messages (agl/xmpp-client MainLoop, STYLE §4.10).

// inputMode tells the input reader how to read the next line.
type inputMode struct {
	password bool   // read without echo
	prompt   string // for a password
}

type (
	msgLine struct {
		text     string
		password bool
		eof      bool
		err      error
	}
	msgOffer struct {
		in    *xtls.Incoming
		reply chan xtls.Decision
	}
	msgOpened struct {
		peer string
		s    *xtls.Session
		err  error
	}
	msgAccepted struct{ s *xtls.Session }
	msgChat     struct {
		cs   *chatSession
		text string
	}
	msgEnded struct {
		cs  *chatSession
		err error
	}
	msgSessionError struct {
		peer string
		err  error
	}
	msgConn struct{ e gosrcxmpp.Event }
)

// chatSession is an established session as the UI sees it.
type chatSession struct {
	n    int
	s    *xtls.Session
	out  chan string // lines to send, in order
	done chan struct{}
}

type pendingOffer struct {
	n     int
	in    *xtls.Incoming
	reply chan xtls.Decision
	// A file offer (ui_files.go) is answered on freply instead, with the directory dir.
	file      *fileOffer
	freply    chan fileDecision
	dir       string
	plaintext bool // /accept --plaintext of an unencrypted file offer
}

// ui is the state of interactive mode.
type ui struct {
	o      *options
	st     *store
	c      *conn
	env    environment
	shared string // from $XTLSCHAT_SHARED_PASSWORD or --shared-password-file

	w     io.Writer      // the terminal, or stdout
	t     *term.Terminal // nil when stdin is not a terminal
	msgs  chan any
	modes chan inputMode // reply to every msgLine: how to read the next one
	ctx   context.Context
	wg    sync.WaitGroup

	sessions []*chatSession
	current  *chatSession
	offers   []*pendingOffer
	nextOff  int // numbers of offers (/accept N) and sessions (/switch N) count separately
	nextSess int
	// afterPassword consumes the next line, read without echo.
	afterPassword  func(pw string)
	passwordPrompt string
	quit           bool

	files     *fileReceiver // ui_files.go
	transfers []*transfer
	nextXfer  int
}

// post delivers m to the loop unless the UI has ended.
func (u *ui) post(m any) {
	select {
	case u.msgs <- m:
	case <-u.ctx.Done():
	}
}

// say prints one line of our own (not peer) text.
func (u *ui) say(format string, args ...any) {
	fmt.Fprintf(u.w, format+"\n", args...)
}

func runInteractive(ctx context.Context, o *options, st *store, password string, stdin io.Reader, stdout, stderr io.Writer, env environment) error {
	shared, err := sharedPassword(o, env)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	u := &ui{o: o, st: st, env: env, shared: shared, w: stdout, msgs: make(chan any, 64), modes: make(chan inputMode, 1), ctx: ctx}

	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		old, err := term.MakeRaw(int(f.Fd()))
		if err != nil {
			return usagef("cannot put the terminal in raw mode: %v", err)
		}
		defer term.Restore(int(f.Fd()), old)
		u.t = term.NewTerminal(struct {
			io.Reader
			io.Writer
		}{stdin, stdout}, "> ")
		resize := func() {
			if w, h, err := term.GetSize(int(f.Fd())); err == nil && w > 0 {
				u.t.SetSize(w, h)
			}
		}
		resize()
		winch := make(chan os.Signal, 1)
		notifyResize(winch)
		defer signal.Stop(winch)
		go func() { // ends with ctx (cancelled before run returns)
			for {
				select {
				case <-winch:
					resize()
				case <-ctx.Done():
					return
				}
			}
		}()
		u.w = u.t
	}

	u.say("connecting to %s as %s …", serverLabel(o), o.jid)
	u.files = u.fileReceiver()
	c, err := connect(ctx, connectOptions{
		jid: o.jid, password: password, server: o.server, serverCert: o.serverCert, s5bListen: o.s5bListen, st: st, p2p: o.p2pFlags(),
		files:       u.files,
		onConnEvent: func(e gosrcxmpp.Event) { u.post(msgConn{e}) },
		onIncoming: func(ctx context.Context, in *xtls.Incoming) xtls.Decision {
			reply := make(chan xtls.Decision, 1)
			u.post(msgOffer{in: in, reply: reply})
			select {
			case d := <-reply:
				return d
			case <-ctx.Done():
				return xtls.Decision{Decline: true}
			}
		},
		onSessionError: func(peer string, err error) { u.post(msgSessionError{peer, err}) },
	})
	if err != nil {
		return err
	}
	u.c = c
	defer func() {
		cancel()
		for _, cs := range u.sessions {
			cs.s.Close()
		}
		u.wg.Wait()
		u.files.close()
		c.close()
	}()
	fp := st.identity.Fingerprint()
	u.say("logged in as %s. Your fingerprint: %s", c.link.LocalJID(), fp.Groups())
	if st.created {
		u.say("(a new identity was created in %s)", st.dir)
	}
	for _, line := range c.p2pSummary() {
		u.say("%s", escapeTerminal(line))
	}
	u.say("Type /help for commands, /open FULL-JID to start a secure session.")

	u.wg.Add(2)
	go func() { defer u.wg.Done(); u.acceptLoop() }()
	go func() { defer u.wg.Done(); u.readInput(stdin) }()
	u.modes <- inputMode{}
	return u.loop()
}

func serverLabel(o *options) string {
	if o.server != "" {
		return o.server
	}
	_, d := splitJID(o.jid)
	return d
}

// readInput reads lines (or passwords) as the loop asks, one at a time.
func (u *ui) readInput(stdin io.Reader) {
	var sc *bufio.Scanner
	if u.t == nil {
		sc = bufio.NewScanner(stdin)
		sc.Buffer(make([]byte, 0, 4096), maxShownText)
	}
	for {
		var mode inputMode
		select {
		case mode = <-u.modes:
		case <-u.ctx.Done():
			return
		}
		var m msgLine
		switch {
		case u.t != nil && mode.password:
			m.text, m.err = u.t.ReadPassword(mode.prompt)
			m.password = true
		case u.t != nil:
			m.text, m.err = u.t.ReadLine()
		default:
			if mode.password {
				fmt.Fprint(u.w, mode.prompt)
			}
			if sc.Scan() {
				m.text = sc.Text()
			} else {
				m.err = sc.Err()
				if m.err == nil {
					m.err = io.EOF
				}
			}
			m.password = mode.password
		}
		if m.err != nil {
			m.eof = errors.Is(m.err, io.EOF)
		}
		u.post(m)
		if m.err != nil {
			return
		}
	}
}

func (u *ui) acceptLoop() {
	for {
		s, err := u.c.eng.Accept(u.ctx)
		if err != nil {
			return
		}
		u.post(msgAccepted{s})
	}
}

// loop is the one place that changes UI state.
func (u *ui) loop() error {
	for !u.quit {
		select {
		case <-u.ctx.Done():
			return nil
		case m := <-u.msgs:
			u.handle(m)
		}
	}
	return nil
}

func (u *ui) handle(m any) {
	switch m := m.(type) {
	case msgLine:
		if m.err != nil {
			if !m.eof {
				u.say("input error: %v", m.err)
			}
			u.quit = true
			return
		}
		var mode inputMode
		if m.password {
			f := u.afterPassword
			u.afterPassword = nil
			if f != nil {
				f(m.text)
			}
		} else {
			u.command(m.text)
		}
		if u.afterPassword != nil {
			mode = inputMode{password: true, prompt: u.passwordPrompt}
		}
		if !u.quit {
			u.modes <- mode
		}
	case msgOffer:
		u.nextOff++
		p := &pendingOffer{n: u.nextOff, in: m.in, reply: m.reply}
		u.offers = append(u.offers, p)
		u.showOffer(p)
	case msgOpened:
		if m.err != nil {
			u.say("!! session with %s failed: %s", escapeTerminal(m.peer), describe(m.err))
			return
		}
		u.addSession(m.s)
	case msgAccepted:
		u.addSession(m.s)
	case msgChat:
		u.say("%s> %s", escapeTerminal(m.cs.s.Peer), escapeTerminal(m.text))
	case msgEnded:
		u.removeSession(m.cs)
		u.say("-- session %d with %s ended: %s", m.cs.n, escapeTerminal(m.cs.s.Peer), closeReason(m.err))
	case msgSessionError:
		u.say("!! incoming session from %s failed: %s", escapeTerminal(m.peer), describe(m.err))
	case msgFileOffer, msgTransferStart, msgProgress, msgTransferDone, msgFileRefused, msgFileFailed:
		u.handleFile(m)
	case msgDo:
		m()
	case msgConn:
		switch m.e.Kind {
		case gosrcxmpp.Disconnected:
			u.say("!! connection to the server lost (%s); reconnecting …", escapeTerminal(fmt.Sprint(m.e.Err)))
		case gosrcxmpp.Reconnected:
			u.say("-- reconnected as %s", escapeTerminal(m.e.JID))
		}
	}
}

func (u *ui) showOffer(p *pendingOffer) {
	in := p.in
	peer := escapeTerminal(in.Peer)
	switch {
	case in.Trusted:
		u.say("?? %s wants a secure session; its certificate is pinned (x509). /accept %d or /decline %d", peer, p.n, p.n)
	case u.shared != "":
		u.say("?? %s wants a secure session; it is not verified yet — /accept %d checks the shared password you set, /decline %d refuses", peer, p.n, p.n)
	default:
		u.say("?? %s wants a secure session; it is not verified yet — /accept %d asks for the password you agreed on with it, /decline %d refuses", peer, p.n, p.n)
	}
	if !in.Fingerprint.IsZero() {
		u.say("   it announces the fingerprint %s", in.Fingerprint.Groups())
	}
}

// addSession makes s the current session and starts its reader and writer.
func (u *ui) addSession(s *xtls.Session) {
	u.nextSess++
	cs := &chatSession{n: u.nextSess, s: s, out: make(chan string, 32), done: make(chan struct{})}
	u.sessions = append(u.sessions, cs)
	u.current = cs
	sev, pinned := sessionEvent(u.st, s)
	how := "verified: " + sev.Verified
	switch xtls.Verification(sev.Verified) {
	case xtls.VerifiedSRP:
		how = "pinned after password check"
	case xtls.VerifiedManual:
		how = "fingerprint verified by you"
	case xtls.LeapOfFaith:
		how = "NOT VERIFIED (leap of faith)"
	}
	if pinned != nil {
		u.say("** %s's certificate %s is now pinned after the password check", escapeTerminal(pinned.Peer), pinned.Fingerprint)
	}
	u.say("** session %d with %s is secure: method %s, transport %s (%s), %s", cs.n, escapeTerminal(s.Peer), s.Method, s.Transport, pathText(s.Path), how)
	u.say("   peer fingerprint %s — %s", sev.Fingerprint, keyHintText(s.KeyHint))
	u.say("   lines you type now go to this session")
	u.wg.Add(2)
	go func() {
		defer u.wg.Done()
		for {
			text, err := recvChat(u.ctx, s)
			if err != nil {
				if u.ctx.Err() == nil {
					err = sessionOutcome(s, err)
				}
				close(cs.done)
				u.post(msgEnded{cs, err})
				return
			}
			u.post(msgChat{cs, text})
		}
	}()
	go func() {
		defer u.wg.Done()
		for {
			select {
			case text := <-cs.out:
				if err := sendChat(u.ctx, s, text); err != nil {
					return // the reader reports the end of the session
				}
			case <-cs.done:
				return
			case <-u.ctx.Done():
				return
			}
		}
	}()
}

func (u *ui) removeSession(cs *chatSession) {
	cs.s.Close()
	for i, x := range u.sessions {
		if x == cs {
			u.sessions = append(u.sessions[:i], u.sessions[i+1:]...)
			break
		}
	}
	if u.current == cs {
		u.current = nil
		if n := len(u.sessions); n > 0 {
			u.current = u.sessions[n-1]
			u.say("-- lines now go to session %d with %s", u.current.n, escapeTerminal(u.current.s.Peer))
		}
	}
}
