package xmlstream

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"strconv"
)

type iqHandler struct {
	h func(ctx context.Context, from, to, typ string, payload []byte) ([]byte, error)
}

type iqAnswer struct {
	payload []byte
	err     error
}

// HandleIQ installs h for incoming IQ get/set whose child element is {space}local, replacing an
// earlier handler for the same name; remove uninstalls it. Handlers run on their own
// goroutines (at most Config.MaxHandlers at once), possibly concurrently; from is the peer's
// JID as attributed (XS-12), to is ours. The reply (one element, or nil for an empty result)
// is sent as the IQ result; an error is sent as an IQ error: its StanzaError behaviour if it
// has one, else internal-server-error without its text. A panic is contained and answered
// with internal-server-error. An IQ get/set without a handler is answered with
// service-unavailable (CORE-9). The signature is the server link's, so packages written for the
// link can serve inside the stream.
func (s *Stream) HandleIQ(space, local string, h func(ctx context.Context, from, to, typ string, payload []byte) ([]byte, error)) (remove func()) {
	name := xml.Name{Space: space, Local: local}
	hd := &iqHandler{h: h}
	s.mu.Lock()
	s.handlers[name] = hd
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		if s.handlers[name] == hd {
			delete(s.handlers, name)
		}
		s.mu.Unlock()
	}
}

// Request sends an IQ of type typ ("get" or "set") whose only child is payload (exactly one
// element) to the peer and waits for the answer: the result's child element (nil when empty),
// or a *StanzaError for an IQ error, or ErrClosed when the stream ends first. to may be empty
// (the peer's full JID is implied) or a JID to put in the to attribute. ctx bounds the wait.
func (s *Stream) Request(ctx context.Context, to, typ string, payload []byte) ([]byte, error) {
	if typ != "get" && typ != "set" {
		return nil, fmt.Errorf("xmlstream: request type %q is not get or set", typ)
	}
	if _, err := checkElement(payload, s.cfg.MaxDepth-1, s.cfg.MaxAttrs); err != nil {
		return nil, ErrInvalidStanza
	}
	id := s.idPrefix + strconv.FormatUint(s.idSeq.Add(1), 36)
	ch := make(chan iqAnswer, 1)
	s.mu.Lock()
	s.pending[id] = ch // registered before sending: the answer may be fast
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.pending, id)
		s.mu.Unlock()
	}()
	select {
	case <-s.done:
		return nil, ErrClosed
	default:
	}
	var b bytes.Buffer
	b.WriteString("<iq type='" + typ + "' id='" + id + "'")
	if to != "" {
		b.WriteString(" to='")
		escAttr(&b, to)
		b.WriteByte('\'')
	}
	b.WriteByte('>')
	b.Write(payload)
	b.WriteString("</iq>")
	if len(b.Bytes()) > s.cfg.MaxStanzaSize {
		return nil, ErrInvalidStanza
	}
	if err := s.enqueue(ctx, b.Bytes(), modeSync); err != nil {
		return nil, err
	}
	select {
	case a := <-ch:
		return a.payload, a.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// failPending ends every waiting Request with ErrClosed.
func (s *Stream) failPending() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, ch := range s.pending {
		delete(s.pending, id)
		select {
		case ch <- iqAnswer{err: ErrClosed}:
		default:
		}
	}
}

// dispatchIQ routes a received iq (already checked by checkIQ): answers to pending requests,
// get/set to handlers. It runs on the reader goroutine and never blocks on the network; a
// returned error ends the stream.
func (s *Stream) dispatchIQ(st *Stanza) error {
	switch st.Type {
	case "result", "error":
		s.mu.Lock()
		ch := s.pending[st.ID]
		delete(s.pending, st.ID)
		s.mu.Unlock()
		if ch == nil {
			return nil // unknown or late answer: never reply to result/error (CORE-9)
		}
		a := iqAnswer{payload: st.payload}
		if st.Type == "error" {
			a = iqAnswer{err: parseStanzaError(st.Raw)}
		}
		ch <- a // buffered, one answer per id
		return nil
	}
	s.mu.Lock()
	hd := s.handlers[st.payloadName]
	s.mu.Unlock()
	if hd == nil {
		err := s.enqueue(context.Background(), s.iqReply(st, nil, &StanzaError{Type: "cancel", Condition: "service-unavailable"}), modeTry)
		if errors.Is(err, errQueueFull) {
			return streamErr(PolicyViolation, "too many unanswered requests")
		}
		return nil
	}
	select {
	case s.sem <- struct{}{}:
	case <-s.kill:
		return ErrClosed
	}
	s.wg.Add(1)
	s.hwg.Add(1)
	go func() {
		defer s.wg.Done()
		defer s.hwg.Done()
		defer func() { <-s.sem }()
		reply, err := s.callHandler(hd, st)
		var serr *StanzaError
		if err != nil {
			serr = toStanzaError(err)
		} else if reply != nil {
			if _, cerr := checkElement(reply, s.cfg.MaxDepth-1, s.cfg.MaxAttrs); cerr != nil {
				reply, serr = nil, &StanzaError{Type: "wait", Condition: "internal-server-error"}
			}
		}
		b := s.iqReply(st, reply, serr)
		if len(b) > s.cfg.MaxStanzaSize {
			b = s.iqReply(st, nil, &StanzaError{Type: "wait", Condition: "internal-server-error"})
		}
		_ = s.enqueue(s.hctx, b, modeQueue)
	}()
	return nil
}

func (s *Stream) callHandler(hd *iqHandler, st *Stanza) (reply []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			reply, err = nil, &StanzaError{Type: "wait", Condition: "internal-server-error"}
		}
	}()
	return hd.h(s.hctx, st.From, st.To, st.Type, st.payload)
}

// iqReply builds the result (reply may be nil) or error answer to st.
func (s *Stream) iqReply(st *Stanza, reply []byte, serr *StanzaError) []byte {
	var b bytes.Buffer
	typ := "result"
	if serr != nil {
		typ = "error"
	}
	b.WriteString("<iq type='" + typ + "' id='")
	escAttr(&b, st.ID)
	b.WriteString("'")
	if st.From != s.peer {
		b.WriteString(" to='")
		escAttr(&b, st.From)
		b.WriteByte('\'')
	}
	switch {
	case serr != nil:
		b.WriteByte('>')
		b.Write(serr.marshal())
		b.WriteString("</iq>")
	case reply != nil:
		b.WriteByte('>')
		b.Write(reply)
		b.WriteString("</iq>")
	default:
		b.WriteString("/>")
	}
	return b.Bytes()
}

// parseStanzaError extracts the <error/> of an iq of type error (CORE-10).
func parseStanzaError(raw []byte) *StanzaError {
	e := &StanzaError{Type: "cancel", Condition: UndefinedCondition}
	d := xml.NewDecoder(bytes.NewReader(raw))
	d.Strict = true
	depth, inErr, inText := 0, false, false
	var text bytes.Buffer
	for {
		tok, err := d.Token()
		if err != nil {
			break
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			switch {
			case depth == 2 && t.Name.Local == "error" && t.Name.Space == NSClient:
				inErr = true
				if v, _ := attrValue(t.Attr, "", "type"); v != "" {
					e.Type = v
				}
			case depth == 3 && inErr && t.Name.Space == NSStanzaErrors && t.Name.Local == "text":
				inText = true
			case depth == 3 && inErr && t.Name.Space == NSStanzaErrors:
				e.Condition = t.Name.Local
			case depth == 3 && inErr && e.App.Local == "":
				e.App = t.Name
			}
		case xml.EndElement:
			if depth == 2 {
				inErr = false
			}
			inText = false
			depth--
		case xml.CharData:
			if inText && text.Len() < 1024 {
				text.Write(t)
			}
		}
	}
	e.Text = text.String()
	if len(e.Text) > 1024 {
		e.Text = e.Text[:1024]
	}
	return e
}

type msgHandler struct {
	h func(ctx context.Context, from, to string, payload []byte)
}

// HandleMessage installs h for incoming messages whose only child element is {space}local,
// replacing an earlier handler for the same name; remove uninstalls it. Such messages are not
// returned by Next. h runs on its own goroutine like IQ handlers; panics are contained. With
// SendMessage, this gives Stream the whole method set of the server link.
func (s *Stream) HandleMessage(space, local string, h func(ctx context.Context, from, to string, payload []byte)) (remove func()) {
	name := xml.Name{Space: space, Local: local}
	hd := &msgHandler{h: h}
	s.mu.Lock()
	s.msgs[name] = hd
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		if s.msgs[name] == hd {
			delete(s.msgs, name)
		}
		s.mu.Unlock()
	}
}

// SendMessage sends a message whose only child is payload (exactly one element) to the peer;
// to may be empty (the peer is implied) or a JID for the to attribute.
func (s *Stream) SendMessage(ctx context.Context, to string, payload []byte) error {
	if _, err := checkElement(payload, s.cfg.MaxDepth-1, s.cfg.MaxAttrs); err != nil {
		return ErrInvalidStanza
	}
	var b bytes.Buffer
	b.WriteString("<message")
	if to != "" {
		b.WriteString(" to='")
		escAttr(&b, to)
		b.WriteByte('\'')
	}
	b.WriteByte('>')
	b.Write(payload)
	b.WriteString("</message>")
	return s.Send(ctx, b.Bytes())
}

// dispatchMessage hands a message with exactly one child to its handler, if one is installed.
func (s *Stream) dispatchMessage(st *Stanza) bool {
	if st.children != 1 {
		return false
	}
	s.mu.Lock()
	hd := s.msgs[st.payloadName]
	s.mu.Unlock()
	if hd == nil {
		return false
	}
	select {
	case s.sem <- struct{}{}:
	case <-s.kill:
		return true
	}
	s.wg.Add(1)
	s.hwg.Add(1)
	go func() {
		defer s.wg.Done()
		defer s.hwg.Done()
		defer func() { <-s.sem }()
		defer func() { _ = recover() }()
		hd.h(s.hctx, st.From, st.To, st.payload)
	}()
	return true
}
