package socks5

import (
	"context"
	"fmt"
	"net"
	"time"
)

// IQHandler is the part of the link that receives IQ requests.
type IQHandler interface {
	HandleIQ(space, local string, h func(ctx context.Context, from, to, typ string, payload []byte) ([]byte, error)) (remove func())
}

// Offer opens a plain XEP-0065 bytestream (without Jingle) to target as the requester: it
// offers streamhosts in order of preference (S5B-6), waits for <streamhost-used/> (S5B-7) and
// returns the connection. A streamhost whose JID is our own full JID is served by l (a direct
// connection); any other is a proxy, which Offer connects to and activates (S5B-8).
func Offer(ctx context.Context, link Link, target, sid string, l *Listener, streamhosts []Streamhost) (net.Conn, error) {
	if err := checkID("sid", sid, maxSIDLen); err != nil {
		return nil, err
	}
	if len(streamhosts) == 0 {
		return nil, fmt.Errorf("socks5: Offer without streamhosts")
	}
	us := link.LocalJID()
	dst := DstAddr(sid, us, target)
	incoming := make(chan net.Conn, 4)
	for _, sh := range streamhosts {
		if sh.JID == us {
			if l == nil {
				return nil, fmt.Errorf("socks5: a direct streamhost needs a Listener")
			}
			cancel := l.Expect(dst, func(c net.Conn) bool {
				select {
				case incoming <- c:
					return true
				default:
					return false
				}
			})
			defer cancel()
			break
		}
	}
	defer func() { // connections not taken
		for {
			select {
			case c := <-incoming:
				c.Close()
			default:
				return
			}
		}
	}()
	res, err := link.Request(ctx, target, "set", (&Query{SID: sid, Mode: "tcp", Streamhosts: streamhosts}).Marshal())
	if err != nil {
		return nil, fmt.Errorf("socks5: bytestream offer to %s: %w", target, err)
	}
	q, err := ParseQuery(res)
	if err != nil {
		return nil, fmt.Errorf("socks5: answer of %s: %w", target, err)
	}
	used := q.StreamhostUsed
	if used == us {
		select {
		case c := <-incoming:
			return c, nil
		case <-ctx.Done():
			return nil, fmt.Errorf("socks5: %s reported our streamhost but did not connect: %w", target, ctx.Err())
		}
	}
	for _, sh := range streamhosts {
		if sh.JID != used || used == "" {
			continue
		}
		conn, err := Dial(ctx, hostPort(sh.Host, sh.Port), dst)
		if err != nil {
			return nil, fmt.Errorf("socks5: connecting to proxy %s: %w", sh.JID, err)
		}
		if err := Activate(ctx, link, sh.JID, sid, target); err != nil {
			conn.Close()
			return nil, err
		}
		return conn, nil
	}
	return nil, badRequest("streamhost-used %q is not one of the offered streamhosts", used)
}

// HandleRequests installs the target side of plain XEP-0065 on link: for every offer
// (<query/> with streamhosts), accept(from, sid) decides (refused: <not-acceptable/>); the
// streamhosts are tried in document order (S5B-6); the first connection is passed to handle
// and <streamhost-used/> is answered (S5B-7), or <item-not-found/> if none worked. For a proxy
// the requester activates after our answer; data the peer sends before that is dropped by the
// proxy (S5B-9), so the requester should send first. handle must not block. remove uninstalls.
func HandleRequests(link IQHandler, localJID string, accept func(from, sid string) bool, handle func(from, sid string, conn net.Conn)) (remove func()) {
	return link.HandleIQ(NSBytestreams, "query", func(ctx context.Context, from, to, typ string, payload []byte) ([]byte, error) {
		q, err := ParseQuery(payload)
		if err != nil {
			return nil, err
		}
		if typ != "set" || q.SID == "" || len(q.Streamhosts) == 0 {
			return nil, badRequest("expected an offer with sid and streamhosts (S5B-7)")
		}
		if q.Mode == "udp" || !accept(from, q.SID) {
			return nil, &Error{Type: "cancel", Condition: "not-acceptable"}
		}
		target := to
		if target == "" {
			target = localJID
		}
		dst := DstAddr(q.SID, from, target)
		for _, sh := range q.Streamhosts {
			dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			conn, err := Dial(dctx, hostPort(sh.Host, sh.Port), dst)
			cancel()
			if err != nil {
				continue
			}
			handle(from, q.SID, conn)
			return (&Query{SID: q.SID, StreamhostUsed: sh.JID}).Marshal(), nil
		}
		return nil, &Error{Type: "cancel", Condition: "item-not-found", Text: "no streamhost could be reached"}
	})
}
