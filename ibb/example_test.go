package ibb_test

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/xtlsjingle/xtlsjingle/ibb"
	"github.com/xtlsjingle/xtlsjingle/internal/xmpptest"
)

// Romeo opens a bytestream to Juliet, who expects it (the sid was agreed out of band, e.g.
// by Jingle), writes to it and closes it; Juliet reads until io.EOF.
func Example() {
	n := xmpptest.NewNetwork(1)
	romeo, juliet := n.Party("romeo@montague.lit/orchard"), n.Party("juliet@capulet.lit/balcony")
	defer romeo.Close()
	defer juliet.Close()
	hr, hj := ibb.NewHandler(romeo, nil), ibb.NewHandler(juliet, nil)
	defer hr.Close()
	defer hj.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got := make(chan string)
	go func() {
		c, err := hj.Expect(ctx, "romeo@montague.lit/orchard", "s1")
		if err != nil {
			got <- err.Error()
			return
		}
		defer c.Close()
		b, err := io.ReadAll(c)
		if err != nil {
			got <- err.Error()
			return
		}
		got <- string(b)
	}()

	var c *ibb.Conn
	var err error
	for c == nil { // until Juliet's Expect is in place (before it, the open is not-acceptable)
		if c, err = hr.Open(ctx, "juliet@capulet.lit/balcony", "s1", 4096); err != nil && ctx.Err() != nil {
			fmt.Println(err)
			return
		}
		time.Sleep(time.Millisecond)
	}
	fmt.Fprint(c, "But soft, what light through yonder window breaks?")
	c.Close()
	fmt.Println(<-got)
	// Output: But soft, what light through yonder window breaks?
}
