package ibb_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xtlsjingle/xtlsjingle/ibb"
	"github.com/xtlsjingle/xtlsjingle/internal/xmpptest"
)

const (
	romeoJID  = "romeo@montague.lit/orchard"
	julietJID = "juliet@capulet.lit/balcony"
)

// checkGoroutines fails the test if goroutines started during it are still running after
// its cleanups (registered first, so it runs last).
func checkGoroutines(t testing.TB) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for {
			n := runtime.NumGoroutine()
			if n <= before {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("goroutine leak: %d before, %d after\n%s", before, n, buf)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// world is two parties on an in-memory network, each with an ibb.Handler.
type world struct {
	net            *xmpptest.Network
	romeo, juliet  *xmpptest.Party
	hRomeo, hJulie *ibb.Handler
}

func newWorld(t testing.TB, seed int64, rcfg, jcfg *ibb.Config) *world {
	t.Helper()
	checkGoroutines(t)
	n := xmpptest.NewNetwork(seed)
	w := &world{net: n, romeo: n.Party(romeoJID), juliet: n.Party(julietJID)}
	w.hRomeo = ibb.NewHandler(w.romeo, rcfg)
	w.hJulie = ibb.NewHandler(w.juliet, jcfg)
	t.Cleanup(func() {
		w.hRomeo.Close()
		w.hJulie.Close()
		w.romeo.Close()
		w.juliet.Close()
	})
	return w
}

// pair opens sid from romeo to juliet and returns (romeo's end, juliet's end).
func (w *world) pair(t testing.TB, sid string, blockSize int) (*ibb.Conn, *ibb.Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	type res struct {
		c   *ibb.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := w.hJulie.Expect(ctx, romeoJID, sid)
		ch <- res{c, err}
	}()
	// Expect registers asynchronously; retry the open until it is expected.
	var a *ibb.Conn
	var err error
	for {
		a, err = w.hRomeo.Open(ctx, julietJID, sid, blockSize)
		if err == nil || ctx.Err() != nil || !strings.Contains(err.Error(), "not-acceptable") {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	r := <-ch
	if r.err != nil {
		t.Fatalf("Expect: %v", r.err)
	}
	t.Cleanup(func() { a.Close(); r.c.Close() })
	return a, r.c
}

func randomBytes(seed int64, n int) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	return b
}

// transfer writes data on w and reads it on r concurrently, then closes w; it returns what
// was read and the errors.
func transfer(wc, rc io.ReadWriteCloser, data []byte) (got []byte, werr, rerr error) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, werr = wc.Write(data)
		if werr == nil {
			werr = wc.Close()
		}
	}()
	got, rerr = io.ReadAll(rc)
	wg.Wait()
	return got, werr, rerr
}

func sameBytes(t *testing.T, want, got []byte) {
	t.Helper()
	if !bytes.Equal(want, got) {
		t.Fatalf("data differs: sent %d bytes sha256 %x, received %d bytes sha256 %x",
			len(want), sha256.Sum256(want), len(got), sha256.Sum256(got))
	}
}

func assertTimeout(t *testing.T, err error) {
	t.Helper()
	var ne net.Error
	if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("error %v; want a net.Error with Timeout() that unwraps to os.ErrDeadlineExceeded", err)
	}
}
