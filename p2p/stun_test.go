package p2p

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/stun/v3"

	"github.com/xtlsjingle/xtlsjingle/internal/stuntest"
)

func startSTUN(t *testing.T) (*stuntest.Server, string, *net.UDPAddr) {
	t.Helper()
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	uc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := stuntest.Serve(tl, uc)
	t.Cleanup(s.Close)
	return s, tl.Addr().String(), uc.LocalAddr().(*net.UDPAddr)
}

// STUN-7, §17: the request leaves from the S5B listener's port, so the mapping is that
// port's; the listener keeps accepting afterwards.
func TestBindingTCPFromListenerPort(t *testing.T) {
	_, tcpServer, _ := startSTUN(t)
	ln, err := ListenReusable(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	la := ln.Addr().(*net.TCPAddr)
	for i := range 3 { // repeated: no TIME_WAIT left on the shared port
		a, err := BindingTCP(context.Background(), la, tcpServer)
		if err != nil {
			t.Fatalf("binding %d: %v", i, err)
		}
		if a != netip.MustParseAddrPort(la.String()) {
			t.Fatalf("reflexive %v, want the listener's %v", a, la)
		}
	}
	go func() {
		c, err := net.Dial("tcp", la.String())
		if err == nil {
			c.Write([]byte("x"))
			c.Close()
		}
	}()
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	if _, err := c.Read(b); err != nil || b[0] != 'x' {
		t.Fatalf("listener after STUN: %q %v", b, err)
	}
	c.Close()
}

// STUN-7: lost requests are retransmitted with the same transaction ID.
func TestBindingUDPRetransmits(t *testing.T) {
	s, _, udpServer := startSTUN(t)
	s.DropUDP.Store(2)
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	a, err := BindingUDP(context.Background(), pc, udpServer, 10*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if a != netip.MustParseAddrPort(pc.LocalAddr().String()) {
		t.Fatalf("reflexive %v, want %v", a, pc.LocalAddr())
	}
	if n := s.UDPRequests.Load(); n != 3 {
		t.Fatalf("server saw %d requests, want 3 (two dropped)", n)
	}
}

// STUN-7: Rc transmissions, then Rm×RTO, then the transaction fails; all with one ID.
func TestBindingUDPTimeout(t *testing.T) {
	sink, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	ids := make(chan [12]byte, 16)
	go func() {
		buf := make([]byte, 1500)
		for {
			n, _, err := sink.ReadFrom(buf)
			if err != nil {
				close(ids)
				return
			}
			var id [12]byte
			copy(id[:], buf[8:n])
			ids <- id
		}
	}()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	_, err = BindingUDP(context.Background(), pc, sink.LocalAddr(), time.Millisecond)
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("err = %v, want ErrTimeout", err)
	}
	sink.Close()
	var got [][12]byte
	for id := range ids {
		got = append(got, id)
	}
	if len(got) != Rc {
		t.Fatalf("%d transmissions, want Rc = %d", len(got), Rc)
	}
	for _, id := range got {
		if id != got[0] {
			t.Fatal("a retransmission changed the transaction ID (STUN-2)")
		}
	}
}

// ctx ends a UDP transaction early.
func TestBindingUDPContext(t *testing.T) {
	sink, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := BindingUDP(ctx, pc, sink.LocalAddr(), time.Second); !errors.Is(err, ErrTimeout) {
		t.Fatalf("err = %v, want ErrTimeout", err)
	}
}

func response(t *testing.T, req *stun.Message, setters ...stun.Setter) []byte {
	t.Helper()
	m, err := stun.Build(append([]stun.Setter{stun.NewTransactionIDSetter(req.TransactionID)}, setters...)...)
	if err != nil {
		t.Fatal(err)
	}
	return m.Raw
}

func TestParseResponse(t *testing.T) {
	req, err := newRequest()
	if err != nil {
		t.Fatal(err)
	}
	xa := &stun.XORMappedAddress{IP: net.ParseIP("192.0.2.1"), Port: 32853}
	// A.6 (RFC 5769): X-Port 0xA147, X-Address 0xE112A643.
	ok := response(t, req, stun.BindingSuccess, xa, stun.Fingerprint)
	if !bytes.Contains(ok, []byte{0x00, 0x20, 0x00, 0x08, 0x00, 0x01, 0xA1, 0x47, 0xE1, 0x12, 0xA6, 0x43}) {
		t.Fatalf("XOR-MAPPED-ADDRESS encoding differs from RFC 5769: % x", ok)
	}
	a, isResp, err := parseResponse(ok, req)
	if err != nil || !isResp || a != netip.MustParseAddrPort("192.0.2.1:32853") {
		t.Fatalf("parse = %v %v %v", a, isResp, err)
	}
	// STUN-2: another transaction's response is not ours.
	other, _ := newRequest()
	if _, isResp, _ := parseResponse(ok, other); isResp {
		t.Fatal("accepted a response to another transaction")
	}
	// STUN-6: a broken FINGERPRINT fails.
	bad := append([]byte(nil), ok...)
	bad[len(bad)-1] ^= 1
	if _, _, err := parseResponse(bad, req); !errors.Is(err, ErrBadResponse) {
		t.Fatalf("bad fingerprint: %v", err)
	}
	// STUN-3: an unknown comprehension-required attribute fails the transaction.
	unk := response(t, req, stun.BindingSuccess, xa, stun.RawAttribute{Type: 0x7FFF, Value: []byte{1, 2, 3, 4}})
	if _, _, err := parseResponse(unk, req); !errors.Is(err, ErrBadResponse) {
		t.Fatalf("unknown attribute: %v", err)
	}
	// Comprehension-optional attributes are ignored.
	opt := response(t, req, stun.BindingSuccess, xa, stun.NewSoftware("test"))
	if _, _, err := parseResponse(opt, req); err != nil {
		t.Fatalf("SOFTWARE: %v", err)
	}
	// STUN-4: legacy MAPPED-ADDRESS is used only without XOR-MAPPED-ADDRESS.
	legacy := response(t, req, stun.BindingSuccess, &stun.MappedAddress{IP: net.ParseIP("198.51.100.7"), Port: 9})
	if a, _, err := parseResponse(legacy, req); err != nil || a.String() != "198.51.100.7:9" {
		t.Fatalf("MAPPED-ADDRESS: %v %v", a, err)
	}
	none := response(t, req, stun.BindingSuccess)
	if _, _, err := parseResponse(none, req); !errors.Is(err, ErrBadResponse) {
		t.Fatalf("no address: %v", err)
	}
	// STUN-5: error responses carry their code.
	er := response(t, req, stun.BindingError, stun.CodeServerError)
	var ee *ErrorResponse
	if _, _, err := parseResponse(er, req); !errors.As(err, &ee) || ee.Code != 500 {
		t.Fatalf("error response: %v", err)
	}
}

func TestReadFramedBounds(t *testing.T) {
	hdr := func(n int) []byte {
		b := make([]byte, 20)
		binary.BigEndian.PutUint16(b[2:4], uint16(n))
		binary.BigEndian.PutUint32(b[4:8], magicCookie)
		return b
	}
	for _, b := range [][]byte{hdr(2), hdr(4000), append([]byte{0x80}, hdr(0)[1:]...), {0, 1, 0, 0, 1, 2, 3, 4}} {
		if _, err := readFramed(bytes.NewReader(b)); err == nil {
			t.Errorf("readFramed(% x) accepted", b)
		}
	}
}

func TestGather(t *testing.T) {
	_, tcpServer, udpServer := startSTUN(t)
	ln, err := ListenReusable(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	la := ln.Addr().(*net.TCPAddr)
	r, err := Gather(context.Background(), Config{
		Listener:  la,
		Servers:   []string{tcpServer},
		Forwarded: []string{":40000", "203.0.113.9:1234", la.String()},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"127.0.0.1:40000", "203.0.113.9:1234", la.String()}
	if r.Reflexive.String() != la.String() || r.ExternalIP.String() != "127.0.0.1" || !slicesEqual(r.Assisted, want) {
		t.Fatalf("Gather = %+v, want assisted %v", r, want)
	}

	// Only UDP answers (a closed TCP port): the IP comes from UDP, no reflexive TCP address.
	// (nothing listens on TCP at the UDP server's port number; if something did, the TCP
	// answer would still be checked below by Reflexive).
	udpOnly := udpServer.String()
	r, err = Gather(context.Background(), Config{Listener: la, Servers: []string{udpOnly}, UDP: true, Forwarded: []string{":5000"}, RTO: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if r.Reflexive.IsValid() || r.ExternalIP.String() != "127.0.0.1" || !slicesEqual(r.Assisted, []string{"127.0.0.1:5000"}) {
		t.Fatalf("UDP-only Gather = %+v", r)
	}

	if _, err := Gather(context.Background(), Config{Listener: la, Forwarded: []string{"example.org:1"}}); err == nil {
		t.Fatal("a host name in Forwarded was accepted")
	}
}

func slicesEqual(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
