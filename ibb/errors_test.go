package ibb_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xtlsjingle/xtlsjingle/ibb"
	"github.com/xtlsjingle/xtlsjingle/internal/xmpptest"
)

// recorder keeps every stanza the network carries.
type recorder struct {
	mu sync.Mutex
	s  []xmpptest.Stanza
}

func record(n *xmpptest.Network) *recorder {
	r := &recorder{}
	n.Observe(func(s xmpptest.Stanza) {
		r.mu.Lock()
		r.s = append(r.s, s)
		r.mu.Unlock()
	})
	return r
}

func (r *recorder) stanzas() []xmpptest.Stanza {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]xmpptest.Stanza(nil), r.s...)
}

// waitFor polls until some recorded stanza satisfies f.
func (r *recorder) waitFor(t *testing.T, what string, f func(xmpptest.Stanza) bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for _, s := range r.stanzas() {
			if f(s) {
				return
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("never saw %s", what)
}

func isCloseFrom(from string) func(xmpptest.Stanza) bool {
	return func(s xmpptest.Stanza) bool {
		return s.From == from && s.Type == "set" && strings.HasPrefix(string(s.Payload), "<close ")
	}
}

// rawAccepted has romeo send a raw <open/> (blockSize, sid s1) that juliet's Handler accepts,
// and returns juliet's Conn.
func rawAccepted(t *testing.T, w *world, blockSize string) *ibb.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ch := make(chan *ibb.Conn, 1)
	go func() {
		c, _ := w.hJulie.Expect(ctx, romeoJID, "s1")
		ch <- c
	}()
	open := "<open xmlns='http://jabber.org/protocol/ibb' block-size='" + blockSize + "' sid='s1'/>"
	for {
		_, err := w.romeo.Request(ctx, julietJID, "set", []byte(open))
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("raw open: %v", err)
		}
		time.Sleep(time.Millisecond)
	}
	c := <-ch
	if c == nil {
		t.Fatal("Expect returned no Conn")
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func rawData(seq, sid, b64 string) []byte {
	return []byte("<data xmlns='http://jabber.org/protocol/ibb' seq='" + seq + "' sid='" + sid + "'>" + b64 + "</data>")
}

// wantCondition checks that err is a stanza error with the condition cond.
func wantCondition(t *testing.T, err error, cond string) {
	t.Helper()
	var se *xmpptest.StanzaError
	if !errors.As(err, &se) || se.Condition != cond {
		t.Fatalf("error = %v; want stanza error %s", err, cond)
	}
}

func request(t *testing.T, p *xmpptest.Party, payload []byte) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := p.Request(ctx, julietJID, "set", payload)
	return err
}

// readErr drains c and returns the error that ends it.
func readErr(t *testing.T, c *ibb.Conn) ([]byte, error) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c)
	return b, err
}

// IBB-12, IBB-8: data for a sid that was never opened gets item-not-found.
func TestIBB12_UnknownSID(t *testing.T) {
	w := newWorld(t, 1, nil, nil)
	wantCondition(t, request(t, w.romeo, rawData("0", "nosuch", "QUJD")), "item-not-found")
}

// IBB-12: data for a sid negotiated out of band (Jingle) but not opened yet is refused with
// bad-request, and the bytestream can still be opened afterwards.
func TestIBB12_DataBeforeOpen(t *testing.T) {
	w := newWorld(t, 1, nil, nil)
	offer := []byte("<transport xmlns='urn:xmpp:jingle:transports:ibb:1' block-size='4096' sid='s1'/>")
	tr, err := ibb.NewJingleResponder(w.hJulie, romeoJID, offer)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	wantCondition(t, request(t, w.romeo, rawData("0", "s1", "QUJD")), "bad-request")
}

// IBB-16: data after the stream was closed gets item-not-found: both parties consider it closed.
func TestIBB16_DataAfterClose(t *testing.T) {
	w := newWorld(t, 1, nil, nil)
	a, b := w.pair(t, "s1", 4096)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("Read after the peer's close: %v; want io.EOF", err)
	}
	wantCondition(t, request(t, w.romeo, rawData("0", "s1", "QUJD")), "item-not-found")
}

// IBB-16: <close/> for an unknown sid gets item-not-found.
func TestIBB16_CloseUnknownSID(t *testing.T) {
	w := newWorld(t, 1, nil, nil)
	err := request(t, w.romeo, []byte("<close xmlns='http://jabber.org/protocol/ibb' sid='nosuch'/>"))
	wantCondition(t, err, "item-not-found")
}

// IBB-5: a block larger than the negotiated block-size is refused with bad-request; the
// receiver's reader gets the typed error after the data before it, and the stream is closed.
func TestIBB5_BlockOverBlockSize(t *testing.T) {
	w := newWorld(t, 1, nil, nil)
	rec := record(w.net)
	c := rawAccepted(t, w, "3")
	if err := request(t, w.romeo, rawData("0", "s1", "QUJD")); err != nil { // 3 bytes: fine
		t.Fatal(err)
	}
	wantCondition(t, request(t, w.romeo, rawData("1", "s1", "QUJDRA==")), "bad-request") // 4 bytes
	got, err := readErr(t, c)
	if string(got) != "ABC" || !errors.Is(err, ibb.ErrBadRequest) {
		t.Fatalf("Read = %q, %v; want \"ABC\", bad-request", got, err)
	}
	rec.waitFor(t, "juliet's <close/> (IBB-14)", isCloseFrom(julietJID))
}

// IBB-19, IBB-6, ERR-5: Base64 is decoded strictly after removing XML white space; a
// character outside the alphabet or misplaced padding is refused with bad-request and closes
// the stream.
func TestIBB19_BadBase64(t *testing.T) {
	for _, bad := range []string{"=AAA", "BBBB=CCC", "QUJD*", "QUJ", "QU\u00a0JD", "QUJ="} {
		t.Run(bad, func(t *testing.T) {
			w := newWorld(t, 1, nil, nil)
			c := rawAccepted(t, w, "4096")
			if err := request(t, w.romeo, rawData("0", "s1", "QU\n JD\t")); err != nil { // ERR-5: white space is fine
				t.Fatal(err)
			}
			wantCondition(t, request(t, w.romeo, rawData("1", "s1", bad)), "bad-request")
			got, err := readErr(t, c)
			if string(got) != "ABC" || !errors.Is(err, ibb.ErrBadRequest) {
				t.Fatalf("Read = %q, %v; want \"ABC\", bad-request", got, err)
			}
		})
	}
}

// IBB-12, IBB-14: a seq used twice gets unexpected-request, the reader gets ErrDuplicateSeq
// after the data before it, and the receiver closes the stream.
func TestIBB12_DuplicateSeq(t *testing.T) {
	w := newWorld(t, 1, nil, nil)
	rec := record(w.net)
	c := rawAccepted(t, w, "4096")
	if err := request(t, w.romeo, rawData("0", "s1", "QUJD")); err != nil {
		t.Fatal(err)
	}
	wantCondition(t, request(t, w.romeo, rawData("0", "s1", "QUJD")), "unexpected-request")
	got, err := readErr(t, c)
	if string(got) != "ABC" || !errors.Is(err, ibb.ErrDuplicateSeq) {
		t.Fatalf("Read = %q, %v; want \"ABC\", ErrDuplicateSeq", got, err)
	}
	rec.waitFor(t, "juliet's <close/>", isCloseFrom(julietJID))
}

// IBB-14: a block further ahead than the receive window is a lost block: unexpected-request,
// ErrSeqGap to the reader, stream closed.
func TestIBB14_GapWiderThanWindow(t *testing.T) {
	w := newWorld(t, 1, nil, &ibb.Config{ReceiveWindow: 8})
	rec := record(w.net)
	c := rawAccepted(t, w, "4096")
	if err := request(t, w.romeo, rawData("7", "s1", "QUJD")); err != nil { // inside the window: held
		t.Fatal(err)
	}
	wantCondition(t, request(t, w.romeo, rawData("8", "s1", "QUJD")), "unexpected-request")
	if _, err := readErr(t, c); !errors.Is(err, ibb.ErrSeqGap) {
		t.Fatalf("Read: %v; want ErrSeqGap", err)
	}
	rec.waitFor(t, "juliet's <close/>", isCloseFrom(julietJID))
}

// IBB-14: a gap that does not fill within ReorderTimeout closes the stream with ErrGapTimeout.
func TestIBB14_GapTimeout(t *testing.T) {
	w := newWorld(t, 1, nil, &ibb.Config{ReorderTimeout: 100 * time.Millisecond})
	rec := record(w.net)
	c := rawAccepted(t, w, "4096")
	if err := request(t, w.romeo, rawData("0", "s1", "QUJD")); err != nil {
		t.Fatal(err)
	}
	if err := request(t, w.romeo, rawData("2", "s1", "QUJD")); err != nil { // held behind the gap
		t.Fatal(err)
	}
	got, err := readErr(t, c)
	if string(got) != "ABC" || !errors.Is(err, ibb.ErrGapTimeout) {
		t.Fatalf("Read = %q, %v; want \"ABC\", ErrGapTimeout", got, err)
	}
	rec.waitFor(t, "juliet's <close/>", isCloseFrom(julietJID))
}

// IBB-14: a <close/> while blocks are held behind a gap is not a clean end of stream.
func TestIBB14_CloseWithGap(t *testing.T) {
	w := newWorld(t, 1, nil, nil)
	c := rawAccepted(t, w, "4096")
	if err := request(t, w.romeo, rawData("1", "s1", "QUJD")); err != nil { // held behind the gap
		t.Fatal(err)
	}
	if err := request(t, w.romeo, []byte("<close xmlns='http://jabber.org/protocol/ibb' sid='s1'/>")); err != nil {
		t.Fatal(err)
	}
	if _, err := readErr(t, c); !errors.Is(err, ibb.ErrUnexpectedClose) {
		t.Fatalf("Read: %v; want ErrUnexpectedClose", err)
	}
}

// IBB-13: when the peer answers a data IQ with an error, the sender closes the bytestream and
// Write reports the peer's condition.
func TestIBB13_SenderClosesOnDataError(t *testing.T) {
	w := newWorld(t, 1, nil, nil)
	rec := record(w.net)
	a, _ := w.pair(t, "s1", 4096)
	remove := w.juliet.HandleIQ(ibb.NS, "data", func(ctx context.Context, from, to, typ string, payload []byte) ([]byte, error) {
		return nil, &xmpptest.StanzaError{Type: "cancel", Condition: "bad-request"}
	})
	defer remove()
	var err error
	for i := 0; i < 100 && err == nil; i++ {
		_, err = a.Write(make([]byte, 4096))
	}
	var re *ibb.RemoteError
	if !errors.As(err, &re) || !errors.Is(err, ibb.ErrBadRequest) {
		t.Fatalf("Write: %v; want a *RemoteError with bad-request", err)
	}
	rec.waitFor(t, "romeo's <close/> (IBB-13)", isCloseFrom(romeoJID))
}

// IBB-1, IBB-2, IBB-4: opens are checked: block-size range, sid syntax, our largest
// block-size (resource-constraint), and nobody expecting the stream (not-acceptable).
func TestIBB4_OpenErrors(t *testing.T) {
	w := newWorld(t, 1, nil, nil)
	open := func(attrs string) []byte {
		return []byte("<open xmlns='http://jabber.org/protocol/ibb' " + attrs + "/>")
	}
	for _, tc := range []struct {
		name, attrs, cond string
	}{
		{"IBB-1 zero", "block-size='0' sid='s1'", "bad-request"},
		{"IBB-1 over 65535", "block-size='65536' sid='s1'", "bad-request"},
		{"IBB-1 missing", "sid='s1'", "bad-request"},
		{"IBB-2 sid not NMTOKEN", "block-size='4096' sid='a b'", "bad-request"},
		{"IBB-2 sid missing", "block-size='4096'", "bad-request"},
		{"IBB-3 bad stanza", "block-size='4096' sid='s1' stanza='presence'", "bad-request"},
		{"IBB-4 larger than we take", "block-size='65535' sid='s1'", "resource-constraint"},
		{"IBB-4 not expected", "block-size='4096' sid='s1'", "not-acceptable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantCondition(t, request(t, w.romeo, open(tc.attrs)), tc.cond)
		})
	}
}

// IBB-4: the initiator sees the responder's refusal as a *RemoteError with its condition.
func TestIBB4_OpenRefused(t *testing.T) {
	w := newWorld(t, 1, nil, &ibb.Config{BlockSize: 1024})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	go w.hJulie.Expect(ctx, romeoJID, "s1")
	var err error
	for {
		_, err = w.hRomeo.Open(ctx, julietJID, "s1", 2048)
		if err == nil || !errors.Is(err, ibb.ErrNotAcceptable) || ctx.Err() != nil {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if !errors.Is(err, ibb.ErrResourceConstraint) {
		t.Fatalf("Open: %v; want resource-constraint", err)
	}
	cancel()
}

// IBB-11, IBB-13: a delivery error of type wait (recipient-unavailable) that persists past
// Config.RetryTimeout ends the stream with that condition (the blocks were retried until then,
// TestIBB11_WaitErrorRetried).
func TestIBB11_WaitErrorEndsStream(t *testing.T) {
	w := newWorld(t, 1, &ibb.Config{RetryTimeout: 600 * time.Millisecond}, nil)
	a, _ := w.pair(t, "s1", 4096)
	remove := w.juliet.HandleIQ(ibb.NS, "data", func(ctx context.Context, from, to, typ string, payload []byte) ([]byte, error) {
		return nil, &xmpptest.StanzaError{Type: "wait", Condition: "recipient-unavailable"}
	})
	defer remove()
	var err error
	for i := 0; i < 100 && err == nil; i++ {
		_, err = a.Write(make([]byte, 4096))
	}
	if !errors.Is(err, &ibb.Error{Condition: "recipient-unavailable"}) {
		t.Fatalf("Write: %v; want recipient-unavailable", err)
	}
	if _, err := a.Write([]byte("x")); err == nil {
		t.Fatal("Write after the failure succeeded")
	}
}

// IBB-16: when Open gives up (its context ends) after the peer may have accepted, the peer is
// told with <close/>, so that no half-open stream is left behind.
func TestIBB16_OpenGivenUpIsClosed(t *testing.T) {
	w := newWorld(t, 1, nil, nil)
	rec := record(w.net)
	// Juliet accepts, but her answer is held back longer than romeo waits.
	w.net.SetFaults(julietJID, romeoJID, xmpptest.Faults{Delay: 1, MaxDelay: 300 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	accepted := make(chan *ibb.Conn, 1)
	go func() {
		c, _ := w.hJulie.Accept(ctx)
		accepted <- c
	}()
	time.Sleep(20 * time.Millisecond) // Accept waiting
	octx, ocancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer ocancel()
	if _, err := w.hRomeo.Open(octx, julietJID, "half", 4096); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Open: %v; want the context's deadline", err)
	}
	c := <-accepted
	if c == nil {
		t.Fatal("juliet never saw the open")
	}
	defer c.Close()
	rec.waitFor(t, "romeo's <close/>", isCloseFrom(romeoJID))
	if got, err := readErr(t, c); err != nil || len(got) != 0 { // io.ReadAll: nil at io.EOF
		t.Fatalf("juliet's Read: %q, %v; want a clean end of stream", got, err)
	}
}

// refusingLink answers every third data IQ that it has not refused before with err, without
// sending it, as a server over its rate limit does.
type refusingLink struct {
	*xmpptest.Party
	err     error
	mu      sync.Mutex
	n       int
	refused int
	seen    map[uint16]bool
}

func (l *refusingLink) Request(ctx context.Context, to, typ string, payload []byte) ([]byte, error) {
	if d, err := ibb.ParseData(payload); err == nil {
		l.mu.Lock()
		l.n++
		refuse := l.n%3 == 0 && !l.seen[d.Seq]
		l.seen[d.Seq] = true
		if refuse {
			l.refused++
		}
		l.mu.Unlock()
		if refuse {
			return nil, l.err
		}
	}
	return l.Party.Request(ctx, to, typ, payload)
}

// IBB-11: delivery errors of type wait, resource-constraint and policy-violation (a server's
// rate limit) suspend the sender, which sends the same block again after a pause: the data
// arrives complete and in order and the stream stays open.
func TestIBB11_WaitErrorRetried(t *testing.T) {
	for _, e := range []*xmpptest.StanzaError{
		{Type: "wait", Condition: "recipient-unavailable"},
		{Type: "wait", Condition: "resource-constraint"},
		{Type: "cancel", Condition: "policy-violation"},
	} {
		t.Run(e.Condition, func(t *testing.T) {
			checkGoroutines(t)
			n := xmpptest.NewNetwork(1)
			romeo, juliet := n.Party(romeoJID), n.Party(julietJID)
			link := &refusingLink{Party: romeo, err: e, seen: map[uint16]bool{}}
			hr, hj := ibb.NewHandler(link, nil), ibb.NewHandler(juliet, nil)
			t.Cleanup(func() { hr.Close(); hj.Close(); romeo.Close(); juliet.Close() })
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			go func() {
				for {
					a, err := hr.Open(ctx, julietJID, "s1", 4096)
					if err == nil {
						data := randomBytes(11, 48<<10)
						_, _ = a.Write(data)
						_ = a.Close()
						return
					}
					if ctx.Err() != nil {
						return
					}
					time.Sleep(time.Millisecond) // Accept not waiting yet: not-acceptable (IBB-4)
				}
			}()
			b, err := hj.Accept(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			got, err := io.ReadAll(b)
			if err != nil {
				t.Fatalf("read: %v after %d bytes", err, len(got))
			}
			sameBytes(t, randomBytes(11, 48<<10), got)
			link.mu.Lock()
			defer link.mu.Unlock()
			if link.refused == 0 {
				t.Fatal("no block was refused: the test exercised nothing")
			}
			t.Logf("%d of %d data IQs refused with %s/%s and sent again", link.refused, link.n, e.Type, e.Condition)
		})
	}
}
