package p2p

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"
)

// ListenReusable listens on TCP address with SO_REUSEADDR and SO_REUSEPORT, so that
// [BindingTCP] can send a STUN request from the same local port and learn the NAT's mapping
// of this listener (wrap it with socks5.NewListener). On the shared port the kernel still
// delivers every incoming connection to the listener only.
func ListenReusable(ctx context.Context, address string) (net.Listener, error) {
	lc := net.ListenConfig{Control: reuseControl}
	return lc.Listen(ctx, "tcp", address)
}

// Config configures [Gather].
type Config struct {
	// Listener is the TCP address of our S5B listener (from ListenReusable).
	Listener *net.TCPAddr
	// Servers are STUN servers ("host:port", default port 3478), asked in order until one
	// answers.
	Servers []string
	// UDP also asks over UDP (from the listener's port number) when no server answers over TCP;
	// the answer's IP is our external IP, its port only a guess for TCP (SPEC §17).
	UDP bool
	// Forwarded are port forwards configured on the NAT to the listener: "ip:port", or ":port"
	// for the external IP learned from STUN. They come first among the results.
	Forwarded []string
	// Timeout bounds one TCP transaction (default 5s; RFC 8489's Ti is 39.5s, too long for
	// starting a session). RTO is the initial UDP retransmission timeout (default 500 ms).
	Timeout, RTO time.Duration
}

// Result is what Gather learned.
type Result struct {
	// Reflexive is the TCP mapping of the listener's port (zero when unknown).
	Reflexive netip.AddrPort
	// ExternalIP is our address as the STUN server saw it (TCP or UDP; zero when unknown).
	ExternalIP netip.Addr
	// Assisted are the addresses for assisted candidates ("host:port"), best first:
	// configured forwards, then the reflexive address unless it repeats one (JS5B-2).
	Assisted []string
	// Errors are the failures of the servers asked.
	Errors []error
}

// Gather asks the STUN servers for our listener's mapping and combines it with the configured
// port forwards. It fails only on a bad configuration; an unreachable server is recorded in
// Result.Errors and its address is simply not offered.
func Gather(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.Listener == nil {
		return nil, errors.New("p2p: Config.Listener is nil")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	res := &Result{}
	for _, s := range cfg.Servers {
		server := withDefaultPort(s)
		tctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
		a, err := BindingTCP(tctx, cfg.Listener, server)
		cancel()
		if err == nil {
			res.Reflexive, res.ExternalIP = a, a.Addr()
			break
		}
		res.Errors = append(res.Errors, fmt.Errorf("STUN over TCP to %s: %w", server, err))
	}
	if !res.ExternalIP.IsValid() && cfg.UDP {
		for _, s := range cfg.Servers {
			ip, err := udpExternalIP(ctx, cfg, withDefaultPort(s))
			if err == nil {
				res.ExternalIP = ip
				break
			}
			res.Errors = append(res.Errors, fmt.Errorf("STUN over UDP to %s: %w", s, err))
		}
	}
	seen := map[string]bool{}
	for _, f := range cfg.Forwarded {
		host, port, err := net.SplitHostPort(f)
		if err != nil {
			return nil, fmt.Errorf("p2p: Config.Forwarded %q: %w", f, err)
		}
		if pn, err := strconv.Atoi(port); err != nil || pn <= 0 || pn > 65535 {
			return nil, fmt.Errorf("p2p: Config.Forwarded %q: bad port", f)
		}
		if host == "" {
			if !res.ExternalIP.IsValid() {
				continue // external IP unknown: nothing to offer for this forward
			}
			host = res.ExternalIP.String()
		} else if _, err := netip.ParseAddr(host); err != nil {
			return nil, fmt.Errorf("p2p: Config.Forwarded %q: host must be an IP address", f)
		}
		hp := net.JoinHostPort(host, port)
		if !seen[hp] {
			seen[hp] = true
			res.Assisted = append(res.Assisted, hp)
		}
	}
	if res.Reflexive.IsValid() && !seen[res.Reflexive.String()] {
		res.Assisted = append(res.Assisted, res.Reflexive.String())
	}
	return res, nil
}

// udpExternalIP asks server over UDP from the listener's port number (or any port when that
// is taken) and returns the IP it saw.
func udpExternalIP(ctx context.Context, cfg Config, server string) (netip.Addr, error) {
	ua, err := net.ResolveUDPAddr("udp", server)
	if err != nil {
		return netip.Addr{}, err
	}
	local := &net.UDPAddr{IP: cfg.Listener.IP, Port: cfg.Listener.Port}
	pc, err := net.ListenUDP("udp", local)
	if err != nil {
		local.Port = 0
		if pc, err = net.ListenUDP("udp", local); err != nil {
			return netip.Addr{}, err
		}
	}
	defer pc.Close()
	a, err := BindingUDP(ctx, pc, ua, cfg.RTO)
	if err != nil {
		return netip.Addr{}, err
	}
	return a.Addr(), nil
}

func withDefaultPort(s string) string {
	if _, _, err := net.SplitHostPort(s); err == nil {
		return s
	}
	return net.JoinHostPort(s, "3478")
}
