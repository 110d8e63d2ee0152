package ibb_test

import (
	"context"
	"net"
	"testing"
	"time"

	"golang.org/x/net/nettest"

	"github.com/xtlsjingle/xtlsjingle/ibb"
	"github.com/xtlsjingle/xtlsjingle/internal/xmpptest"
)

// IBB-20: ibb.Conn passes the standard net.Conn conformance suite (deadlines that wake
// blocked calls, Close that unblocks everything, racy concurrent use) over the in-memory link.
func TestIBB20_NetConnConformance(t *testing.T) {
	checkGoroutines(t)
	var seed int64
	nettest.TestConn(t, func() (c1, c2 net.Conn, stop func(), err error) {
		seed++
		n := xmpptest.NewNetwork(seed)
		romeo, juliet := n.Party(romeoJID), n.Party(julietJID)
		cfg := &ibb.Config{CloseTimeout: 200 * time.Millisecond}
		hr, hj := ibb.NewHandler(romeo, cfg), ibb.NewHandler(juliet, cfg)
		stop = func() {
			hr.Close()
			hj.Close()
			romeo.Close()
			juliet.Close()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		accepted := make(chan *ibb.Conn, 1)
		go func() {
			c, _ := hj.Accept(ctx)
			accepted <- c
		}()
		var a *ibb.Conn
		for {
			a, err = hr.Open(ctx, julietJID, "nettest", 1024)
			if err == nil || ctx.Err() != nil {
				break
			}
			time.Sleep(time.Millisecond) // Accept not waiting yet: not-acceptable
		}
		b := <-accepted
		if err != nil || b == nil {
			stop()
			return nil, nil, nil, err
		}
		return a, b, stop, nil
	})
}
