package jingle

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// Event is an action the peer sent in a session, delivered through Session.Events after it
// has been applied to the session's state (and before or while its acknowledgement goes out).
//
// Events carry: session-accept (to the initiator; Contents are the accepted contents),
// session-info with a payload the application understands (Info), description-info,
// security-info (e.g. the XTLS method choice, XTLS-17), transport-info for contents without a
// bound Transport, transport-replace/accept/reject, content-add (with
// Config.HandleContentAdd), content-accept/reject/modify/remove, and session-terminate from the
// peer (Reason).
type Event struct {
	Action   Action
	Contents []Content
	Reason   *Reason
	Info     []byte
}

type contentKey struct {
	creator Creator
	name    string
}

func keyOf(c Content) contentKey { return contentKey{c.Creator, c.Name} }

// Session is one Jingle session, identified by (peer full JID, sid). Its methods are safe for
// concurrent use; see Manager for the ordering guarantees.
type Session struct {
	m         *Manager
	peer, sid string
	initiator bool

	exec   chan struct{} // token of the serial executor for incoming actions
	send   chan struct{} // token for our outgoing actions (one at a time)
	events chan Event
	done   chan struct{}
	// peerEnded is closed (under m.mu) when a session-terminate from the peer arrives,
	// also after the session ended on our side.
	peerEnded chan struct{}
	timer     *time.Timer

	mu             sync.Mutex
	state          State
	contents       []Content
	transports     map[contentKey]Transport
	reason         *Reason
	byPeer         bool
	accepting      bool     // our session-accept is not answered yet
	initDigest     [32]byte // of the peer's session-initiate (duplicate detection)
	pendingAdd     map[contentKey]Content
	pendingReplace map[contentKey]bool
	inAdd          map[contentKey]bool
	inReplace      map[contentKey]bool
	replies        map[[32]byte]struct{} // digests of recently acknowledged actions
	autoAnswers    int                   // automatic rejects not yet sent
	replyOrder     [][32]byte
}

// Peer returns the peer's full JID.
func (s *Session) Peer() string { return s.peer }

// SID returns the session id.
func (s *Session) SID() string { return s.sid }

// IsInitiator reports whether we initiated the session.
func (s *Session) IsInitiator() bool { return s.initiator }

// State returns the session's current state.
func (s *Session) State() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state
}

// Contents returns a copy of the session's current contents: those of session-initiate, as
// replaced by session-accept and changed by content-* actions. After session-accept each
// content is the responder's answer as sent, so a nil Security means the responder did not
// take up the security precondition (XTLS-10, XTLS-15).
func (s *Session) Contents() []Content {
	s.mu.Lock()
	defer s.mu.Unlock()
	return cloneContents(s.contents)
}

// Events returns the channel of the peer's actions (see Event). It is buffered; while the
// application does not read, up to 64 events wait and further actions of the peer are refused
// with <resource-constraint/> (type wait). It is closed when the session ends, after the
// peer's session-terminate event if the peer ended it.
func (s *Session) Events() <-chan Event { return s.events }

// Done is closed when the session has ended (J-25: as soon as session-terminate is sent or
// received).
func (s *Session) Done() <-chan struct{} { return s.done }

// Reason returns the reason the session ended with and whether the peer sent it; nil before the
// end (and for sessions that ended without one, e.g. a refused initiate).
func (s *Session) Reason() (r *Reason, byPeer bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reason, s.byPeer
}

// Bind makes t the Transport of the content named name: transport-info for that content is
// passed to t.HandleInfo, and the peer's transport element in session-accept or
// transport-accept to t.HandleAccept. A transport bound earlier to that content is closed. Bound
// transports are closed when the session ends.
func (s *Session) Bind(name string, t Transport) error {
	s.mu.Lock()
	k, ok := s.findLocked(name)
	if !ok {
		s.mu.Unlock()
		return fmt.Errorf("jingle: no content %q", name)
	}
	if s.state == StateEnded {
		s.mu.Unlock()
		return ErrEnded
	}
	old := s.transports[k]
	s.transports[k] = t
	s.mu.Unlock()
	if old != nil && old != t {
		_ = old.Close()
	}
	return nil
}

func (s *Session) bindAll(ts map[string]Transport, contents []Content) error {
	for name, t := range ts {
		if t == nil {
			continue
		}
		found := false
		for _, c := range contents {
			if c.Name == name {
				found = true
			}
		}
		if !found {
			return fmt.Errorf("jingle: transport for unknown content %q", name)
		}
		if err := s.Bind(name, t); err != nil {
			return err
		}
	}
	return nil
}

// findLocked returns the key of the content named name (pending content-adds included).
func (s *Session) findLocked(name string) (contentKey, bool) {
	for _, c := range s.contents {
		if c.Name == name {
			return keyOf(c), true
		}
	}
	for k := range s.pendingAdd {
		if k.name == name {
			return k, true
		}
	}
	for k := range s.inAdd {
		if k.name == name {
			return k, true
		}
	}
	return contentKey{}, false
}

func (s *Session) indexLocked(k contentKey) int {
	for i, c := range s.contents {
		if keyOf(c) == k {
			return i
		}
	}
	return -1
}

// Accept accepts a session the peer initiated (J-9, J-10): it sends session-accept with
// contents (ours, answering the offered ones with the same creator and name) and returns once
// the peer acknowledged it; the session is then active (J-11). transports binds Transports to
// contents by name first (see Bind). If the peer refuses it, the session is ended.
func (s *Session) Accept(ctx context.Context, contents []Content, transports map[string]Transport) error {
	s.mu.Lock()
	switch {
	case s.state == StateEnded:
		s.mu.Unlock()
		return ErrEnded
	case s.initiator || s.state != StatePending || s.accepting:
		s.mu.Unlock()
		return errors.New("jingle: only a pending session from the peer can be accepted")
	}
	for _, c := range contents {
		if s.indexLocked(keyOf(c)) < 0 {
			s.mu.Unlock()
			return fmt.Errorf("jingle: session-accept for unknown content %q", c.Name)
		}
	}
	s.accepting = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.accepting = false
		s.mu.Unlock()
	}()
	j := &Jingle{Action: SessionAccept, SID: s.sid, Responder: s.m.local, Contents: contents}
	payload, err := j.Marshal()
	if err != nil {
		return err
	}
	if err := s.bindAll(transports, contents); err != nil {
		return err
	}
	if err := s.acquire(ctx, s.send); err != nil {
		return err
	}
	err = s.request(ctx, payload)
	<-s.send
	if err != nil {
		s.failed(err)
		return fmt.Errorf("jingle: session-accept: %w", err)
	}
	s.mu.Lock()
	if s.state == StatePending {
		s.state = StateActive
		s.timer.Stop()
		s.mergeLocked(contents)
	}
	s.mu.Unlock()
	return nil // acknowledged; the session may have ended since (see Done)
}

// failed ends the session after one of our actions failed: locally if the peer no longer knows
// it, else by sending session-terminate.
func (s *Session) failed(err error) {
	if errors.Is(err, ErrUnknownSession) {
		s.finish(nil, false)
		return
	}
	s.m.background(func(ctx context.Context) {
		_ = s.Terminate(ctx, &Reason{Condition: GeneralError})
	})
}

func (s *Session) mergeLocked(contents []Content) {
	for _, c := range contents {
		if i := s.indexLocked(keyOf(c)); i >= 0 {
			old := s.contents[i]
			c = cloneContents([]Content{c})[0]
			if c.Disposition == "" {
				c.Disposition = old.Disposition
			}
			s.contents[i] = c
		}
	}
}

// Terminate ends the session (J-22): it is ended at once (J-25), then session-terminate with
// reason (nil for none, although J-23 recommends one) is sent and acknowledged. Ending an
// ended session does nothing. An <item-not-found/> answer (with <unknown-session/> or
// without: the peer no longer knows the session) counts as success, and so does
// the peer's own session-terminate for the session arriving while we wait for the answer
// (both ended it at the same time; the peer may be gone before it answers ours). ctx bounds
// the wait for the answer otherwise.
func (s *Session) Terminate(ctx context.Context, reason *Reason) error {
	if !s.finish(reason, false) {
		return nil
	}
	payload, err := (&Jingle{Action: SessionTerminate, SID: s.sid, Reason: reason}).Marshal()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		select {
		case <-s.peerEnded:
			cancel(errPeerTerminated)
		case <-ctx.Done():
		}
	}()
	err = s.request(ctx, payload)
	if errors.Is(err, errNotFound) || err != nil && errors.Is(context.Cause(ctx), errPeerTerminated) {
		return nil
	}
	return err
}

// errNotFound matches item-not-found with any application condition.
var errNotFound = &Error{Condition: "item-not-found"}

// errPeerTerminated cancels the wait for the answer to our session-terminate when the peer's
// own arrives.
var errPeerTerminated = errors.New("jingle: the peer terminated the session too")

// Info sends session-info with payload (one element in the application's namespace), or an
// empty session-info (a ping, J-29) if payload is nil.
func (s *Session) Info(ctx context.Context, payload []byte) error {
	return s.Send(ctx, SessionInfo, nil, payload)
}

// Send sends one of the actions that do not start or end a session: security-info,
// transport-info/replace/accept/reject, description-info, content-add/accept/reject/modify/
// remove, or session-info (info is its payload; nil for the others). It returns when the peer
// acknowledged it. Contents must name contents of the session by creator and name (J-19), except
// for content-add, whose contents we create. transport-accept/reject answer the peer's
// transport-replace (J-33), content-accept/reject its content-add (J-30). An action the peer
// answers with <out-of-order/> is retried a few times with backoff.
func (s *Session) Send(ctx context.Context, action Action, contents []Content, info []byte) error {
	j := &Jingle{Action: action, SID: s.sid, Contents: contents, Info: info}
	payload, err := j.Marshal()
	if err != nil {
		return err
	}
	our := CreatorInitiator
	if !s.initiator {
		our = CreatorResponder
	}
	s.mu.Lock()
	if s.state == StateEnded {
		s.mu.Unlock()
		return ErrEnded
	}
	var undo func()
	var removed []Transport
	switch action {
	case SessionInitiate, SessionAccept, SessionTerminate:
		s.mu.Unlock()
		return fmt.Errorf("jingle: use Initiate, Accept or Terminate for %s", action)
	case ContentAdd:
		for _, c := range contents {
			if c.Creator != our || s.indexLocked(keyOf(c)) >= 0 || s.pendingAdd[keyOf(c)].Name != "" {
				s.mu.Unlock()
				return fmt.Errorf("jingle: content-add of %q: not new or not ours (J-19)", c.Name)
			}
		}
		if s.pendingAdd == nil {
			s.pendingAdd = map[contentKey]Content{}
		}
		for _, c := range contents {
			s.pendingAdd[keyOf(c)] = cloneContents([]Content{c})[0]
		}
		undo = func() {
			for _, c := range contents {
				delete(s.pendingAdd, keyOf(c))
			}
		}
	case ContentAccept, ContentReject:
		for _, c := range contents {
			if !s.inAdd[keyOf(c)] {
				s.mu.Unlock()
				return fmt.Errorf("jingle: %s of %q: no content-add from the peer (J-30)", action, c.Name)
			}
		}
		for _, c := range contents {
			delete(s.inAdd, keyOf(c))
			if action == ContentAccept {
				s.contents = append(s.contents, cloneContents([]Content{c})[0])
			}
		}
	case TransportAccept, TransportReject:
		for _, c := range contents {
			if !s.inReplace[keyOf(c)] {
				s.mu.Unlock()
				return fmt.Errorf("jingle: %s of %q: no transport-replace from the peer (J-33)", action, c.Name)
			}
		}
		for _, c := range contents {
			delete(s.inReplace, keyOf(c))
		}
	default:
		for _, c := range contents {
			if s.indexLocked(keyOf(c)) < 0 {
				s.mu.Unlock()
				return fmt.Errorf("jingle: %s: unknown content %q", action, c.Name)
			}
		}
		switch action {
		case TransportReplace:
			if s.pendingReplace == nil {
				s.pendingReplace = map[contentKey]bool{}
			}
			for _, c := range contents {
				s.pendingReplace[keyOf(c)] = true
			}
			undo = func() {
				for _, c := range contents {
					delete(s.pendingReplace, keyOf(c))
				}
			}
		case ContentModify:
			for _, c := range contents {
				s.contents[s.indexLocked(keyOf(c))].Senders = c.Senders
			}
		case ContentRemove:
			for _, c := range contents {
				removed = append(removed, s.removeLocked(keyOf(c)))
			}
		}
	}
	s.mu.Unlock()
	closeAll(removed)

	if err := s.acquire(ctx, s.send); err != nil {
		return err
	}
	err = s.request(ctx, payload)
	<-s.send
	if err != nil && undo != nil {
		s.mu.Lock()
		undo()
		s.mu.Unlock()
	}
	if err != nil {
		return fmt.Errorf("jingle: %s: %w", action, err)
	}
	return nil
}

// removeLocked drops a content and its transport, which the caller closes once it has
// released the lock.
func (s *Session) removeLocked(k contentKey) Transport {
	if i := s.indexLocked(k); i >= 0 {
		s.contents = append(s.contents[:i], s.contents[i+1:]...)
	}
	t := s.transports[k]
	delete(s.transports, k)
	return t
}

func closeAll(ts []Transport) {
	for _, t := range ts {
		if t != nil {
			_ = t.Close()
		}
	}
}

// Establish runs the Establish step of the Transport bound to the content named name (see
// Transport): its transport-info elements are sent as transport-info of that content.
func (s *Session) Establish(ctx context.Context, name string) (net.Conn, error) {
	s.mu.Lock()
	k, ok := s.findLocked(name)
	t := s.transports[k]
	st := s.state
	s.mu.Unlock()
	switch {
	case st == StateEnded:
		return nil, ErrEnded
	case !ok || t == nil:
		return nil, fmt.Errorf("jingle: no transport bound to content %q", name)
	case st != StateActive:
		return nil, errors.New("jingle: Establish before session-accept was acknowledged")
	}
	return t.Establish(ctx, func(ctx context.Context, transport []byte) error {
		return s.Send(ctx, TransportInfo, []Content{{Creator: k.creator, Name: k.name, Transport: transport}}, nil)
	})
}

// request sends payload to the peer and retries it with backoff while the peer answers
// <out-of-order/> (DESIGN.md "Ordering").
func (s *Session) request(ctx context.Context, payload []byte) error {
	wait := retryBase
	for attempt := 0; ; attempt++ {
		_, err := s.m.link.Request(ctx, s.peer, "set", payload)
		err = peerError(err)
		if err == nil || !errors.Is(err, ErrOutOfOrder) || attempt == maxRetries {
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-s.m.ctx.Done():
			t.Stop()
			return ErrClosed
		}
		wait *= 2
	}
}

func (s *Session) acquire(ctx context.Context, token chan struct{}) error {
	select {
	case token <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-s.m.ctx.Done():
		return ErrClosed
	}
}

// finish ends the session; it reports false if it had ended already.
func (s *Session) finish(reason *Reason, byPeer bool) bool { return s.end(reason, byPeer, true) }

// vanish ends a session the peer never had (its session-initiate was refused, or lost a
// tie-break): its key is not remembered as ended, so the peer may use it.
func (s *Session) vanish() { s.end(nil, false, false) }

func (s *Session) end(reason *Reason, byPeer, tomb bool) bool {
	s.mu.Lock()
	if s.state == StateEnded {
		s.mu.Unlock()
		return false
	}
	s.state = StateEnded
	s.reason, s.byPeer = reason, byPeer
	s.timer.Stop()
	if byPeer {
		s.events <- Event{Action: SessionTerminate, Reason: reason} // the reserved slot
	}
	close(s.events)
	close(s.done)
	ts := s.transports
	s.transports = map[contentKey]Transport{}
	s.mu.Unlock()
	s.m.forget(s, tomb)
	for _, t := range ts {
		_ = t.Close()
	}
	return true
}

// emitLocked queues ev for the application, keeping the last slot for the terminate event.
func (s *Session) emitLocked(ev Event) error {
	if s.state == StateEnded {
		return ErrUnknownSession // the channel is closed
	}
	if len(s.events) >= eventQueue {
		return &Error{Type: "wait", Condition: "resource-constraint", Text: "application is not reading events"}
	}
	s.events <- ev
	return nil
}
