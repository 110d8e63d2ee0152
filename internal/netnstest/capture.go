package netnstest

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Flow is one direction of a TCP connection as seen on the wire.
type Flow struct{ Src, Dst netip.AddrPort }

func (f Flow) String() string { return f.Src.String() + "→" + f.Dst.String() }

// Stats is what a Capture saw.
type Stats struct {
	// Frames counts every frame received.
	Frames int
	// TCP counts the TCP payload bytes of each flow over IPv4 (a frame seen on several
	// interfaces of the namespace, e.g. a bridge port and the bridge, counts each time).
	TCP map[Flow]int
	// Marker counts the occurrences of the marker in TCP payloads, also across segment
	// boundaries of one flow.
	Marker int
	// Dropped counts the frames the kernel could not queue for the capture (PACKET_STATISTICS);
	// a capture that dropped frames proves nothing about them.
	Dropped int
}

// Bytes sums the TCP payload bytes of the flows that match.
func (s *Stats) Bytes(match func(Flow) bool) int {
	n := 0
	for f, b := range s.TCP {
		if match(f) {
			n += b
		}
	}
	return n
}

// String lists the flows, largest first, for test logs.
func (s *Stats) String() string {
	flows := make([]Flow, 0, len(s.TCP))
	for f := range s.TCP {
		flows = append(flows, f)
	}
	sort.Slice(flows, func(i, j int) bool { return s.TCP[flows[i]] > s.TCP[flows[j]] })
	var b strings.Builder
	fmt.Fprintf(&b, "%d frames (%d dropped), marker seen %d times", s.Frames, s.Dropped, s.Marker)
	for _, f := range flows {
		fmt.Fprintf(&b, "\n  %s %d bytes", f, s.TCP[f])
	}
	return b.String()
}

// Capture records the frames of a namespace's interfaces with an AF_PACKET socket opened
// inside it, counting TCP payload bytes per flow and looking for a plaintext marker.
type Capture struct {
	fd       int
	file     *os.File
	stopping atomic.Bool
	stopOnce sync.Once
	marker   []byte
	done     chan struct{}

	mu    sync.Mutex
	stats Stats
	tails map[Flow][]byte
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// Capture starts capturing on the interface ifname of the namespace ("" for all of its
// interfaces) and looks for marker. Stop it with Stop; t's cleanup stops it too.
func (n *NS) Capture(t testing.TB, ifname string, marker []byte) *Capture {
	t.Helper()
	var fd int
	err := n.Do(func() error {
		var err error
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return err
		}
		// Room for bursts of 64 KiB GRO frames while the reader catches up (root may exceed
		// rmem_max).
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 64<<20); err != nil {
			unix.Close(fd)
			return err
		}
		if ifname == "" {
			return nil
		}
		ifi, err := net.InterfaceByName(ifname)
		if err == nil {
			err = unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index})
		}
		if err != nil {
			unix.Close(fd)
		}
		return err
	})
	if err != nil {
		t.Fatalf("netnstest: capture in %s on %q: %v", n.Name, ifname, err)
	}
	c := &Capture{
		fd:     fd,
		file:   os.NewFile(uintptr(fd), "packet:"+n.Name+":"+ifname), // non-blocking: uses the poller
		marker: marker,
		done:   make(chan struct{}),
		stats:  Stats{TCP: map[Flow]int{}},
		tails:  map[Flow][]byte{},
	}
	go c.read()
	t.Cleanup(func() { c.Stop() })
	return c
}

func (c *Capture) read() {
	defer close(c.done)
	buf := make([]byte, 256<<10) // GRO can hand a veth up to 64 KiB per frame
	for {
		n, err := c.file.Read(buf)
		if err != nil {
			return // closed, or nothing more after Stop
		}
		c.frame(buf[:n])
		if c.stopping.Load() {
			_ = c.file.SetReadDeadline(time.Now().Add(drainIdle))
		}
	}
}

func (c *Capture) frame(b []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stats.Frames++
	if len(b) < 14+20 || binary.BigEndian.Uint16(b[12:14]) != 0x0800 {
		return
	}
	ip := b[14:]
	ihl := int(ip[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(ip[2:4]))
	if ip[0]>>4 != 4 || ihl < 20 || total < ihl || len(ip) < total || ip[9] != unix.IPPROTO_TCP {
		return
	}
	ip = ip[:total]
	tcp := ip[ihl:]
	if len(tcp) < 20 {
		return
	}
	off := int(tcp[12]>>4) * 4
	if off < 20 || len(tcp) < off {
		return
	}
	payload := tcp[off:]
	src, _ := netip.AddrFromSlice(ip[12:16])
	dst, _ := netip.AddrFromSlice(ip[16:20])
	f := Flow{
		Src: netip.AddrPortFrom(src, binary.BigEndian.Uint16(tcp[0:2])),
		Dst: netip.AddrPortFrom(dst, binary.BigEndian.Uint16(tcp[2:4])),
	}
	if len(payload) == 0 {
		if _, ok := c.stats.TCP[f]; !ok {
			c.stats.TCP[f] = 0
		}
		return
	}
	c.stats.TCP[f] += len(payload)
	if len(c.marker) == 0 {
		return
	}
	joined := append(c.tails[f], payload...)
	c.stats.Marker += bytes.Count(joined, c.marker)
	keep := len(c.marker) - 1
	if keep > len(joined) {
		keep = len(joined)
	}
	c.tails[f] = append([]byte(nil), joined[len(joined)-keep:]...)
}

// drainIdle is how long Stop waits for a further queued frame.
const drainIdle = 100 * time.Millisecond

// Stop ends the capture, after reading the frames still queued, and returns what it saw.
// It may be called more than once.
func (c *Capture) Stop() *Stats {
	c.stopOnce.Do(func() {
		c.stopping.Store(true)
		_ = c.file.SetReadDeadline(time.Now().Add(drainIdle))
		<-c.done
		st, err := unix.GetsockoptTpacketStats(c.fd, unix.SOL_PACKET, unix.PACKET_STATISTICS)
		c.mu.Lock()
		if err != nil {
			c.stats.Dropped = -1
		} else {
			c.stats.Dropped = int(st.Drops)
		}
		c.mu.Unlock()
		_ = c.file.Close()
	})
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats
	return &s
}
