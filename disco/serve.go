package disco

import (
	"container/list"
	"context"
	"fmt"
	"sync"
)

// CapsNode is the XEP-0115 node of this software (CAPS-1).
const CapsNode = "https://github.com/xtlsjingle/xtlsjingle"

// Features our client advertises (SPEC §1, DISCO-5). urn:xmpp:tmp:pubkey is listed but only
// answered inside the end-to-end stream (PK-1).
var clientFeatures = []string{
	NSInfo,
	NSCaps,
	"urn:xmpp:jingle:1",
	"urn:xmpp:jingle:apps:xmlstream:0",
	"urn:xmpp:jingle:security:xtls:0",
	"urn:xmpp:jingle:transports:ibb:1",
	"urn:xmpp:jingle:transports:s5b:1",
	"http://jabber.org/protocol/ibb",
	"http://jabber.org/protocol/bytestreams",
	"urn:xmpp:tmp:pubkey",
}

// ClientInfo returns a fresh copy of our client's disco#info: identity client/console
// "xtlschat" (DISCO-5), the feature list of SPEC §1, and Node = [CapsNode] (the caps node that
// [Serve] answers as node#ver).
func ClientInfo() *Info {
	return &Info{
		Node:       CapsNode,
		Identities: []Identity{{Category: "client", Type: "console", Name: "xtlschat"}},
		Features:   append([]string(nil), clientFeatures...),
	}
}

// Serve installs handlers on h that answer disco#info and disco#items requests for our own
// client and returns a function that removes them. info is copied; when it changes, call Serve
// again (CAPS-5). info.Node is the caps node: a request for no node, for info.Node or for
// "info.Node#ver" (ver as in [CapsOf]) is answered with identities, features and forms and the
// request's node mirrored (DISCO-4, CAPS-6); any other node gets <item-not-found/> (DISCO-7).
// disco#items is answered with an empty list (DISCO-8; the caps node is virtual, CAPS-9).
func Serve(h IQHandler, info *Info) (remove func()) {
	own := info.Clone()
	capsNode := own.Node
	own.Node = ""
	nodes := map[string]bool{"": true}
	if capsNode != "" {
		nodes[capsNode] = true
		for _, hn := range []string{"sha-1", "sha-256"} {
			v, _ := Ver(own, hn)
			nodes[capsNode+"#"+v] = true
		}
	}
	rmInfo := h.HandleIQ(NSInfo, "query", func(ctx context.Context, from, to, typ string, payload []byte) ([]byte, error) {
		req, err := parseRequest(typ, payload, ParseInfo)
		if err != nil {
			return nil, err
		}
		if !nodes[req.Node] {
			return nil, &Error{Type: "cancel", Condition: "item-not-found"}
		}
		ans := *own
		ans.Node = req.Node
		return MarshalInfo(&ans)
	})
	rmItems := h.HandleIQ(NSItems, "query", func(ctx context.Context, from, to, typ string, payload []byte) ([]byte, error) {
		type items struct{ node string }
		req, err := parseRequest(typ, payload, func(b []byte) (items, error) {
			node, its, err := ParseItems(b)
			if err == nil && len(its) > 0 {
				err = badRequest("disco#items request with items")
			}
			return items{node}, err
		})
		if err != nil {
			return nil, err
		}
		if req.node != "" {
			return nil, &Error{Type: "cancel", Condition: "item-not-found"}
		}
		return MarshalItems("", nil)
	})
	return func() {
		rmInfo()
		rmItems()
	}
}

// parseRequest checks that an incoming disco request is an IQ get with a childless query.
func parseRequest[T any](typ string, payload []byte, p func([]byte) (T, error)) (T, error) {
	var zero T
	if typ != "get" {
		return zero, badRequest("disco requests are IQ get (DISCO-1)")
	}
	v, err := p(payload)
	if err != nil {
		return zero, err
	}
	if in, ok := any(v).(*Info); ok && (len(in.Identities) > 0 || len(in.Features) > 0 || len(in.Forms) > 0) {
		return zero, badRequest("disco#info request with children")
	}
	return v, nil
}

// Query asks jid for its disco#info, for node when it is not empty (DISCO-1; for caps use
// "node#ver" and the exact JID that announced it, CAPS-6). A stanza error from the peer is
// returned as the link returned it (check with errors.As for the StanzaError behaviour). A
// result that names a different node than requested is rejected (DISCO-4).
func Query(ctx context.Context, r Requester, jid, node string) (*Info, error) {
	req, err := MarshalInfo(&Info{Node: node})
	if err != nil {
		return nil, err
	}
	res, err := r.Request(ctx, jid, "get", req)
	if err != nil {
		return nil, err
	}
	if res == nil {
		return nil, badRequest("empty disco#info result from %s", jid)
	}
	info, err := ParseInfo(res)
	if err != nil {
		return nil, err
	}
	switch info.Node {
	case node:
	case "":
		info.Node = node // some entities do not mirror the node; the answer is still for it
	default:
		return nil, badRequest("disco#info result for node %q, asked for %q (DISCO-4)", info.Node, node)
	}
	return info, nil
}

// Items asks jid for its disco#items at node (may be empty) and returns the items (DISCO-8).
func Items(ctx context.Context, r Requester, jid, node string) ([]Item, error) {
	req, err := MarshalItems(node, nil)
	if err != nil {
		return nil, err
	}
	res, err := r.Request(ctx, jid, "get", req)
	if err != nil {
		return nil, err
	}
	if res == nil {
		return nil, badRequest("empty disco#items result from %s", jid)
	}
	got, items, err := ParseItems(res)
	if err != nil {
		return nil, err
	}
	if got != node && got != "" {
		return nil, badRequest("disco#items result for node %q, asked for %q (DISCO-4)", got, node)
	}
	return items, nil
}

// Cache remembers disco#info results (CAPS-10): globally by caps hash+ver when the result was
// verified (CAPS-3), and per JID otherwise (no caps, legacy or unsupported hash, ill-formed or
// mismatching result). It is bounded (least recently used entries are evicted) and safe for
// concurrent use. Feed it the caps of every presence with [Cache.SetCaps].
type Cache struct {
	mu      sync.Mutex
	max     int
	lru     *list.List // of *cacheEntry, most recent first
	entries map[string]*list.Element
	caps    map[string]Caps
}

type cacheEntry struct {
	key  string
	info *Info
}

// NewCache returns a cache that holds at most max results and caps for at most max JIDs
// (max < 1 means 1024).
func NewCache(max int) *Cache {
	if max < 1 {
		max = 1024
	}
	return &Cache{max: max, lru: list.New(), entries: make(map[string]*list.Element), caps: make(map[string]Caps)}
}

func verKey(c Caps) string     { return "v\x00" + c.Hash + "\x00" + c.Ver }
func jidKey(jid string) string { return "j\x00" + jid }

// SetCaps records the caps jid announced in its latest presence (CAPS-4, CAPS-8). A changed ver
// drops what was cached for jid alone.
func (c *Cache) SetCaps(jid string, cp Caps) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.caps[jid]; ok && old == cp {
		return
	}
	c.removeLocked(jidKey(jid))
	if _, ok := c.caps[jid]; !ok && len(c.caps) >= c.max {
		for k := range c.caps { // evict an arbitrary JID's caps
			delete(c.caps, k)
			c.removeLocked(jidKey(k))
			break
		}
	}
	c.caps[jid] = cp
}

// Forget drops what the cache knows about jid alone (e.g. on unavailable presence). Results
// cached by verification string stay.
func (c *Cache) Forget(jid string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.caps, jid)
	c.removeLocked(jidKey(jid))
}

// Len returns the number of cached results.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}

func (c *Cache) getLocked(key string) *Info {
	if e, ok := c.entries[key]; ok {
		c.lru.MoveToFront(e)
		return e.Value.(*cacheEntry).info
	}
	return nil
}

func (c *Cache) putLocked(key string, info *Info) {
	if e, ok := c.entries[key]; ok {
		e.Value.(*cacheEntry).info = info
		c.lru.MoveToFront(e)
		return
	}
	c.entries[key] = c.lru.PushFront(&cacheEntry{key: key, info: info})
	for c.lru.Len() > c.max {
		last := c.lru.Back()
		c.lru.Remove(last)
		delete(c.entries, last.Value.(*cacheEntry).key)
	}
}

func (c *Cache) removeLocked(key string) {
	if e, ok := c.entries[key]; ok {
		c.lru.Remove(e)
		delete(c.entries, key)
	}
}

// Info returns jid's disco#info, from the cache when possible. With caps known for jid (a
// supported hash), it queries node#ver (CAPS-6), verifies the result (CAPS-3) and caches it
// globally under the ver only when valid; otherwise it queries jid without a node and caches
// the result for jid alone. The returned Info is a copy the caller may modify.
func (c *Cache) Info(ctx context.Context, r Requester, jid string) (*Info, error) {
	c.mu.Lock()
	cp, hasCaps := c.caps[jid]
	useVer := hasCaps && cp.Hash != "" && newHash(cp.Hash) != nil
	if useVer {
		if in := c.getLocked(verKey(cp)); in != nil {
			c.mu.Unlock()
			return in.Clone(), nil
		}
	}
	if in := c.getLocked(jidKey(jid)); in != nil {
		c.mu.Unlock()
		return in.Clone(), nil
	}
	c.mu.Unlock()

	node := ""
	if useVer {
		node = cp.Node + "#" + cp.Ver
	}
	info, err := Query(ctx, r, jid, node)
	if err != nil {
		return nil, fmt.Errorf("disco: info of %s: %w", jid, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if cur, ok := c.caps[jid]; ok && cur != cp || !ok && hasCaps {
		// Caps changed while we asked: return the answer but do not cache it.
		return info.Clone(), nil
	}
	if useVer && Verify(cp, info) == nil {
		c.putLocked(verKey(cp), info)
	} else {
		c.putLocked(jidKey(jid), info)
	}
	return info.Clone(), nil
}
