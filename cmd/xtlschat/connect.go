package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/xtlsjingle/xtlsjingle/disco"
	"github.com/xtlsjingle/xtlsjingle/gosrcxmpp"
	"github.com/xtlsjingle/xtlsjingle/p2p"
	"github.com/xtlsjingle/xtlsjingle/socks5"
	"github.com/xtlsjingle/xtlsjingle/xtls"
)

// splitJID returns the localpart@domain and the domain of a JID, without resource.
func splitJID(jid string) (bare, domain string) {
	bare = jid
	if i := strings.IndexByte(bare, '/'); i >= 0 {
		bare = bare[:i]
	}
	domain = bare
	if i := strings.IndexByte(domain, '@'); i >= 0 {
		domain = domain[i+1:]
	}
	return bare, domain
}

// serverTLS returns the STARTTLS configuration: the system roots, or, with --server-cert, a
// pool holding exactly the certificates of that PEM file (a local server with a self-signed
// certificate). The name checked is always the JID's domain.
func serverTLS(certFile, domain string) (*tls.Config, error) {
	cfg := &tls.Config{ServerName: domain, MinVersion: tls.VersionTLS12}
	if certFile == "" {
		return cfg, nil
	}
	data, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("--server-cert: %w", err)
	}
	pool := x509.NewCertPool()
	n := 0
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("--server-cert %s: %w", certFile, err)
		}
		pool.AddCert(c)
		n++
	}
	if n == 0 {
		return nil, fmt.Errorf("--server-cert %s holds no PEM CERTIFICATE block", certFile)
	}
	cfg.RootCAs = pool
	return cfg, nil
}

// serverAddress returns where to connect: --server when given, else the xmpp-client SRV
// record of the domain (RFC 6120 §3.2.1, first target only), else domain:5222.
func serverAddress(ctx context.Context, override, domain string) string {
	if override != "" {
		return override
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, srvs, err := net.DefaultResolver.LookupSRV(ctx, "xmpp-client", "tcp", domain); err == nil {
		for _, s := range srvs {
			if s.Target != "." && s.Target != "" {
				return net.JoinHostPort(strings.TrimSuffix(s.Target, "."), strconv.Itoa(int(s.Port)))
			}
		}
	}
	return net.JoinHostPort(domain, "5222")
}

// conn is a logged-in account with its XTLS plugin.
type conn struct {
	link *gosrcxmpp.Client
	xc   *xtls.Client
	eng  engine // c.xc
	s5b  *socks5.Listener
	caps *disco.Cache // the plugin's disco#info cache
	// external is the address under which our S5B listener is reachable from the Internet
	// (--s5b-forward or --stun; zero when unknown); gatherErrs why STUN failed.
	external   netip.AddrPort
	gatherErrs []error
	published  bool // --publish-p2p: <p2p/> and <e2e/> are in our presence

	mu     sync.Mutex
	online map[string]chan struct{} // --subscribe: closed when the full JID's presence came
}

// p2pFlags are --stun, --s5b-forward and --publish-p2p.
type p2pFlags struct {
	stun, forward, subscribe []string
	publish                  bool
}

// connectOptions gathers what connect needs from the flags.
type connectOptions struct {
	jid, password, server, serverCert string
	s5bListen                         string
	p2p                               p2pFlags
	st                                *store
	onConnEvent                       func(gosrcxmpp.Event)
	onIncoming                        func(ctx context.Context, in *xtls.Incoming) xtls.Decision
	onSessionError                    func(peer string, err error)
	files                             *fileReceiver // incoming file transfers (nil: declined)
}

// connect logs in, starts the XTLS plugin (Jingle, IBB, S5B, disco) and announces our
// capabilities in presence.
func connect(ctx context.Context, o connectOptions) (*conn, error) {
	_, domain := splitJID(o.jid)
	tcfg, err := serverTLS(o.serverCert, domain)
	if err != nil {
		return nil, usageErr(err)
	}
	addr := serverAddress(ctx, o.server, domain)
	link, err := gosrcxmpp.Dial(ctx, gosrcxmpp.Config{
		Address:  addr,
		JID:      o.jid,
		Password: o.password,
		TLS:      tcfg,
		OnEvent:  o.onConnEvent,
	})
	if err != nil {
		return nil, &exitError{code: exitConnect, err: fmt.Errorf("cannot log in to %s as %s: %w", addr, o.jid, err),
			hint: connectHint(err, o.server == "", o.serverCert == "")}
	}
	c := &conn{link: link, caps: disco.NewCache(1024)}
	cfg := xtls.Config{
		Identity:   o.st.identity,
		Trust:      o.st.trust,
		Caps:       c.caps,
		OnIncoming: o.onIncoming,
		OnError:    o.onSessionError,
	}
	files := o.files
	if files == nil {
		files = newFileReceiver(fileHooks{}, 0)
	}
	cfg.Applications = []xtls.Application{files.application()}
	// The same-network rule for contacts that publish <p2p/> (seed 000): our external IP,
	// when --stun learns it, tells whether a contact is behind the same NAT.
	cfg.P2P = &xtls.P2PConfig{}
	if o.s5bListen != "" {
		// Reusable, so that STUN over TCP leaves from the listener's own port (p2p.Gather).
		ln, err := p2p.ListenReusable(ctx, o.s5bListen)
		if err != nil {
			link.Close()
			return nil, usageErr(fmt.Errorf("--s5b-listen %s: %w", o.s5bListen, err))
		}
		l := socks5.NewListener(ln, 0)
		c.s5b = l
		cfg.S5B.Listener = l
		if err := c.gather(ctx, o.p2p, &cfg); err != nil {
			c.close()
			return nil, usageErr(err)
		}
	}
	// A server without a proxy is fine (direct candidates and IBB remain); a proxy we cannot
	// use is left out.
	if proxies, _ := socks5.DiscoverProxies(ctx, link, domain, nil); len(proxies) > 0 {
		cfg.S5B.Proxies = proxies
	}
	c.xc, err = xtls.NewClient(link, cfg)
	if err != nil {
		c.close()
		return nil, err
	}
	c.eng = c.xc
	info := cfg.DiscoInfo()
	caps, err := disco.MarshalCaps(disco.CapsOf(disco.CapsNode, info))
	var extra [][]byte
	if err == nil {
		extra, err = c.xc.PresencePayloads()
		c.published = len(extra) > 0
	}
	if err == nil {
		c.subscribe(ctx, o.p2p.subscribe)
		err = link.SetPresence(ctx, append([][]byte{caps}, extra...)...)
	}
	if err != nil {
		c.close()
		return nil, &exitError{code: exitConnect, err: fmt.Errorf("cannot send presence: %w", err)}
	}
	return c, nil
}

// gather learns our external address from --stun and --s5b-forward (p2p.Gather), offers it as
// assisted candidates and, with --publish-p2p, sets what our presence publishes.
func (c *conn) gather(ctx context.Context, f p2pFlags, cfg *xtls.Config) error {
	ta, ok := c.s5b.Addr().(*net.TCPAddr)
	if !ok {
		return fmt.Errorf("--s5b-listen: not a TCP listener")
	}
	if len(f.stun) == 0 && len(f.forward) == 0 && !f.publish {
		return nil
	}
	res, err := p2p.Gather(ctx, p2p.Config{Listener: ta, Servers: f.stun, UDP: true, Forwarded: f.forward})
	if err != nil {
		return fmt.Errorf("--s5b-forward: %w", err)
	}
	c.gatherErrs = res.Errors
	cfg.S5B.Extra = res.Assisted
	cfg.P2P.ExternalIP = res.ExternalIP
	if len(res.Assisted) > 0 {
		c.external, _ = netip.ParseAddrPort(res.Assisted[0])
	}
	if !cfg.P2P.ExternalIP.IsValid() && c.external.IsValid() {
		// No STUN answer: a forward's external IP is ours too (the same-network rule).
		cfg.P2P.ExternalIP = c.external.Addr()
	}
	if !f.publish {
		return nil
	}
	cfg.P2P.PublishKey = true
	local, _ := netip.AddrFromSlice(ta.IP)
	local = local.Unmap()
	if local.IsUnspecified() {
		// Listening on every interface: publish the first host address we offer.
		if hosts, err := socks5.HostAddresses(nil, false); err == nil && len(hosts) > 0 {
			local, _ = netip.ParseAddr(hosts[0])
		}
	}
	if c.external.IsValid() && local.IsValid() && !local.IsUnspecified() {
		cfg.P2P.Publish = p2p.P2P{External: c.external, Local: netip.AddrPortFrom(local, uint16(ta.Port))}
	}
	return nil
}

// subscribe asks each of jids for its presence and approves its request for ours (RFC 6121
// §3): "subscribed" is sent at once (a pre-approval, or the answer to a stored request) and
// again for every request that arrives later from one of them. Requests from anyone else are
// left unanswered.
func (c *conn) subscribe(ctx context.Context, jids []string) {
	if len(jids) == 0 {
		return
	}
	want := map[string]bool{}
	for _, j := range jids {
		bare, _ := xtls.BareJID(j)
		want[bare] = true
		_ = c.link.SendPresence(ctx, bare, "subscribe")
		_ = c.link.SendPresence(ctx, bare, "subscribed")
	}
	c.online = map[string]chan struct{}{}
	c.link.HandlePresence(func(ctx context.Context, from, typ string, _ [][]byte) {
		bare, err := xtls.BareJID(from)
		if err != nil || !want[bare] {
			return
		}
		switch typ {
		case "subscribe":
			go func() { _ = c.link.SendPresence(ctx, bare, "subscribed") }() // handlers must not block
		case "available", "unavailable":
			c.notePresence(from, typ)
		}
	})
}

// notePresence records a --subscribe contact's available or unavailable presence for
// waitPresence.
func (c *conn) notePresence(from, typ string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if typ == "unavailable" {
		// Gone: a later waitPresence waits for its next available presence again.
		if ch := c.online[from]; ch != nil && isClosed(ch) {
			delete(c.online, from)
		}
		return
	}
	if ch := c.onlineLocked(from); ch != nil && !isClosed(ch) {
		close(ch)
	}
}

// maxOnline bounds the --subscribe presence table: the contacts named there may send presence
// from any number of resources.
const maxOnline = 256

// onlineLocked returns the channel of the full JID, made on first use; nil when the table
// is full.
func (c *conn) onlineLocked(jid string) chan struct{} {
	ch := c.online[jid]
	if ch == nil {
		if len(c.online) >= maxOnline {
			return nil
		}
		ch = make(chan struct{})
		c.online[jid] = ch
	}
	return ch
}

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// waitPresence waits up to d for the available presence of the full JID peer, when peer is
// one of --subscribe, so that what it publishes (addresses, key) is known before a session.
func (c *conn) waitPresence(ctx context.Context, peer string, d time.Duration) {
	c.mu.Lock()
	if c.online == nil {
		c.mu.Unlock()
		return
	}
	ch := c.onlineLocked(peer)
	c.mu.Unlock()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ch:
	case <-t.C:
	case <-ctx.Done():
	}
}

// p2pSummary describes what --stun, --s5b-forward and --publish-p2p achieved, for the user.
func (c *conn) p2pSummary() []string {
	var out []string
	if c.external.IsValid() {
		line := "your S5B listener is reachable from the Internet at " + c.external.String() + " (offered as a candidate)"
		if c.published {
			line += "; published in your presence with your public key"
		}
		out = append(out, line)
	} else if c.published {
		out = append(out, "your public key is published in your presence; no external address is known (no STUN answer, no --s5b-forward)")
	}
	for _, err := range c.gatherErrs {
		out = append(out, err.Error())
	}
	return out
}

func (c *conn) close() {
	if c.xc != nil {
		c.xc.Close()
	}
	if c.s5b != nil {
		c.s5b.Close()
	}
	c.link.Close()
}

// connectHint tells the user what to try after a failed login.
func connectHint(err error, noServer, noCert bool) string {
	var se *gosrcxmpp.StreamError
	var ue x509.UnknownAuthorityError
	var he x509.HostnameError
	msg := err.Error()
	// gosrc.io/xmpp flattens TLS errors into strings, so match the text as well as the types.
	certUnknown := errors.As(err, &ue) || strings.Contains(msg, "certificate signed by unknown authority")
	certWrong := errors.As(err, &he) || strings.Contains(msg, "failed to verify certificate")
	switch {
	case certUnknown && noCert:
		return "the server's certificate is not signed by a CA this system trusts; for a local server with a self-signed certificate pass --server-cert FILE.pem"
	case certUnknown || certWrong:
		return "the server's certificate does not match --server-cert or the JID's domain"
	case strings.Contains(msg, "not-authorized") || strings.Contains(msg, "auth failure") || strings.Contains(strings.ToLower(msg), "sasl") || strings.Contains(strings.ToLower(msg), "authentication"):
		return "check the JID and the password (XTLSCHAT_PASSWORD, --password-file or the prompt)"
	case errors.As(err, &se):
		return "the server closed the stream: " + se.Condition
	case noServer:
		return "check that the domain is right, or give the server's address with --server HOST:PORT"
	}
	return "check --server HOST:PORT and that the server is running"
}
