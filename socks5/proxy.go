package socks5

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
)

// Requester is the part of the link to the XMPP server that proxy discovery and activation
// use (BRIEF "The link to the XMPP server").
type Requester interface {
	// Request sends an IQ get/set with payload as its only child to the JID to and returns the
	// result's child element (nil when empty) or an error.
	Request(ctx context.Context, to, typ string, payload []byte) ([]byte, error)
}

const (
	nsDiscoItems = "http://jabber.org/protocol/disco#items"
	nsDiscoInfo  = "http://jabber.org/protocol/disco#info"
)

// ProxyOptions configures DiscoverProxies.
type ProxyOptions struct {
	// Addresses maps a proxy JID to the host (an IP address or a name) to use when the host it
	// advertises does not resolve; the key "" applies to every proxy. Prosody advertises its
	// component name (e.g. proxy.example.org) unless proxy65_address is set.
	Addresses map[string]string
	// LookupHost resolves a host name; nil means net.DefaultResolver.LookupHost.
	LookupHost func(ctx context.Context, host string) ([]string, error)
}

// DiscoverProxies finds the SOCKS5 proxies (streamhosts) of the XMPP server server (S5B-2):
// disco#items on the server, disco#info of each item for the identity proxy/bytestreams, then
// the bytestreams query of each proxy for its host and port. A proxy whose host does not
// resolve gets the address configured in opts, or is left out with an error naming it.
//
// It returns the usable proxies and, if some proxies could not be used, an error describing
// them (so both may be non-nil). A server without proxy gives (nil, nil).
func DiscoverProxies(ctx context.Context, link Requester, server string, opts *ProxyOptions) ([]Streamhost, error) {
	if opts == nil {
		opts = &ProxyOptions{}
	}
	res, err := link.Request(ctx, server, "get", []byte("<query xmlns='"+nsDiscoItems+"'/>"))
	if err != nil {
		return nil, fmt.Errorf("socks5: disco#items of %s: %w", server, err)
	}
	items, err := parseDiscoItems(res)
	if err != nil {
		return nil, fmt.Errorf("socks5: disco#items of %s: %w", server, err)
	}
	var (
		hosts []Streamhost
		errs  []error
	)
	for _, item := range items {
		info, err := link.Request(ctx, item, "get", []byte("<query xmlns='"+nsDiscoInfo+"'/>"))
		if err != nil {
			continue // an item that does not answer disco#info is not a proxy we can use
		}
		isProxy, err := hasIdentity(info, "proxy", "bytestreams")
		if err != nil || !isProxy {
			continue
		}
		shs, err := QueryStreamhosts(ctx, link, item)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, sh := range shs {
			sh, err := resolveStreamhost(ctx, sh, opts)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			hosts = append(hosts, sh)
		}
	}
	return hosts, errors.Join(errs...)
}

// QueryStreamhosts asks the proxy proxyJID for its network address (S5B-2) and returns its
// <streamhost/> elements; each has a host and a port (S5B-3).
func QueryStreamhosts(ctx context.Context, link Requester, proxyJID string) ([]Streamhost, error) {
	res, err := link.Request(ctx, proxyJID, "get", (&Query{}).Marshal())
	if err != nil {
		return nil, fmt.Errorf("socks5: bytestreams query to proxy %s: %w", proxyJID, err)
	}
	q, err := ParseQuery(res)
	if err != nil {
		return nil, fmt.Errorf("socks5: bytestreams answer of proxy %s: %w", proxyJID, err)
	}
	if len(q.Streamhosts) == 0 {
		return nil, fmt.Errorf("socks5: proxy %s announced no streamhost", proxyJID)
	}
	for _, sh := range q.Streamhosts {
		if sh.Port == 0 {
			return nil, fmt.Errorf("socks5: proxy %s announced a streamhost without port (S5B-3)", proxyJID)
		}
	}
	return q.Streamhosts, nil
}

func resolveStreamhost(ctx context.Context, sh Streamhost, opts *ProxyOptions) (Streamhost, error) {
	if net.ParseIP(sh.Host) != nil {
		return sh, nil
	}
	lookup := opts.LookupHost
	if lookup == nil {
		lookup = net.DefaultResolver.LookupHost
	}
	addrs, err := lookup(ctx, sh.Host)
	if err == nil && len(addrs) > 0 {
		return sh, nil
	}
	repl, ok := opts.Addresses[sh.JID]
	if !ok {
		repl, ok = opts.Addresses[""]
	}
	if ok && repl != "" {
		sh.Host = repl
		return sh, nil
	}
	return sh, fmt.Errorf("socks5: proxy %s advertises host %q, which does not resolve (%v); set proxy65_address on the server or configure an address for it", sh.JID, sh.Host, err)
}

// Activate asks the proxy proxyJID to relay the bytestream sid between us (the requester) and
// target (S5B-8). Both must be connected to the proxy with DstAddr(sid, our JID, target).
// The sid is the bytestream's sid — in XEP-0260 the <transport sid/>, never the Jingle sid
// (ERR-7).
func Activate(ctx context.Context, link Requester, proxyJID, sid, target string) error {
	q := &Query{SID: sid, Activate: target}
	if _, err := link.Request(ctx, proxyJID, "set", q.Marshal()); err != nil {
		return fmt.Errorf("socks5: activation at proxy %s: %w", proxyJID, err)
	}
	return nil
}

func parseDiscoItems(b []byte) ([]string, error) {
	n, err := parse(b)
	if err != nil {
		return nil, err
	}
	if n.name.Space != nsDiscoItems || n.name.Local != "query" {
		return nil, badRequest("expected disco#items query")
	}
	var items []string
	for _, c := range n.children {
		if c.name.Space != nsDiscoItems || c.name.Local != "item" {
			continue // RSM <set/> and other extensions
		}
		jid, ok := c.attr("jid")
		if !ok || checkJID(jid) != nil {
			return nil, badRequest("disco#items <item/> without a valid jid (DISCO-8)")
		}
		if _, hasNode := c.attr("node"); hasNode {
			continue // a node of an entity, not a service
		}
		items = append(items, jid)
	}
	return items, nil
}

func hasIdentity(b []byte, category, typ string) (bool, error) {
	n, err := parse(b)
	if err != nil {
		return false, err
	}
	if n.name.Space != nsDiscoInfo || n.name.Local != "query" {
		return false, badRequest("expected disco#info query")
	}
	for _, c := range n.children {
		if c.name.Space != nsDiscoInfo || c.name.Local != "identity" {
			continue
		}
		cat, _ := c.attr("category")
		ty, _ := c.attr("type")
		if cat == category && ty == typ {
			return true, nil
		}
	}
	return false, nil
}

// hostPort joins a candidate's host and port (1080 when absent, XEP-0065).
func hostPort(host string, port int) string {
	if port == 0 {
		port = 1080
	}
	return net.JoinHostPort(host, strconv.Itoa(port))
}
