// Package xmpptest is an in-memory XMPP network for tests: any number of parties, each a link
// with the method set that the protocol packages (jingle, ibb, socks5, xtls) expect from the
// server connection (see DESIGN.md "The link to the XMPP server"):
//
//	LocalJID() string
//	Request(ctx, to, typ string, payload []byte) ([]byte, error)
//	HandleIQ(space, local string, h func(ctx context.Context, from, to, typ string, payload []byte) ([]byte, error)) (remove func())
//	SendMessage(ctx context.Context, to string, payload []byte) error
//	HandleMessage(space, local string, h func(ctx context.Context, from, to string, payload []byte)) (remove func())
//	SetPresence(ctx context.Context, payloads ...[]byte) error
//	HandlePresence(h func(ctx context.Context, from, typ string, payloads [][]byte)) (remove func())
//
// Presence is broadcast to every other party, as if all were subscribed to each other: a
// party's SetPresence reaches everyone, a party that sets its first presence receives the
// current presence of the others (the server's initial presence), and Close sends unavailable.
//
// Like the XMPP library behind the adapter (GOSRC.md §3.A4), every stanza is handed to its handler on a goroutine of
// its own, so arrival order is not guaranteed even without faults. Faults can be injected per
// direction: drops, duplicates and random delays (which reorder), decided by a random source
// seeded per network, so a failing seed can be replayed.
package xmpptest

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Faults describes what the network does to stanzas travelling in one direction.
// Probabilities are in [0, 1]; the zero value delivers everything once, without delay.
type Faults struct {
	Drop      float64       // probability that a stanza is lost
	Duplicate float64       // probability that a stanza is delivered twice
	Delay     float64       // probability that a stanza is held back by a random time up to MaxDelay
	MaxDelay  time.Duration // upper bound of an injected delay (default 5ms)
	// Latency is added to every copy of every stanza: a fixed one-way trip time, so that an
	// IQ round trip between two parties takes twice it (used to count round trips).
	Latency time.Duration
}

// Kind is the kind of a stanza seen by an observer.
type Kind int

// Stanza kinds.
const (
	KindIQ Kind = iota
	KindMessage
	KindPresence
)

// Stanza is what an observer sees for every stanza the network carries (before faults apply).
type Stanza struct {
	Kind    Kind
	From    string
	To      string
	Type    string // get, set, result or error for IQs; empty for messages; available or unavailable for presence
	ID      string
	Payload []byte // the child element (nil for an empty result or an error; presence: the children concatenated)
	Err     *StanzaError
}

// Network routes stanzas between parties created with Party.
type Network struct {
	mu        sync.Mutex
	rng       *rand.Rand
	parties   map[string]*Party
	faults    map[[2]string]Faults
	observers []func(Stanza)
	nextID    atomic.Uint64

	dropped, duplicated, delayed atomic.Int64
}

// NewNetwork returns an empty network whose fault decisions come from seed.
func NewNetwork(seed int64) *Network {
	return &Network{
		rng:     rand.New(rand.NewSource(seed)),
		parties: make(map[string]*Party),
		faults:  make(map[[2]string]Faults),
	}
}

// SetFaults sets the faults for stanzas from one full JID to another. An empty from or to
// matches any party; the most specific entry wins.
func (n *Network) SetFaults(from, to string, f Faults) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.faults[[2]string{from, to}] = f
}

// Observe registers fn to be called, synchronously, for every stanza sent on the network.
func (n *Network) Observe(fn func(Stanza)) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.observers = append(n.observers, fn)
}

// Stats reports how many stanzas were dropped, duplicated and delayed so far.
func (n *Network) Stats() (dropped, duplicated, delayed int64) {
	return n.dropped.Load(), n.duplicated.Load(), n.delayed.Load()
}

// Party returns the party with the full JID jid, creating it if needed.
func (n *Network) Party(jid string) *Party {
	n.mu.Lock()
	defer n.mu.Unlock()
	if p, ok := n.parties[jid]; ok {
		return p
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Party{
		net:     n,
		jid:     jid,
		ctx:     ctx,
		cancel:  cancel,
		iqs:     make(map[xml.Name]*iqHandler),
		msgs:    make(map[xml.Name]*msgHandler),
		pending: make(map[string]chan response),
	}
	n.parties[jid] = p
	return p
}

func (n *Network) lookup(jid string) *Party {
	n.mu.Lock()
	defer n.mu.Unlock()
	p := n.parties[jid]
	if p == nil || p.closed.Load() {
		return nil
	}
	return p
}

// deliver hands fn to a goroutine after the faults of the direction from → to have been applied.
func (n *Network) deliver(s Stanza, fn func()) {
	n.mu.Lock()
	for _, o := range n.observers {
		o(s)
	}
	f, ok := n.faults[[2]string{s.From, s.To}]
	if !ok {
		if f, ok = n.faults[[2]string{s.From, ""}]; !ok {
			if f, ok = n.faults[[2]string{"", s.To}]; !ok {
				f = n.faults[[2]string{"", ""}]
			}
		}
	}
	copies := 1
	if f.Drop > 0 && n.rng.Float64() < f.Drop {
		copies = 0
	} else if f.Duplicate > 0 && n.rng.Float64() < f.Duplicate {
		copies = 2
	}
	delays := make([]time.Duration, copies)
	maxDelay := f.MaxDelay
	if maxDelay <= 0 {
		maxDelay = 5 * time.Millisecond
	}
	for i := range delays {
		if f.Delay > 0 && n.rng.Float64() < f.Delay {
			delays[i] = time.Duration(n.rng.Int63n(int64(maxDelay)) + 1)
		}
		delays[i] += f.Latency
	}
	n.mu.Unlock()

	switch copies {
	case 0:
		n.dropped.Add(1)
	case 2:
		n.duplicated.Add(1)
	}
	for _, d := range delays {
		if d > 0 {
			n.delayed.Add(1)
			time.AfterFunc(d, fn)
		} else {
			go fn()
		}
	}
}

type iqHandler struct {
	h func(ctx context.Context, from, to, typ string, payload []byte) ([]byte, error)
}

type msgHandler struct {
	h func(ctx context.Context, from, to string, payload []byte)
}

type response struct {
	payload []byte
	err     error
}

// Party is one connected client on the network. It implements the link interfaces of the
// protocol packages. The zero value is not usable: create parties with Network.Party.
type Party struct {
	net    *Network
	jid    string
	ctx    context.Context
	cancel context.CancelFunc
	closed atomic.Bool

	mu       sync.Mutex
	iqs      map[xml.Name]*iqHandler
	msgs     map[xml.Name]*msgHandler
	pending  map[string]chan response
	presence [][]byte // our current presence's children; nil: none sent yet
	pres     map[*presenceHandler]struct{}
}

type presenceHandler struct {
	h func(ctx context.Context, from, typ string, payloads [][]byte)
}

// LocalJID returns the party's full JID.
func (p *Party) LocalJID() string { return p.jid }

// Close takes the party off the network: its pending requests fail and stanzas to it are
// answered by the "server" with service-unavailable.
func (p *Party) Close() {
	if p.closed.Swap(true) {
		return
	}
	p.mu.Lock()
	online := p.presence != nil
	p.mu.Unlock()
	if online {
		p.broadcastPresence("unavailable", nil)
	}
	p.cancel()
	p.mu.Lock()
	for id, ch := range p.pending {
		delete(p.pending, id)
		ch <- response{err: ErrClosed}
	}
	p.mu.Unlock()
}

// ErrClosed is returned by a party's methods after Close.
var ErrClosed = errors.New("xmpptest: party closed")

// Request sends an IQ get or set with payload as its only child to the full JID to and waits
// for the answer. A stanza error from the peer is returned as *StanzaError.
func (p *Party) Request(ctx context.Context, to, typ string, payload []byte) ([]byte, error) {
	if typ != "get" && typ != "set" {
		return nil, fmt.Errorf("xmpptest: request type %q is not get or set", typ)
	}
	name, err := elementName(payload)
	if err != nil {
		return nil, fmt.Errorf("xmpptest: request payload: %w", err)
	}
	if p.closed.Load() {
		return nil, ErrClosed
	}
	id := "iq" + strconv.FormatUint(p.net.nextID.Add(1), 10)
	ch := make(chan response, 1)
	p.mu.Lock()
	p.pending[id] = ch
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.pending, id)
		p.mu.Unlock()
	}()

	req := bytes.Clone(payload)
	p.net.deliver(Stanza{Kind: KindIQ, From: p.jid, To: to, Type: typ, ID: id, Payload: req}, func() {
		target := p.net.lookup(to)
		if target == nil {
			p.answer(to, id, nil, &StanzaError{Type: "cancel", Condition: "service-unavailable"})
			return
		}
		target.serveIQ(p.jid, id, typ, name, req)
	})

	select {
	case r := <-ch:
		return r.payload, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// serveIQ runs in its own goroutine on the receiving side.
func (p *Party) serveIQ(from, id, typ string, name xml.Name, payload []byte) {
	p.mu.Lock()
	h := p.iqs[name]
	p.mu.Unlock()
	sender := p.net.lookup(from)
	if h == nil {
		if sender != nil {
			sender.answer(p.jid, id, nil, &StanzaError{Type: "cancel", Condition: "service-unavailable"})
		}
		return
	}
	reply, err := callIQ(p.ctx, h, from, p.jid, typ, payload)
	if sender == nil {
		return
	}
	if err != nil {
		sender.answer(p.jid, id, nil, toStanzaError(err))
		return
	}
	if len(reply) > 0 {
		if _, perr := elementName(reply); perr != nil {
			sender.answer(p.jid, id, nil, &StanzaError{Type: "wait", Condition: "internal-server-error",
				Text: "xmpptest: handler reply is not one XML element: " + perr.Error()})
			return
		}
	}
	sender.answer(p.jid, id, bytes.Clone(reply), nil)
}

// callIQ runs a handler with the panic containment the real adapter has.
func callIQ(ctx context.Context, h *iqHandler, from, to, typ string, payload []byte) (reply []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			reply, err = nil, &StanzaError{Type: "wait", Condition: "internal-server-error"}
		}
	}()
	return h.h(ctx, from, to, typ, payload)
}

// answer delivers a result or error from peer to p's pending request id.
func (p *Party) answer(peer, id string, payload []byte, serr *StanzaError) {
	typ := "result"
	if serr != nil {
		typ = "error"
	}
	p.net.deliver(Stanza{Kind: KindIQ, From: peer, To: p.jid, Type: typ, ID: id, Payload: payload, Err: serr}, func() {
		p.mu.Lock()
		ch := p.pending[id]
		delete(p.pending, id) // a duplicate answer finds nothing and is ignored, as the adapter's tracker does
		p.mu.Unlock()
		if ch == nil {
			return
		}
		if serr != nil {
			ch <- response{err: serr}
		} else {
			ch <- response{payload: payload}
		}
	})
}

// HandleIQ installs h for IQ get/set requests whose child element is {space}local, replacing any
// earlier handler. h runs on its own goroutine per stanza; its reply (one element, or nil for an
// empty result) or error (mapped through StanzaError) is sent back. remove uninstalls it.
func (p *Party) HandleIQ(space, local string, h func(ctx context.Context, from, to, typ string, payload []byte) ([]byte, error)) (remove func()) {
	name := xml.Name{Space: space, Local: local}
	e := &iqHandler{h: h}
	p.mu.Lock()
	p.iqs[name] = e
	p.mu.Unlock()
	return func() {
		p.mu.Lock()
		if p.iqs[name] == e {
			delete(p.iqs, name)
		}
		p.mu.Unlock()
	}
}

// SendMessage sends a message stanza whose only child is payload to the JID to. Messages to
// absent parties are dropped, as a server does for an unavailable full JID.
func (p *Party) SendMessage(ctx context.Context, to string, payload []byte) error {
	name, err := elementName(payload)
	if err != nil {
		return fmt.Errorf("xmpptest: message payload: %w", err)
	}
	if p.closed.Load() {
		return ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	msg := bytes.Clone(payload)
	id := "m" + strconv.FormatUint(p.net.nextID.Add(1), 10)
	p.net.deliver(Stanza{Kind: KindMessage, From: p.jid, To: to, ID: id, Payload: msg}, func() {
		target := p.net.lookup(to)
		if target == nil {
			return
		}
		target.mu.Lock()
		h := target.msgs[name]
		target.mu.Unlock()
		if h == nil {
			return
		}
		func() {
			defer func() { _ = recover() }()
			h.h(target.ctx, p.jid, to, msg)
		}()
	})
	return nil
}

// HandleMessage installs h for messages whose child element is {space}local.
func (p *Party) HandleMessage(space, local string, h func(ctx context.Context, from, to string, payload []byte)) (remove func()) {
	name := xml.Name{Space: space, Local: local}
	e := &msgHandler{h: h}
	p.mu.Lock()
	p.msgs[name] = e
	p.mu.Unlock()
	return func() {
		p.mu.Lock()
		if p.msgs[name] == e {
			delete(p.msgs, name)
		}
		p.mu.Unlock()
	}
}

// SetPresence sends our available presence with payloads (each one XML element) as children
// to every other party, replacing the presence set before. The first call also delivers the
// current presence of every other party that has one to us, as a server does after initial
// presence.
func (p *Party) SetPresence(ctx context.Context, payloads ...[]byte) error {
	kids := make([][]byte, len(payloads))
	for i, b := range payloads {
		if _, err := elementName(b); err != nil {
			return fmt.Errorf("xmpptest: presence payload: %w", err)
		}
		kids[i] = bytes.Clone(b)
	}
	if p.closed.Load() {
		return ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	p.mu.Lock()
	first := p.presence == nil
	p.presence = kids
	p.mu.Unlock()
	p.broadcastPresence("available", kids)
	if first {
		p.net.mu.Lock()
		others := make([]*Party, 0, len(p.net.parties))
		for _, o := range p.net.parties {
			if o != p && !o.closed.Load() {
				others = append(others, o)
			}
		}
		p.net.mu.Unlock()
		for _, o := range others {
			o.mu.Lock()
			kids := o.presence
			o.mu.Unlock()
			if kids != nil {
				o.sendPresence(p, "available", kids)
			}
		}
	}
	return nil
}

// broadcastPresence sends our presence of type typ to every other party.
func (p *Party) broadcastPresence(typ string, kids [][]byte) {
	p.net.mu.Lock()
	others := make([]*Party, 0, len(p.net.parties))
	for _, o := range p.net.parties {
		if o != p {
			others = append(others, o)
		}
	}
	p.net.mu.Unlock()
	for _, o := range others {
		p.sendPresence(o, typ, kids)
	}
}

// sendPresence delivers one presence from p to target's presence handlers.
func (p *Party) sendPresence(target *Party, typ string, kids [][]byte) {
	id := "p" + strconv.FormatUint(p.net.nextID.Add(1), 10)
	p.net.deliver(Stanza{Kind: KindPresence, From: p.jid, To: target.jid, Type: typ, ID: id, Payload: bytes.Join(kids, nil)}, func() {
		if target.closed.Load() {
			return
		}
		target.mu.Lock()
		hs := make([]*presenceHandler, 0, len(target.pres))
		for h := range target.pres {
			hs = append(hs, h)
		}
		target.mu.Unlock()
		for _, h := range hs {
			func() {
				defer func() { _ = recover() }()
				h.h(target.ctx, p.jid, typ, kids)
			}()
		}
	})
}

// HandlePresence installs h for every presence of type available or unavailable that reaches
// the party (from is the sender's full JID, payloads its child elements); several handlers
// may be installed. remove uninstalls h.
func (p *Party) HandlePresence(h func(ctx context.Context, from, typ string, payloads [][]byte)) (remove func()) {
	e := &presenceHandler{h: h}
	p.mu.Lock()
	if p.pres == nil {
		p.pres = map[*presenceHandler]struct{}{}
	}
	p.pres[e] = struct{}{}
	p.mu.Unlock()
	return func() {
		p.mu.Lock()
		delete(p.pres, e)
		p.mu.Unlock()
	}
}

// StanzaError is an XMPP stanza error (RFC 6120 §8.3) as the network carries it.
type StanzaError struct {
	Type      string   // auth, cancel, continue, modify or wait
	Condition string   // RFC 6120 defined condition, e.g. item-not-found
	App       xml.Name // application-specific condition, e.g. {urn:xmpp:jingle:errors:1}unknown-session
	Text      string
}

func (e *StanzaError) Error() string {
	s := "stanza error: " + e.Type + " " + e.Condition
	if e.App.Local != "" {
		s += " (" + e.App.Space + " " + e.App.Local + ")"
	}
	if e.Text != "" {
		s += ": " + e.Text
	}
	return s
}

// StanzaError reports the error's parts; it is the behaviour the protocol packages test for.
func (e *StanzaError) StanzaError() (typ, condition string, app xml.Name, text string) {
	return e.Type, e.Condition, e.App, e.Text
}

type stanzaErrorer interface {
	StanzaError() (typ, condition string, app xml.Name, text string)
}

// toStanzaError maps a handler's error the way the adapter does: through the StanzaError
// behaviour, else internal-server-error without leaking the error text.
func toStanzaError(err error) *StanzaError {
	var se stanzaErrorer
	if errors.As(err, &se) {
		typ, cond, app, text := se.StanzaError()
		if typ == "" {
			typ = "cancel"
		}
		if cond == "" {
			cond = "undefined-condition"
		}
		return &StanzaError{Type: typ, Condition: cond, App: app, Text: text}
	}
	return &StanzaError{Type: "cancel", Condition: "internal-server-error"}
}

// elementName checks that b is exactly one well-formed XML element (surrounding white space
// allowed) and returns its name.
func elementName(b []byte) (xml.Name, error) {
	d := xml.NewDecoder(bytes.NewReader(b))
	var name xml.Name
	depth := 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			if depth != 0 || name.Local == "" {
				return xml.Name{}, errors.New("not one complete element")
			}
			return name, nil
		}
		if err != nil {
			return xml.Name{}, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if depth == 0 {
				if name.Local != "" {
					return xml.Name{}, errors.New("more than one element")
				}
				name = t.Name
			}
			depth++
		case xml.EndElement:
			depth--
		case xml.CharData:
			if depth == 0 && len(bytes.TrimSpace(t)) > 0 {
				return xml.Name{}, errors.New("text outside the element")
			}
		case xml.Comment, xml.ProcInst, xml.Directive:
			return xml.Name{}, errors.New("comment, processing instruction or directive")
		}
	}
}
