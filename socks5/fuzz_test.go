package socks5

import (
	"bytes"
	"encoding/hex"
	"testing"
)

func seedXML(f *testing.F) {
	for _, name := range vectorNames(f, "*.xml") {
		f.Add(readVector(f, name))
	}
}

// FuzzParseTransport: no panic; what parses re-encodes to something that parses to the same.
func FuzzParseTransport(f *testing.F) {
	seedXML(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		tr, err := ParseTransport(b)
		if err != nil {
			return
		}
		again, err := ParseTransport(tr.Marshal())
		if err != nil {
			t.Fatalf("re-parse of %q: %v", tr.Marshal(), err)
		}
		if !bytes.Equal(tr.Marshal(), again.Marshal()) {
			t.Fatalf("unstable encoding: %q vs %q", tr.Marshal(), again.Marshal())
		}
	})
}

// FuzzParseQuery: no panic; round trip is stable.
func FuzzParseQuery(f *testing.F) {
	seedXML(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		q, err := ParseQuery(b)
		if err != nil {
			return
		}
		again, err := ParseQuery(q.Marshal())
		if err != nil {
			t.Fatalf("re-parse of %q: %v", q.Marshal(), err)
		}
		if !bytes.Equal(q.Marshal(), again.Marshal()) {
			t.Fatalf("unstable encoding: %q vs %q", q.Marshal(), again.Marshal())
		}
	})
}

func seedHex(f *testing.F, names ...string) {
	var all []byte
	for _, n := range names {
		b, err := hex.DecodeString(string(readVector(f, n)))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		all = append(all, b...)
	}
	f.Add(all)
}

// FuzzReadRequest feeds arbitrary bytes to the listener side of the handshake.
func FuzzReadRequest(f *testing.F) {
	seedHex(f, "S5B-13_greeting.hex", "S5B-13_connect-request.hex")
	f.Fuzz(func(t *testing.T, b []byte) {
		var out bytes.Buffer
		dst, err := readRequest(&scriptConn{in: bytes.NewReader(b), out: &out})
		if err == nil && len(dst) != hashLen {
			t.Fatalf("accepted DST.ADDR of length %d", len(dst))
		}
	})
}

// FuzzReadReply feeds arbitrary bytes to the client side after the request.
func FuzzReadReply(f *testing.F) {
	seedHex(f, "S5B-13_connect-reply.hex")
	f.Add([]byte{5, 1, 0, 1, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{5, 0, 0, 4, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = readReply(bytes.NewReader(b))
	})
}
