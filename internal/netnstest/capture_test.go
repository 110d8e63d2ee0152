package netnstest_test

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"

	"github.com/xtlsjingle/xtlsjingle/internal/netnstest"
)

// TestCaptureSeesPlaintext is the positive control of the encryption checks: plaintext sent
// over TCP between two namespaces is found by the capture, also where the marker is split
// between two segments, and the payload bytes are all counted.
func TestCaptureSeesPlaintext(t *testing.T) {
	netnstest.Require(t)
	run := netnstest.RunID(t)
	a, b := netnstest.NewNS(t, run, "a"), netnstest.NewNS(t, run, "b")
	a.IP("link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", b.Name)
	for _, n := range []struct {
		ns *netnstest.NS
		ip string
	}{{a, "192.0.2.1/24"}, {b, "192.0.2.2/24"}} {
		n.ns.IP("addr", "add", n.ip, "dev", "eth0")
		n.ns.IP("link", "set", "eth0", "up")
	}
	marker := []byte("NETNSTEST-CONTROL-MARKER")
	capture := a.Capture(t, "eth0", marker)
	l, err := b.Listen("192.0.2.2:9000")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	got := make(chan int, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			got <- -1
			return
		}
		defer c.Close()
		n, _ := io.Copy(io.Discard, c)
		got <- int(n)
	}()
	c, err := a.Dial("192.0.2.2:9000", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.(*net.TCPConn).SetNoDelay(true)
	bulk := bytes.Repeat(append([]byte("filler "), marker...), 20000) // ~620 KB, 20000 markers
	half := len(marker) / 2
	for _, part := range [][]byte{marker[:half], marker[half:], bulk} {
		if _, err := c.Write(part); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond) // the split marker goes out in two segments
	}
	c.Close()
	total := len(marker) + len(bulk)
	if n := <-got; n != total {
		t.Fatalf("received %d bytes, want %d", n, total)
	}
	st := capture.Stop()
	sent := st.Bytes(func(f netnstest.Flow) bool { return f.Dst.Port() == 9000 })
	// (A retransmission would count again.)
	if st.Dropped != 0 || sent < total || st.Marker < 20001 {
		t.Fatalf("capture: %d payload bytes (want %d), marker %d times (want 20001), dropped %d\n%s", sent, total, st.Marker, st.Dropped, st)
	}
}
