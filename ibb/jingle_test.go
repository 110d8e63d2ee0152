package ibb_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/xtlsjingle/xtlsjingle/ibb"
	"github.com/xtlsjingle/xtlsjingle/jingle"
)

var _ jingle.Transport = (*ibb.JingleTransport)(nil)

// JIBB-1, JIBB-2, JIBB-10: the initiator offers 8192, the responder lowers it to its 2048;
// after "session-accept" both Establish at once, the initiator's <open/> carries 2048, and
// the two Conns carry data both ways.
func TestJIBB2_EstablishBothRoles(t *testing.T) {
	w := newWorld(t, 11, nil, &ibb.Config{BlockSize: 2048})
	rec := record(w.net)
	ti, err := ibb.NewJingleTransport(w.hRomeo, julietJID, "jibb1", 8192)
	if err != nil {
		t.Fatal(err)
	}
	defer ti.Close()
	offer := ti.Element()
	if ti.Namespace() != ibb.NSJingle {
		t.Fatalf("namespace %q", ti.Namespace())
	}
	tr, err := ibb.NewJingleResponder(w.hJulie, romeoJID, offer)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	ans, err := ibb.ParseTransport(tr.Element())
	if err != nil || ans.BlockSize != 2048 || ans.SID != "jibb1" {
		t.Fatalf("answer %+v, %v; want sid jibb1 block-size 2048", ans, err)
	}
	if err := ti.HandleAccept(tr.Element()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	noInfo := func(context.Context, []byte) error { return errors.New("unexpected transport-info") }
	type res struct {
		c   net.Conn
		err error
	}
	rch := make(chan res, 1)
	go func() {
		c, err := tr.Establish(ctx, noInfo)
		rch <- res{c, err}
	}()
	ci, err := ti.Establish(ctx, noInfo)
	if err != nil {
		t.Fatalf("initiator Establish: %v", err)
	}
	r := <-rch
	if r.err != nil {
		t.Fatalf("responder Establish: %v", r.err)
	}
	a, b := ci.(*ibb.Conn), r.c.(*ibb.Conn)
	if a.BlockSize() != 2048 || b.BlockSize() != 2048 {
		t.Fatalf("block sizes %d/%d; want 2048", a.BlockSize(), b.BlockSize())
	}
	var sawOpen bool
	for _, s := range rec.stanzas() {
		if s.From == romeoJID && s.Type == "set" {
			if o, err := ibb.ParseOpen(s.Payload); err == nil {
				sawOpen = o.BlockSize == 2048 && o.SID == "jibb1"
			}
		}
	}
	if !sawOpen {
		t.Fatal("the initiator's <open/> with block-size 2048 was not seen (JIBB-2)")
	}
	exchange(t, a, b, randomBytes(1, 100<<10), randomBytes(2, 50<<10))
}

// JIBB-3: an <open/> whose block-size differs from the one in session-accept is refused
// with resource-constraint; the right one then succeeds.
func TestJIBB3_OpenBlockSizeMismatch(t *testing.T) {
	w := newWorld(t, 1, nil, nil)
	tr, err := ibb.NewJingleResponder(w.hJulie, romeoJID,
		[]byte("<transport xmlns='urn:xmpp:jingle:transports:ibb:1' block-size='4096' sid='j3'/>"))
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	err = request(t, w.romeo, []byte("<open xmlns='http://jabber.org/protocol/ibb' block-size='2048' sid='j3'/>"))
	wantCondition(t, err, "resource-constraint")
	if err := request(t, w.romeo, []byte("<open xmlns='http://jabber.org/protocol/ibb' block-size='4096' sid='j3'/>")); err != nil {
		t.Fatalf("matching open: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := tr.Establish(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}

// JIBB-1, ERR-6: the initiator checks the answer (same sid, block-size not raised); offers
// are emitted with at most 32767.
func TestJIBB1_AcceptChecks(t *testing.T) {
	w := newWorld(t, 1, nil, nil)
	if _, err := ibb.NewJingleTransport(w.hRomeo, julietJID, "x", 40000); err == nil {
		t.Fatal("block-size 40000 offered; ERR-6 caps emission at 32767")
	}
	ti, err := ibb.NewJingleTransport(w.hRomeo, julietJID, "x", 4096)
	if err != nil {
		t.Fatal(err)
	}
	defer ti.Close()
	for _, bad := range []string{
		"<transport xmlns='urn:xmpp:jingle:transports:ibb:1' block-size='8192' sid='x'/>",
		"<transport xmlns='urn:xmpp:jingle:transports:ibb:1' block-size='4096' sid='y'/>",
		"<transport xmlns='urn:xmpp:jingle:transports:ibb:0' block-size='4096' sid='x'/>",
	} {
		if err := ti.HandleAccept([]byte(bad)); err == nil {
			t.Errorf("HandleAccept(%s) accepted", bad)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := ti.Establish(ctx, nil); !errors.Is(err, ibb.ErrNotAccepted) {
		t.Fatalf("Establish before accept: %v", err)
	}
}

// Close unblocks a responder's Establish and releases its sid; JIBB-5 transport-info is
// refused.
func TestJIBB_CloseUnblocksEstablish(t *testing.T) {
	w := newWorld(t, 1, nil, nil)
	offer := []byte("<transport xmlns='urn:xmpp:jingle:transports:ibb:1' block-size='4096' sid='c1'/>")
	tr, err := ibb.NewJingleResponder(w.hJulie, romeoJID, offer)
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.HandleInfo(offer); !errors.Is(err, ibb.ErrNotImplemented) {
		t.Fatalf("HandleInfo: %v; want feature-not-implemented", err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := tr.Establish(context.Background(), nil)
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	tr.Close()
	tr.Close()
	if err := <-done; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Establish after Close: %v", err)
	}
	// The sid is free again: an open for it is now simply not expected.
	wantCondition(t, request(t, w.romeo, []byte("<open xmlns='http://jabber.org/protocol/ibb' block-size='4096' sid='c1'/>")), "not-acceptable")
}
