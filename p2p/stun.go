package p2p

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"

	"github.com/pion/stun/v3"
)

// RFC 8489 §6.2.1 defaults (STUN-7).
const (
	// DefaultRTO is the initial retransmission timeout for UDP (RFC 8489: 500 ms).
	DefaultRTO = 500 * time.Millisecond
	// Rc is the number of UDP transmissions of one request.
	Rc = 7
	// Rm is the multiple of RTO waited after the last UDP transmission.
	Rm = 16
	// DefaultTCPTimeout is Ti, the transaction timeout over TCP (39.5 s).
	DefaultTCPTimeout = 39500 * time.Millisecond
	// maxMessage bounds a STUN response: RFC 8489 says < path MTU for UDP (STUN-8); a Binding
	// success response is far smaller.
	maxMessage  = 1280
	magicCookie = 0x2112A442 // STUN-1
)

// Errors of a Binding transaction.
var (
	// ErrTimeout: no response within the transaction timeout (UDP: Rc transmissions + Rm).
	ErrTimeout = errors.New("p2p: STUN transaction timed out")
	// ErrBadResponse: the response is malformed, has a wrong FINGERPRINT, an unknown
	// comprehension-required attribute (STUN-3) or no (XOR-)MAPPED-ADDRESS.
	ErrBadResponse = errors.New("p2p: bad STUN response")
)

// ErrorResponse is a STUN Binding error response (STUN-5).
type ErrorResponse struct {
	Code   int
	Reason string
}

func (e *ErrorResponse) Error() string {
	return fmt.Sprintf("p2p: STUN error response %d %s", e.Code, e.Reason)
}

// newRequest builds a Binding request with a fresh random transaction ID (STUN-2) and a
// FINGERPRINT (STUN-6), so a server that demultiplexes can tell it is STUN.
func newRequest() (*stun.Message, error) {
	return stun.Build(stun.TransactionID, stun.BindingRequest, stun.Fingerprint)
}

// knownRequired are the comprehension-required attributes a Binding response may carry that
// we understand or may ignore (STUN-3: any other fails the transaction).
var knownRequired = map[stun.AttrType]bool{
	stun.AttrMappedAddress: true, stun.AttrXORMappedAddress: true, stun.AttrErrorCode: true,
	stun.AttrUnknownAttributes: true, stun.AttrMessageIntegrity: true,
	stun.AttrMessageIntegritySHA256: true, stun.AttrUsername: true, stun.AttrRealm: true,
	stun.AttrNonce: true, stun.AttrPasswordAlgorithm: true, stun.AttrUserhash: true,
}

// parseResponse checks raw as the response to req and returns the mapped address. ok is
// false for a message that is not a response to req (another transaction: ignored, STUN-2).
func parseResponse(raw []byte, req *stun.Message) (addr netip.AddrPort, ok bool, err error) {
	if !stun.IsMessage(raw) {
		return addr, false, nil
	}
	m := &stun.Message{Raw: append([]byte(nil), raw...)}
	if err := m.Decode(); err != nil {
		return addr, false, nil
	}
	if m.TransactionID != req.TransactionID {
		return addr, false, nil
	}
	if m.Type.Method != stun.MethodBinding {
		return addr, true, fmt.Errorf("%w: method %v", ErrBadResponse, m.Type.Method)
	}
	if m.Contains(stun.AttrFingerprint) {
		if err := stun.Fingerprint.Check(m); err != nil {
			return addr, true, fmt.Errorf("%w: %v", ErrBadResponse, err)
		}
	}
	for _, a := range m.Attributes {
		if a.Type < 0x8000 && !knownRequired[a.Type] {
			return addr, true, fmt.Errorf("%w: unknown comprehension-required attribute 0x%04x", ErrBadResponse, uint16(a.Type))
		}
	}
	switch m.Type.Class {
	case stun.ClassSuccessResponse:
	case stun.ClassErrorResponse:
		var ec stun.ErrorCodeAttribute
		if err := ec.GetFrom(m); err != nil {
			return addr, true, fmt.Errorf("%w: error response without ERROR-CODE", ErrBadResponse)
		}
		return addr, true, &ErrorResponse{Code: int(ec.Code), Reason: string(ec.Reason)}
	default:
		return addr, true, fmt.Errorf("%w: class %v", ErrBadResponse, m.Type.Class)
	}
	// STUN-4: prefer XOR-MAPPED-ADDRESS; MAPPED-ADDRESS only from old servers.
	var ip net.IP
	var port int
	var xa stun.XORMappedAddress
	if err := xa.GetFrom(m); err == nil {
		ip, port = xa.IP, xa.Port
	} else {
		var ma stun.MappedAddress
		if err := ma.GetFrom(m); err != nil {
			return addr, true, fmt.Errorf("%w: no XOR-MAPPED-ADDRESS", ErrBadResponse)
		}
		ip, port = ma.IP, ma.Port
	}
	a, okIP := netip.AddrFromSlice(ip)
	if !okIP || port <= 0 || port > 65535 || !a.IsValid() || a.IsUnspecified() {
		return addr, true, fmt.Errorf("%w: unusable mapped address", ErrBadResponse)
	}
	return netip.AddrPortFrom(a.Unmap(), uint16(port)), true, nil
}

// BindingTCP runs one Binding transaction over TCP with server ("host:port") from local (nil:
// any port). With local set to the address of a listener made by [ListenReusable], the
// result is the NAT's mapping of that listener's port. The connection is closed with a reset
// (no TIME_WAIT on the shared port). Without a deadline on ctx the transaction times out
// after DefaultTCPTimeout (Ti; TCP has no retransmissions, STUN-7).
func BindingTCP(ctx context.Context, local *net.TCPAddr, server string) (netip.AddrPort, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTCPTimeout)
		defer cancel()
	}
	d := net.Dialer{}
	if local != nil {
		d.LocalAddr = local
		d.Control = reuseControl
	}
	c, err := d.DialContext(ctx, "tcp", server)
	if err != nil {
		return netip.AddrPort{}, err
	}
	tc := c.(*net.TCPConn)
	defer func() {
		_ = tc.SetLinger(0)
		_ = tc.Close()
	}()
	stop := context.AfterFunc(ctx, func() { _ = tc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	req, err := newRequest()
	if err != nil {
		return netip.AddrPort{}, err
	}
	if _, err := tc.Write(req.Raw); err != nil {
		return netip.AddrPort{}, tcpErr(ctx, err)
	}
	for {
		raw, err := readFramed(tc)
		if err != nil {
			return netip.AddrPort{}, tcpErr(ctx, err)
		}
		addr, ok, err := parseResponse(raw, req)
		if ok {
			return addr, err
		}
	}
}

func tcpErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w: %v", ErrTimeout, ctx.Err())
	}
	return err
}

// readFramed reads one STUN message from a stream: the 20-byte header, then exactly the
// attribute length it announces (STUN-1), bounded by maxMessage.
func readFramed(r io.Reader) ([]byte, error) {
	buf := make([]byte, 20, 64)
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, err
	}
	if buf[0]&0xC0 != 0 || binary.BigEndian.Uint32(buf[4:8]) != magicCookie {
		return nil, fmt.Errorf("%w: not a STUN message", ErrBadResponse)
	}
	n := int(binary.BigEndian.Uint16(buf[2:4]))
	if n%4 != 0 || 20+n > maxMessage {
		return nil, fmt.Errorf("%w: length %d", ErrBadResponse, n)
	}
	buf = append(buf, make([]byte, n)...)
	if _, err := io.ReadFull(r, buf[20:]); err != nil {
		return nil, err
	}
	return buf, nil
}

// BindingUDP runs one Binding transaction over UDP on conn with server. It transmits the
// request Rc times, waiting rto (0: DefaultRTO), then doubling, and after the last
// transmission Rm×rto; retransmissions reuse the transaction ID, and datagrams that are not
// a response to it are ignored (STUN-2, STUN-7). It uses conn's read deadline.
func BindingUDP(ctx context.Context, conn net.PacketConn, server net.Addr, rto time.Duration) (netip.AddrPort, error) {
	if rto <= 0 {
		rto = DefaultRTO
	}
	req, err := newRequest()
	if err != nil {
		return netip.AddrPort{}, err
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	defer conn.SetReadDeadline(time.Time{})
	buf := make([]byte, maxMessage)
	wait := rto
	for sent := 1; ; sent++ {
		if _, err := conn.WriteTo(req.Raw, server); err != nil {
			return netip.AddrPort{}, err
		}
		if sent == Rc {
			wait = Rm * rto
		}
		deadline := time.Now().Add(wait)
		if err := conn.SetReadDeadline(deadline); err != nil {
			return netip.AddrPort{}, err
		}
		for {
			n, from, err := conn.ReadFrom(buf)
			if err != nil {
				if ctx.Err() != nil {
					return netip.AddrPort{}, fmt.Errorf("%w: %v", ErrTimeout, ctx.Err())
				}
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					break
				}
				return netip.AddrPort{}, err
			}
			if from.String() != server.String() {
				continue
			}
			addr, ok, err := parseResponse(buf[:n], req)
			if ok {
				return addr, err
			}
		}
		if sent == Rc {
			return netip.AddrPort{}, ErrTimeout
		}
		wait *= 2
	}
}
