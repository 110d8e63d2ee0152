package jingle

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"
)

// Link is the part of the connection to the XMPP server that jingle needs (BRIEF "The link to
// the XMPP server"): the adapter (gosrcxmpp) and the in-memory network (internal/xmpptest)
// implement it.
type Link interface {
	// LocalJID returns our full JID as bound by the server.
	LocalJID() string
	// Request sends an IQ get/set with payload as its only child and waits for the answer.
	Request(ctx context.Context, to, typ string, payload []byte) ([]byte, error)
	// HandleIQ installs h for incoming IQ get/set whose child element is {space}local.
	HandleIQ(space, local string, h func(ctx context.Context, from, to, typ string, payload []byte) ([]byte, error)) (remove func())
}

// Config configures a Manager. The zero value is usable: it refuses every incoming session with
// <unsupported-applications/> after acknowledging it (J-8).
type Config struct {
	// Incoming is called with every new session the peer initiated, after its session-initiate
	// has been acknowledged (J-2, J-36), on a goroutine of its own that belongs to the
	// application. The application accepts it (Session.Accept, after asking the user, J-9) or
	// ends it (Session.Terminate, e.g. <decline/> or <unsupported-applications/>, J-8). A
	// session left pending ends with <timeout/> after PendingTimeout. If Incoming is nil every
	// incoming session is terminated with <unsupported-applications/>.
	Incoming func(s *Session)
	// Allow, if set, decides whether to talk Jingle to the sender of a session-initiate at all;
	// refused senders get <service-unavailable/> (J-3, J-43).
	Allow func(peer string) bool
	// InfoNamespaces lists the namespaces of session-info payloads and description-info
	// descriptions that the application understands; other payloads are answered with
	// <feature-not-implemented/> + <unsupported-info/> (J-28). An empty session-info (a ping) is
	// always answered (J-29).
	InfoNamespaces []string
	// HandleContentAdd delivers content-add to the application as an Event, which must then
	// answer with Send(ContentAccept or ContentReject) (J-30). When false, every content-add
	// is answered with content-reject.
	HandleContentAdd bool
	// HandleTransportReplace delivers transport-replace to the application as an Event, which
	// must then answer with Send(TransportAccept or TransportReject) (J-33). When false, every
	// transport-replace is answered with transport-reject.
	HandleTransportReplace bool
	// PendingTimeout ends a session that is still pending after this long with <timeout/>
	// (default 2 minutes).
	PendingTimeout time.Duration
	// MaxSessions bounds the number of live sessions; further session-initiates are refused with
	// <resource-constraint/> (J-6). Default 1024.
	MaxSessions int
	// Rand is the source of session ids (default crypto/rand, J-14).
	Rand io.Reader
}

// Retry of actions the peer answered with <out-of-order/>: the sender waits retryBase, then
// twice as long, and so on, at most maxRetries times (DESIGN.md "Ordering").
const (
	retryBase  = 20 * time.Millisecond
	maxRetries = 5
	maxTombs   = 4096 // ended sessions remembered for unknown-session answers to late duplicates
	eventQueue = 64
	dupCache   = 32
)

// ErrClosed is returned by Initiate after Close.
var ErrClosed = errors.New("jingle: manager closed")

// ErrEnded is returned by the methods of a Session that has ended.
var ErrEnded = errors.New("jingle: session ended")

// Manager answers every Jingle IQ-set that arrives over its link, routes it by (peer full JID,
// sid) to its Session (J-38), creates sessions for session-initiate and initiates sessions.
//
// # Concurrency
//
// All methods are safe for concurrent use. Incoming actions of one session are processed one
// at a time (a per-session serial executor); the session's state is updated before the IQ
// result is returned to the link; events reach the application through Session.Events, never
// by calling application code under a lock. The only calls into other code made while an
// incoming action is processed are Transport.HandleAccept and Transport.HandleInfo, which must
// not wait for another action of the same session. Outgoing actions of one session are sent one
// at a time, each after the previous one was acknowledged, except session-terminate, which ends
// the session at once (J-25).
type Manager struct {
	link   Link
	cfg    Config
	local  string
	remove func()

	ctx    context.Context // cancelled by Close; bounds the manager's own sends
	cancel context.CancelFunc

	// bgMu guards bgClosed and wg.Add; it is never held together with another lock, so
	// background may be called under a session's lock.
	bgMu     sync.Mutex
	bgClosed bool
	wg       sync.WaitGroup

	mu        sync.Mutex
	closed    bool
	sessions  map[sessionKey]*Session
	tombs     map[sessionKey]chan struct{} // ended sessions: their peerEnded
	tombOrder []sessionKey
}

type sessionKey struct{ peer, sid string }

// NewManager returns a manager that handles {urn:xmpp:jingle:1}jingle IQs on link until Close.
func NewManager(link Link, cfg Config) *Manager {
	if cfg.PendingTimeout <= 0 {
		cfg.PendingTimeout = 2 * time.Minute
	}
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = 1024
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	m := &Manager{
		link:     link,
		cfg:      cfg,
		local:    link.LocalJID(),
		sessions: make(map[sessionKey]*Session),
		tombs:    make(map[sessionKey]chan struct{}),
	}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	m.remove = link.HandleIQ(NS, "jingle", m.handleIQ)
	return m
}

// Close stops handling Jingle IQs, terminates every live session with <gone/> (best effort,
// within a few seconds) and waits for the goroutines the manager started.
func (m *Manager) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	live := make([]*Session, 0, len(m.sessions))
	for _, s := range m.sessions {
		live = append(live, s)
	}
	m.mu.Unlock()
	m.remove()
	ctx, cancel := context.WithTimeout(m.ctx, 3*time.Second)
	var wg sync.WaitGroup
	for _, s := range live {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = s.Terminate(ctx, &Reason{Condition: Gone})
		}()
	}
	wg.Wait()
	cancel()
	m.bgMu.Lock()
	m.bgClosed = true
	m.bgMu.Unlock()
	m.cancel()
	m.wg.Wait()
	return nil
}

// background runs fn on a goroutine owned by the manager (Close waits for it); it does nothing
// after Close.
func (m *Manager) background(fn func(ctx context.Context)) {
	m.bgMu.Lock()
	defer m.bgMu.Unlock()
	if m.bgClosed {
		return
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		fn(m.ctx)
	}()
}

// forget removes s from the routing table and remembers its key as ended.
func (m *Manager) forget(s *Session, tomb bool) {
	k := sessionKey{s.peer, s.sid}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.sessions[k] == s {
		delete(m.sessions, k)
	}
	if _, ok := m.tombs[k]; tomb && !ok {
		m.tombs[k] = s.peerEnded
		m.tombOrder = append(m.tombOrder, k)
		if len(m.tombOrder) > maxTombs {
			delete(m.tombs, m.tombOrder[0])
			m.tombOrder = m.tombOrder[1:]
		}
	}
}

func (m *Manager) newSID() (string, error) {
	var b [15]byte
	if _, err := io.ReadFull(m.cfg.Rand, b[:]); err != nil {
		return "", fmt.Errorf("jingle: session id: %w", err)
	}
	// base32 without padding: 24 characters of [a-z2-7], an NMTOKEN (J-14).
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:])), nil
}

func (m *Manager) newSession(peer, sid string, initiator bool) *Session {
	s := &Session{
		m:          m,
		peer:       peer,
		sid:        sid,
		initiator:  initiator,
		exec:       make(chan struct{}, 1),
		send:       make(chan struct{}, 1),
		events:     make(chan Event, eventQueue+1),
		done:       make(chan struct{}),
		peerEnded:  make(chan struct{}),
		state:      StatePending,
		transports: map[contentKey]Transport{},
		replies:    map[[32]byte]struct{}{},
	}
	s.mu.Lock() // the timer's function reads s.timer (through end)
	s.timer = time.AfterFunc(m.cfg.PendingTimeout, func() {
		if s.State() == StatePending {
			m.background(func(ctx context.Context) { _ = s.Terminate(ctx, &Reason{Condition: Timeout}) })
		}
	})
	s.mu.Unlock()
	return s
}

// Initiate starts a session with the full JID peer (J-1): it sends session-initiate with
// contents (each created by the initiator, with description and transport) and returns the
// session once the peer acknowledged it. transports (may be nil) binds a Transport to contents by
// name before anything is sent, so transport-info and session-accept for them reach it.
//
// The session is then pending; the peer's answer arrives as an Event (session-accept or
// session-terminate). If the peer refuses the initiate, the error wraps an *Error (e.g.
// ErrTieBreak when the peer's simultaneous initiate won, J-34). If ctx ends first, the session is
// terminated with <cancel/>.
func (m *Manager) Initiate(ctx context.Context, peer string, contents []Content, transports map[string]Transport) (*Session, error) {
	sid, err := m.newSID()
	if err != nil {
		return nil, err
	}
	j := &Jingle{Action: SessionInitiate, SID: sid, Initiator: m.local, Contents: slices.Clone(contents)}
	payload, err := j.Marshal()
	if err != nil {
		return nil, err
	}
	s := m.newSession(peer, sid, true)
	s.contents = cloneContents(contents)
	if err := s.bindAll(transports, contents); err != nil {
		s.vanish()
		return nil, err
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		s.finish(nil, false)
		return nil, ErrClosed
	}
	m.sessions[sessionKey{peer, sid}] = s
	m.mu.Unlock()

	err = s.request(ctx, payload)
	if err != nil {
		var je *Error
		if errors.As(err, &je) {
			s.vanish() // refused: the peer has no session
		} else {
			m.background(func(bctx context.Context) { _ = s.Terminate(bctx, &Reason{Condition: Cancel}) })
		}
		return nil, fmt.Errorf("jingle: session-initiate to %s: %w", peer, err)
	}
	return s, nil
}

// handleIQ is the link's handler for {urn:xmpp:jingle:1}jingle. It always answers: a result
// (nil, nil) or an *Error.
func (m *Manager) handleIQ(ctx context.Context, from, to, typ string, payload []byte) ([]byte, error) {
	if typ != "set" {
		return nil, badRequest("jingle is carried in IQ-set only")
	}
	if from == "" {
		return nil, badRequest("no sender")
	}
	j, err := Parse(payload)
	if err != nil {
		return nil, err
	}
	digest := sha256.Sum256(payload)
	if j.Action == SessionInitiate {
		return m.handleInitiate(from, j, digest)
	}
	k := sessionKey{from, j.SID}
	m.mu.Lock()
	s := m.sessions[k]
	if j.Action == SessionTerminate {
		// The peer has ended the session too: a session-terminate of ours that crossed
		// this one needs no answer any more (Session.Terminate).
		ch := m.tombs[k]
		if s != nil {
			ch = s.peerEnded
		}
		if ch != nil {
			select {
			case <-ch:
			default:
				close(ch)
			}
		}
	}
	m.mu.Unlock()
	if s == nil {
		return nil, ErrUnknownSession // J-25, J-38
	}
	return s.handle(ctx, j, digest)
}

func (m *Manager) handleInitiate(from string, j *Jingle, digest [32]byte) ([]byte, error) {
	if m.cfg.Allow != nil && !m.cfg.Allow(from) {
		return nil, &Error{Type: "cancel", Condition: "service-unavailable"} // J-3
	}
	if j.Initiator != "" && bare(j.Initiator) != bare(from) {
		// J-16, J-18: never interact with an initiator other than the sender.
		return nil, badRequest("initiator does not match the sender")
	}
	k := sessionKey{from, j.SID}
	var lost *Session
	defer func() {
		if lost != nil {
			lost.vanish()
		}
	}()
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil, &Error{Type: "cancel", Condition: "service-unavailable"}
	}
	if old := m.sessions[k]; old != nil {
		old.mu.Lock()
		dup := !old.initiator && old.initDigest == digest
		ours := old.initiator && old.state == StatePending
		old.mu.Unlock()
		switch {
		case dup:
			m.mu.Unlock()
			return nil, nil // the same stanza again: acknowledge it again, without effect
		case ours && from < m.local && sameApplications(old.Contents(), j.Contents):
			// J-34 with equal sids: the lower JID wins, and that is the peer. Our initiate
			// is refused by the peer; ours ends here without a trace and theirs takes the key.
			delete(m.sessions, k)
			lost = old
		case ours && sameApplications(old.Contents(), j.Contents):
			m.mu.Unlock()
			return nil, ErrTieBreak.with("equal sid, higher JID")
		default:
			m.mu.Unlock()
			return nil, outOfOrder("session exists")
		}
	}
	if _, ended := m.tombs[k]; ended {
		m.mu.Unlock()
		return nil, ErrUnknownSession
	}
	// J-34: a simultaneous equivalent initiate of ours to the same peer; the lower sid wins.
	// "Simultaneous" is judged by our session still being pending, not by our request being
	// unanswered: the peer may already have acknowledged ours (it won there) while its own
	// crossed it, and both sides must reach the same decision.
	for _, o := range m.sessions {
		if o.peer != from || !o.initiator {
			continue
		}
		o.mu.Lock()
		tie := o.state == StatePending && sameApplications(o.contents, j.Contents)
		o.mu.Unlock()
		if tie && j.SID > o.sid {
			m.mu.Unlock()
			return nil, ErrTieBreak.with("higher sid")
		}
	}
	if len(m.sessions) >= m.cfg.MaxSessions {
		m.mu.Unlock()
		return nil, &Error{Type: "wait", Condition: "resource-constraint"} // J-6
	}
	s := m.newSession(from, j.SID, false)
	s.contents = cloneContents(j.Contents)
	s.initDigest = digest
	m.sessions[k] = s
	m.mu.Unlock()

	// Hand the session to the application once the acknowledgement is on its way (J-2).
	if m.cfg.Incoming != nil {
		go m.cfg.Incoming(s)
	} else {
		m.background(func(ctx context.Context) {
			_ = s.Terminate(ctx, &Reason{Condition: UnsupportedApplications}) // J-8
		})
	}
	return nil, nil
}

func (m *Manager) understands(raw []byte) bool {
	ns := Namespace(raw)
	return ns != "" && slices.Contains(m.cfg.InfoNamespaces, ns)
}

func bare(jid string) string {
	if i := strings.IndexByte(jid, '/'); i >= 0 {
		return jid[:i]
	}
	return jid
}

// sameApplications reports whether two session-initiates are functionally equivalent for the
// tie-break of J-34: the same set of application (description) namespaces.
func sameApplications(a, b []Content) bool {
	set := func(cs []Content) []string {
		var out []string
		for _, c := range cs {
			out = append(out, Namespace(c.Description))
		}
		slices.Sort(out)
		return slices.Compact(out)
	}
	return slices.Equal(set(a), set(b))
}

func cloneContents(cs []Content) []Content {
	out := make([]Content, len(cs))
	for i, c := range cs {
		c.Description = slices.Clone(c.Description)
		c.Transport = slices.Clone(c.Transport)
		c.Security = slices.Clone(c.Security)
		out[i] = c
	}
	return out
}
