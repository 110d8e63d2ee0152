package main

import (
	"bytes"
	"crypto/rand"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// The relay delivers every byte in order both ways, never sooner than its one-way delay, and
// passes an orderly end (half-close) on.
func TestDelayRelay(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() { // echo server
		c, err := ln.Accept()
		if err != nil {
			return
		}
		io.Copy(c, c)
		c.Close()
	}()
	const delay = 20 * time.Millisecond
	r, err := newDelayRelay(ln.Addr().String(), delay)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	c, err := net.Dial("tcp", r.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	t0 := time.Now()
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	if rtt := time.Since(t0); rtt < 2*delay {
		t.Fatalf("echo through the relay took %v, want ≥ %v (one delay each way)", rtt, 2*delay)
	}

	data := make([]byte, 1<<20)
	rand.Read(data)
	go func() {
		c.Write(data)
		c.(*net.TCPConn).CloseWrite()
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("relay changed the stream: %d bytes back, want %d", len(got), len(data))
	}
}

// Set-up rows measured with added latency say so.
func TestReportSetupLatencyRow(t *testing.T) {
	r := &Report{Setup: []Setup{
		{Name: "x509 over IBB", MedianMS: 8, RTTMS: 1, HandshakeMS: 1, RTTs: 8, RTTsMinusHS: 7, GoalRTTPlusH: 8},
		{Name: "x509 over IBB", MedianMS: 200, RTTMS: 21, HandshakeMS: 1, RTTs: 9.5, RTTsMinusHS: 9.5, GoalRTTPlusH: 8, OneWayLatencyMS: 5},
	}}
	md := markdown(r)
	if !strings.Contains(md, "| session setup, x509 over IBB | one IQ round trip 1.00 ms") || !strings.Contains(md, "| ≤ 8 RTT + one handshake | met |") {
		t.Fatalf("loopback row wrong:\n%s", md)
	}
	if !strings.Contains(md, "| session setup, x509 over IBB, 5 ms one way on each client link | one IQ round trip 21.00 ms") || !strings.Contains(md, "missed by 1.5 RTT") {
		t.Fatalf("latency row wrong:\n%s", md)
	}
}
