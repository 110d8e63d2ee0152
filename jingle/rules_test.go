package jingle

import (
	"context"
	"errors"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/xtlsjingle/xtlsjingle/internal/xmpptest"
)

func initiatePayload(t *testing.T, sid, initiator string, contents ...Content) []byte {
	if len(contents) == 0 {
		contents = []Content{xsContent("xmlstream")}
	}
	return mustMarshal(t, &Jingle{Action: SessionInitiate, SID: sid, Initiator: initiator, Contents: contents})
}

func TestJ3_AllowPolicy(t *testing.T) {
	fl := newFakeLink(localJID)
	m := NewManager(fl, Config{Allow: func(p string) bool { return p == peerJID }, Incoming: func(*Session) {}})
	defer m.Close()
	_, err := fl.deliver("mallory@evil.example/x", initiatePayload(t, "s1", ""))
	wantErr(t, err, "service-unavailable", "")
	_, err = fl.deliver(peerJID, initiatePayload(t, "s1", peerJID))
	wantErr(t, err, "", "")
}

func TestJ6_MaxSessions(t *testing.T) {
	fl := newFakeLink(localJID)
	m := NewManager(fl, Config{MaxSessions: 2, Incoming: func(*Session) {}})
	defer m.Close()
	for i, want := range []string{"", "", "resource-constraint"} {
		_, err := fl.deliver(peerJID, initiatePayload(t, "s"+string(rune('a'+i)), ""))
		wantErr(t, err, want, "")
	}
}

func TestJ7_J13_MalformedAndUnknownAction(t *testing.T) {
	f := newFixture(t, "pending/responder", Config{})
	_, err := f.fl.deliver(peerJID, []byte("<jingle xmlns='urn:xmpp:jingle:1' action='session-dance' sid='"+f.sid+"'/>"))
	wantErr(t, err, "bad-request", "")
	_, err = f.fl.deliver(peerJID, []byte("<jingle xmlns='urn:xmpp:jingle:1' action='session-info' sid='"+f.sid+"'><!--x--></jingle>"))
	wantErr(t, err, "bad-request", "")
	_, err = f.fl.handler(context.Background(), peerJID, localJID, "get", initiatePayload(t, "g", ""))
	wantErr(t, err, "bad-request", "")
	if f.s.State() != StatePending {
		t.Fatal("a malformed action changed the state")
	}
}

// TestJ16_J18_InitiatorAttribute: a different bare JID in initiator is refused; another
// resource of the sender is ignored and the sender is the initiator.
func TestJ16_J18_InitiatorAttribute(t *testing.T) {
	got := make(chan *Session, 1)
	fl := newFakeLink(localJID)
	m := NewManager(fl, Config{Incoming: func(s *Session) { got <- s }})
	defer m.Close()
	_, err := fl.deliver(peerJID, initiatePayload(t, "s1", "mallory@evil.example/x"))
	wantErr(t, err, "bad-request", "")
	_, err = fl.deliver(peerJID, initiatePayload(t, "s2", "juliet@capulet.lit/other"))
	wantErr(t, err, "", "")
	s := <-got
	if s.Peer() != peerJID || s.IsInitiator() {
		t.Fatalf("peer %q", s.Peer())
	}
	// responder attribute on session-accept likewise
	f := newFixture(t, "pending/initiator", Config{})
	c := xsContent("xmlstream")
	_, err = f.fl.deliver(peerJID, mustMarshal(t, &Jingle{Action: SessionAccept, SID: f.sid, Responder: "mallory@evil.example/x", Contents: []Content{c}}))
	wantErr(t, err, "bad-request", "")
	// J-15, CONF-8: initiator on session-accept (Gajim) is ignored.
	_, err = f.fl.deliver(peerJID, mustMarshal(t, &Jingle{Action: SessionAccept, SID: f.sid, Initiator: "whoever@else/x", Contents: []Content{c}}))
	wantErr(t, err, "", "")
}

// TestJ19_Creator: contents must exist with their creator; content-add names its sender.
func TestJ19_Creator(t *testing.T) {
	f := newFixture(t, "active/responder", Config{})
	wrong := Content{Creator: CreatorResponder, Name: "xmlstream", Transport: []byte("<transport xmlns='" + nsIBB + "'/>")}
	_, err := f.fl.deliver(peerJID, mustMarshal(t, &Jingle{Action: TransportInfo, SID: f.sid, Contents: []Content{wrong}}))
	wantErr(t, err, "bad-request", "")
	add := xsContent("more")
	add.Creator = CreatorResponder // the peer is the initiator
	_, err = f.fl.deliver(peerJID, mustMarshal(t, &Jingle{Action: ContentAdd, SID: f.sid, Contents: []Content{add}}))
	wantErr(t, err, "bad-request", "")
	// transport-info from the responder about the initiator's content keeps creator='initiator'
	f2 := newFixture(t, "active/initiator", Config{})
	ok := Content{Creator: CreatorInitiator, Name: "xmlstream", Transport: []byte("<transport xmlns='" + nsIBB + "'/>")}
	_, err = f2.fl.deliver(peerJID, mustMarshal(t, &Jingle{Action: TransportInfo, SID: f2.sid, Contents: []Content{ok}}))
	wantErr(t, err, "", "")
	ev := <-f2.s.Events() // session-accept
	if ev.Action != SessionAccept {
		t.Fatalf("first event %v", ev.Action)
	}
	if ev := <-f2.s.Events(); ev.Action != TransportInfo || ev.Contents[0].Name != "xmlstream" {
		t.Fatalf("event %+v", ev)
	}
}

// TestJ28_J29_Info: pings are answered, understood payloads become events, others get
// unsupported-info.
func TestJ28_J29_Info(t *testing.T) {
	f := newFixture(t, "active/responder", Config{InfoNamespaces: []string{"urn:example:info", nsXS}})
	send := func(j *Jingle) error {
		j.SID = f.sid
		_, err := f.fl.deliver(peerJID, mustMarshal(t, j))
		return err
	}
	wantErr(t, send(&Jingle{Action: SessionInfo}), "", "")
	wantErr(t, send(&Jingle{Action: SessionInfo, Info: []byte("<ringing xmlns='urn:xmpp:jingle:apps:rtp:info:1'/>")}),
		"feature-not-implemented", "unsupported-info")
	wantErr(t, send(&Jingle{Action: SessionInfo, Info: []byte("<hello xmlns='urn:example:info'/>")}), "", "")
	d := Content{Creator: CreatorInitiator, Name: "xmlstream", Description: []byte("<description xmlns='" + nsXS + "'><x/></description>")}
	wantErr(t, send(&Jingle{Action: DescriptionInfo, Contents: []Content{d}}), "", "")
	ev := <-f.s.Events()
	if ev.Action != SessionInfo || string(ev.Info) != "<hello xmlns='urn:example:info'/>" {
		t.Fatalf("%+v", ev)
	}
	if ev := <-f.s.Events(); ev.Action != DescriptionInfo {
		t.Fatalf("%+v", ev)
	}
}

// TestJ38_RoutingByFullJID: the same sid from another JID is another (unknown) session.
func TestJ38_RoutingByFullJID(t *testing.T) {
	f := newFixture(t, "active/responder", Config{})
	ping := mustMarshal(t, &Jingle{Action: SessionInfo, SID: f.sid})
	_, err := f.fl.deliver("juliet@capulet.lit/other", ping)
	wantErr(t, err, "item-not-found", "unknown-session")
	_, err = f.fl.deliver("mallory@evil.example/balcony", ping)
	wantErr(t, err, "item-not-found", "unknown-session")
	_, err = f.fl.deliver(peerJID, ping)
	wantErr(t, err, "", "")
}

// TestJ25_EndedAsSoonAsTerminateIsSent: while our session-terminate is still unacknowledged
// the session is ended and answers unknown-session; a late duplicate session-initiate does
// not bring it back.
func TestJ25_EndedAsSoonAsTerminateIsSent(t *testing.T) {
	f := newFixture(t, "active/responder", Config{})
	release := make(chan struct{})
	f.fl.mu.Lock()
	f.fl.answer = func(to string, j *Jingle) error {
		if j.Action == SessionTerminate {
			<-release
		}
		return nil
	}
	f.fl.mu.Unlock()
	done := make(chan error, 1)
	go func() { done <- f.s.Terminate(context.Background(), &Reason{Condition: Success}) }()
	f.fl.waitSent(t, SessionTerminate)
	if st := f.s.State(); st != StateEnded {
		t.Fatalf("state %s while terminate is in flight", st)
	}
	select {
	case <-f.s.Done():
	default:
		t.Fatal("Done not closed")
	}
	_, err := f.fl.deliver(peerJID, mustMarshal(t, &Jingle{Action: SessionInfo, SID: f.sid}))
	wantErr(t, err, "item-not-found", "unknown-session")
	_, err = f.fl.deliver(peerJID, initiatePayload(t, f.sid, peerJID))
	wantErr(t, err, "item-not-found", "unknown-session")
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if r, byPeer := f.s.Reason(); r.Condition != Success || byPeer {
		t.Fatalf("reason %+v %v", r, byPeer)
	}
	if _, open := <-f.s.Events(); open {
		t.Fatal("events not closed")
	}
}

// TestJ8_NoApplication: without an Incoming hook a session is acknowledged and then
// terminated with unsupported-applications.
func TestJ8_NoApplication(t *testing.T) {
	fl := newFakeLink(localJID)
	m := NewManager(fl, Config{})
	defer m.Close()
	_, err := fl.deliver(peerJID, initiatePayload(t, "s1", peerJID))
	wantErr(t, err, "", "")
	s := fl.waitSent(t, SessionTerminate)
	if s.to != peerJID || s.j.SID != "s1" || s.j.Reason == nil || s.j.Reason.Condition != UnsupportedApplications {
		t.Fatalf("%+v", s)
	}
}

// TestPendingTimeout: a session nobody accepts ends with <timeout/> on both sides.
func TestPendingTimeout(t *testing.T) {
	checkGoroutines(t)
	f := newFixture(t, "pending/responder", Config{PendingTimeout: 30 * time.Millisecond})
	select {
	case <-f.s.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("no timeout")
	}
	s := f.fl.waitSent(t, SessionTerminate)
	if s.j.Reason.Condition != Timeout {
		t.Fatalf("reason %v", s.j.Reason.Condition)
	}
	if r, _ := f.s.Reason(); r.Condition != Timeout {
		t.Fatalf("%+v", r)
	}
}

// TestOutOfOrderRetry: our sender retries an action the peer answered with out-of-order, with
// backoff, and gives up after a bounded number of tries (DESIGN.md "Ordering").
func TestOutOfOrderRetry(t *testing.T) {
	f := newFixture(t, "active/responder", Config{})
	var mu sync.Mutex
	tries := 0
	f.fl.mu.Lock()
	f.fl.answer = func(to string, j *Jingle) error {
		mu.Lock()
		defer mu.Unlock()
		if j.Action != SessionInfo {
			return nil
		}
		tries++
		if tries <= 2 {
			return ErrOutOfOrder.with("not yet")
		}
		return nil
	}
	f.fl.mu.Unlock()
	if err := f.s.Info(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if tries != 3 {
		t.Fatalf("%d tries", tries)
	}
	f.fl.mu.Lock()
	f.fl.answer = func(to string, j *Jingle) error {
		mu.Lock()
		defer mu.Unlock()
		tries++
		return ErrOutOfOrder
	}
	f.fl.mu.Unlock()
	tries = 0
	err := f.s.Info(context.Background(), nil)
	if !errors.Is(err, ErrOutOfOrder) || tries != maxRetries+1 {
		t.Fatalf("err %v after %d tries", err, tries)
	}
}

// fakeTransport records what jingle hands to a Transport.
type fakeTransport struct {
	mu       sync.Mutex
	accepted [][]byte
	infos    [][]byte
	closed   int
	infoErr  error
}

func (ft *fakeTransport) Namespace() string { return nsIBB }
func (ft *fakeTransport) Element() []byte {
	return []byte("<transport xmlns='" + nsIBB + "' block-size='4096' sid='t1'/>")
}
func (ft *fakeTransport) HandleAccept(b []byte) error {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	ft.accepted = append(ft.accepted, b)
	return nil
}
func (ft *fakeTransport) HandleInfo(b []byte) error {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	ft.infos = append(ft.infos, b)
	return ft.infoErr
}
func (ft *fakeTransport) Establish(ctx context.Context, send func(context.Context, []byte) error) (net.Conn, error) {
	if err := send(ctx, []byte("<transport xmlns='"+nsIBB+"'><ready/></transport>")); err != nil {
		return nil, err
	}
	a, b := net.Pipe()
	b.Close()
	return a, nil
}
func (ft *fakeTransport) Close() error {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	ft.closed++
	return nil
}

// TestTransportRouting: the Transport bound to a content gets the accept answer, its
// transport-info (errors become the IQ error), sends through Establish, and is closed at the end.
func TestTransportRouting(t *testing.T) {
	fl := newFakeLink(localJID)
	m := NewManager(fl, Config{})
	defer m.Close()
	ft := &fakeTransport{}
	c := xsContent("xmlstream")
	c.Transport = ft.Element()
	s, err := m.Initiate(context.Background(), peerJID, []Content{c}, map[string]Transport{"xmlstream": ft})
	if err != nil {
		t.Fatal(err)
	}
	acc := xsContent("xmlstream")
	_, err = fl.deliver(peerJID, mustMarshal(t, &Jingle{Action: SessionAccept, SID: s.SID(), Contents: []Content{acc}}))
	wantErr(t, err, "", "")
	info := Content{Creator: CreatorInitiator, Name: "xmlstream", Transport: []byte("<transport xmlns='" + nsIBB + "'><x/></transport>")}
	_, err = fl.deliver(peerJID, mustMarshal(t, &Jingle{Action: TransportInfo, SID: s.SID(), Contents: []Content{info}}))
	wantErr(t, err, "", "")
	ft.mu.Lock()
	ft.infoErr = ErrSecurityRequired
	ft.mu.Unlock()
	info.Transport = []byte("<transport xmlns='" + nsIBB + "'><y/></transport>")
	_, err = fl.deliver(peerJID, mustMarshal(t, &Jingle{Action: TransportInfo, SID: s.SID(), Contents: []Content{info}}))
	wantErr(t, err, "not-acceptable", "security-required")
	conn, err := s.Establish(context.Background(), "xmlstream")
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	ti := fl.waitSent(t, TransportInfo)
	if string(ti.j.Contents[0].Transport) != "<transport xmlns='"+nsIBB+"'><ready/></transport>" || ti.j.Contents[0].Creator != CreatorInitiator {
		t.Fatalf("%+v", ti.j.Contents)
	}
	if err := s.Terminate(context.Background(), &Reason{Condition: Success}); err != nil {
		t.Fatal(err)
	}
	ft.mu.Lock()
	defer ft.mu.Unlock()
	if len(ft.accepted) != 1 || len(ft.infos) != 2 || ft.closed != 1 {
		t.Fatalf("accepted %d infos %d closed %d", len(ft.accepted), len(ft.infos), ft.closed)
	}
}

// TestJ33_J30_ApplicationAnswers: with the hooks on, transport-replace and content-add are
// events the application answers; the answers without a request are refused locally.
func TestJ33_J30_ApplicationAnswers(t *testing.T) {
	f := newFixture(t, "active/responder", Config{HandleTransportReplace: true, HandleContentAdd: true})
	ctx := context.Background()
	tr := Content{Creator: CreatorInitiator, Name: "xmlstream", Transport: []byte("<transport xmlns='" + nsIBB + "' sid='new'/>")}
	if err := f.s.Send(ctx, TransportAccept, []Content{tr}, nil); err == nil {
		t.Fatal("transport-accept without transport-replace was sent")
	}
	_, err := f.fl.deliver(peerJID, mustMarshal(t, &Jingle{Action: TransportReplace, SID: f.sid, Contents: []Content{tr}}))
	wantErr(t, err, "", "")
	if ev := <-f.s.Events(); ev.Action != TransportReplace {
		t.Fatalf("%+v", ev)
	}
	ft := &fakeTransport{}
	if err := f.s.Bind("xmlstream", ft); err != nil {
		t.Fatal(err)
	}
	if err := f.s.Send(ctx, TransportAccept, []Content{tr}, nil); err != nil {
		t.Fatal(err)
	}
	add := xsContent("second")
	_, err = f.fl.deliver(peerJID, mustMarshal(t, &Jingle{Action: ContentAdd, SID: f.sid, Contents: []Content{add}}))
	wantErr(t, err, "", "")
	if ev := <-f.s.Events(); ev.Action != ContentAdd {
		t.Fatalf("%+v", ev)
	}
	if err := f.s.Send(ctx, ContentAccept, []Content{add}, nil); err != nil {
		t.Fatal(err)
	}
	if n := len(f.s.Contents()); n != 2 {
		t.Fatalf("%d contents", n)
	}
	if f.s.State() != StateActive {
		t.Fatal(f.s.State())
	}
}

// TestJ35_TieBreakExistingSession: simultaneous transport-replace: the initiator's wins.
func TestJ35_TieBreakExistingSession(t *testing.T) {
	for _, role := range []string{"initiator", "responder"} {
		t.Run(role, func(t *testing.T) {
			f := newFixture(t, "active/"+role, Config{HandleTransportReplace: true})
			release := make(chan struct{})
			f.fl.mu.Lock()
			f.fl.answer = func(to string, j *Jingle) error {
				if j.Action == TransportReplace {
					<-release
				}
				return nil
			}
			f.fl.mu.Unlock()
			tr := Content{Creator: CreatorInitiator, Name: "xmlstream", Transport: []byte("<transport xmlns='" + nsIBB + "' sid='new'/>")}
			done := make(chan error, 1)
			go func() { done <- f.s.Send(context.Background(), TransportReplace, []Content{tr}, nil) }()
			f.fl.waitSent(t, TransportReplace)
			tr2 := tr
			tr2.Transport = []byte("<transport xmlns='" + nsIBB + "' sid='theirs'/>")
			_, err := f.fl.deliver(peerJID, mustMarshal(t, &Jingle{Action: TransportReplace, SID: f.sid, Contents: []Content{tr2}}))
			if role == "initiator" {
				wantErr(t, err, "conflict", "tie-break")
			} else {
				wantErr(t, err, "", "")
			}
			close(release)
			<-done
		})
	}
}

// TestConcurrentTerminateAndActions: actions racing our Terminate are answered (result or
// unknown-session) and never touch the closed event channel.
func TestConcurrentTerminateAndActions(t *testing.T) {
	checkGoroutines(t)
	for i := 0; i < 20; i++ {
		f := newFixture(t, "active/responder", Config{InfoNamespaces: []string{nsInfo}})
		var wg sync.WaitGroup
		for k := 0; k < 8; k++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				p := mustMarshal(t, &Jingle{Action: SessionInfo, SID: f.sid,
					Info: []byte("<n xmlns='" + nsInfo + "' k='" + string(rune('a'+k)) + "'/>")})
				_, err := f.fl.deliver(peerJID, p)
				if err != nil && !errors.Is(err, ErrUnknownSession) {
					t.Error(err)
				}
			}()
		}
		_ = f.s.Terminate(context.Background(), &Reason{Condition: Success})
		wg.Wait()
		f.m.Close()
	}
}

// TestEventQueueBound: an application that does not read its events makes the peer's further
// actions wait (resource-constraint) instead of growing memory; the terminate still arrives.
func TestEventQueueBound(t *testing.T) {
	f := newFixture(t, "active/responder", Config{InfoNamespaces: []string{nsInfo}})
	var last error
	for k := 0; k <= eventQueue; k++ {
		p := mustMarshal(t, &Jingle{Action: SessionInfo, SID: f.sid,
			Info: []byte("<n xmlns='" + nsInfo + "' k='" + strconv.Itoa(k) + "'/>")})
		_, last = f.fl.deliver(peerJID, p)
		if k < eventQueue && last != nil {
			t.Fatalf("event %d: %v", k, last)
		}
	}
	wantErr(t, last, "resource-constraint", "")
	_, err := f.fl.deliver(peerJID, mustMarshal(t, &Jingle{Action: SessionTerminate, SID: f.sid, Reason: &Reason{Condition: Success}}))
	wantErr(t, err, "", "")
	n := 0
	var ev Event
	for ev = range f.s.Events() {
		n++
	}
	if n != eventQueue+1 || ev.Action != SessionTerminate {
		t.Fatalf("%d events, last %v", n, ev.Action)
	}
}

// TestCloseEndsEverything: Close terminates live sessions (<gone/>), ends them locally, and
// leaves no goroutine behind.
func TestCloseEndsEverything(t *testing.T) {
	checkGoroutines(t)
	n := xmpptest.NewNetwork(3)
	r, j := n.Party(romeo), n.Party(juliet)
	defer r.Close()
	defer j.Close()
	got := make(chan *Session, 1)
	mj := NewManager(j, Config{Incoming: func(s *Session) { got <- s }})
	mr := NewManager(r, Config{})
	s, err := mr.Initiate(context.Background(), juliet, []Content{xsContent("xmlstream")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	sj := <-got
	mr.Close()
	<-s.Done()
	<-sj.Done()
	if r, byPeer := sj.Reason(); r.Condition != Gone || !byPeer {
		t.Fatalf("%+v", r)
	}
	if _, err := mr.Initiate(context.Background(), juliet, []Content{xsContent("xmlstream")}, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Initiate after Close: %v", err)
	}
	mj.Close()
}

// TestXTLS15_AcceptWithoutSecurityIsVisible: the responder's session-accept replaces the
// offered contents, so an answer without <security/> (XTLS-10) shows as a nil Security and the
// orchestration can terminate with <security-error/> (XTLS-15, XTLS-5).
func TestXTLS15_AcceptWithoutSecurityIsVisible(t *testing.T) {
	f := newFixture(t, "pending/initiator", Config{})
	c := xsContent("xmlstream")
	c.Security = nil
	_, err := f.fl.deliver(peerJID, mustMarshal(t, &Jingle{Action: SessionAccept, SID: f.sid, Contents: []Content{c}}))
	wantErr(t, err, "", "")
	ev := <-f.s.Events()
	if ev.Action != SessionAccept || ev.Contents[0].Security != nil || f.s.Contents()[0].Security != nil {
		t.Fatalf("%+v", ev)
	}
	if err := f.s.Terminate(context.Background(), &Reason{Condition: SecurityError, Text: "peer does not support XTLS"}); err != nil {
		t.Fatal(err)
	}
	term := f.fl.waitSent(t, SessionTerminate)
	if term.j.Reason.Condition != SecurityError || term.j.Reason.Text != "peer does not support XTLS" {
		t.Fatalf("%+v", term.j.Reason)
	}
}

// TestTransportAcceptReachesTransportBeforeEvent: after transport-replace (JS5B-14 fallback),
// the peer's transport-accept is handed to the newly bound Transport before the application
// sees the event, so Establish right after the event finds the transport ready.
func TestTransportAcceptReachesTransportBeforeEvent(t *testing.T) {
	f := newFixture(t, "active/initiator", Config{})
	<-f.s.Events() // session-accept
	ft := &fakeTransport{}
	if err := f.s.Bind("xmlstream", ft); err != nil {
		t.Fatal(err)
	}
	tr := Content{Creator: CreatorInitiator, Name: "xmlstream", Transport: ft.Element()}
	if err := f.s.Send(context.Background(), TransportReplace, []Content{tr}, nil); err != nil {
		t.Fatal(err)
	}
	_, err := f.fl.deliver(peerJID, mustMarshal(t, &Jingle{Action: TransportAccept, SID: f.sid, Contents: []Content{tr}}))
	wantErr(t, err, "", "")
	ev := <-f.s.Events()
	ft.mu.Lock()
	n := len(ft.accepted)
	ft.mu.Unlock()
	if ev.Action != TransportAccept || n != 1 {
		t.Fatalf("event %v, transport saw %d accepts", ev.Action, n)
	}
	// A second transport-accept has no transport-replace to answer (J-37).
	_, err = f.fl.deliver(peerJID, mustMarshal(t, &Jingle{Action: TransportAccept, SID: f.sid, Contents: []Content{tr}, Reason: &Reason{Condition: Success}}))
	wantErr(t, err, "unexpected-request", "out-of-order")
}
