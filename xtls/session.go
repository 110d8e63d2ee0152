package xtls

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/xtlsjingle/xtlsjingle/disco"
	"github.com/xtlsjingle/xtlsjingle/ibb"
	"github.com/xtlsjingle/xtlsjingle/jingle"
	"github.com/xtlsjingle/xtlsjingle/p2p"
	"github.com/xtlsjingle/xtlsjingle/pubkeys"
	"github.com/xtlsjingle/xtlsjingle/socks5"
	"github.com/xtlsjingle/xtlsjingle/xmlstream"
)

// NSXMLStream is the Jingle application of XEP-0247 Jingle XML Streams (XS-11): the content
// whose transport XTLS secures.
const NSXMLStream = "urn:xmpp:jingle:apps:xmlstream:0"

// contentName is the name of the one content of an XTLS session.
const contentName = "xmlstream"

// Link is the connection to the XMPP server (BRIEF "The link to the XMPP server"): the adapter
// (gosrcxmpp) and the in-memory network (internal/xmpptest) implement it. The client needs all
// of it because IBB may carry data in messages.
type Link interface {
	// LocalJID returns our full JID as bound by the server.
	LocalJID() string
	// Request sends an IQ get or set whose only child is payload and waits for the answer.
	Request(ctx context.Context, to, typ string, payload []byte) ([]byte, error)
	// HandleIQ installs h for incoming IQ get/set whose child element is {space}local.
	HandleIQ(space, local string, h func(ctx context.Context, from, to, typ string, payload []byte) ([]byte, error)) (remove func())
	// SendMessage sends a message stanza whose only child is payload.
	SendMessage(ctx context.Context, to string, payload []byte) error
	// HandleMessage installs h for incoming messages whose child element is {space}local.
	HandleMessage(space, local string, h func(ctx context.Context, from, to string, payload []byte)) (remove func())
}

// TransportPolicy selects the streaming transports an initiator offers.
type TransportPolicy int

// Transport policies. IBB is always the last resort (XS-9): with TransportAuto a SOCKS5
// session whose candidates all fail is moved to IBB with transport-replace (JS5B-14).
const (
	TransportAuto TransportPolicy = iota // S5B first, IBB when S5B cannot connect
	TransportS5B                         // S5B only; no fallback
	TransportIBB                         // IBB only
)

// Transport names reported in Session.Transport.
const (
	TransportNameS5BDirect = "s5b-direct"
	TransportNameS5BProxy  = "s5b-proxy"
	TransportNameIBB       = "ibb"
)

// S5BConfig configures the SOCKS5 candidates this client offers (see socks5.Config).
type S5BConfig struct {
	// Listener serves our direct candidates; nil offers none (we can still connect to the
	// peer's candidates).
	Listener *socks5.Listener
	// Hosts and Extra are passed to socks5.Config (nil Hosts: the listener's addresses).
	Hosts, Extra []string
	// Proxies are the SOCKS5 proxies to offer (socks5.DiscoverProxies).
	Proxies []socks5.Streamhost
	// ConnectTimeout bounds one connection attempt (default of package socks5 when zero).
	ConnectTimeout time.Duration
}

// Incoming describes a session a peer initiated, for the application to decide on.
type Incoming struct {
	// Peer is the initiator's full JID; SID the Jingle session id.
	Peer, SID string
	// Fingerprint is the certificate fingerprint the initiator announced (a hint, XTLS-9;
	// zero when absent).
	Fingerprint Fingerprint
	// Trusted reports whether Fingerprint is pinned for the initiator's bare JID: then x509
	// can be offered and no password is needed (XTLS-12).
	Trusted bool
	// Changed reports that other certificates are pinned for the initiator's bare JID but not
	// this one: a new device or key — or an attacker. Only a password (srp) can go on.
	Changed bool
	// Methods are the methods the initiator offered.
	Methods []string
}

// Decision is the application's answer to an Incoming session.
type Decision struct {
	// Decline refuses the session (<decline/>).
	Decline bool
	// Password enables the srp method (XSRP) with this shared password; empty offers srp
	// not at all (XTLS-13, XTLS-14).
	Password string
}

// Config configures a Client. Identity and Trust are required.
type Config struct {
	// Identity is our long-term certificate and key.
	Identity *Identity
	// Trust holds the pinned fingerprints of peers (XTLS-D2); successful srp sessions add pins.
	Trust TrustStore
	// Transports is the initiator's transport policy (default TransportAuto).
	Transports TransportPolicy
	// S5B configures our SOCKS5 candidates.
	S5B S5BConfig
	// IBB tunes the in-band bytestream handler (nil: defaults).
	IBB *ibb.Config
	// Caps caches disco#info results (nil: a private cache of 1024 entries).
	Caps *disco.Cache
	// Jingle, when set, is the Jingle manager to use; it must have been created with
	// HandleTransportReplace true, and its Config.Incoming must pass sessions to
	// Client.HandleJingle. When nil the client creates and owns one.
	Jingle *jingle.Manager
	// NoDisco stops the client from answering disco#info with disco.ClientInfo() (set it when
	// the application serves disco itself; it must then advertise NS, XTLS-1).
	NoDisco bool
	// OnIncoming decides on a session a peer initiated. It runs on a goroutine of its own and
	// may ask the user. nil accepts every session without a password (so only peers whose
	// certificate is pinned get through).
	OnIncoming func(ctx context.Context, in *Incoming) Decision
	// OnError is told about incoming sessions that failed after they were accepted (e.g.
	// wrong password, changed certificate). It must not block.
	OnError func(peer string, err error)
	// LeapOfFaith accepts the peer's announced certificate on first contact (nothing pinned
	// for its bare JID) without verification, pinned as LeapOfFaith (SPEC §18.2 G). Off by
	// default; only behind an explicit user choice (XTLS-14, XTLS-16).
	LeapOfFaith bool
	// Stream tunes the end-to-end XML stream (nil: defaults).
	Stream *xmlstream.Config
	// SetupTimeout bounds an incoming session from session-initiate to an open stream
	// (default 2 minutes, including the time the user needs in OnIncoming).
	SetupTimeout time.Duration
	// AcceptQueue is how many established incoming sessions may wait for Accept (default 16);
	// further ones are terminated with <busy/>.
	AcceptQueue int
	// P2P enables the peer-to-peer hints of urn:nf:iot:p2p:1.0 (seed 000): the same-network
	// rule for the order of SOCKS5 candidates, and what PresencePayloads publishes. nil: the
	// candidates are tried by priority only and nothing is published. Reading contacts'
	// presence (caps, published keys for Session.KeyHint) needs only a PresenceLink.
	// NewClient copies it: changes after NewClient have no effect.
	P2P *P2PConfig
	// Applications are the Jingle applications other than xmlstream whose bytestream XTLS
	// secures for the application (OpenConn; incoming sessions go to Application.Secured).
	// See conn.go.
	Applications []Application
}

// Client is the XTLS plugin of one XMPP connection: it initiates (Open) and answers (Accept)
// end-to-end encrypted XML streams over Jingle.
type Client struct {
	cfg   Config
	link  Link
	mgr   *jingle.Manager
	ownJ  bool
	ibb   *ibb.Handler
	caps  *disco.Cache
	peers *p2p.Table // what contacts publish in presence (p2p.go)
	local string

	removers []func()
	accepted chan *Session

	mu       sync.Mutex
	closed   bool
	sessions map[*Session]struct{}
	backoff  map[string]backoffState
	wg       sync.WaitGroup
	ctx      context.Context
	cancel   context.CancelFunc
}

// OpenOptions are the options of one Open call.
type OpenOptions struct {
	// Password enables srp when the peer's certificate is not pinned (XTLS-16).
	Password string
	// Transports overrides Config.Transports for this session when non-nil.
	Transports *TransportPolicy
}

// Session is an established XTLS session: an end-to-end XML stream over TLS 1.3 over a Jingle
// bytestream, secured as XTLS-D6 defines.
type Session struct {
	// Stream is the end-to-end XML stream; stanzas from the peer carry its full JID (XS-12).
	Stream *xmlstream.Stream
	// Peer is the peer's full JID and SID the Jingle session id.
	Peer, SID string
	// Initiator reports whether we initiated the session.
	Initiator bool
	// Method is the XTLS method used: MethodX509 or MethodSRP.
	Method string
	// Transport is TransportNameS5BDirect, TransportNameS5BProxy or TransportNameIBB.
	Transport string
	// Path says what carried the bytestream: PathDirectLocal, PathDirectExternal, PathProxy
	// or PathIBB. For a direct SOCKS5 connection it is derived from the connection's remote
	// address on each side (the address dialed, or the source of the accepted connection)
	// compared with the peer's candidates and published locIp, so both sides agree on it
	// (see the Path constants).
	Path string
	// PeerFingerprint is the fingerprint of the certificate the peer presented in TLS.
	PeerFingerprint Fingerprint
	// KeyHint compares the public key the peer published in its presence (<e2e/>, seed 000)
	// with the key of the certificate it presented: a hint to show next to PeerFingerprint,
	// never verification (the server can change presence).
	KeyHint p2p.KeyHint
	// Pinned reports whether this session pinned PeerFingerprint (srp or leap of faith).
	Pinned bool
	// SetupTime is the time from Open (or session-initiate) to the open stream.
	SetupTime time.Duration

	c     *Client
	js    *jingle.Session
	isS5B bool
	s5b   *socks5.JingleTransport // the SOCKS5 transport, for Path
	tls   *tls.Conn
	raw   net.Conn
	cork  *corkConn // the initiator's write combiner during set-up (cork.go)
	app   *application
	once  sync.Once
	done  chan struct{}
	err   error
	wg    sync.WaitGroup
}

// Error is why an XTLS session failed or ended: the Jingle reason condition sent or received
// (e.g. security-error), a text a person can act on, and the cause.
type Error struct {
	Peer      string           // the peer's JID
	Condition jingle.Condition // the reason of the session-terminate
	Text      string           // e.g. "certificate of juliet@capulet.lit changed — session refused"
	Remote    bool             // the peer ended the session with this reason
	Err       error            // the cause, if any (errors.Is/As reach it)
}

func (e *Error) Error() string {
	s := "xtls: session with " + e.Peer
	if e.Remote {
		s += " ended by the peer"
	} else {
		s += " failed"
	}
	s += " (" + string(e.Condition) + ")"
	if e.Text != "" {
		s += ": " + e.Text
	}
	return s
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Errors of Open.
var (
	// ErrNotSupported: the peer does not advertise XTLS (XTLS-1, XTLS-2, J-40). For an
	// Application the caller may ask the user whether this one session may go unencrypted and
	// then call OpenPlaintext; nothing is ever sent unencrypted without that call.
	ErrNotSupported = errors.New("xtls: peer does not support XTLS end-to-end streams")
	// ErrDowngrade: the peer no longer advertises XTLS although certificates of it are pinned
	// — support was stripped by an attacker or the peer changed clients (XTLS-25).
	ErrDowngrade = errors.New("xtls: peer no longer advertises XTLS although it used it before (possible downgrade attack)")
	// ErrNoMethod: no method is possible: the peer's certificate is not pinned and no password
	// was given (XTLS-16, XTLS-D3).
	ErrNoMethod = errors.New("xtls: peer certificate not pinned and no password given")
	// ErrBackoff: too many failed password attempts with this peer; wait (SRP-14, XSRP-8).
	ErrBackoff = errors.New("xtls: too many failed password attempts with this peer, try again later")
	// ErrClientClosed: the Client was closed.
	ErrClientClosed = errors.New("xtls: client closed")
)

type backoffState struct {
	failures int
	until    time.Time
}

// NewClient returns the XTLS plugin for link: it installs the Jingle manager (unless
// cfg.Jingle is set), the IBB handler, the disco#info responder (unless cfg.NoDisco) and
// the refusal of public key requests over the server connection (XTLS-20, J-41).
func NewClient(link Link, cfg Config) (*Client, error) {
	if cfg.Identity == nil || cfg.Trust == nil {
		return nil, errors.New("xtls: Config.Identity and Config.Trust are required")
	}
	if cfg.SetupTimeout <= 0 {
		cfg.SetupTimeout = 2 * time.Minute
	}
	if cfg.AcceptQueue <= 0 {
		cfg.AcceptQueue = 16
	}
	if cfg.P2P != nil {
		p := *cfg.P2P // the caller's value may change; sessions read ours without a lock
		cfg.P2P = &p
	}
	c := &Client{
		cfg:      cfg,
		link:     link,
		local:    link.LocalJID(),
		caps:     cfg.Caps,
		accepted: make(chan *Session, cfg.AcceptQueue),
		sessions: map[*Session]struct{}{},
		backoff:  map[string]backoffState{},
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	if c.caps == nil {
		c.caps = disco.NewCache(1024)
	}
	c.peers = p2p.NewTable(1024)
	if pl, ok := link.(PresenceLink); ok {
		c.removers = append(c.removers, pl.HandlePresence(c.onPresence))
	}
	c.ibb = ibb.NewHandler(link, cfg.IBB)
	if cfg.Jingle != nil {
		c.mgr = cfg.Jingle
	} else {
		c.ownJ = true
		c.mgr = jingle.NewManager(link, jingle.Config{
			Incoming:               func(js *jingle.Session) { c.HandleJingle(js) },
			HandleTransportReplace: true,
			PendingTimeout:         cfg.SetupTimeout,
			InfoNamespaces:         cfg.infoNamespaces(),
		})
	}
	if !cfg.NoDisco {
		c.removers = append(c.removers, disco.Serve(link, cfg.DiscoInfo()))
	}
	// XTLS-20 / J-41: public keys are only ever exchanged inside the e2e stream.
	c.removers = append(c.removers, pubkeys.Refuse(link))
	return c, nil
}

// Accept returns the next incoming session that was accepted (Config.OnIncoming) and reached
// an open, secured stream.
func (c *Client) Accept(ctx context.Context) (*Session, error) {
	select {
	case s := <-c.accepted:
		return s, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-c.ctx.Done():
		return nil, ErrClientClosed
	}
}

// Close ends every session of the client (</stream:stream>, TLS close, session-terminate),
// stops the Jingle manager it created and uninstalls its handlers.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	ss := make([]*Session, 0, len(c.sessions))
	for s := range c.sessions {
		ss = append(ss, s)
	}
	c.mu.Unlock()
	c.cancel()
	for _, s := range ss {
		_ = s.Close()
	}
	if c.ownJ {
		_ = c.mgr.Close()
	}
	c.wg.Wait()
	for {
		select {
		case s := <-c.accepted:
			_ = s.Close()
			continue
		default:
		}
		break
	}
	_ = c.ibb.Close()
	for _, r := range c.removers {
		r()
	}
	return nil
}

func (c *Client) track(s *Session) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.sessions[s] = struct{}{}
	return true
}

func (c *Client) untrack(s *Session) {
	c.mu.Lock()
	delete(c.sessions, s)
	c.mu.Unlock()
}

// Done is closed when the session has ended (either side closed it, or it failed).
func (s *Session) Done() <-chan struct{} { return s.done }

// Err returns nil while the session is open and why it ended afterwards: nil after an orderly
// close by either side, an *Error otherwise.
func (s *Session) Err() error {
	select {
	case <-s.done:
		return s.err
	default:
		return nil
	}
}

// closeTerminateWait bounds the wait for the answer to the session-terminate that ends a
// session (Close, or a failure after the session was established).
const closeTerminateWait = 2 * time.Second

// Close ends the session in order: </stream:stream> (waiting for the peer's), TLS
// close_notify, the bytestream close, session-terminate with <success/> (XS-7, CORE-8). The
// answer to the session-terminate is waited for at most 2 s, and not at all once the peer's
// own session-terminate for the session has arrived (both closed at the same moment).
func (s *Session) Close() error {
	s.end(nil, false)
	<-s.done
	s.wg.Wait()
	return nil
}

// end tears the session down once; reason nil means an orderly close.
func (s *Session) end(fail *Error, byPeer bool) {
	s.once.Do(func() {
		if s.Stream != nil {
			_ = s.Stream.Close()
		}
		if s.tls != nil {
			_ = s.tls.Close() // close_notify, then the bytestream
		} else if s.raw != nil {
			_ = s.raw.Close()
		}
		if !byPeer {
			r := &jingle.Reason{Condition: jingle.Success}
			if fail != nil {
				r = &jingle.Reason{Condition: fail.Condition, Text: fail.Text}
			}
			// The stream close and TLS close_notify above have delivered our data; the
			// answer to session-terminate only confirms what the peer also learns from the
			// stream's end, so it is not waited for long: a peer that terminated at the same
			// moment completes it with its own session-terminate (jingle.Session.Terminate),
			// and one that is gone (its process exited) costs at most closeTerminateWait.
			ctx, cancel := context.WithTimeout(context.Background(), closeTerminateWait)
			_ = s.js.Terminate(ctx, r)
			cancel()
		}
		if fail != nil {
			s.err = fail
		}
		s.c.untrack(s)
		close(s.done)
	})
}

// watch runs for the life of an established session: the peer's session-terminate or the end of
// the peer's stream ends ours.
func (s *Session) watch() {
	defer s.wg.Done()
	evs := s.js.Events()
	for {
		select {
		case ev, ok := <-evs:
			if !ok {
				s.endByJingle()
				return
			}
			if ev.Action == jingle.SessionTerminate {
				// the channel closes right after; handled there
				continue
			}
		case <-s.js.Done():
			s.endByJingle()
			return
		case <-s.Stream.Done():
			// The peer closed its stream (we answer with ours, XS-7) or the stream failed
			// (a stream error was sent or received, CORE-7): end the session.
			var fail *Error
			if err := s.Stream.Err(); err != nil && !errors.Is(err, io.EOF) {
				fail = &Error{Peer: s.Peer, Condition: jingle.SecurityError, Text: "end-to-end stream failed: " + err.Error(), Err: err}
			}
			s.end(fail, false)
			return
		case <-s.done:
			return
		}
	}
}

func (s *Session) endByJingle() {
	r, byPeer := s.js.Reason()
	var fail *Error
	if r != nil && r.Condition != jingle.Success {
		fail = &Error{Peer: s.Peer, Condition: r.Condition, Text: r.Text, Remote: byPeer}
	}
	s.end(fail, true)
}

// backoffCheck reports whether a password attempt with peer (bare JID) is allowed now.
func (c *Client) backoffCheck(peer string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if b, ok := c.backoff[peer]; ok && time.Now().Before(b.until) {
		return fmt.Errorf("%w (%s left)", ErrBackoff, time.Until(b.until).Round(time.Second))
	}
	return nil
}

// backoffRecord records the outcome of a password attempt with peer (SRP-14): after the n-th
// consecutive failure the next attempt waits 2^(n-1) s (at most 5 min).
func (c *Client) backoffRecord(peer string, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ok {
		delete(c.backoff, peer)
		return
	}
	b := c.backoff[peer]
	b.failures++
	d := time.Second << min(b.failures-1, 9)
	d = min(d, 5*time.Minute)
	b.until = time.Now().Add(d)
	c.backoff[peer] = b
}
