package gosrcxmpp

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"reflect"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"gosrc.io/xmpp"
	"gosrc.io/xmpp/stanza"
)

// transport is the adapter's own implementation of xmpp.Transport. gosrc.io/xmpp v0.5.1 runs
// the stream negotiation over it (STARTTLS, SASL, resource binding); from then on the adapter
// reads every stanza itself (see reader) and writes with deadlines. It replaces the library's
// XMPPTransport, which hangs on a server-initiated close (GOSRC.md §3.A1), keeps a dead socket
// open (§3.A6), has no write deadline (§3.A7) and keeps isSecure across reconnects (§3.A2).
type transport struct {
	addr    string
	domain  string
	tlsConf *tls.Config
	timeout time.Duration // connect and negotiation timeout
	dialCtx context.Context

	writeMu sync.Mutex // serialises writes
	connMu  sync.Mutex // guards conn and secure (swapped by StartTLS)
	conn    net.Conn
	secure  bool
	dec     *xml.Decoder
	rd      *reader

	sawTLS     atomic.Bool // STARTTLS completed on this connection
	closeOnce  sync.Once
	done       chan struct{} // closed when the connection is finished (read error or Close)
	doneErr    error
	doneErrMu  sync.Mutex
	writeLimit time.Duration
}

var _ xmpp.Transport = (*transport)(nil)

// errStreamClosed is the read error after the server closed the stream.
var errStreamClosed = errors.New("gosrcxmpp: server closed the stream")

// StreamError is a stream error (RFC 6120 §4.9) the server sent before closing the session;
// Event.Err of a Disconnected or Stopped event may be one.
type StreamError struct {
	Condition string // e.g. "conflict", "system-shutdown"
	Text      string // the server's text, may be empty
}

// Error implements error.
func (e *StreamError) Error() string {
	if e.Text != "" {
		return "gosrcxmpp: stream error " + e.Condition + ": " + e.Text
	}
	return "gosrcxmpp: stream error " + e.Condition
}

func newTransport(ctx context.Context, addr, domain string, tlsConf *tls.Config, timeout time.Duration, onStanza func(*inStanza)) *transport {
	t := &transport{addr: addr, domain: domain, tlsConf: tlsConf, timeout: timeout, dialCtx: ctx,
		done: make(chan struct{}), writeLimit: writeTimeout}
	t.rd = &reader{t: t, onStanza: onStanza}
	return t
}

// writeTimeout bounds one write to the server; a write that cannot finish in this time (the
// server stopped reading) ends the connection, and the client reconnects.
const writeTimeout = 60 * time.Second

// finish records why the connection ended, closes it and signals done.
func (t *transport) finish(err error) {
	t.closeOnce.Do(func() {
		t.doneErrMu.Lock()
		t.doneErr = err
		t.doneErrMu.Unlock()
		t.connMu.Lock()
		conn, secure := t.conn, t.secure
		t.connMu.Unlock()
		if conn != nil {
			// Say goodbye only if no write is in progress (it may be the one that is stuck).
			if secure && t.writeMu.TryLock() {
				conn.SetWriteDeadline(time.Now().Add(500 * time.Millisecond))
				io.WriteString(conn, "</stream:stream>")
				t.writeMu.Unlock()
			}
			conn.Close()
		}
		close(t.done)
	})
}

func (t *transport) err() error {
	t.doneErrMu.Lock()
	defer t.doneErrMu.Unlock()
	return t.doneErr
}

// Connect dials the server and opens the stream. Negotiation runs under a deadline of
// t.timeout, lifted by startReading once the session is established.
func (t *transport) Connect() (string, error) {
	d := net.Dialer{Timeout: t.timeout}
	conn, err := d.DialContext(t.dialCtx, "tcp", t.addr)
	if err != nil {
		return "", xmpp.NewConnError(err, true)
	}
	conn.SetDeadline(time.Now().Add(t.timeout))
	t.connMu.Lock()
	t.conn = conn
	t.secure = false
	t.connMu.Unlock()
	t.newDecoder()
	return t.StartStream()
}

func (t *transport) newDecoder() {
	t.connMu.Lock()
	conn := t.conn
	t.connMu.Unlock()
	cr := &countingReader{br: bufio.NewReaderSize(conn, 64<<10)}
	in := xml.NewDecoder(cr)
	t.rd.in, t.rd.counter, t.rd.skipped = in, cr, 0
	t.dec = xml.NewTokenDecoder(t.rd)
}

// StartStream sends the stream header and reads the server's.
func (t *transport) StartStream() (string, error) {
	hdr := fmt.Sprintf("<?xml version='1.0'?><stream:stream to='%s' xmlns='%s' xmlns:stream='%s' version='1.0'>",
		attrString(t.domain), nsClient, nsStream)
	if _, err := t.Write([]byte(hdr)); err != nil {
		return "", xmpp.NewConnError(err, true)
	}
	id, err := stanza.InitStream(t.dec)
	if err != nil {
		return "", xmpp.NewConnError(err, false)
	}
	return id, nil
}

// DoesStartTLS reports that this transport negotiates STARTTLS.
func (t *transport) DoesStartTLS() bool { return true }

// StartTLS upgrades the connection after the server's <proceed/> and verifies the server
// certificate against the configured roots for the XMPP domain.
func (t *transport) StartTLS() error {
	conf := t.tlsConf.Clone()
	if conf.ServerName == "" {
		conf.ServerName = t.domain
	}
	if conf.MinVersion < tls.VersionTLS12 {
		conf.MinVersion = tls.VersionTLS12
	}
	t.connMu.Lock()
	raw := t.conn
	t.connMu.Unlock()
	tc := tls.Client(raw, conf)
	ctx, cancel := context.WithTimeout(t.dialCtx, t.timeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		return err
	}
	t.connMu.Lock()
	t.conn = tc
	t.secure = true
	t.connMu.Unlock()
	t.sawTLS.Store(true)
	t.newDecoder()
	return nil
}

// IsSecure reports whether TLS is established on this connection (never carried over from an
// earlier connection: every connection gets a fresh transport).
func (t *transport) IsSecure() bool {
	t.connMu.Lock()
	defer t.connMu.Unlock()
	return t.secure
}

// GetDecoder returns the decoder gosrc.io/xmpp negotiates with.
func (t *transport) GetDecoder() *xml.Decoder { return t.dec }

// LogTraffic is not supported: a wire log would contain the SASL PLAIN password.
func (t *transport) LogTraffic(io.Writer) {}

// Ping writes a whitespace keep-alive (gosrc.io/xmpp's keepalive goroutine calls it).
func (t *transport) Ping() error {
	_, err := t.Write([]byte{' '})
	return err
}

// Read is not used by gosrc.io/xmpp for client transports.
func (t *transport) Read(p []byte) (int, error) {
	return 0, errors.New("gosrcxmpp: transport is read through its decoder")
}

// Write writes p in one piece under the write lock, with a deadline. A failed write ends the
// connection.
func (t *transport) Write(p []byte) (int, error) {
	if !t.rd.capture.Load() && string(p) == xmpp.InitialPresence {
		// gosrc.io/xmpp's Connect sends a bare <presence/> before it returns, so the
		// contacts' presence that answers it would arrive before the application could
		// install its presence handlers. The adapter sends the initial presence itself, from
		// SetPresence (see Client.SetPresence).
		return len(p), nil
	}
	t.connMu.Lock()
	conn := t.conn
	t.connMu.Unlock()
	t.writeMu.Lock()
	if conn == nil {
		t.writeMu.Unlock()
		return 0, errors.New("gosrcxmpp: not connected")
	}
	select {
	case <-t.done:
		t.writeMu.Unlock()
		return 0, ErrDisconnected
	default:
	}
	conn.SetWriteDeadline(time.Now().Add(t.writeLimit))
	n, err := conn.Write(p)
	t.writeMu.Unlock()
	if err != nil {
		go t.finish(fmt.Errorf("gosrcxmpp: write: %w", err))
	}
	return n, err
}

// Close ends the connection at once (it does not wait for the server's stream close).
func (t *transport) Close() error {
	t.finish(errors.New("gosrcxmpp: closed"))
	return nil
}

// ReceivedStreamClose is never needed: the reader reports the server's close as a read error.
func (t *transport) ReceivedStreamClose() {}

// startReading switches the reader to capture mode and lifts the negotiation deadline. It runs
// in gosrc.io/xmpp's PostConnectHook, after binding and before the library's receive loop
// starts, so the library never decodes a stanza from the network.
func (t *transport) startReading() {
	t.rd.capture.Store(true)
	t.connMu.Lock()
	conn := t.conn
	t.connMu.Unlock()
	conn.SetDeadline(time.Time{})
}

// reader sits between the network decoder and the decoder gosrc.io/xmpp reads. During
// negotiation it passes tokens through. In capture mode it reads each top-level stanza itself
// (readStanza), hands it to onStanza and never passes it on, so malformed payloads cannot stop
// the library's receive loop (GOSRC.md §3.B1) and stanzas arrive in wire order. Stream errors,
// the stream close and read errors end the connection and are returned to the library's loop,
// which then exits.
type reader struct {
	t        *transport
	in       *xml.Decoder
	counter  *countingReader // in's byte source (fastread.go)
	skipped  int64           // bytes the fast path consumed past in
	capture  atomic.Bool
	onStanza func(*inStanza)
}

func (r *reader) Token() (xml.Token, error) {
	for {
		if r.capture.Load() {
			if s, ok := r.fastStanza(); ok {
				r.onStanza(s)
				continue
			}
		}
		tok, err := r.in.Token()
		if err != nil {
			r.t.finish(fmt.Errorf("gosrcxmpp: read: %w", err))
			return nil, err
		}
		if !r.capture.Load() {
			return xml.CopyToken(tok), nil
		}
		switch t := tok.(type) {
		case xml.StartElement:
			switch {
			case t.Name.Space == nsClient && (t.Name.Local == "iq" || t.Name.Local == "message" || t.Name.Local == "presence"):
				s, err := readStanza(r.in, t)
				if err != nil {
					r.t.finish(fmt.Errorf("gosrcxmpp: read: %w", err))
					return nil, err
				}
				r.onStanza(s)
			case t.Name.Space == nsStream && t.Name.Local == "error":
				se := readStreamError(r.in, t)
				r.t.finish(se)
				return nil, se
			default:
				// Nonzas we did not ask for (no stream management is enabled): ignored.
				if err := r.in.Skip(); err != nil {
					r.t.finish(fmt.Errorf("gosrcxmpp: read: %w", err))
					return nil, err
				}
			}
		case xml.EndElement:
			r.t.finish(errStreamClosed)
			return nil, errStreamClosed
		}
	}
}

func readStreamError(d *xml.Decoder, start xml.StartElement) *StreamError {
	w := newElemWriter()
	w.start(start)
	depth := 0
	for depth >= 0 {
		tok, err := d.Token()
		if err != nil {
			break
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if depth < 8 {
				w.start(t)
			}
		case xml.EndElement:
			if depth < 8 {
				w.end(t)
			}
			depth--
		case xml.CharData:
			if w.buf.Len() < 4096 {
				w.text(t)
			}
		}
	}
	e := &StreamError{Condition: "undefined-condition"}
	d2 := xml.NewDecoder(bytes.NewReader(w.buf.Bytes()))
	inText := false
	for {
		tok, err := d2.Token()
		if err != nil {
			break
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if t.Name.Space == nsStreams && t.Name.Local == "text" {
				inText = true
			} else if t.Name.Space == nsStreams {
				e.Condition = t.Name.Local
			}
		case xml.EndElement:
			inText = false
		case xml.CharData:
			if inText {
				e.Text = truncateUTF8(e.Text+string(t), maxErrorText)
			}
		}
	}
	return e
}

// setTransport installs t as the transport of c. gosrc.io/xmpp v0.5.1 has no exported way to
// choose a client transport; the unexported field is set through reflection, checked against
// the exact field type so that a different library version fails loudly at Dial instead of
// misbehaving.
func setTransport(c *xmpp.Client, t xmpp.Transport) error {
	f := reflect.ValueOf(c).Elem().FieldByName("transport")
	want := reflect.TypeOf((*xmpp.Transport)(nil)).Elem()
	if !f.IsValid() || f.Type() != want {
		return errors.New("gosrcxmpp: gosrc.io/xmpp Client has no transport field of type xmpp.Transport; this adapter needs v0.5.1")
	}
	reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem().Set(reflect.ValueOf(t))
	return nil
}
