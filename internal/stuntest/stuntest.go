// Package stuntest is a minimal RFC 8489 STUN Binding server for tests (TCP and UDP), built on
// github.com/pion/stun: it answers a Binding request with XOR-MAPPED-ADDRESS = the source
// address it saw, and FINGERPRINT.
package stuntest

import (
	"encoding/binary"
	"io"
	"net"
	"sync"
	"sync/atomic"

	"github.com/pion/stun/v3"
)

// Server serves STUN Binding on the listeners it was given until Close.
type Server struct {
	// DropUDP is the number of UDP requests to ignore before answering (to exercise
	// retransmissions).
	DropUDP atomic.Int32
	// UDPRequests counts the UDP requests received (including dropped ones).
	UDPRequests atomic.Int32

	tcp  net.Listener
	udp  net.PacketConn
	wg   sync.WaitGroup
	once sync.Once
}

// Serve starts serving on tcp and udp (either may be nil).
func Serve(tcp net.Listener, udp net.PacketConn) *Server {
	s := &Server{tcp: tcp, udp: udp}
	if tcp != nil {
		s.wg.Add(1)
		go s.serveTCP()
	}
	if udp != nil {
		s.wg.Add(1)
		go s.serveUDP()
	}
	return s
}

// Close stops the server and waits for its goroutines.
func (s *Server) Close() {
	s.once.Do(func() {
		if s.tcp != nil {
			s.tcp.Close()
		}
		if s.udp != nil {
			s.udp.Close()
		}
	})
	s.wg.Wait()
}

// Response returns the Binding success response to req (raw) for a client seen at from, or nil
// when req is not a Binding request.
func Response(req []byte, from net.Addr) []byte {
	m := &stun.Message{Raw: append([]byte(nil), req...)}
	if err := m.Decode(); err != nil || m.Type != stun.BindingRequest {
		return nil
	}
	var ip net.IP
	var port int
	switch a := from.(type) {
	case *net.TCPAddr:
		ip, port = a.IP, a.Port
	case *net.UDPAddr:
		ip, port = a.IP, a.Port
	default:
		return nil
	}
	resp, err := stun.Build(stun.NewTransactionIDSetter(m.TransactionID), stun.BindingSuccess,
		&stun.XORMappedAddress{IP: ip, Port: port}, stun.Fingerprint)
	if err != nil {
		return nil
	}
	return resp.Raw
}

func (s *Server) serveTCP() {
	defer s.wg.Done()
	var conns sync.WaitGroup
	defer conns.Wait()
	for {
		c, err := s.tcp.Accept()
		if err != nil {
			return
		}
		conns.Add(1)
		go func() {
			defer conns.Done()
			defer c.Close()
			for {
				hdr := make([]byte, 20)
				if _, err := io.ReadFull(c, hdr); err != nil {
					return
				}
				n := int(binary.BigEndian.Uint16(hdr[2:4]))
				if n > 1024 {
					return
				}
				body := make([]byte, n)
				if _, err := io.ReadFull(c, body); err != nil {
					return
				}
				resp := Response(append(hdr, body...), c.RemoteAddr())
				if resp == nil {
					return
				}
				if _, err := c.Write(resp); err != nil {
					return
				}
			}
		}()
	}
}

func (s *Server) serveUDP() {
	defer s.wg.Done()
	buf := make([]byte, 1500)
	for {
		n, from, err := s.udp.ReadFrom(buf)
		if err != nil {
			return
		}
		s.UDPRequests.Add(1)
		if s.DropUDP.Load() > 0 {
			s.DropUDP.Add(-1)
			continue
		}
		if resp := Response(buf[:n], from); resp != nil {
			_, _ = s.udp.WriteTo(resp, from)
		}
	}
}
