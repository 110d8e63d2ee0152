package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/xtlsjingle/xtlsjingle/disco"
	"github.com/xtlsjingle/xtlsjingle/gosrcxmpp"
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
}

// connectOptions gathers what connect needs from the flags.
type connectOptions struct {
	jid, password, server, serverCert string
	s5bListen                         string
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
	if o.s5bListen != "" {
		l, err := socks5.Listen(o.s5bListen)
		if err != nil {
			link.Close()
			return nil, usageErr(fmt.Errorf("--s5b-listen %s: %w", o.s5bListen, err))
		}
		c.s5b = l
		cfg.S5B.Listener = l
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
	if err == nil {
		err = link.SetPresence(ctx, caps)
	}
	if err != nil {
		c.close()
		return nil, &exitError{code: exitConnect, err: fmt.Errorf("cannot send presence: %w", err)}
	}
	return c, nil
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
