// Package xmlstream implements the end-to-end XML stream of XEP-0246: End-to-End XML Streams
// and XEP-0247: Jingle XML Streams, following the stream rules of RFC 6120 (XMPP Core), over
// any io.ReadWriter — in this project a *tls.Conn negotiated by XTLS.
//
// [Initiate] and [Respond] exchange the stream headers (the initiator first; XS-1) carrying both
// parties' full JIDs, which must equal the Jingle session's parties (XS-13), and the responder's
// empty <stream:features/> (XS-4, XS-5). Then either side sends stanzas with [Stream.Send] or
// [Stream.Encode] and receives messages and presences with [Stream.Next]. IQs are answered by
// handlers installed with [Stream.HandleIQ] (every get/set gets exactly one answer; one without
// a handler gets <service-unavailable/>, CORE-9) and sent with [Stream.Request];
// [Stream.SendMessage] and [Stream.HandleMessage] do the same for messages. These methods have
// the signatures of the server link used across this project, so a package written against
// that link (e.g. pubkeys) runs unchanged inside the stream.
//
// Everything the peer sends is checked: RFC 6120 restricted XML (no comments, processing
// instructions, DTDs or entity references, CORE-6 → <restricted-xml/>), well-formedness
// (<not-well-formed/>), stanza size, nesting depth and attribute count limits
// (<policy-violation/>), the from address of every stanza (XS-12 → <invalid-from/>), IQ rules
// (CORE-9 → <bad-format/>). A violation ends the stream with a stream error (CORE-7); [Close]
// sends </stream:stream> and waits, bounded, for the peer's (CORE-8).
package xmlstream

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Namespaces of RFC 6120.
const (
	NSStream       = "http://etherx.jabber.org/streams"
	NSClient       = "jabber:client"
	NSStreamErrors = "urn:ietf:params:xml:ns:xmpp-streams"
	NSStanzaErrors = "urn:ietf:params:xml:ns:xmpp-stanzas"
)

// Config holds the limits and timers of a stream. The zero value (or nil) means the defaults.
type Config struct {
	MaxStanzaSize int           // bytes per stanza, default 256 KiB
	MaxDepth      int           // element nesting including the stanza, default 32
	MaxAttrs      int           // attributes per element, default 64
	IdleTimeout   time.Duration // no byte from the peer for this long → <connection-timeout/>; 0 = none (needs SetReadDeadline)
	KeepAlive     time.Duration // send a whitespace keepalive this often (CORE-11); 0 = never
	CloseTimeout  time.Duration // how long Close waits for the peer's </stream:stream>, default 5 s
	Lang          string        // xml:lang of our header, default "en"
	MaxHandlers   int           // IQ and message handlers running at once, default 16
}

func (c *Config) withDefaults() Config {
	var d Config
	if c != nil {
		d = *c
	}
	if d.MaxStanzaSize <= 0 {
		d.MaxStanzaSize = 256 << 10
	}
	if d.MaxDepth <= 0 {
		d.MaxDepth = 32
	}
	if d.MaxAttrs <= 0 {
		d.MaxAttrs = 64
	}
	if d.CloseTimeout <= 0 {
		d.CloseTimeout = 5 * time.Second
	}
	if d.Lang == "" {
		d.Lang = "en"
	}
	if d.MaxHandlers <= 0 {
		d.MaxHandlers = 16
	}
	return d
}

// Stanza is a stanza received from the peer.
type Stanza struct {
	Name xml.Name   // {jabber:client}message, presence or iq
	Attr []xml.Attr // attributes as received
	From string     // the from attribute, or the peer's full JID when absent (XS-12)
	To   string     // the to attribute, or our full JID when absent
	Type string
	ID   string
	// Raw is the stanza as received, made to stand alone: namespace declarations it inherited
	// from the stream header (jabber:client as default) are added to its start tag.
	Raw []byte

	payload     []byte
	payloadName xml.Name
	children    int
}

// Payload returns the stanza's child element, standing alone like Raw, when it has exactly one
// (nil otherwise), and its name.
func (s *Stanza) Payload() ([]byte, xml.Name) { return s.payload, s.payloadName }

// Decode unmarshals the stanza into v with encoding/xml.
func (s *Stanza) Decode(v any) error { return xml.Unmarshal(s.Raw, v) }

// Stream is an established end-to-end XML stream. Its methods are safe for concurrent use.
// After Next returns an error, or when done, call Close.
type Stream struct {
	rw    io.ReadWriter
	cfg   Config
	local string
	peer  string
	id    string
	rd    *reader

	// writer
	wq        chan *writeReq // everything written after the headers goes through here
	wmu       sync.Mutex
	wclosed   bool          // the final write (</stream:stream>) is queued; no more sends
	closeSent chan struct{} // closed when the writer has stopped (final write done or failed)
	werr      error         // first write error (under wmu)

	// reader
	in    chan *Stanza
	done  chan struct{} // closed when the peer's stream ended (close, error, EOF)
	rerr  error         // why; set before done is closed
	rdone chan struct{} // closed when the reader goroutine has returned

	// IQ
	mu       sync.Mutex
	pending  map[string]chan iqAnswer
	handlers map[xml.Name]*iqHandler
	msgs     map[xml.Name]*msgHandler
	sem      chan struct{}
	hctx     context.Context
	hcancel  context.CancelFunc

	closing   chan struct{} // closed by Close: stanzas nobody will read are dropped
	kill      chan struct{} // closed by Close when everything must stop
	killOnce  sync.Once
	closeOnce sync.Once
	closeErr  error
	wg        sync.WaitGroup // every goroutine of the stream
	hwg       sync.WaitGroup // running IQ handlers
	idSeq     atomic.Uint64
	idPrefix  string
}

type writeReq struct {
	b        []byte
	done     chan error // nil for fire-and-forget writes
	final    bool       // </stream:stream> (possibly after a stream error): the last write
	canceled atomic.Bool
}

// Initiate opens a stream as the Jingle initiator over rw (XS-1): it sends our header with
// from=local and to=peer (full JIDs, XS-2), reads the responder's header, which must come from
// peer to local with an id and version 1.0 (XS-13, CORE-2), and its <stream:features/>. ctx
// bounds the exchange; when it ends, rw's deadline is set in the past (if rw has SetDeadline)
// or rw is closed (if it is an io.Closer). On a violation a stream error is sent and returned.
func Initiate(ctx context.Context, rw io.ReadWriter, local, peer string, cfg *Config) (*Stream, error) {
	s := newStream(rw, local, peer, cfg)
	stop := context.AfterFunc(ctx, s.abortIO)
	err := s.initiate()
	s.rd.rec.limit = s.cfg.MaxStanzaSize + 16
	if !stop() {
		s.hcancel()
		return nil, ctx.Err()
	}
	if err != nil {
		s.hcancel()
		return nil, err
	}
	s.start()
	return s, nil
}

// Respond accepts a stream as the Jingle responder over rw: it reads the initiator's header,
// which must come from peer to local (full JIDs, XS-13) with version ≥ 1.0, and answers with our
// header (a fresh unpredictable id, version 1.0, CORE-2) and empty <stream:features/> (CORE-4,
// XS-5). ctx works as for Initiate. On a violation our header and a stream error are sent and
// the error is returned.
func Respond(ctx context.Context, rw io.ReadWriter, local, peer string, cfg *Config) (*Stream, error) {
	s := newStream(rw, local, peer, cfg)
	stop := context.AfterFunc(ctx, s.abortIO)
	err := s.respond()
	s.rd.rec.limit = s.cfg.MaxStanzaSize + 16
	if !stop() {
		s.hcancel()
		return nil, ctx.Err()
	}
	if err != nil {
		s.hcancel()
		return nil, err
	}
	s.start()
	return s, nil
}

func newStream(rw io.ReadWriter, local, peer string, cfg *Config) *Stream {
	c := cfg.withDefaults()
	s := &Stream{
		rw: rw, cfg: c, local: local, peer: peer,
		wq:        make(chan *writeReq, 128),
		closeSent: make(chan struct{}),
		in:        make(chan *Stanza, 32),
		done:      make(chan struct{}),
		rdone:     make(chan struct{}),
		pending:   make(map[string]chan iqAnswer),
		handlers:  make(map[xml.Name]*iqHandler),
		msgs:      make(map[xml.Name]*msgHandler),
		sem:       make(chan struct{}, c.MaxHandlers),
		kill:      make(chan struct{}),
		closing:   make(chan struct{}),
		idPrefix:  randomID(6),
	}
	s.hctx, s.hcancel = context.WithCancel(context.Background())
	s.rd = newReader(rw, &c)
	s.rd.peer, s.rd.local = peer, local
	return s
}

// abortIO makes the transport's blocked and future reads and writes fail, for good: the idle
// timeout no longer moves the read deadline forward.
func (s *Stream) abortIO() {
	s.rd.dr.stopped.Store(true)
	unblock(s.rw)
}

// unblock makes blocked reads and writes on rw return: deadline in the past, else Close.
func unblock(rw io.ReadWriter) {
	if d, ok := rw.(interface{ SetDeadline(time.Time) error }); ok {
		if d.SetDeadline(time.Unix(1, 0)) == nil {
			return
		}
	}
	if c, ok := rw.(io.Closer); ok {
		_ = c.Close()
	}
}

func randomID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (s *Stream) header(id string) []byte {
	var b bytes.Buffer
	b.WriteString("<?xml version='1.0'?><stream:stream xmlns='" + NSClient + "' xmlns:stream='" + NSStream + "'")
	for _, a := range [][2]string{{"from", s.local}, {"to", s.peer}, {"id", id}, {"version", "1.0"}, {"xml:lang", s.cfg.Lang}} {
		if a[1] == "" {
			continue
		}
		b.WriteString(" " + a[0] + "='")
		escAttr(&b, a[1])
		b.WriteByte('\'')
	}
	b.WriteByte('>')
	return b.Bytes()
}

// fail sends a stream error during the header exchange (our header, if needed, is already
// out) and closes our stream.
func (s *Stream) fail(e *StreamError) error {
	s.finish(append(e.marshal(), "</stream:stream>"...))
	return e
}

// finish writes our last bytes during the header exchange while reading (and discarding) the
// peer's until its </stream:stream>, so that two parties failing at once cannot block each
// other on an unbuffered transport; both are bounded by CloseTimeout (CORE-8).
func (s *Stream) finish(last []byte) {
	wrote := make(chan struct{})
	drained := make(chan struct{})
	go func() {
		defer close(wrote)
		_, _ = s.rw.Write(last)
	}()
	go func() {
		defer close(drained)
		drainUntilClose(s.rd.rec.r, 1<<20)
	}()
	timer := time.NewTimer(s.cfg.CloseTimeout)
	defer timer.Stop()
	for _, ch := range []chan struct{}{wrote, drained} {
		select {
		case <-ch:
			continue
		case <-timer.C:
			s.abortIO()
		}
		break
	}
	<-wrote
	<-drained
}

func (s *Stream) initiate() error {
	if _, err := s.rw.Write(s.header("")); err != nil {
		return err
	}
	h, err := s.rd.header()
	if err != nil {
		return s.headerErr(err)
	}
	from, _ := attrValue(h.Attr, "", "from")
	to, _ := attrValue(h.Attr, "", "to")
	id, _ := attrValue(h.Attr, "", "id")
	ver, _ := attrValue(h.Attr, "", "version")
	switch maj, min, ok := parseVersion(ver); {
	case from != s.peer:
		return s.fail(streamErr(InvalidFrom, "stream header from "+truncate(from)))
	case to != s.local:
		return s.fail(streamErr(HostUnknown, "stream header to "+truncate(to)))
	case !ok || maj != 1 || min != 0:
		return s.fail(streamErr(UnsupportedVersion, "version "+truncate(ver)))
	case id == "":
		return s.fail(streamErr(BadFormat, "stream header without id"))
	}
	s.id = id
	if err := s.rd.features(); err != nil {
		return s.headerErr(err)
	}
	return nil
}

func (s *Stream) headerErr(err error) error {
	var se *StreamError
	switch {
	case errors.As(err, &se) && !se.Remote:
		return s.fail(se)
	case errors.As(err, &se):
		s.finish([]byte("</stream:stream>"))
	case errors.Is(err, errPeerClosed):
		s.finish([]byte("</stream:stream>"))
		return ErrClosed
	}
	return err
}

func (s *Stream) respond() error {
	h, err := s.rd.header()
	s.id = randomID(18)
	// Our answer goes to whoever the initiator says it is (CORE-2), even when that is wrong.
	if from, ok := attrValue(h.Attr, "", "from"); ok && validChars(from) {
		s.peer = from
	}
	answer := s.header(s.id)
	s.peer = s.rd.peer
	if err != nil {
		var se *StreamError
		if errors.As(err, &se) {
			_, _ = s.rw.Write(answer)
		}
		return s.headerErr(err)
	}
	from, _ := attrValue(h.Attr, "", "from")
	to, _ := attrValue(h.Attr, "", "to")
	ver, _ := attrValue(h.Attr, "", "version")
	var bad *StreamError
	switch maj, _, ok := parseVersion(ver); {
	case to != s.local:
		bad = streamErr(HostUnknown, "stream header to "+truncate(to))
	case from != s.peer:
		bad = streamErr(InvalidFrom, "stream header from "+truncate(from))
	case !ok || maj < 1:
		bad = streamErr(UnsupportedVersion, "version "+truncate(ver))
	}
	if bad != nil {
		if _, err := s.rw.Write(answer); err != nil {
			return err
		}
		return s.fail(bad)
	}
	// Version: min(theirs, ours) = 1.0 (CORE-2); features follow since both are ≥ 1.0 (CORE-4).
	_, err = s.rw.Write(append(answer, "<stream:features/>"...))
	return err
}

// parseVersion parses "major.minor" as two decimal numbers (CORE-2: compare numerically).
func parseVersion(v string) (major, minor int, ok bool) {
	a, b, found := strings.Cut(v, ".")
	if !found || len(a) == 0 || len(b) == 0 || len(a) > 4 || len(b) > 4 {
		return 0, 0, false
	}
	for _, c := range a + b {
		if c < '0' || c > '9' {
			return 0, 0, false
		}
	}
	major, _ = strconv.Atoi(a)
	minor, _ = strconv.Atoi(b)
	return major, minor, true
}

// start runs the reader, the writer and the keepalive goroutines.
func (s *Stream) start() {
	s.wg.Add(2)
	go s.writeLoop()
	go s.readLoop()
	if s.cfg.KeepAlive > 0 {
		s.wg.Add(1)
		go s.keepAlive()
	}
}

// ID returns the stream id chosen by the responder.
func (s *Stream) ID() string { return s.id }

// LocalJID returns our full JID (the header's from).
func (s *Stream) LocalJID() string { return s.local }

// PeerJID returns the peer's full JID (the header's to).
func (s *Stream) PeerJID() string { return s.peer }

// Done is closed when the peer's side of the stream has ended; Err then says why.
func (s *Stream) Done() <-chan struct{} { return s.done }

// Err returns nil while the peer's stream is open, then io.EOF after its orderly
// </stream:stream>, a *StreamError, or the transport error.
func (s *Stream) Err() error {
	select {
	case <-s.done:
		return s.rerr
	default:
		return nil
	}
}

func (s *Stream) writeLoop() {
	defer s.wg.Done()
	defer close(s.closeSent)
	for {
		var req *writeReq
		select {
		case req = <-s.wq:
		case <-s.kill:
			return
		}
		if req.canceled.Load() {
			continue
		}
		_, err := s.rw.Write(req.b)
		if req.done != nil {
			req.done <- err
		}
		if err != nil {
			s.wmu.Lock()
			s.werr, s.wclosed = err, true
			s.wmu.Unlock()
			return
		}
		if req.final {
			return // nothing after </stream:stream> (CORE-8)
		}
	}
}

// How enqueue hands bytes to the writer.
type writeMode int

const (
	modeSync  writeMode = iota // wait until written (Send, Request)
	modeQueue                  // wait for room in the queue, not for the write (handler answers)
	modeTry                    // never wait: fail with errQueueFull (answers from the reader)
	modeFinal                  // the last write: </stream:stream>, possibly after a stream error
)

// enqueue queues b for the writer goroutine. Only modeSync waits for the network; the reader
// goroutine and IQ handlers never do, so two streams that answer each other cannot deadlock
// on an unbuffered transport (ERR-12).
func (s *Stream) enqueue(ctx context.Context, b []byte, mode writeMode) error {
	req := &writeReq{b: b, final: mode == modeFinal}
	if mode == modeSync {
		req.done = make(chan error, 1)
	}
	s.wmu.Lock()
	if s.wclosed {
		err := s.werr
		s.wmu.Unlock()
		if err != nil {
			return err
		}
		return ErrClosed
	}
	switch mode {
	case modeFinal:
		s.wclosed = true
	case modeTry:
		defer s.wmu.Unlock()
		select {
		case s.wq <- req:
			return nil
		default:
			return errQueueFull
		}
	}
	s.wmu.Unlock()
	if mode == modeFinal {
		// Room comes eventually: the writer drains until it sees this request.
		select {
		case s.wq <- req:
			return nil
		case <-s.kill:
			return ErrClosed
		}
	}
	select {
	case s.wq <- req:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.closeSent:
		return ErrClosed
	}
	if mode == modeQueue {
		return nil
	}
	select {
	case err := <-req.done:
		return err
	case <-ctx.Done():
		req.canceled.Store(true) // a write already started still completes
		return ctx.Err()
	case <-s.closeSent:
		select {
		case err := <-req.done:
			return err
		default:
			return ErrClosed
		}
	}
}

// closeWith queues our final bytes: optionally a stream error, then </stream:stream>.
func (s *Stream) closeWith(e *StreamError) {
	b := []byte("</stream:stream>")
	if e != nil {
		b = append(e.marshal(), b...)
	}
	_ = s.enqueue(context.Background(), b, modeFinal)
}

// Send sends one stanza: a message, presence or iq element in jabber:client (with or without
// the xmlns attribute), at most the configured stanza size. It checks raw with the same strict
// parser that reads the peer's stanzas and returns ErrInvalidStanza if it is not acceptable.
// It returns when the stanza was written (or ctx ended: a stanza not yet written is then
// dropped, one being written still completes).
func (s *Stream) Send(ctx context.Context, raw []byte) error {
	if err := s.checkOutgoing(raw, "message", "presence", "iq"); err != nil {
		return err
	}
	return s.enqueue(ctx, raw, modeSync)
}

// Encode marshals v with encoding/xml and sends it like Send.
func (s *Stream) Encode(ctx context.Context, v any) error {
	b, err := xml.Marshal(v)
	if err != nil {
		return err
	}
	return s.Send(ctx, b)
}

// checkOutgoing verifies that raw is exactly one element named one of names in jabber:client
// (or without namespace), within the limits the peer enforces.
func (s *Stream) checkOutgoing(raw []byte, names ...string) error {
	if len(raw) > s.cfg.MaxStanzaSize {
		return ErrInvalidStanza
	}
	name, err := checkElement(raw, s.cfg.MaxDepth-1, s.cfg.MaxAttrs)
	if err != nil {
		return ErrInvalidStanza
	}
	if name.Space != "" && name.Space != NSClient {
		return ErrInvalidStanza
	}
	for _, n := range names {
		if name.Local == n {
			return nil
		}
	}
	return ErrInvalidStanza
}

// checkElement parses raw strictly as exactly one element (no comments, PIs, DTDs, entities)
// with at most maxDepth nesting and maxAttrs attributes per element, and returns its name.
func checkElement(raw []byte, maxDepth, maxAttrs int) (xml.Name, error) {
	d := xml.NewDecoder(bytes.NewReader(raw))
	d.Strict = true
	var (
		name  xml.Name
		depth int
		roots int
	)
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return xml.Name{}, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if depth == 0 {
				roots++
				name = t.Name
			}
			depth++
			if depth > maxDepth || len(t.Attr) > maxAttrs {
				return xml.Name{}, ErrInvalidStanza
			}
		case xml.EndElement:
			depth--
		case xml.CharData:
			if depth == 0 {
				return xml.Name{}, ErrInvalidStanza
			}
		case xml.Comment, xml.ProcInst, xml.Directive:
			return xml.Name{}, ErrInvalidStanza
		}
	}
	if roots != 1 {
		return xml.Name{}, ErrInvalidStanza
	}
	return name, nil
}

// Keepalive sends a single space between stanzas (CORE-11).
func (s *Stream) Keepalive(ctx context.Context) error {
	return s.enqueue(ctx, []byte(" "), modeSync)
}

func (s *Stream) keepAlive() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.KeepAlive)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			_ = s.enqueue(context.Background(), []byte(" "), modeTry)
		case <-s.kill:
			return
		case <-s.closeSent:
			return
		}
	}
}

// Next returns the next message or presence from the peer (IQs go to handlers and Request,
// messages with a handler installed by HandleMessage go to it).
// It returns io.EOF after the peer closed the stream in order, a *StreamError after a stream
// error (sent or received), or the transport's error; ctx bounds the wait.
func (s *Stream) Next(ctx context.Context) (*Stanza, error) {
	select {
	case st := <-s.in:
		return st, nil
	default:
	}
	select {
	case st := <-s.in:
		return st, nil
	case <-s.done:
		select {
		case st := <-s.in:
			return st, nil
		default:
			return nil, s.rerr
		}
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (s *Stream) readLoop() {
	defer s.wg.Done()
	defer close(s.rdone)
	var err error
	for {
		var st *Stanza
		st, err = s.rd.next()
		if err != nil {
			break
		}
		if st.Name.Local == "iq" {
			if e := s.dispatchIQ(st); e != nil {
				err = e
				break
			}
			continue
		}
		if st.Name.Local == "message" && s.dispatchMessage(st) {
			continue
		}
		select {
		case s.in <- st:
		case <-s.closing:
			// We closed our stream: nobody will read this stanza; keep reading to reach the
			// peer's </stream:stream> (CORE-8).
		case <-s.kill:
			err = ErrClosed
		}
		if err != nil {
			break
		}
	}
	var se *StreamError
	var last *StreamError // what we send before our </stream:stream>
	sendClose := true
	switch {
	case errors.Is(err, errPeerClosed):
		s.rerr = io.EOF // the other party closes too (XS-7)
	case errors.As(err, &se) && se.Remote:
		s.rerr = se
	case errors.As(err, &se):
		s.rerr = se
		last = se // CORE-7: stream error, then </stream:stream>
	default:
		s.rerr = err
		sendClose = false
	}
	if last != nil {
		s.closeWith(last)
	}
	s.failPending()
	if last == nil && sendClose {
		// Answers of running handlers go out before our closing tag, if they come soon; a
		// handler still running then has its context canceled.
		idle := make(chan struct{})
		go func() { s.hwg.Wait(); close(idle) }()
		t := time.NewTimer(s.cfg.CloseTimeout / 2)
		select {
		case <-idle:
		case <-t.C:
			s.hcancel()
			<-idle
		}
		t.Stop()
	}
	if last == nil && sendClose {
		s.closeWith(nil)
	}
	// Done only now, so that a Close by the application cannot overtake our stream error or
	// the answers of running handlers.
	close(s.done)
	if last != nil || se != nil && se.Remote {
		// CORE-8: wait for the peer's </stream:stream> without interpreting what comes; the
		// bytes are discarded (bounded), Close unblocks the read at its timeout.
		drainUntilClose(s.rd.rec.r, 1<<20)
	}
}

// Close ends the stream (CORE-8): it sends </stream:stream> (unless already sent), waits up to
// Config.CloseTimeout for the peer's, stops every goroutine of the stream and fails pending
// requests. It does not close rw when the peer closed in time (the transport may be reused,
// XS-7); otherwise it makes rw's blocked operations return (deadline in the past, or Close) and
// returns ErrCloseTimeout. Further calls return the first result.
func (s *Stream) Close() error {
	s.closeOnce.Do(func() {
		s.closeWith(nil)
		close(s.closing)
		timer := time.NewTimer(s.cfg.CloseTimeout)
		defer timer.Stop()
		wait := func(ch <-chan struct{}) bool {
			select {
			case <-ch:
				return true
			case <-timer.C:
				return false
			}
		}
		// The peer's </stream:stream> (or the end of its stream), our final write, and the
		// reader's end (after a stream error it drains until the peer's closing tag).
		if !(wait(s.done) && wait(s.closeSent) && wait(s.rdone)) {
			s.closeErr = ErrCloseTimeout
			s.abortIO()
		}
		s.killOnce.Do(func() { close(s.kill) })
		s.hcancel()
		s.wg.Wait()
		s.failPending()
		if s.closeErr == nil {
			var se *StreamError
			if errors.As(s.rerr, &se) {
				s.closeErr = se
			} else if s.rerr != nil && s.rerr != io.EOF {
				s.closeErr = s.rerr
			}
		}
	})
	return s.closeErr
}

// drainUntilClose discards up to max bytes from r until it has seen "</stream:stream>".
func drainUntilClose(r io.Reader, max int) {
	const tag = "</stream:stream>"
	var (
		buf  [4096]byte
		tail []byte
	)
	for n := 0; n < max; {
		k, err := r.Read(buf[:])
		n += k
		tail = append(tail, buf[:k]...)
		if bytes.Contains(tail, []byte(tag)) || err != nil {
			return
		}
		if len(tail) > len(tag) {
			tail = append(tail[:0], tail[len(tail)-len(tag):]...)
		}
	}
}
