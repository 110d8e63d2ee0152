package netnstest_test

// The client program the NAT tests run inside the host namespaces: this test binary re-executed
// under "ip netns exec" with its configuration in the environment (the helper-process pattern).
// It speaks JSON lines on stdout (ready, result or error) and ends the session when its stdin
// closes.

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/xtlsjingle/xtlsjingle/gosrcxmpp"
	"github.com/xtlsjingle/xtlsjingle/p2p"
	"github.com/xtlsjingle/xtlsjingle/socks5"
	"github.com/xtlsjingle/xtlsjingle/xtls"
)

// helperEnv carries the helper's JSON configuration.
const helperEnv = "XTLSJINGLE_NETNSTEST_HELPER"

// helperConfig configures one client.
type helperConfig struct {
	// Role is "open" (initiator), "accept" (responder) or "stun" (p2p.Gather only).
	Role     string
	Server   string // c2s address
	CertPEM  string // the server's certificate
	JID      string // full JID to bind
	Password string
	Secret   string // the one-time password for srp
	// Listen is the S5B listener's address ("" for none); STUN the STUN server ("" for none);
	// Forwarded the port forwards for p2p.Gather; Proxies: discover and offer the server's proxy.
	Listen    string
	STUN      string
	Forwarded []string
	Proxies   bool
	// NoHosts offers no host candidates (only assisted and proxy ones).
	NoHosts bool
	// P2P publishes <p2p/> (external: the first assisted address, local: the listener) and
	// <e2e/> in presence and applies the same-network rule with the external IP from STUN;
	// the initiator waits for the responder's <p2p/> before it opens.
	P2P bool
	// Payload is the number of random bytes to send, in messages of chunk bytes (hex), each
	// starting with Marker.
	Payload int
	Marker  string
}

const chunk = 2048

// helperReady is the first line: the client is online.
type helperReady struct {
	JID      string
	Assisted []string // our assisted candidates (p2p.Gather)
	Proxies  []string
}

// helperResult is the outcome of the session.
type helperResult struct {
	Transport      string
	Path           string // xtls.Session.Path
	KeyHint        string // xtls.Session.KeyHint
	Method         string
	Sent, Received string // sha-256 of the payload sent and of the one received
	ReceivedBytes  int
}

// helperGather is the outcome of role stun.
type helperGather struct {
	Reflexive, ExternalIP string
	UDPReflexive          string // p2p.BindingUDP from the listener's address
	Assisted              []string
	Errors                []string
}

// helperLine is one line of output; exactly one field is set.
type helperLine struct {
	Ready  *helperReady  `json:",omitempty"`
	Result *helperResult `json:",omitempty"`
	Gather *helperGather `json:",omitempty"`
	Closed string        `json:",omitempty"` // how long Close took
	Error  string        `json:",omitempty"`
}

func emit(l helperLine) {
	b, _ := json.Marshal(l)
	os.Stdout.Write(append(b, '\n'))
}

// helperMain runs the helper and returns its exit code.
func helperMain(config string) int {
	var cfg helperConfig
	if err := json.Unmarshal([]byte(config), &cfg); err != nil {
		emit(helperLine{Error: "config: " + err.Error()})
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := runHelper(ctx, cfg); err != nil {
		emit(helperLine{Error: err.Error()})
		return 1
	}
	return 0
}

func gather(ctx context.Context, cfg helperConfig, l net.Listener) (*p2p.Result, error) {
	return p2p.Gather(ctx, p2p.Config{
		Listener:  l.Addr().(*net.TCPAddr),
		Servers:   []string{cfg.STUN},
		UDP:       true,
		Forwarded: cfg.Forwarded,
		Timeout:   3 * time.Second,
		RTO:       100 * time.Millisecond,
	})
}

func runHelper(ctx context.Context, cfg helperConfig) error {
	var ln net.Listener
	if cfg.Listen != "" {
		var err error
		if ln, err = p2p.ListenReusable(ctx, cfg.Listen); err != nil {
			return err
		}
		defer ln.Close()
	}
	if cfg.Role == "stun" {
		res, err := gather(ctx, cfg, ln)
		if err != nil {
			return err
		}
		g := &helperGather{Assisted: res.Assisted}
		if res.Reflexive.IsValid() {
			g.Reflexive = res.Reflexive.String()
		}
		if res.ExternalIP.IsValid() {
			g.ExternalIP = res.ExternalIP.String()
		}
		for _, e := range res.Errors {
			g.Errors = append(g.Errors, e.Error())
		}
		uc, err := net.ListenPacket("udp", cfg.Listen)
		if err != nil {
			return err
		}
		defer uc.Close()
		server, err := net.ResolveUDPAddr("udp", cfg.STUN)
		if err != nil {
			return err
		}
		_ = uc.SetReadDeadline(time.Now().Add(5 * time.Second))
		ua, err := p2p.BindingUDP(ctx, uc, server, 100*time.Millisecond)
		if err != nil {
			return fmt.Errorf("STUN over UDP: %w", err)
		}
		g.UDPReflexive = ua.String()
		emit(helperLine{Gather: g})
		return nil
	}

	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM([]byte(cfg.CertPEM)) {
		return errors.New("bad server certificate")
	}
	link, err := gosrcxmpp.Dial(ctx, gosrcxmpp.Config{
		Address: cfg.Server, JID: cfg.JID, Password: cfg.Password,
		TLS: &tls.Config{RootCAs: roots, ServerName: "localhost"},
	})
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	defer link.Close()
	id, err := xtls.NewIdentity(link.LocalJID(), xtls.KeyEd25519)
	if err != nil {
		return err
	}
	xcfg := xtls.Config{
		Identity:     id,
		Trust:        xtls.NewMemoryStore(),
		SetupTimeout: 60 * time.Second,
		OnIncoming: func(context.Context, *xtls.Incoming) xtls.Decision {
			return xtls.Decision{Password: cfg.Secret}
		},
	}
	xcfg.S5B.ConnectTimeout = 3 * time.Second
	ready := &helperReady{JID: link.LocalJID()}
	if ln != nil {
		l := socks5.NewListener(ln, 0)
		defer l.Close()
		xcfg.S5B.Listener = l
		if cfg.STUN != "" || len(cfg.Forwarded) > 0 {
			res, err := gather(ctx, cfg, ln)
			if err != nil {
				return err
			}
			xcfg.S5B.Extra = res.Assisted
			ready.Assisted = res.Assisted
			if cfg.P2P {
				pc := &xtls.P2PConfig{ExternalIP: res.ExternalIP, PublishKey: true}
				pc.Publish.Local = netip.MustParseAddrPort(ln.Addr().String())
				if len(res.Assisted) > 0 {
					pc.Publish.External, err = netip.ParseAddrPort(res.Assisted[0])
					if err != nil {
						return err
					}
				}
				xcfg.P2P = pc
			}
		}
		if cfg.NoHosts {
			xcfg.S5B.Hosts = []string{}
		}
	}
	if cfg.Proxies {
		proxies, err := socks5.DiscoverProxies(ctx, link, "localhost", nil)
		if err != nil || len(proxies) == 0 {
			return fmt.Errorf("proxy discovery: %v %v", proxies, err)
		}
		xcfg.S5B.Proxies = proxies
		for _, p := range proxies {
			ready.Proxies = append(ready.Proxies, net.JoinHostPort(p.Host, fmt.Sprint(p.Port)))
		}
	}
	client, err := xtls.NewClient(link, xcfg)
	if err != nil {
		return err
	}
	defer client.Close()
	var payloads [][]byte
	if cfg.P2P {
		if payloads, err = client.PresencePayloads(); err != nil {
			return err
		}
		if err := link.SetPresence(ctx, payloads...); err != nil {
			return err
		}
	}
	emit(helperLine{Ready: ready})

	in := bufio.NewScanner(os.Stdin)
	var s *xtls.Session
	if cfg.Role == "open" {
		// The responder's full JID comes as "open JID" once both are online. The responder
		// logs in first: its <p2p/> reaches us as the server's answer to our initial presence
		// (the SetPresence above, after xtls.NewClient installed its presence handler), and
		// ours reaches it as a broadcast, before our session-initiate.
		if !in.Scan() || !strings.HasPrefix(in.Text(), "open ") {
			return errors.New("no open command")
		}
		peer := strings.TrimPrefix(in.Text(), "open ")
		if cfg.P2P {
			if err := waitPublished(ctx, client, peer); err != nil {
				return err
			}
		}
		s, err = client.Open(ctx, peer, &xtls.OpenOptions{Password: cfg.Secret})
	} else {
		s, err = client.Accept(ctx)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", cfg.Role, err)
	}
	res, err := exchange(ctx, s, cfg)
	if err != nil {
		return err
	}
	emit(helperLine{Result: res})
	// The test says "close" to both helpers at the same moment once it has both results,
	// and each exits as soon as its Close returned: the peer's session-terminate may then
	// find no one to answer it, which must not hold up the peer's Close.
	if !in.Scan() || in.Text() != "close" {
		return errors.New("no close command")
	}
	start := time.Now()
	_ = s.Close()
	emit(helperLine{Closed: time.Since(start).String()})
	return nil
}

// waitPublished waits until peer's presence with <p2p/> has arrived.
func waitPublished(ctx context.Context, c *xtls.Client, peer string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		if pub, ok := c.Published(peer); ok && pub.P2P != nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no <p2p/> in the presence of %s", peer)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// exchange sends cfg.Payload random bytes and receives as many from the peer at the same time.
func exchange(ctx context.Context, s *xtls.Session, cfg helperConfig) (*helperResult, error) {
	payload := make([]byte, cfg.Payload)
	if _, err := rand.Read(payload); err != nil {
		return nil, err
	}
	sent := sha256.Sum256(payload)
	sendErr := make(chan error, 1)
	go func() {
		for off := 0; off < len(payload); off += chunk {
			end := min(off+chunk, len(payload))
			body := cfg.Marker + " " + hex.EncodeToString(payload[off:end])
			if err := s.Stream.Send(ctx, []byte("<message><body>"+body+"</body></message>")); err != nil {
				sendErr <- err
				return
			}
		}
		sendErr <- nil
	}()
	h := sha256.New()
	got := 0
	for got < cfg.Payload {
		st, err := s.Stream.Next(ctx)
		if err != nil {
			return nil, fmt.Errorf("receive after %d bytes: %w", got, err)
		}
		raw := string(st.Raw)
		i := strings.Index(raw, cfg.Marker+" ")
		if i < 0 {
			return nil, fmt.Errorf("stanza without marker: %.200s", raw)
		}
		rest := raw[i+len(cfg.Marker)+1:]
		j := strings.IndexByte(rest, '<')
		if j < 0 {
			return nil, fmt.Errorf("stanza without end: %.200s", raw)
		}
		b, err := hex.DecodeString(rest[:j])
		if err != nil {
			return nil, err
		}
		h.Write(b)
		got += len(b)
	}
	if err := <-sendErr; err != nil {
		return nil, fmt.Errorf("send: %w", err)
	}
	return &helperResult{
		Transport: s.Transport, Path: s.Path, KeyHint: s.KeyHint.String(), Method: s.Method,
		Sent: hex.EncodeToString(sent[:]), Received: hex.EncodeToString(h.Sum(nil)), ReceivedBytes: got,
	}, nil
}
