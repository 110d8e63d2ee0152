package xtls

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// BenchmarkXSRPExchange measures one complete srp bootstrap: TLS 1.3 handshake with mutual
// certificates plus the XSRP exchange (3072-bit group, SHA-256) over net.Pipe, both sides.
func BenchmarkXSRPExchange(b *testing.B) {
	romeo, juliet := newIDs(b)
	ccfg, scfg := mustConfigs(b, romeo, juliet, MethodSRP, nil, nil)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		x, y := net.Pipe()
		c, s := tls.Client(x, ccfg), tls.Server(y, scfg)
		var wg sync.WaitGroup
		var serr error
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, serr = ServerXSRP(ctx, s, juliet, "romeo@montague.lit", "pw")
		}()
		_, cerr := ClientXSRP(ctx, c, romeo, "romeo@montague.lit", "pw")
		wg.Wait()
		x.Close()
		y.Close()
		if cerr != nil || serr != nil {
			b.Fatal(cerr, serr)
		}
	}
}

// BenchmarkX509Handshake is the x509 counterpart: TLS 1.3 handshake with pinned
// certificates, plus one authenticated byte from the responder (GO-7).
func BenchmarkX509Handshake(b *testing.B) {
	romeo, juliet := newIDs(b)
	rp, jp := NewMemoryStore(), NewMemoryStore()
	rp.Pin("juliet@capulet.lit", juliet.Fingerprint(), VerifiedSRP, time.Now())
	jp.Pin("romeo@montague.lit", romeo.Fingerprint(), VerifiedSRP, time.Now())
	ccfg, scfg := mustConfigs(b, romeo, juliet, MethodX509, rp, jp)
	b.ReportAllocs()
	for b.Loop() {
		x, y := net.Pipe()
		c, s := tls.Client(x, ccfg), tls.Server(y, scfg)
		done := make(chan error, 1)
		go func() {
			if err := s.Handshake(); err != nil {
				done <- err
				return
			}
			_, err := s.Write([]byte{1})
			done <- err
		}()
		_, err := c.Read(make([]byte, 1))
		if err2 := <-done; err != nil || err2 != nil {
			b.Fatal(err, err2)
		}
		x.Close()
		y.Close()
	}
}

// BenchmarkTLSRecordPath measures bulk throughput of the TLS 1.3 record layer (AEAD) over
// net.Pipe with 16 KiB writes, after the handshake.
func BenchmarkTLSRecordPath(b *testing.B) {
	romeo, juliet := newIDs(b)
	ccfg, scfg := mustConfigs(b, romeo, juliet, MethodSRP, nil, nil)
	x, y := net.Pipe()
	defer x.Close()
	defer y.Close()
	c, s := tls.Client(x, ccfg), tls.Server(y, scfg)
	errc := make(chan error, 1)
	go func() { errc <- s.Handshake() }()
	if err := c.Handshake(); err != nil {
		b.Fatal(err)
	}
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 16<<10)
	go func() {
		_, err := io.Copy(io.Discard, s)
		errc <- err
	}()
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	x.Close()
	<-errc
}
