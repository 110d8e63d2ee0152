package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/xtlsjingle/xtlsjingle/gosrcxmpp"
	"github.com/xtlsjingle/xtlsjingle/xtls"
)

// verboseEvents returns the connection event callback of -v.
func verboseEvents(o *options, stderr io.Writer) func(gosrcxmpp.Event) {
	if !o.verbose {
		return nil
	}
	var mu sync.Mutex
	return func(e gosrcxmpp.Event) {
		mu.Lock()
		defer mu.Unlock()
		switch e.Kind {
		case gosrcxmpp.Disconnected:
			fmt.Fprintf(stderr, "xtlschat: connection lost (%v); reconnecting\n", e.Err)
		default:
			fmt.Fprintf(stderr, "xtlschat: %s as %s\n", e.Kind, escapeTerminal(e.JID))
		}
	}
}

// readyEvent describes the logged-in account, with the external address --stun or
// --s5b-forward gave (and why STUN failed, in message).
func readyEvent(c *conn, st *store) event {
	fp := st.identity.Fingerprint()
	ev := event{Event: evReady, JID: c.link.LocalJID(), Fingerprint: fp.Groups(), NI: fp.NI(), Published: c.published}
	if c.external.IsValid() {
		ev.External = c.external.String()
	}
	var errs []string
	for _, err := range c.gatherErrs {
		errs = append(errs, err.Error())
	}
	ev.Message = strings.Join(errs, "; ")
	return ev
}

// failEvent prints err as an error event and returns it.
func failEvent(ew *eventWriter, peer string, err error) error {
	ew.emit(event{Event: evError, Peer: peer, Message: describe(err), Code: exitCode(err)})
	return err
}

// runOpen is "xtlschat open": one session to --to, the messages of --message or standard
// input, then --wait messages from the peer, then an orderly close.
func runOpen(ctx context.Context, o *options, st *store, password string, stdin io.Reader, stdout, stderr io.Writer, env environment) error {
	ew := newEventWriter(stdout)
	shared, err := sharedPassword(o, env)
	if err != nil {
		return err
	}
	c, err := connectInitiator(ctx, o, st, password, stderr, ew, "open")
	if err != nil {
		return failEvent(ew, "", err)
	}
	defer c.close()
	ew.emit(readyEvent(c, st))
	c.waitPresence(ctx, o.to, 5*time.Second) // --subscribe: learn what the peer publishes first
	s, err := openSession(ctx, c.eng, st, openOptions{peer: o.to, transport: o.transport, method: o.method, password: shared, timeout: o.timeout})
	if err != nil {
		return failEvent(ew, o.to, err)
	}
	sev, pinned := sessionEvent(st, s)
	ew.emit(sev)
	if pinned != nil {
		ew.emit(*pinned)
	}

	// The receiver prints what the peer sends and counts it for --wait.
	rctx, rcancel := context.WithCancel(ctx)
	received := make(chan struct{}, 64)
	recvDone := make(chan error, 1)
	go func() {
		for {
			text, err := recvChat(rctx, s)
			if err != nil {
				recvDone <- err
				return
			}
			ew.emit(event{Event: evMessage, Peer: s.Peer, Dir: "in", Text: text})
			select {
			case received <- struct{}{}:
			default:
			}
		}
	}()
	defer func() { rcancel(); <-recvDone }()

	send := func(text string) error {
		if err := sendChat(ctx, s, text); err != nil {
			return err
		}
		ew.emit(event{Event: evMessage, Peer: s.Peer, Dir: "out", Text: text})
		return nil
	}
	var sendErr error
	if len(o.messages) > 0 {
		for _, m := range o.messages {
			if sendErr = send(m); sendErr != nil {
				break
			}
		}
	} else {
		sc := bufio.NewScanner(stdin)
		sc.Buffer(make([]byte, 0, 4096), maxShownText)
		for sc.Scan() {
			if sc.Text() == "" {
				continue // an empty body is not a chat message
			}
			if sendErr = send(sc.Text()); sendErr != nil {
				break
			}
		}
		if sendErr == nil && sc.Err() != nil {
			sendErr = usagef("reading standard input: %v", sc.Err())
		}
	}
	if sendErr != nil {
		s.Close()
		return failEvent(ew, s.Peer, sendErr)
	}

	var waitErr error
	timer := time.NewTimer(o.timeout)
	defer timer.Stop()
	for n := 0; n < o.wait && waitErr == nil; {
		select {
		case <-received:
			n++
		case err := <-recvDone:
			recvDone <- err // for the deferred wait
			if errors.Is(err, io.EOF) {
				err = fmt.Errorf("the peer closed the session after %d of %d messages", n, o.wait)
			}
			waitErr = &exitError{code: exitSession, err: err}
		case <-timer.C:
			waitErr = &exitError{code: exitSession, err: fmt.Errorf("waited %v for %d messages from the peer, got %d", o.timeout, o.wait, n)}
		case <-ctx.Done():
			waitErr = ctx.Err()
		}
	}
	closeErr := s.Close()
	if waitErr != nil {
		return failEvent(ew, s.Peer, waitErr)
	}
	if closeErr != nil && !errors.Is(closeErr, io.EOF) {
		ew.emit(event{Event: evClosed, Peer: s.Peer, Reason: closeReason(closeErr)})
		return failEvent(ew, s.Peer, &exitError{code: exitSession, err: closeErr})
	}
	ew.emit(event{Event: evClosed, Peer: s.Peer, Reason: "success"})
	return nil
}

// connectInitiator logs in for a command that only initiates (open, send): incoming
// sessions are declined with a declined event.
func connectInitiator(ctx context.Context, o *options, st *store, password string, stderr io.Writer, ew *eventWriter, cmd string) (*conn, error) {
	return connect(ctx, connectOptions{
		jid: o.jid, password: password, server: o.server, serverCert: o.serverCert, s5bListen: o.s5bListen, st: st, p2p: o.p2pFlags(),
		onConnEvent: verboseEvents(o, stderr),
		onIncoming: func(ctx context.Context, in *xtls.Incoming) xtls.Decision {
			ew.emit(event{Event: evDeclined, Peer: in.Peer, Reason: "xtlschat " + cmd + " does not accept sessions"})
			return xtls.Decision{Decline: true}
		},
	})
}

// matchPeer reports whether peer (a full JID) is what --from asked for: a bare --from matches
// every resource of that account, a full one only itself.
func matchPeer(from, peer string) bool {
	if from == "" {
		return true
	}
	if strings.Contains(from, "/") {
		return from == peer
	}
	a, err1 := xtls.BareJID(from)
	b, err2 := xtls.BareJID(peer)
	return err1 == nil && err2 == nil && a == b
}

// runListen is "xtlschat listen": accept sessions from --from (with the shared password when
// one is given), print what arrives, optionally echo it, and exit after --sessions sessions.
func runListen(ctx context.Context, o *options, st *store, password string, stdout, stderr io.Writer, env environment) error {
	ew := newEventWriter(stdout)
	shared, err := sharedPassword(o, env)
	if err != nil {
		return err
	}
	ended := make(chan error, 16)
	endSession := func(err error) {
		select {
		case ended <- err:
		default: // the main loop counts at most what it asked for; never block a session
		}
	}
	fctx, fcancel := context.WithCancel(ctx)
	defer fcancel()
	files := listenFiles(fctx, o, st, ew, shared, endSession)
	c, err := connect(ctx, connectOptions{
		jid: o.jid, password: password, server: o.server, serverCert: o.serverCert, s5bListen: o.s5bListen, st: st, p2p: o.p2pFlags(),
		files:       files,
		onConnEvent: verboseEvents(o, stderr),
		onIncoming: func(ctx context.Context, in *xtls.Incoming) xtls.Decision {
			if !matchPeer(o.from, in.Peer) {
				ew.emit(event{Event: evDeclined, Peer: in.Peer, Reason: "not the peer given with --from"})
				return xtls.Decision{Decline: true}
			}
			ew.emit(event{Event: evOffer, Peer: in.Peer, Methods: in.Methods, Fingerprint: groupsOrEmpty(in.Fingerprint)})
			return xtls.Decision{Password: shared}
		},
		onSessionError: func(peer string, err error) {
			ew.emit(event{Event: evError, Peer: peer, Message: describe(err), Code: exitCode(err)})
			endSession(err)
		},
	})
	if err != nil {
		return failEvent(ew, "", err)
	}
	defer c.close()
	defer func() { fcancel(); files.close() }() // transfers end before the connection
	ew.emit(readyEvent(c, st))

	lctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			s, err := c.eng.Accept(lctx)
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				endSession(serveListenSession(lctx, o, st, ew, s))
			}()
		}
	}()

	var first error
	for n := 0; o.sessions == 0 || n < o.sessions; n++ {
		select {
		case err := <-ended:
			if err != nil && first == nil {
				first = err
			}
		case <-ctx.Done():
			return nil // interrupted: the normal way to stop a listener
		}
	}
	return first
}

// serveListenSession runs one accepted session until the peer closes it.
func serveListenSession(ctx context.Context, o *options, st *store, ew *eventWriter, s *xtls.Session) error {
	sev, pinned := sessionEvent(st, s)
	ew.emit(sev)
	if pinned != nil {
		ew.emit(*pinned)
	}
	for {
		text, err := recvChat(ctx, s)
		if err != nil {
			if ctx.Err() != nil { // the listener is stopping
				s.Close()
				ew.emit(event{Event: evClosed, Peer: s.Peer, Reason: "listener stopped"})
				return nil
			}
			err = sessionOutcome(s, err)
			ew.emit(event{Event: evClosed, Peer: s.Peer, Reason: closeReason(err)})
			if err != nil {
				return err
			}
			return nil
		}
		ew.emit(event{Event: evMessage, Peer: s.Peer, Dir: "in", Text: text})
		if o.echo {
			if err := sendChat(ctx, s, text); err != nil {
				err = sessionOutcome(s, err) // the peer may have closed in order meanwhile
				ew.emit(event{Event: evClosed, Peer: s.Peer, Reason: closeReason(err)})
				return err
			}
			ew.emit(event{Event: evMessage, Peer: s.Peer, Dir: "out", Text: text})
		}
	}
}

func groupsOrEmpty(fp xtls.Fingerprint) string {
	if fp.IsZero() {
		return ""
	}
	return fp.Groups()
}
