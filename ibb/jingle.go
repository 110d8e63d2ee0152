package ibb

import (
	"context"
	"errors"
	"net"
	"sync"
)

// JingleTransport is the XEP-0261 Jingle In-Band Bytestreams transport for one content. It
// satisfies the jingle package's Transport interface (jingle.Transport) without importing
// it: the initiator offers a sid and a block-size, the responder may lower the block-size in
// its answer (JIBB-1), and after session-accept the initiator sends the IBB <open/> with the
// negotiated block-size (JIBB-2); the bytestream is usable once that open is acknowledged
// (JIBB-10).
type JingleTransport struct {
	h         *Handler
	peer      string
	initiator bool

	mu        sync.Mutex
	offer     Transport // ours (initiator) or the peer's (responder)
	answer    Transport // the responder's; negotiated block-size
	accepted  bool
	exp       *expectation // responder: the open we wait for
	conn      *Conn        // responder: delivered but not yet returned
	handedOut bool
	closed    bool
	done      chan struct{}
}

// NewJingleTransport returns the initiator's transport for a session with the full JID peer:
// it offers sid (unique for this peer, IBB-2) and blockSize (0 means the Handler's
// Config.BlockSize; at most MaxEmitBlockSize, ERR-6).
func NewJingleTransport(h *Handler, peer, sid string, blockSize int) (*JingleTransport, error) {
	if blockSize == 0 {
		blockSize = h.cfg.BlockSize
	}
	t := Transport{SID: sid, BlockSize: blockSize, Stanza: h.cfg.Stanza}
	if _, err := t.Marshal(); err != nil {
		return nil, err
	}
	return &JingleTransport{h: h, peer: peer, initiator: true, offer: t, done: make(chan struct{})}, nil
}

// NewJingleResponder returns the responder's transport for the <transport/> element offered
// by the full JID peer. Its answer lowers the block-size to the Handler's Config.BlockSize
// when the offer is larger (JIBB-1), and it starts waiting for the initiator's <open/> at
// once, since the open may arrive before Establish is called.
func NewJingleResponder(h *Handler, peer string, offer []byte) (*JingleTransport, error) {
	o, err := ParseTransport(offer)
	if err != nil {
		return nil, err
	}
	a := o
	if a.BlockSize > h.cfg.BlockSize {
		a.BlockSize = h.cfg.BlockSize
	}
	exp, err := h.register(peer, o.SID, a.BlockSize)
	if err != nil {
		return nil, err
	}
	return &JingleTransport{h: h, peer: peer, offer: o, answer: a, accepted: true, exp: exp, done: make(chan struct{})}, nil
}

// Namespace returns NSJingle.
func (t *JingleTransport) Namespace() string { return NSJingle }

// Element returns this side's <transport/>: the offer for the initiator, the answer (with
// the negotiated block-size) for the responder.
func (t *JingleTransport) Element() []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	el := t.offer
	if !t.initiator {
		el = t.answer
	}
	b, _ := el.Marshal() // validated by the constructors
	return b
}

// HandleAccept takes the responder's <transport/> from session-accept or transport-accept:
// same sid, a block-size no larger than offered (JIBB-1, JIBB-11).
func (t *JingleTransport) HandleAccept(transport []byte) error {
	if !t.initiator {
		return withText(ErrUnexpectedRequest, "the responder does not take an accept")
	}
	a, err := ParseTransport(transport)
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if a.SID != t.offer.SID {
		return badRequest("accepted sid differs from the offer")
	}
	if a.BlockSize > t.offer.BlockSize {
		return withText(ErrNotAcceptable, "accepted block-size larger than offered")
	}
	t.answer = a
	t.accepted = true
	return nil
}

// HandleInfo refuses transport-info: further IBB sessions in one Jingle bytestream (JIBB-5)
// are not supported.
func (t *JingleTransport) HandleInfo(transport []byte) error {
	if _, err := ParseTransport(transport); err != nil {
		return err
	}
	return withText(ErrNotImplemented, "additional IBB sessions are not supported")
}

// ErrNotAccepted is returned by the initiator's Establish before HandleAccept succeeded.
var ErrNotAccepted = errors.New("ibb: transport not accepted by the responder")

// Establish opens the bytestream. The initiator sends <open/> with the negotiated sid and
// block-size (JIBB-2) and returns the Conn when the open is acknowledged (JIBB-10); the
// responder returns when the matching open arrived (an open with another block-size is
// refused with resource-constraint, JIBB-3). sendInfo is not used. Close unblocks it.
func (t *JingleTransport) Establish(ctx context.Context, sendInfo func(ctx context.Context, transport []byte) error) (net.Conn, error) {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil, net.ErrClosed
	}
	if !t.accepted {
		t.mu.Unlock()
		return nil, ErrNotAccepted
	}
	ans, exp := t.answer, t.exp
	t.mu.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-t.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	if t.initiator {
		c, err := t.h.Open(ctx, t.peer, ans.SID, ans.BlockSize)
		if err != nil {
			return nil, err
		}
		return t.handOut(c)
	}
	select {
	case c := <-exp.ch:
		return t.handOut(c)
	case <-ctx.Done():
		if isClosedChan(t.done) {
			return nil, net.ErrClosed
		}
		return nil, ctx.Err()
	case <-t.h.done:
		return nil, ErrHandlerClosed
	}
}

func (t *JingleTransport) handOut(c *Conn) (net.Conn, error) {
	t.mu.Lock()
	closed := t.closed
	t.handedOut = !closed
	t.mu.Unlock()
	if closed {
		c.Close()
		return nil, net.ErrClosed
	}
	return c, nil
}

// Close stops waiting for the open and releases a bytestream that Establish did not hand
// out. It is safe to call more than once.
func (t *JingleTransport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	close(t.done)
	exp := t.exp
	handed := t.handedOut
	t.mu.Unlock()
	if exp != nil && !handed {
		t.h.unregister(connKey{t.peer, t.offer.SID}, exp)
	}
	return nil
}
