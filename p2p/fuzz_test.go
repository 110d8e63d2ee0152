package p2p

import (
	"bytes"
	"testing"
)

// FuzzSTUNResponse feeds arbitrary bytes to the TCP framing and the response parser (STUN-1..6).
func FuzzSTUNResponse(f *testing.F) {
	req, err := newRequest()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		raw, err := readFramed(bytes.NewReader(b))
		if err != nil {
			return
		}
		if len(raw) > maxMessage {
			t.Fatalf("framed %d bytes", len(raw))
		}
		// The fuzzer cannot know our transaction ID; copy it in so the parser runs fully.
		copy(raw[8:20], req.TransactionID[:])
		a, _, err := parseResponse(raw, req)
		if err == nil && a.IsValid() && (a.Port() == 0 || a.Addr().IsUnspecified()) {
			t.Fatalf("unusable address %v accepted", a)
		}
	})
}
