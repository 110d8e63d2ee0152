// Package gosrcxmpp implements the xtlsjingle server link (LocalJID, Request, HandleIQ,
// SendMessage, HandleMessage, SetPresence, HandlePresence; see DESIGN.md "The link to the
// XMPP server") on top of gosrc.io/xmpp v0.5.1, with the workarounds of GOSRC.md §6. It is the only package of the
// module that imports gosrc.io/xmpp.
//
// What the library still does: the TCP connection's stream negotiation (STARTTLS with the
// caller's tls.Config, SASL PLAIN, resource binding). Everything after binding is the
// adapter's own, because the library's versions are broken (GOSRC.md §3):
//
//   - Reading: the adapter gives the library a transport of its own whose decoder captures
//     every stanza before the library sees it. No stanza from anyone is ever decoded by the
//     library, so no malformed payload can stop the receive loop (§3.B1, including variants
//     that the registry-based hardening cannot cover, such as a <priority/> in a foreign
//     namespace); payloads reach handlers as exact XML with explicit namespaces (§3.B3);
//     stanza errors are decoded with their application condition and text (§3.B5).
//   - IQ tracking: ids are 128-bit random, the waiter is registered before the request is
//     written, the answer channel is buffered, the answer's from must match the JID the request
//     went to (a request to the domain, the own bare JID or no JID at all accepts the server's
//     answer), late answers are dropped, and pending requests fail with ErrDisconnected when the
//     connection is lost (§3.A3).
//   - Writing: requests and replies are serialised by the adapter with its own escaping and
//     written with a deadline (§3.A7); error replies always carry a legacy code and keep
//     application conditions such as urn:xmpp:jingle:errors:1 (§2 "Answer error").
//   - Reconnection: a lost connection (read or write error, stream error, server close, or an
//     unanswered XEP-0199 ping) is replaced by a brand-new library client and transport, with
//     backoff; TLS is always negotiated before authentication; the presence set by SetPresence
//     is sent again, after the new session's reader runs, so the contacts' answers reach the
//     presence handlers. Stream management and Resume are never used (§3.A2, §3.C). After the
//     stream error conflict (another client took our full JID) the client does not reconnect.
//   - Presence: Dial does not make the account available (the library's own initial
//     <presence/> is never sent). The first SetPresence is the initial presence (RFC 6121
//     §4.2), which the server answers with the contacts' current presence; presence handlers
//     installed with HandlePresence before it therefore see every contact that is online.
//     Until then the server does not send us presence broadcasts, so nothing is lost.
//   - Handlers run with recover; a panic becomes internal-server-error (§3.A8). An IQ get/set
//     that no handler takes gets service-unavailable; XEP-0199 pings are answered.
//
// Ordering: stanzas are read in wire order, but every handler call runs on its own goroutine,
// so handlers run concurrently and in no guaranteed order (as with gosrc.io/xmpp itself,
// §3.A4); the protocol packages restore the order they need. At most MaxConcurrentHandlers
// handlers run at a time; beyond that an IQ get/set is refused with wait/resource-constraint
// (never blocking the reader, since a busy handler may itself wait for an answer), and a
// message waits for a free slot, which stops reading from the server and pushes back on
// senders. Message handlers should therefore not wait for IQ answers.
//
// The library's Client has no exported way to use another transport; the adapter sets the
// unexported field through reflection, checked against the field's exact type, so a different
// library version fails at Dial.
package gosrcxmpp

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/xml"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"gosrc.io/xmpp"
)

// Defaults of Config.
const (
	DefaultConnectTimeout = 10 * time.Second
	DefaultPingInterval   = 45 * time.Second
	// DefaultPingTimeout bounds the answer to a keep-alive ping; without one the connection
	// is considered dead and replaced.
	DefaultPingTimeout = 10 * time.Second
	// MaxConcurrentHandlers bounds the handler goroutines of one Client.
	MaxConcurrentHandlers = 256
)

// Reconnection backoff bounds.
const (
	reconnectMin = 200 * time.Millisecond
	reconnectMax = 30 * time.Second
)

// ErrDisconnected is returned by requests that were pending when the connection was lost, and
// by sends while the client is reconnecting.
var ErrDisconnected = errors.New("gosrcxmpp: not connected to the server")

// ErrClosed is returned after Close.
var ErrClosed = errors.New("gosrcxmpp: client closed")

// Config configures Dial.
type Config struct {
	// Address is the server's "host:port". It is used as given: there is no SRV lookup.
	Address string
	// JID is the account's bare JID, or a full JID whose resource is requested at binding
	// (the server may assign another; LocalJID tells).
	JID string
	// Password is the account's password. It is sent with SASL PLAIN, only after TLS is
	// established, and never logged.
	Password string
	// TLS configures the STARTTLS handshake; nil means the system roots. For a local server
	// with a self-signed certificate set RootCAs to a pool holding exactly that certificate.
	// ServerName defaults to the JID's domain. InsecureSkipVerify is refused unless
	// VerifyConnection is set (it must then do the pinning).
	TLS *tls.Config
	// ConnectTimeout bounds one connection attempt, negotiation included (default 10 s).
	ConnectTimeout time.Duration
	// PingInterval is the period of XEP-0199 pings to the server (default 45 s; negative
	// disables them). A ping unanswered within PingTimeout replaces the connection.
	PingInterval time.Duration
	// PingTimeout bounds the wait for a ping's answer (default 10 s).
	PingTimeout time.Duration
	// OnEvent, if set, is called for every change of the connection state, one call at a time
	// from one goroutine. It must not block for long.
	OnEvent func(Event)
}

// EventKind says what happened to the connection.
type EventKind int

// Connection events.
const (
	Connected    EventKind = iota + 1 // the first session is established (during Dial)
	Disconnected                      // the session was lost; Err says why; reconnecting
	Reconnected                       // a new session is established; JID is its full JID
	// Stopped: the server ended the session with the stream error conflict (another client
	// logged in with the same full JID) and the client does not reconnect, so that two clients
	// do not take the resource from each other forever. Only Close remains to be called.
	Stopped
)

// String returns the event kind's name.
func (k EventKind) String() string {
	switch k {
	case Connected:
		return "connected"
	case Disconnected:
		return "disconnected"
	case Reconnected:
		return "reconnected"
	case Stopped:
		return "stopped"
	}
	return "EventKind(" + strconv.Itoa(int(k)) + ")"
}

// Event is a change of the connection state.
type Event struct {
	Kind EventKind
	JID  string // the bound full JID (Connected, Reconnected)
	Err  error  // why the session ended (Disconnected)
	// Attempts is the number of connection attempts a reconnection took (Reconnected).
	Attempts int
}

type iqHandler struct {
	h func(ctx context.Context, from, to, typ string, payload []byte) ([]byte, error)
}

type msgHandler struct {
	h func(ctx context.Context, from, to string, payload []byte)
}

// session is one connection: a library client and the adapter's transport.
type session struct {
	xc  *xmpp.Client
	t   *transport
	jid string
}

// Client is a connection to an XMPP server that reconnects by itself. It implements the link
// interfaces of the protocol packages. All methods are safe for concurrent use.
type Client struct {
	cfg    Config
	domain string
	bare   string // our bare JID, lower-cased node and domain

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // supervisor and handler goroutines
	sem    chan struct{}  // handler slots

	mu       sync.Mutex
	sess     *session
	iqs      map[xml.Name]*iqHandler
	msgs     map[xml.Name]*msgHandler
	presence [][]byte // children of our presence, re-sent after reconnects
	pres     []*presenceHandler

	tracker tracker
	closed  atomic.Bool
	eventMu sync.Mutex
}

// Dial connects and authenticates to the server and returns a Client that keeps the session
// alive until Close. ctx bounds this first connection only. The account is not available
// until SetPresence is called: install presence handlers (HandlePresence, e.g. through
// xtls.NewClient) first, then call SetPresence, so that the contacts' presence that answers
// it is not missed.
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	if cfg.Address == "" {
		return nil, errors.New("gosrcxmpp: Config.Address is empty")
	}
	node, domain, _, err := splitJID(cfg.JID)
	if err != nil || node == "" {
		return nil, fmt.Errorf("gosrcxmpp: Config.JID %q is not an account JID", cfg.JID)
	}
	if cfg.Password == "" {
		return nil, errors.New("gosrcxmpp: Config.Password is empty")
	}
	if cfg.TLS == nil {
		cfg.TLS = &tls.Config{}
	}
	if cfg.TLS.InsecureSkipVerify && cfg.TLS.VerifyConnection == nil {
		return nil, errors.New("gosrcxmpp: TLS.InsecureSkipVerify without a pinning VerifyConnection is refused")
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = DefaultConnectTimeout
	}
	if cfg.PingInterval == 0 {
		cfg.PingInterval = DefaultPingInterval
	}
	if cfg.PingTimeout <= 0 {
		cfg.PingTimeout = DefaultPingTimeout
	}
	c := &Client{
		cfg:    cfg,
		domain: strings.ToLower(domain),
		bare:   strings.ToLower(node + "@" + domain),
		sem:    make(chan struct{}, MaxConcurrentHandlers),
		iqs:    make(map[xml.Name]*iqHandler),
		msgs:   make(map[xml.Name]*msgHandler),
	}
	c.tracker.pending = make(map[string]*pendingIQ)
	c.ctx, c.cancel = context.WithCancel(context.Background())
	s, err := c.connect(ctx)
	if err != nil {
		c.cancel()
		return nil, err
	}
	c.mu.Lock()
	c.sess = s
	c.mu.Unlock()
	c.emit(Event{Kind: Connected, JID: s.jid})
	c.wg.Add(1)
	go c.supervise(s)
	return c, nil
}

// connect makes one connection attempt with a fresh library client and transport.
func (c *Client) connect(ctx context.Context) (*session, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.ConnectTimeout)
	defer cancel()
	s := &session{}
	t := newTransport(ctx, c.cfg.Address, c.domain, c.cfg.TLS, c.cfg.ConnectTimeout, func(st *inStanza) { c.dispatch(s, st) })
	s.t = t
	secs := int((c.cfg.ConnectTimeout + time.Second - 1) / time.Second)
	xcfg := &xmpp.Config{
		TransportConfiguration: xmpp.TransportConfiguration{
			Address:        c.cfg.Address,
			Domain:         c.domain,
			ConnectTimeout: secs,
			TLSConfig:      c.cfg.TLS,
		},
		Jid:               c.cfg.JID,
		Credential:        xmpp.Password(c.cfg.Password),
		ConnectTimeout:    secs,
		KeepaliveInterval: 30 * time.Second,
	}
	xc, err := xmpp.NewClient(xcfg, xmpp.NewRouter(), func(error) {})
	if err != nil {
		return nil, fmt.Errorf("gosrcxmpp: %w", err)
	}
	if err := setTransport(xc, t); err != nil {
		return nil, err
	}
	xc.PostConnectHook = func() error {
		t.startReading()
		return nil
	}
	stop := context.AfterFunc(ctx, func() { t.Close() })
	err = xc.Connect()
	stop()
	if err != nil {
		t.Close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("gosrcxmpp: connect to %s: %w (%v)", c.cfg.Address, ctx.Err(), err)
		}
		return nil, fmt.Errorf("gosrcxmpp: connect to %s: %w", c.cfg.Address, err)
	}
	if !t.sawTLS.Load() {
		t.Close()
		return nil, errors.New("gosrcxmpp: session established without TLS")
	}
	s.xc = xc
	s.jid = xc.Session.BindJid
	if _, _, _, err := splitJID(s.jid); err != nil || s.jid == "" {
		t.Close()
		return nil, fmt.Errorf("gosrcxmpp: server bound an unusable JID %q", s.jid)
	}
	c.mu.Lock()
	pres := presenceStanza(c.presence)
	c.mu.Unlock()
	if pres != nil {
		if _, err := t.Write(pres); err != nil {
			t.Close()
			return nil, err
		}
	}
	return s, nil
}

func (c *Client) emit(e Event) {
	if c.cfg.OnEvent == nil {
		return
	}
	c.eventMu.Lock()
	defer c.eventMu.Unlock()
	c.cfg.OnEvent(e)
}

// supervise keeps a session alive: it pings the server and replaces a lost session.
func (c *Client) supervise(s *session) {
	defer c.wg.Done()
	for {
		c.watch(s)
		if c.ctx.Err() != nil {
			s.t.Close()
			return
		}
		c.mu.Lock()
		c.sess = nil
		c.mu.Unlock()
		c.tracker.failAll(ErrDisconnected)
		c.emit(Event{Kind: Disconnected, Err: s.t.err()})
		var se *StreamError
		if errors.As(s.t.err(), &se) && se.Condition == "conflict" {
			c.emit(Event{Kind: Stopped, Err: se})
			<-c.ctx.Done()
			return
		}
		next, attempts := c.reconnect()
		if next == nil {
			return // closed
		}
		s = next
		c.mu.Lock()
		c.sess = s
		c.mu.Unlock()
		c.emit(Event{Kind: Reconnected, JID: s.jid, Attempts: attempts})
	}
}

// watch returns when the session's connection has ended or the client is closed, pinging the
// server every PingInterval meanwhile.
func (c *Client) watch(s *session) {
	var tick <-chan time.Time
	if c.cfg.PingInterval > 0 {
		tk := time.NewTicker(c.cfg.PingInterval)
		defer tk.Stop()
		tick = tk.C
	}
	pingDone := make(chan struct{}, 1)
	pinging := false
	for {
		select {
		case <-s.t.done:
			return
		case <-c.ctx.Done():
			return
		case <-pingDone:
			pinging = false
		case <-tick:
			if pinging {
				continue
			}
			pinging = true
			c.wg.Add(1)
			go func() {
				defer c.wg.Done()
				defer func() { pingDone <- struct{}{} }()
				ctx, cancel := context.WithTimeout(c.ctx, c.cfg.PingTimeout)
				defer cancel()
				_, err := c.request(ctx, s, "", "get", []byte(`<ping xmlns="urn:xmpp:ping"/>`))
				var se *StanzaError
				if err != nil && !errors.As(err, &se) && c.ctx.Err() == nil {
					s.t.finish(fmt.Errorf("gosrcxmpp: keep-alive ping: %w", err))
				}
			}()
		}
	}
}

// reconnect builds new sessions with exponential backoff until one works or the client is
// closed. The first attempt is immediate.
func (c *Client) reconnect() (*session, int) {
	delay := reconnectMin
	for attempt := 1; ; attempt++ {
		s, err := c.connect(c.ctx)
		if err == nil {
			return s, attempt
		}
		if c.ctx.Err() != nil {
			return nil, attempt
		}
		// Full jitter in [delay/2, delay).
		d := delay/2 + time.Duration(rand.Int64N(int64(delay/2)+1))
		select {
		case <-time.After(d):
		case <-c.ctx.Done():
			return nil, attempt
		}
		delay *= 2
		if delay > reconnectMax {
			delay = reconnectMax
		}
	}
}

// Close ends the session and stops reconnecting. Pending requests fail with ErrClosed; handler
// contexts are cancelled, and Close waits for running handlers to return.
func (c *Client) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	c.cancel()
	c.mu.Lock()
	s := c.sess
	c.sess = nil
	c.mu.Unlock()
	if s != nil {
		s.t.Close()
	}
	c.tracker.failAll(ErrClosed)
	c.wg.Wait()
	return nil
}

// LocalJID returns our full JID as bound by the server for the current session (after a
// reconnection it may differ), or "" while disconnected before the first session.
func (c *Client) LocalJID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sess != nil {
		return c.sess.jid
	}
	return ""
}

func (c *Client) current() (*session, error) {
	if c.closed.Load() {
		return nil, ErrClosed
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sess == nil {
		return nil, ErrDisconnected
	}
	return c.sess, nil
}

// Request sends an IQ of type "get" or "set" to the JID to ("" means the account's server
// session, i.e. no to attribute), whose only child is payload (exactly one XML element), and
// waits for the answer: the result's child element as XML with explicit namespaces (nil when
// the result is empty), or an error. A stanza error from the peer or the server is a
// *StanzaError (it has the StanzaError() behaviour). ctx bounds the wait; a request pending
// when the connection is lost fails with ErrDisconnected.
func (c *Client) Request(ctx context.Context, to, typ string, payload []byte) ([]byte, error) {
	s, err := c.current()
	if err != nil {
		return nil, err
	}
	return c.request(ctx, s, to, typ, payload)
}

func (c *Client) request(ctx context.Context, s *session, to, typ string, payload []byte) ([]byte, error) {
	if typ != "get" && typ != "set" {
		return nil, fmt.Errorf("gosrcxmpp: request type %q is not get or set", typ)
	}
	if _, err := elementName(payload); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	id, ch, cancel := c.tracker.register(to, s)
	defer cancel()
	var b bytes.Buffer
	b.Grow(len(payload) + 128)
	b.WriteString(`<iq type="` + typ + `" id="` + id + `"`)
	if to != "" {
		b.WriteString(` to="`)
		escapeAttr(&b, to)
		b.WriteByte('"')
	}
	b.WriteByte('>')
	b.Write(payload)
	b.WriteString(`</iq>`)
	if _, err := s.t.Write(b.Bytes()); err != nil {
		return nil, fmt.Errorf("gosrcxmpp: sending request: %w", ErrDisconnected)
	}
	select {
	case a := <-ch:
		return a.payload, a.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// HandleIQ installs h for incoming IQ get/set whose child element is {space}local, replacing
// an earlier handler for the same name; remove uninstalls it. h runs on a goroutine of its own
// per request, concurrently and in any order, with a context that is cancelled by Close. Its
// reply (one XML element, or nil for an empty result) is sent as the IQ result; an error is
// sent as an IQ error: through its StanzaError() behaviour if it has one, otherwise as
// internal-server-error without the error's text. A panic in h is recovered and answered with
// internal-server-error.
func (c *Client) HandleIQ(space, local string, h func(ctx context.Context, from, to, typ string, payload []byte) ([]byte, error)) (remove func()) {
	name := xml.Name{Space: space, Local: local}
	e := &iqHandler{h: h}
	c.mu.Lock()
	c.iqs[name] = e
	c.mu.Unlock()
	return func() {
		c.mu.Lock()
		if c.iqs[name] == e {
			delete(c.iqs, name)
		}
		c.mu.Unlock()
	}
}

// SendMessage sends a message stanza whose only child is payload (one XML element) to the JID
// to. It returns when the stanza has been written to the server.
func (c *Client) SendMessage(ctx context.Context, to string, payload []byte) error {
	if _, err := elementName(payload); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	var b bytes.Buffer
	b.Grow(len(payload) + 128)
	b.WriteString(`<message id="` + newID() + `" to="`)
	escapeAttr(&b, to)
	b.WriteString(`">`)
	b.Write(payload)
	b.WriteString(`</message>`)
	return c.write("message", b.Bytes())
}

// write sends one stanza on the current session.
func (c *Client) write(kind string, stanza []byte) error {
	s, err := c.current()
	if err != nil {
		return err
	}
	if _, err := s.t.Write(stanza); err != nil {
		return fmt.Errorf("gosrcxmpp: sending %s: %w", kind, ErrDisconnected)
	}
	return nil
}

// HandleMessage installs h for incoming messages with a child element {space}local (the first
// child that has a handler wins), replacing an earlier handler for that name; remove
// uninstalls it. Messages of type error are not delivered. h runs as HandleIQ's handlers do,
// and a panic in it is recovered.
func (c *Client) HandleMessage(space, local string, h func(ctx context.Context, from, to string, payload []byte)) (remove func()) {
	name := xml.Name{Space: space, Local: local}
	e := &msgHandler{h: h}
	c.mu.Lock()
	c.msgs[name] = e
	c.mu.Unlock()
	return func() {
		c.mu.Lock()
		if c.msgs[name] == e {
			delete(c.msgs, name)
		}
		c.mu.Unlock()
	}
}

// SetPresence sends our (available) presence to the server with payloads as its child
// elements, each exactly one XML element (e.g. the XEP-0115 <c/> element), and sends it again
// after every reconnection. It replaces the presence set before. The first call is the
// session's initial presence (Dial sends none): the server answers it with the presence of
// every contact online, delivered to the handlers installed by then; after a reconnection
// the re-sent presence is again initial, and the answers reach the same handlers.
func (c *Client) SetPresence(ctx context.Context, payloads ...[]byte) error {
	kids := make([][]byte, len(payloads))
	for i, p := range payloads {
		if _, err := elementName(p); err != nil {
			return err
		}
		kids[i] = bytes.Clone(p)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	c.presence = kids
	c.mu.Unlock()
	s, err := c.current()
	if err != nil {
		if errors.Is(err, ErrDisconnected) {
			return nil // sent when the session is back
		}
		return err
	}
	if _, err := s.t.Write(presenceStanza(kids)); err != nil {
		return nil // the connection is being replaced; the new session sends it
	}
	return nil
}

// SendPresence sends one presence stanza to the JID to (RFC 6121): typ "" is a directed
// available presence with payloads as children; "unavailable", "subscribe", "subscribed",
// "unsubscribe" and "unsubscribed" are sent without children (subscription requests and
// approvals, §3). Unlike SetPresence it is not sent again after a reconnection.
func (c *Client) SendPresence(ctx context.Context, to, typ string, payloads ...[]byte) error {
	switch typ {
	case "":
	case presenceTypeUnavailable, "subscribe", "subscribed", "unsubscribe", "unsubscribed":
		payloads = nil
	default:
		return fmt.Errorf("gosrcxmpp: presence type %q", typ)
	}
	if to == "" {
		return errors.New("gosrcxmpp: SendPresence needs a JID")
	}
	for _, p := range payloads {
		if _, err := elementName(p); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	var b bytes.Buffer
	b.WriteString(`<presence to="`)
	escapeAttr(&b, to)
	if typ != "" {
		b.WriteString(`" type="` + typ)
	}
	b.WriteString(`">`)
	for _, p := range payloads {
		b.Write(p)
	}
	b.WriteString(`</presence>`)
	return c.write("presence", b.Bytes())
}

// presenceStanza returns the presence to send with kids as children, or nil if none was set.
func presenceStanza(kids [][]byte) []byte {
	if kids == nil {
		return nil
	}
	var b bytes.Buffer
	b.WriteString("<presence>")
	for _, k := range kids {
		b.Write(k)
	}
	b.WriteString("</presence>")
	return b.Bytes()
}

// dispatch handles a stanza captured by session s's reader. It runs on the reader goroutine,
// in wire order, and must not block except for a free handler slot.
func (c *Client) dispatch(s *session, st *inStanza) {
	switch st.kind {
	case "iq":
		switch st.typ {
		case "result", "error":
			c.tracker.deliver(st, s, c.domain, c.bare)
		case "get", "set":
			c.serveIQ(s, st)
		}
		// IQs of other types are invalid (RFC 6120 §8.2.3) and dropped.
	case "message":
		if st.typ == "error" || st.invalid != nil {
			return
		}
		c.mu.Lock()
		var h *msgHandler
		var p []byte
		for _, ch := range st.children {
			if h = c.msgs[ch.name]; h != nil {
				p = ch.raw
				break
			}
		}
		c.mu.Unlock()
		if h == nil {
			return
		}
		c.run(func() {
			defer func() { _ = recover() }()
			h.h(c.ctx, st.from, st.to, p)
		})
	case "presence":
		c.dispatchPresence(st)
	}
}

// Bounds of an incoming presence delivered to HandlePresence: at most this many children,
// each at most this large; larger ones are left out (a presence is a broadcast from anyone
// the server lets through, and the handlers keep what they parse).
const (
	MaxPresenceChildren     = 32
	MaxPresenceChildBytes   = 16 << 10
	presenceTypeAvailable   = "available"
	presenceTypeUnavailable = "unavailable"
)

type presenceHandler struct {
	h func(ctx context.Context, from, typ string, payloads [][]byte)
}

// dispatchPresence calls the presence handlers for an available, unavailable or subscription
// presence, in wire order on the reader goroutine (so an unavailable never overtakes the
// available before it). Probes, errors and invalid presence are dropped.
func (c *Client) dispatchPresence(st *inStanza) {
	if st.invalid != nil || st.from == "" {
		return
	}
	typ := st.typ
	switch st.typ {
	case "":
		typ = presenceTypeAvailable
	case presenceTypeUnavailable, "subscribe", "subscribed", "unsubscribe", "unsubscribed":
	default:
		return // probe, error, or invalid
	}
	c.mu.Lock()
	hs := append([]*presenceHandler(nil), c.pres...)
	c.mu.Unlock()
	if len(hs) == 0 {
		return
	}
	var kids [][]byte
	for _, ch := range st.children {
		if len(kids) == MaxPresenceChildren {
			break
		}
		if len(ch.raw) <= MaxPresenceChildBytes {
			kids = append(kids, ch.raw)
		}
	}
	for _, h := range hs {
		func() {
			defer func() { _ = recover() }()
			h.h(c.ctx, st.from, typ, kids)
		}()
	}
}

// HandlePresence installs h for incoming presence: from is the sender's JID (a full JID for
// available and unavailable presence), typ "available" (no type attribute), "unavailable", or
// a subscription type ("subscribe", "subscribed", "unsubscribe", "unsubscribed"), payloads the
// presence's child elements as exact XML with explicit namespaces (at most
// MaxPresenceChildren, each at most MaxPresenceChildBytes; larger ones are left out). Several
// handlers may be installed; remove uninstalls h. Handlers run one after the other on the
// reader goroutine, in wire order, with recover: they must not block and must not modify
// payloads. Our own presence, as the server echoes it, is delivered too. Handlers installed
// before the first SetPresence see the contacts' answers to it.
func (c *Client) HandlePresence(h func(ctx context.Context, from, typ string, payloads [][]byte)) (remove func()) {
	e := &presenceHandler{h: h}
	c.mu.Lock()
	c.pres = append(c.pres, e)
	c.mu.Unlock()
	return func() {
		c.mu.Lock()
		for i, x := range c.pres {
			if x == e {
				c.pres = append(c.pres[:i:i], c.pres[i+1:]...)
				break
			}
		}
		c.mu.Unlock()
	}
}

// run runs f on a new goroutine once a handler slot is free.
func (c *Client) run(f func()) {
	select {
	case c.sem <- struct{}{}:
	case <-c.ctx.Done():
		return
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer func() { <-c.sem }()
		f()
	}()
}

// tryRun runs f like run if a handler slot is free now, and reports whether it did.
func (c *Client) tryRun(f func()) bool {
	select {
	case c.sem <- struct{}{}:
	default:
		return false
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer func() { <-c.sem }()
		f()
	}()
	return true
}

func (c *Client) serveIQ(s *session, st *inStanza) {
	if st.id == "" {
		return // cannot be answered
	}
	if st.invalid != nil {
		c.replyError(s, st, &StanzaError{Type: "modify", Condition: "policy-violation", Text: "stanza exceeds the receiver's limits"})
		return
	}
	if len(st.children) != 1 {
		c.replyError(s, st, &StanzaError{Type: "modify", Condition: "bad-request"})
		return
	}
	p := st.payload()
	c.mu.Lock()
	h := c.iqs[p.name]
	c.mu.Unlock()
	if h == nil {
		if p.name == (xml.Name{Space: nsPing, Local: "ping"}) && st.typ == "get" {
			c.reply(s, st, nil)
			return
		}
		c.replyError(s, st, &StanzaError{Type: "cancel", Condition: "service-unavailable"})
		return
	}
	if !c.tryRun(func() {
		reply, err := callIQ(c.ctx, h, st.from, st.to, st.typ, p.raw)
		if err == nil && len(reply) > 0 {
			if _, perr := elementName(reply); perr != nil {
				err = perr // a handler bug: internal-server-error, text not leaked
			}
		}
		if err != nil {
			c.replyError(s, st, errorFor(err))
			return
		}
		c.reply(s, st, reply)
	}) {
		// All handler slots are busy, possibly with handlers that wait for answers this
		// reader must deliver: refuse rather than block (RFC 6120 §8.3.3.18).
		c.replyError(s, st, &StanzaError{Type: "wait", Condition: "resource-constraint"})
	}
}

func callIQ(ctx context.Context, h *iqHandler, from, to, typ string, payload []byte) (reply []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			reply, err = nil, errors.New("gosrcxmpp: handler panicked")
		}
	}()
	return h.h(ctx, from, to, typ, payload)
}

func iqReplyHead(b *bytes.Buffer, st *inStanza, typ string) {
	b.WriteString(`<iq type="` + typ + `" id="`)
	escapeAttr(b, st.id)
	b.WriteByte('"')
	if st.from != "" {
		b.WriteString(` to="`)
		escapeAttr(b, st.from)
		b.WriteByte('"')
	}
}

func (c *Client) reply(s *session, st *inStanza, payload []byte) {
	var b bytes.Buffer
	iqReplyHead(&b, st, "result")
	if len(payload) == 0 {
		b.WriteString("/>")
	} else {
		b.WriteByte('>')
		b.Write(payload)
		b.WriteString("</iq>")
	}
	s.t.Write(b.Bytes()) // a failed write ends the session; nothing else to do
}

func (c *Client) replyError(s *session, st *inStanza, e *StanzaError) {
	var b bytes.Buffer
	iqReplyHead(&b, st, "error")
	b.WriteByte('>')
	appendErrorXML(&b, e)
	b.WriteString("</iq>")
	s.t.Write(b.Bytes())
}
