package socks5

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"slices"
	"sort"
	"sync"
	"time"
)

// Link is the part of the link to the XMPP server that the Jingle transport uses: our full JID
// and IQ requests (proxy activation).
type Link interface {
	LocalJID() string
	Request(ctx context.Context, to, typ string, payload []byte) ([]byte, error)
}

// Config configures one JingleTransport.
type Config struct {
	// Link is used for our JID and to activate our proxy (S5B-8). Required.
	Link Link
	// PeerJID is the other party's full JID. Required.
	PeerJID string
	// Listener serves our direct candidates; nil offers none.
	Listener *Listener
	// Hosts are the addresses offered as direct candidates on Listener's port, in order of
	// preference. nil means the listener's own IP, or, if it listens on all interfaces, the
	// addresses from HostAddresses(nil, false). The user decides who learns these (JS5B-17):
	// a transport built for a peer offers them to that peer.
	Hosts []string
	// Extra are further addresses ("host:port") that reach Listener, e.g. a port mapped on a NAT
	// or an address learned from STUN; they are offered as type assisted (JS5B-2).
	Extra []string
	// Proxies are the SOCKS5 proxies to offer (DiscoverProxies).
	Proxies []Streamhost
	// SID is the bytestream sid of the initiator's transport; "" picks a random one.
	// A responder takes the sid of the offer.
	SID string
	// Stagger is the delay between connection attempts (default 200ms, JS5B-8); proxies are
	// tried ProxyDelay (default 1s) after the previous attempt unless nothing else is pending.
	Stagger, ProxyDelay time.Duration
	// ConnectTimeout bounds one connection attempt including the SOCKS5 handshake (default 5s).
	ConnectTimeout time.Duration
	// Order, when set, decides in which order the peer's candidates are tried, from a hint
	// the transport cannot know (e.g. the same-network rule of urn:nf:iot:p2p:1.0, see
	// package xtls Config.P2P). It gets the peer's candidates in descending priority (JS5B-7)
	// and returns those to try, best first; it may leave candidates out and may add aliases:
	// a copy of a peer candidate with another Host and Port that reach the same listener (an
	// address the peer published). An alias keeps the CID, JID and Priority of its candidate,
	// so a connection to it is reported as <candidate-used cid/> of that candidate and the
	// nomination (JS5B-11) is the same on both sides; aliases of proxy candidates and entries
	// whose CID is not a peer candidate's are ignored. Entries of one CID are tried one at a
	// time, the next only after the one before failed: the peer tells connections to its
	// candidate apart only by their local address, so it gets at most one per CID. Once a
	// connection succeeds, entries after it are no longer tried (entries before it still are). Order runs without locks
	// held, possibly several times per Establish, and must not block. An address is only a
	// hint: what is reached there is authenticated above the bytestream (TLS).
	Order func(peer []Candidate) []Candidate
}

// JingleTransport is the XEP-0260 Jingle SOCKS5 Bytestreams transport of one content. It
// satisfies jingle.Transport:
//
//   - Element returns our <transport/> with our candidates (host addresses, extra addresses,
//     proxies), sid, and dstaddr when a proxy is offered (JS5B-3, JS5B-6);
//   - HandleAccept takes the responder's candidates (initiator only);
//   - HandleInfo takes transport-info: later candidates, <candidate-used/>, <candidate-error/>,
//     <activated/>, <proxy-error/>;
//   - Establish connects to the peer's candidates in priority order, staggered (JS5B-7/8),
//     reports <candidate-used/> or <candidate-error/> (JS5B-9), waits for the peer's report,
//     nominates (JS5B-11), activates our proxy if it won (JS5B-12) or waits for the peer's
//     <activated/>, and returns the connection. At that point both sides know the nominated
//     candidate (JS5B-20): the initiator may start TLS.
//
// When both sides report <candidate-error/>, or the nominated proxy fails (<proxy-error/>),
// Establish returns an error wrapping ErrNoConnection after the exchange, and nothing of the
// transport stays open. The initiator then sends transport-replace with an IBB transport
// (JS5B-14, e.g. ibb.NewJingleTransport) or terminates with <connectivity-error/>; the
// responder, on transport-replace, closes this transport, builds the IBB transport from the
// offered element and answers transport-accept with its Element.
type JingleTransport struct {
	cfg       Config
	initiator bool
	sid       string
	localJID  string
	peerJID   string
	local     []Candidate
	localDst  string // DST.ADDR for connections to our candidates: sha1(sid+us+peer)
	remoteDst string // peer-supplied dstaddr for its proxies ("" = compute)

	mu           sync.Mutex
	changed      chan struct{} // closed and replaced on every change below
	remote       []Candidate
	accepted     bool
	peerUsed     string // cid of ours the peer connected to
	peerError    bool   // the peer sent <candidate-error/>
	activated    string
	proxyError   bool
	reported     bool // we sent our report; later candidates are ignored
	incoming     []net.Conn
	finished     bool // Establish returned or Close was called: incoming connections are refused
	closed       bool
	closeCh      chan struct{}
	stopExpect   func()
	establishing bool
	nominated    Candidate
}

// NewJingleTransport builds the initiator's transport for a session with cfg.PeerJID.
func NewJingleTransport(cfg Config) (*JingleTransport, error) {
	sid := cfg.SID
	if sid == "" {
		sid = randomID()
	}
	if err := checkID("sid", sid, maxSIDLen); err != nil {
		return nil, err
	}
	return newTransport(cfg, true, sid)
}

// AcceptJingleTransport builds the responder's transport from the initiator's offered
// <transport/> element (session-initiate or transport-replace). Our candidates never repeat a
// host and port the initiator offered (JS5B-5), so a proxy both sides know is offered once.
func AcceptJingleTransport(cfg Config, offer []byte) (*JingleTransport, error) {
	o, err := ParseTransport(offer)
	if err != nil {
		return nil, err
	}
	if o.CandidateUsed != "" || o.CandidateError || o.Activated != "" || o.ProxyError {
		return nil, badRequest("offer carries a transport-info child")
	}
	t, err := newTransport(cfg, false, o.SID)
	if err != nil {
		return nil, err
	}
	t.remote = o.Candidates
	t.remoteDst = o.DstAddr
	// JS5B-5: drop our candidates that repeat the initiator's host/port.
	kept := t.local[:0]
	for _, c := range t.local {
		dup := false
		for _, r := range o.Candidates {
			if r.Host == c.Host && portOr1080(r.Port) == portOr1080(c.Port) {
				dup = true
			}
		}
		if !dup {
			kept = append(kept, c)
		}
	}
	t.local = kept
	return t, nil
}

func newTransport(cfg Config, initiator bool, sid string) (*JingleTransport, error) {
	if cfg.Link == nil {
		return nil, errors.New("socks5: Config.Link is nil")
	}
	if cfg.PeerJID == "" {
		return nil, errors.New("socks5: Config.PeerJID is empty")
	}
	if cfg.Stagger <= 0 {
		cfg.Stagger = 200 * time.Millisecond
	}
	if cfg.ProxyDelay <= 0 {
		cfg.ProxyDelay = time.Second
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = 5 * time.Second
	}
	t := &JingleTransport{
		cfg:       cfg,
		initiator: initiator,
		sid:       sid,
		localJID:  cfg.Link.LocalJID(),
		peerJID:   cfg.PeerJID,
		changed:   make(chan struct{}),
		closeCh:   make(chan struct{}),
	}
	t.localDst = DstAddr(sid, t.localJID, t.peerJID)
	if err := t.gather(); err != nil {
		return nil, err
	}
	if cfg.Listener != nil {
		t.stopExpect = cfg.Listener.Expect(t.localDst, t.deliver)
	}
	return t, nil
}

// gather builds our candidate list: direct host addresses, extra (assisted) addresses, proxies.
func (t *JingleTransport) gather() error {
	add := func(ty CandidateType, jid, host string, port int, i int) {
		pref := 65535 - i
		if pref < 0 {
			pref = 0
		}
		t.local = append(t.local, Candidate{CID: randomID(), Host: host, JID: jid, Port: port,
			Priority: Priority(ty, uint16(pref)), Type: ty})
	}
	if l := t.cfg.Listener; l != nil {
		hosts := t.cfg.Hosts
		if hosts == nil {
			if ta, ok := l.Addr().(*net.TCPAddr); ok && !ta.IP.IsUnspecified() {
				hosts = []string{ta.IP.String()}
			} else {
				var err error
				if hosts, err = HostAddresses(nil, false); err != nil {
					return err
				}
			}
		}
		for i, h := range hosts {
			if err := checkHost(h); err != nil {
				return fmt.Errorf("socks5: Config.Hosts: %w", err)
			}
			add(Direct, t.localJID, h, l.Port(), i)
		}
	}
	for i, hp := range t.cfg.Extra {
		host, port, err := splitHostPort(hp)
		if err != nil {
			return fmt.Errorf("socks5: Config.Extra: %w", err)
		}
		add(Assisted, t.localJID, host, port, i)
	}
	for i, p := range t.cfg.Proxies {
		if err := checkHost(p.Host); err != nil {
			return fmt.Errorf("socks5: Config.Proxies: %w", err)
		}
		if p.Port == 0 || checkJID(p.JID) != nil {
			return fmt.Errorf("socks5: Config.Proxies: proxy %q needs a JID and a port", p.JID)
		}
		add(Proxy, p.JID, p.Host, p.Port, i)
	}
	return nil
}

// HostAddresses returns the unicast IP addresses of the interfaces that are up and accepted by
// filter (nil accepts all), leaving out loopback addresses unless loopback is true and IPv6
// link-local addresses (they need a zone a peer cannot use).
func HostAddresses(filter func(net.Interface) bool, loopback bool) ([]string, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagUp == 0 || (filter != nil && !filter(ifc)) {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			ip := ipn.IP
			if ip.IsLoopback() && !loopback || ip.IsLinkLocalUnicast() || ip.IsMulticast() || ip.IsUnspecified() {
				continue
			}
			out = append(out, ip.String())
		}
	}
	return out, nil
}

// Nominated returns the candidate nominated by Establish (JS5B-11), or the zero Candidate
// before that. Its Type tells whether the bytestream runs through a proxy: a request/response
// protocol over a proxy should send a keep-alive after a burst of writes, because Prosody's
// mod_proxy65 may hold back the last bytes until more arrive (see the package documentation).
func (t *JingleTransport) Nominated() Candidate {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.nominated
}

// Remote returns a copy of the peer's candidates known so far.
func (t *JingleTransport) Remote() []Candidate {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]Candidate(nil), t.remote...)
}

// Namespace returns urn:xmpp:jingle:transports:s5b:1.
func (t *JingleTransport) Namespace() string { return NSJingleS5B }

// SID returns the bytestream sid (the <transport sid/>, not the Jingle session sid).
func (t *JingleTransport) SID() string { return t.sid }

// Element returns our <transport/> for session-initiate (initiator) or session-accept
// (responder).
func (t *JingleTransport) Element() []byte {
	tr := &Transport{SID: t.sid, Candidates: t.local}
	for _, c := range t.local {
		if c.Type == Proxy {
			tr.DstAddr = t.localDst // JS5B-3, JS5B-6
		}
	}
	if t.initiator {
		tr.Mode = "tcp" // the responder MUST NOT include mode (JS5B-6)
	}
	return tr.Marshal()
}

// HandleAccept takes the responder's <transport/> from session-accept (initiator only).
func (t *JingleTransport) HandleAccept(transport []byte) error {
	if !t.initiator {
		return &Error{Type: "cancel", Condition: "unexpected-request", Text: "responder got an accept"}
	}
	a, err := ParseTransport(transport)
	if err != nil {
		return err
	}
	if a.SID != t.sid {
		return badRequest("accept sid %q differs from %q (JS5B-6)", a.SID, t.sid)
	}
	if a.CandidateUsed != "" || a.CandidateError || a.Activated != "" || a.ProxyError {
		return badRequest("accept carries a transport-info child")
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.accepted {
		return &Error{Type: "cancel", Condition: "unexpected-request", Text: "transport already accepted"}
	}
	t.accepted = true
	t.remoteDst = a.DstAddr
	t.addRemoteLocked(a.Candidates)
	return nil
}

// addRemoteLocked adds peer candidates, skipping any that repeat one of ours (JS5B-5) or a cid
// already known.
func (t *JingleTransport) addRemoteLocked(cs []Candidate) {
	if t.reported {
		return
	}
outer:
	for _, c := range cs {
		for _, l := range t.local {
			if l.Host == c.Host && portOr1080(l.Port) == portOr1080(c.Port) {
				continue outer
			}
		}
		for _, r := range t.remote {
			if r.CID == c.CID {
				continue outer
			}
		}
		t.remote = append(t.remote, c)
	}
	t.notifyLocked()
}

func (t *JingleTransport) notifyLocked() {
	close(t.changed)
	t.changed = make(chan struct{})
}

// HandleInfo processes the <transport/> of a transport-info from the peer.
func (t *JingleTransport) HandleInfo(transport []byte) error {
	in, err := ParseTransport(transport)
	if err != nil {
		return err
	}
	if in.SID != t.sid {
		return badRequest("transport sid %q differs from %q", in.SID, t.sid)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case in.CandidateUsed != "":
		if t.localCandidate(in.CandidateUsed) == nil {
			return &Error{Type: "cancel", Condition: "item-not-found", Text: "candidate-used names an unknown cid"}
		}
		if t.peerError || (t.peerUsed != "" && t.peerUsed != in.CandidateUsed) {
			return &Error{Type: "cancel", Condition: "unexpected-request", Text: "the candidate report was already received"}
		}
		t.peerUsed = in.CandidateUsed
	case in.CandidateError:
		if t.peerUsed != "" {
			return &Error{Type: "cancel", Condition: "unexpected-request", Text: "the candidate report was already received"}
		}
		t.peerError = true
	case in.Activated != "":
		t.activated = in.Activated
	case in.ProxyError:
		t.proxyError = true
	default:
		t.addRemoteLocked(in.Candidates)
		return nil
	}
	t.notifyLocked()
	return nil
}

func (t *JingleTransport) localCandidate(cid string) *Candidate {
	for i := range t.local {
		if t.local[i].CID == cid {
			return &t.local[i]
		}
	}
	return nil
}

// deliver receives connections to our direct candidates from the listener.
func (t *JingleTransport) deliver(c net.Conn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.finished || len(t.incoming) >= 8 {
		return false
	}
	t.incoming = append(t.incoming, c)
	t.notifyLocked()
	return true
}

// Close releases the listener registration and every connection not returned by Establish,
// and unblocks a running Establish. It is safe to call more than once.
func (t *JingleTransport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	close(t.closeCh)
	t.finishLocked(nil)
	t.mu.Unlock()
	return nil
}

// finishLocked stops accepting connections and closes all incoming ones except keep.
func (t *JingleTransport) finishLocked(keep net.Conn) {
	if pc, ok := keep.(*prefixConn); ok {
		keep = pc.Conn
	}
	t.finished = true
	if t.stopExpect != nil {
		t.stopExpect()
		t.stopExpect = nil
	}
	for _, c := range t.incoming {
		if c != keep {
			c.Close()
		}
	}
	t.incoming = nil
}

type attempt struct {
	cand Candidate
	conn net.Conn
	err  error
}

// Establish connects, exchanges candidate reports through sendInfo, nominates and returns the
// bytestream; see the type's documentation. It may be called once.
func (t *JingleTransport) Establish(ctx context.Context, sendInfo func(ctx context.Context, transport []byte) error) (net.Conn, error) {
	t.mu.Lock()
	if t.establishing || t.closed {
		t.mu.Unlock()
		return nil, errors.New("socks5: Establish called twice or after Close")
	}
	t.establishing = true
	t.mu.Unlock()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { // Close unblocks Establish
		select {
		case <-t.closeCh:
			cancel()
		case <-ctx.Done():
		}
	}()

	conn, err := t.establish(ctx, sendInfo)
	t.mu.Lock()
	t.finishLocked(conn)
	closed := t.closed
	t.mu.Unlock()
	if closed {
		closeConn(conn)
		return nil, fmt.Errorf("socks5: transport closed during Establish: %w", net.ErrClosed)
	}
	return conn, err
}

func (t *JingleTransport) establish(ctx context.Context, sendInfo func(ctx context.Context, transport []byte) error) (net.Conn, error) {
	mine, err := t.connect(ctx)
	if err != nil {
		return nil, err
	}
	// JS5B-9: report.
	report := &Transport{SID: t.sid}
	if mine.conn != nil {
		report.CandidateUsed = mine.cand.CID
	} else {
		report.CandidateError = true
	}
	if err := sendInfo(ctx, report.Marshal()); err != nil {
		closeConn(mine.conn)
		return nil, fmt.Errorf("socks5: sending the candidate report: %w", err)
	}
	// Wait for the peer's report.
	var theirs *Candidate
	for {
		t.mu.Lock()
		ch := t.changed
		done := t.peerError || t.peerUsed != ""
		if t.peerUsed != "" {
			theirs = t.localCandidate(t.peerUsed)
		}
		t.mu.Unlock()
		if done {
			break
		}
		select {
		case <-ch:
		case <-ctx.Done():
			closeConn(mine.conn)
			return nil, ctx.Err()
		}
	}
	// JS5B-11: nomination.
	var mineC *Candidate
	if mine.conn != nil {
		mineC = &mine.cand
	}
	useMine, ok := nominate(t.initiator, mineC, theirs)
	if !ok {
		return nil, fmt.Errorf("%w: both sides sent candidate-error (JS5B-11a)", ErrNoConnection)
	}
	nominated := theirs
	if useMine {
		nominated = &mine.cand
	}
	t.mu.Lock()
	t.nominated = *nominated
	t.mu.Unlock()
	if useMine {
		if mine.cand.Type == Proxy {
			// JS5B-12: the peer offered this proxy; it activates it. Send nothing before.
			if err := t.waitActivated(ctx, mine.cand.CID); err != nil {
				mine.conn.Close()
				return nil, err
			}
		}
		return mine.conn, nil
	}
	closeConn(mine.conn)
	if theirs.Type == Proxy {
		return t.activateOwnProxy(ctx, *theirs, sendInfo)
	}
	return t.takeIncoming(ctx, *theirs)
}

// nominate applies JS5B-11: mine is the peer candidate we connected to (nil after our
// candidate-error), theirs ours that the peer connected to (nil after its candidate-error).
// It reports whether ours (mine) is nominated, and false ok when both failed.
func nominate(initiator bool, mine, theirs *Candidate) (useMine, ok bool) {
	switch {
	case mine == nil && theirs == nil:
		return false, false // (a) both candidate-error
	case theirs == nil:
		return true, true // (b)
	case mine == nil:
		return false, true // (b)
	case mine.Priority != theirs.Priority:
		return mine.Priority > theirs.Priority, true // (c) higher priority wins
	default:
		return initiator, true // (d) tie: the initiator's choice
	}
}

func closeConn(c net.Conn) {
	if c != nil {
		c.Close()
	}
}

func (t *JingleTransport) waitActivated(ctx context.Context, cid string) error {
	for {
		t.mu.Lock()
		ch := t.changed
		act, perr := t.activated, t.proxyError
		t.mu.Unlock()
		switch {
		case perr:
			return fmt.Errorf("%w: the peer could not activate its proxy (proxy-error, JS5B-13)", ErrNoConnection)
		case act == cid:
			return nil
		case act != "":
			return badRequest("activated names cid %q, nominated was %q", act, cid)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// activateOwnProxy connects to our proxy that the peer used, activates it and tells the peer
// (JS5B-12), or sends <proxy-error/> (JS5B-13).
func (t *JingleTransport) activateOwnProxy(ctx context.Context, c Candidate, sendInfo func(ctx context.Context, transport []byte) error) (net.Conn, error) {
	fail := func(err error) (net.Conn, error) {
		_ = sendInfo(ctx, (&Transport{SID: t.sid, ProxyError: true}).Marshal())
		return nil, fmt.Errorf("%w: our proxy %s: %v", ErrNoConnection, c.JID, err)
	}
	dctx, cancel := context.WithTimeout(ctx, t.cfg.ConnectTimeout)
	conn, err := Dial(dctx, hostPort(c.Host, c.Port), t.localDst)
	cancel()
	if err != nil {
		return fail(err)
	}
	if err := Activate(ctx, t.cfg.Link, c.JID, t.sid, t.peerJID); err != nil {
		conn.Close()
		return fail(err)
	}
	if err := sendInfo(ctx, (&Transport{SID: t.sid, Activated: c.CID}).Marshal()); err != nil {
		conn.Close()
		return nil, fmt.Errorf("socks5: sending activated: %w", err)
	}
	return conn, nil
}

// takeIncoming returns the connection the peer made to our direct candidate c: the one whose
// local address matches c's host, else the first one, skipping connections the peer has
// closed. The peer reports candidate-used only after our listener answered, so the
// connection is there or about to be; and it closes the connections it does not use before
// it reports, so one that reads as closed is not the one it means (an alias or a forward of
// c reaches us at the same local address as another candidate's connection).
func (t *JingleTransport) takeIncoming(ctx context.Context, c Candidate) (net.Conn, error) {
	for {
		t.mu.Lock()
		ch := t.changed
		var order []net.Conn
		for _, in := range t.incoming {
			if ta, ok := in.LocalAddr().(*net.TCPAddr); ok && ta.IP.String() == c.Host {
				order = append(order, in)
			}
		}
		for _, in := range t.incoming {
			if ta, ok := in.LocalAddr().(*net.TCPAddr); !ok || ta.IP.String() != c.Host {
				order = append(order, in)
			}
		}
		t.mu.Unlock()
		for _, in := range order {
			if conn, open := probeOpen(in); open {
				return conn, nil
			}
			t.mu.Lock()
			t.incoming = slices.DeleteFunc(t.incoming, func(x net.Conn) bool { return x == in })
			t.mu.Unlock()
			in.Close()
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, fmt.Errorf("socks5: waiting for the peer's connection to candidate %s: %w", c.CID, ctx.Err())
		}
	}
}

// probeOpen reports whether the peer has not closed conn, reading at most one byte that is
// already there (the peer may have started to send); conn then comes back with that byte in
// front.
func probeOpen(conn net.Conn) (net.Conn, bool) {
	var b [1]byte
	_ = conn.SetReadDeadline(time.Now().Add(time.Millisecond))
	n, err := conn.Read(b[:])
	_ = conn.SetReadDeadline(time.Time{})
	var ne net.Error
	switch {
	case n == 1:
		return &prefixConn{Conn: conn, prefix: b[:1]}, true
	case errors.As(err, &ne) && ne.Timeout():
		return conn, true
	}
	return conn, false
}

// prefixConn is a connection with bytes already read from it in front.
type prefixConn struct {
	net.Conn
	prefix []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// tryEntry is one address to try: a peer candidate or an alias of one (Config.Order), with
// its rank (lower is tried first; a success makes higher ranks not worth trying).
type tryEntry struct {
	cand Candidate
	key  string // cid + host + port: aliases share the cid
	rank int
}

func entryKey(c Candidate) string {
	return c.CID + "\x00" + hostPort(c.Host, c.Port)
}

// tryOrder returns the entries to try, best first. Without Config.Order it is the peer's
// candidates in descending priority, equal priorities sharing a rank (JS5B-7); with it, the
// hook's order with one rank per entry.
func (t *JingleTransport) tryOrder(remote []Candidate) []tryEntry {
	sort.SliceStable(remote, func(i, j int) bool { return remote[i].Priority > remote[j].Priority })
	var out []tryEntry
	seen := map[string]bool{}
	if t.cfg.Order == nil {
		rank := 0
		for i, c := range remote {
			if i > 0 && c.Priority != remote[i-1].Priority {
				rank++
			}
			out = append(out, tryEntry{cand: c, key: entryKey(c), rank: rank})
		}
		return out
	}
	byCID := map[string]Candidate{}
	for _, c := range remote {
		byCID[c.CID] = c
	}
	for _, e := range t.cfg.Order(append([]Candidate(nil), remote...)) {
		orig, ok := byCID[e.CID]
		if !ok || orig.Type == Proxy && (e.Host != orig.Host || portOr1080(e.Port) != portOr1080(orig.Port)) {
			continue
		}
		if checkHost(e.Host) != nil || e.Port < 0 || e.Port > 65535 {
			continue
		}
		c := orig
		c.Host, c.Port = e.Host, e.Port
		if orig.Type != Proxy && e.Type != Proxy && e.Type != "" {
			c.Type = e.Type // e.g. an alias through a NAT is assisted
		}
		k := entryKey(c)
		if seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, tryEntry{cand: c, key: k, rank: len(out)})
	}
	return out
}

// connect tries the peer's candidates in the order of tryOrder (descending priority unless
// Config.Order says otherwise), staggered, and returns the best connection it made that can
// still win the nomination, or an attempt with nil conn if none. It stops early when the
// peer's candidate-used outranks everything left (JS5B-9, JS5B-10).
func (t *JingleTransport) connect(ctx context.Context) (attempt, error) {
	actx, cancelAll := context.WithCancel(ctx)
	defer cancelAll()
	results := make(chan attempt)
	var (
		launched  = map[string]bool{}
		held      = map[string]int{} // per cid: attempts in flight or succeeded
		inflight  = map[string]Candidate{}
		successes []attempt
		wg        sync.WaitGroup
		timer     = time.NewTimer(0)
		timerOn   = true
	)
	defer timer.Stop()
	cleanup := func(keep net.Conn) {
		cancelAll()
		go func() {
			for a := range results {
				closeConn(a.conn)
			}
		}()
		wg.Wait()
		close(results)
		for _, s := range successes {
			if s.conn != keep {
				s.conn.Close()
			}
		}
	}
	for {
		t.mu.Lock()
		ch := t.changed
		remote := append([]Candidate(nil), t.remote...)
		var peerPrio uint32
		peerUsed := false
		if c := t.localCandidate(t.peerUsed); c != nil {
			peerPrio, peerUsed = c.Priority, true
		}
		t.mu.Unlock()
		order := t.tryOrder(remote)
		rankOf := func(c Candidate) int {
			k := entryKey(c)
			for _, e := range order {
				if e.key == k {
					return e.rank
				}
			}
			return len(order) // no longer listed: last
		}
		// canWin: would a connection to c win the nomination against the peer's report?
		canWin := func(c Candidate) bool {
			return !peerUsed || c.Priority > peerPrio || c.Priority == peerPrio && t.initiator
		}
		var best *attempt
		bestRank := 0
		for i := range successes {
			if r := rankOf(successes[i].cand); best == nil || r < bestRank {
				best, bestRank = &successes[i], r
			}
		}
		// worth: could a connection to c still be used?
		worth := func(c Candidate, rank int) bool {
			return (best == nil || rank < bestRank) && canWin(c)
		}
		// ready: e was not tried yet, and no other entry of its cid (a candidate and its
		// aliases) is being tried or connected: the peer tells connections to one candidate
		// apart only by their local address, so it must get at most one per cid, or it may
		// take one we close (JS5B-11).
		ready := func(e tryEntry) bool {
			return !launched[e.key] && held[e.cand.CID] == 0
		}
		var next *tryEntry
		for i := range order {
			if ready(order[i]) && worth(order[i].cand, order[i].rank) {
				next = &order[i]
				break
			}
		}
		busy := false
		for _, c := range inflight {
			if worth(c, rankOf(c)) {
				busy = true
			}
		}
		if next == nil && !busy {
			var res attempt
			resRank := 0
			for _, s := range successes {
				if r := rankOf(s.cand); canWin(s.cand) && (res.conn == nil || r < resRank) {
					res, resRank = s, r
				}
			}
			t.mu.Lock()
			t.reported = true
			t.mu.Unlock()
			cleanup(res.conn)
			return res, nil
		}
		if next != nil && (len(inflight) == 0 || !timerOn) {
			c := next.cand
			launched[next.key] = true
			inflight[next.key] = c
			held[c.CID]++
			wg.Add(1)
			go func() {
				defer wg.Done()
				conn, err := t.dial(actx, c)
				select {
				case results <- attempt{cand: c, conn: conn, err: err}:
				case <-actx.Done():
					closeConn(conn)
				}
			}()
			// Stagger the next attempt; wait longer before a proxy (JS5B-8).
			d := t.cfg.Stagger
			for i := range order {
				if ready(order[i]) && worth(order[i].cand, order[i].rank) {
					if order[i].cand.Type == Proxy {
						d = t.cfg.ProxyDelay
					}
					break
				}
			}
			timer.Reset(d) // Go ≥ 1.23 timers: Reset drops a stale expiry
			timerOn = true
			continue
		}
		select {
		case a := <-results:
			delete(inflight, entryKey(a.cand))
			if a.err == nil {
				successes = append(successes, a)
			} else {
				held[a.cand.CID]--
			}
		case <-timer.C:
			timerOn = false
		case <-ctx.Done():
			cleanup(nil)
			return attempt{}, ctx.Err()
		case <-ch:
		}
	}
}

// dial connects to one peer candidate with the DST.ADDR for the peer's candidates:
// sha1(sid + peer + us) (JS5B-19), or the peer's dstaddr for its proxies.
func (t *JingleTransport) dial(ctx context.Context, c Candidate) (net.Conn, error) {
	dst := DstAddr(t.sid, t.peerJID, t.localJID)
	if c.Type == Proxy && t.remoteDst != "" {
		dst = t.remoteDst
	}
	ctx, cancel := context.WithTimeout(ctx, t.cfg.ConnectTimeout)
	defer cancel()
	return Dial(ctx, hostPort(c.Host, c.Port), dst)
}

func portOr1080(p int) int {
	if p == 0 {
		return 1080
	}
	return p
}

func splitHostPort(hp string) (string, int, error) {
	host, p, err := net.SplitHostPort(hp)
	if err != nil {
		return "", 0, err
	}
	if err := checkHost(host); err != nil {
		return "", 0, err
	}
	port, err := parsePort(p)
	if err != nil {
		return "", 0, err
	}
	return host, port, nil
}

// randomID returns 16 random characters from [a-z0-9], for cids and sids.
func randomID() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}
