package jingle

import (
	"context"
	"errors"
)

// handle processes one incoming action of the session on the serial executor and returns the
// IQ answer. The state is updated before it returns, i.e. before the result goes out.
func (s *Session) handle(ctx context.Context, j *Jingle, digest [32]byte) ([]byte, error) {
	if err := s.acquire(ctx, s.exec); err != nil {
		return nil, &Error{Type: "wait", Condition: "resource-constraint"}
	}
	defer func() { <-s.exec }()
	s.mu.Lock()
	if s.state == StateEnded {
		s.mu.Unlock()
		return nil, ErrUnknownSession // J-25
	}
	if _, dup := s.replies[digest]; dup {
		s.mu.Unlock()
		return nil, nil // the same stanza again (duplicated in transit): acknowledge, no effect
	}
	s.mu.Unlock()
	if err := s.apply(j); err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.replies[digest] = struct{}{}
	s.replyOrder = append(s.replyOrder, digest)
	if len(s.replyOrder) > dupCache {
		delete(s.replies, s.replyOrder[0])
		s.replyOrder = s.replyOrder[1:]
	}
	s.mu.Unlock()
	return nil, nil
}

// stanzaError maps an error of a Transport to the IQ error: its own StanzaError if it has one,
// else bad-request (without the error's text, which may describe local details).
func stanzaError(err error) error {
	var se stanzaErrorer
	if errors.As(err, &se) {
		return err
	}
	return badRequest("transport element refused")
}

// apply runs the state machine of SPEC §3.2 for one incoming action (not session-initiate).
func (s *Session) apply(j *Jingle) error {
	peerCreator := CreatorInitiator
	if s.initiator {
		peerCreator = CreatorResponder
	}
	var toClose []Transport
	defer func() { closeAll(toClose) }() // runs after the unlock below
	s.mu.Lock()
	locked := true
	defer func() {
		if locked {
			s.mu.Unlock()
		}
	}()
	unlock := func() { s.mu.Unlock(); locked = false }
	if s.state == StateEnded {
		return ErrUnknownSession // ended (e.g. by our Terminate) since handle looked
	}
	// Every content of actions other than content-add must name an existing content (J-19).
	if j.Action != ContentAdd && j.Action != ContentAccept && j.Action != ContentReject {
		for _, c := range j.Contents {
			if s.indexLocked(keyOf(c)) < 0 {
				return badRequest("unknown content " + c.Name + " (creator " + string(c.Creator) + ")")
			}
		}
	}
	switch j.Action {
	case SessionAccept:
		if !s.initiator || s.state != StatePending {
			return outOfOrder("session-accept in state " + s.state.String()) // J-37
		}
		if j.Responder != "" && bare(j.Responder) != bare(s.peer) {
			return badRequest("responder does not match the sender") // J-16, J-18
		}
		if len(s.events) >= eventQueue {
			return &Error{Type: "wait", Condition: "resource-constraint"}
		}
		type acc struct {
			t   Transport
			raw []byte
		}
		var accs []acc
		for _, c := range j.Contents {
			if t := s.transports[keyOf(c)]; t != nil {
				accs = append(accs, acc{t, c.Transport})
			}
		}
		unlock()
		for _, a := range accs {
			if err := a.t.HandleAccept(a.raw); err != nil {
				s.m.background(func(ctx context.Context) {
					_ = s.Terminate(ctx, &Reason{Condition: FailedTransport, Text: "transport answer refused"})
				})
				return stanzaError(err)
			}
		}
		s.mu.Lock()
		locked = true
		if s.state != StatePending {
			return ErrUnknownSession // ended while the transports looked at the answer
		}
		s.state = StateActive // J-11
		s.timer.Stop()
		// Contents the responder did not accept are gone (session-accept accepts what it lists).
		var kept []Content
		for _, c := range s.contents {
			accepted := false
			for _, a := range j.Contents {
				accepted = accepted || keyOf(a) == keyOf(c)
			}
			if accepted {
				kept = append(kept, c)
			} else {
				toClose = append(toClose, s.transports[keyOf(c)])
				delete(s.transports, keyOf(c))
			}
		}
		s.contents = kept
		s.mergeLocked(j.Contents)
		// Only this executor adds events, so the room checked above is still there.
		s.events <- Event{Action: SessionAccept, Contents: cloneContents(j.Contents), Reason: j.Reason}
		return nil

	case SessionTerminate:
		unlock()
		s.finish(j.Reason, true) // J-24: acknowledged by the result
		return nil

	case SessionInfo:
		if j.Info == nil {
			return nil // J-29: ping
		}
		if !s.m.understands(j.Info) {
			return ErrUnsupportedInfo // J-28
		}
		return s.emitLocked(Event{Action: SessionInfo, Info: j.Info, Reason: j.Reason})

	case DescriptionInfo:
		for _, c := range j.Contents {
			if !s.m.understands(c.Description) {
				return ErrUnsupportedInfo // J-28
			}
		}
		return s.emitLocked(Event{Action: DescriptionInfo, Contents: j.Contents, Reason: j.Reason})

	case SecurityInfo: // allowed in pending and active (ERR-2)
		return s.emitLocked(Event{Action: SecurityInfo, Contents: j.Contents, Reason: j.Reason})

	case TransportInfo:
		type info struct {
			t   Transport
			raw []byte
		}
		var infos []info
		var unbound []Content
		for _, c := range j.Contents {
			if t := s.transports[keyOf(c)]; t != nil {
				infos = append(infos, info{t, c.Transport})
			} else {
				unbound = append(unbound, c)
			}
		}
		if len(unbound) > 0 && len(s.events) >= eventQueue {
			return &Error{Type: "wait", Condition: "resource-constraint"}
		}
		unlock()
		for _, in := range infos {
			if err := in.t.HandleInfo(in.raw); err != nil {
				return stanzaError(err)
			}
		}
		if len(unbound) > 0 {
			s.mu.Lock()
			locked = true
			if s.state == StateEnded {
				return ErrUnknownSession
			}
			return s.emitLocked(Event{Action: TransportInfo, Contents: unbound, Reason: j.Reason})
		}
		return nil

	case TransportReplace:
		for _, c := range j.Contents {
			if s.pendingReplace[keyOf(c)] {
				if s.initiator {
					return ErrTieBreak.with("simultaneous transport-replace") // J-35
				}
				delete(s.pendingReplace, keyOf(c)) // ours lost; the initiator refuses it
			}
		}
		if !s.m.cfg.HandleTransportReplace {
			if s.autoAnswers >= maxAutoAnswers {
				return &Error{Type: "wait", Condition: "resource-constraint"}
			}
			contents := stripForAnswer(j.Contents)
			if s.inReplace == nil {
				s.inReplace = map[contentKey]bool{}
			}
			for _, c := range contents {
				s.inReplace[keyOf(c)] = true
			}
			s.autoAnswer(TransportReject, contents) // J-33
			return nil
		}
		if err := s.emitLocked(Event{Action: TransportReplace, Contents: j.Contents, Reason: j.Reason}); err != nil {
			return err
		}
		if s.inReplace == nil {
			s.inReplace = map[contentKey]bool{}
		}
		for _, c := range j.Contents {
			s.inReplace[keyOf(c)] = true
		}
		return nil

	case TransportAccept, TransportReject:
		for _, c := range j.Contents {
			if !s.pendingReplace[keyOf(c)] {
				return outOfOrder(j.Action.String() + " without transport-replace") // J-37
			}
		}
		if len(s.events) >= eventQueue {
			return &Error{Type: "wait", Condition: "resource-constraint"}
		}
		var ts []Transport
		var raws [][]byte
		for _, c := range j.Contents {
			delete(s.pendingReplace, keyOf(c))
			if t := s.transports[keyOf(c)]; t != nil && j.Action == TransportAccept {
				ts, raws = append(ts, t), append(raws, c.Transport)
			}
		}
		// The transports see the answer before the application sees the event (which may
		// make it call Establish at once).
		unlock()
		for i, t := range ts {
			if err := t.HandleAccept(raws[i]); err != nil {
				return stanzaError(err)
			}
		}
		s.mu.Lock()
		locked = true
		return s.emitLocked(Event{Action: j.Action, Contents: j.Contents, Reason: j.Reason})

	case ContentAdd:
		for _, c := range j.Contents {
			k := keyOf(c)
			if c.Creator != peerCreator {
				return badRequest("content-add of a content the sender did not create") // J-19
			}
			if s.indexLocked(k) >= 0 || s.inAdd[k] {
				return badRequest("content exists")
			}
		}
		our := CreatorResponder
		if s.initiator {
			our = CreatorInitiator
		}
		for _, c := range j.Contents {
			if _, clash := s.pendingAdd[contentKey{our, c.Name}]; clash {
				if s.initiator {
					return ErrTieBreak.with("simultaneous content-add") // J-35
				}
				delete(s.pendingAdd, contentKey{our, c.Name})
			}
		}
		if s.inAdd == nil {
			s.inAdd = map[contentKey]bool{}
		}
		if !s.m.cfg.HandleContentAdd {
			if s.autoAnswers >= maxAutoAnswers {
				return &Error{Type: "wait", Condition: "resource-constraint"}
			}
			contents := stripForAnswer(j.Contents)
			for _, c := range contents {
				s.inAdd[keyOf(c)] = true
			}
			s.autoAnswer(ContentReject, contents) // J-30
			return nil
		}
		if err := s.emitLocked(Event{Action: ContentAdd, Contents: j.Contents, Reason: j.Reason}); err != nil {
			return err
		}
		for _, c := range j.Contents {
			s.inAdd[keyOf(c)] = true
		}
		return nil

	case ContentAccept, ContentReject:
		for _, c := range j.Contents {
			if _, ok := s.pendingAdd[keyOf(c)]; !ok {
				return outOfOrder(j.Action.String() + " without content-add") // J-37
			}
		}
		if err := s.emitLocked(Event{Action: j.Action, Contents: j.Contents, Reason: j.Reason}); err != nil {
			return err
		}
		for _, c := range j.Contents {
			k := keyOf(c)
			added := s.pendingAdd[k]
			delete(s.pendingAdd, k)
			if j.Action == ContentAccept {
				s.contents = append(s.contents, added)
			} else {
				toClose = append(toClose, s.transports[k])
				delete(s.transports, k)
			}
		}
		if len(s.contents) == 0 && len(s.pendingAdd) == 0 {
			s.m.background(func(ctx context.Context) { _ = s.Terminate(ctx, &Reason{Condition: Cancel}) }) // J-32
		}
		return nil

	case ContentModify: // J-31: never answered with content-accept
		if err := s.emitLocked(Event{Action: ContentModify, Contents: j.Contents, Reason: j.Reason}); err != nil {
			return err
		}
		for _, c := range j.Contents {
			s.contents[s.indexLocked(keyOf(c))].Senders = c.Senders
		}
		return nil

	case ContentRemove:
		if err := s.emitLocked(Event{Action: ContentRemove, Contents: j.Contents, Reason: j.Reason}); err != nil {
			return err
		}
		for _, c := range j.Contents {
			toClose = append(toClose, s.removeLocked(keyOf(c)))
		}
		if len(s.contents) == 0 {
			s.m.background(func(ctx context.Context) { _ = s.Terminate(ctx, &Reason{Condition: Cancel}) }) // J-32
		}
		return nil
	}
	return badRequest("unexpected action " + j.Action.String())
}

// stripForAnswer keeps the creator, name and transport of contents, for an automatic
// transport-reject or content-reject.
func stripForAnswer(cs []Content) []Content {
	out := make([]Content, len(cs))
	for i, c := range cs {
		out[i] = Content{Creator: c.Creator, Name: c.Name, Transport: c.Transport}
	}
	return out
}

// maxAutoAnswers bounds the automatic content-reject/transport-reject answers of one session
// that may wait to be sent; a peer flooding content-add gets resource-constraint instead of
// making us queue goroutines.
const maxAutoAnswers = 8

// autoAnswer sends action for contents on a goroutine of the manager. Called with s.mu held.
func (s *Session) autoAnswer(action Action, contents []Content) {
	s.autoAnswers++
	s.m.background(func(ctx context.Context) {
		_ = s.Send(ctx, action, contents, nil)
		s.mu.Lock()
		s.autoAnswers--
		s.mu.Unlock()
	})
}
