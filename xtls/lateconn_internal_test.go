package xtls

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// TestLateConn: reads and writes wait for the bytestream, deadlines set before it arrives are
// applied to it, Close wakes waiters, and a bytestream handed over after Close is closed.
func TestLateConn(t *testing.T) {
	l := newLateConn()
	if err := l.SetReadDeadline(time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	wrote := make(chan error, 1)
	go func() {
		_, err := l.Write([]byte("hello"))
		wrote <- err
	}()
	select {
	case err := <-wrote:
		t.Fatalf("Write returned before the bytestream arrived: %v", err)
	case <-time.After(20 * time.Millisecond):
	}
	if l.RemoteAddr().String() != "pending bytestream" {
		t.Errorf("RemoteAddr before set = %v", l.RemoteAddr())
	}
	a, b := net.Pipe()
	defer b.Close()
	got := make(chan string, 1)
	go func() {
		buf := make([]byte, 5)
		_, _ = io.ReadFull(b, buf)
		got <- string(buf)
	}()
	if !l.set(a) {
		t.Fatal("set failed")
	}
	if err := <-wrote; err != nil {
		t.Fatalf("Write: %v", err)
	}
	if s := <-got; s != "hello" {
		t.Fatalf("peer read %q", s)
	}
	go func() { _, _ = b.Write([]byte("x")) }()
	buf := make([]byte, 1)
	if _, err := l.Read(buf); err != nil || buf[0] != 'x' {
		t.Fatalf("Read = %q, %v", buf, err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Write([]byte("y")); err == nil {
		t.Error("the bytestream stayed open after Close")
	}

	// Close before the bytestream: waiters fail, a late bytestream is closed.
	l2 := newLateConn()
	rd := make(chan error, 1)
	go func() {
		_, err := l2.Read(make([]byte, 1))
		rd <- err
	}()
	time.Sleep(10 * time.Millisecond)
	_ = l2.Close()
	if err := <-rd; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Read after Close = %v, want net.ErrClosed", err)
	}
	c, d := net.Pipe()
	defer d.Close()
	if l2.set(c) {
		t.Fatal("set after Close succeeded")
	}
	if _, err := c.Write([]byte("z")); err == nil {
		t.Error("a bytestream handed over after Close was left open")
	}
}
