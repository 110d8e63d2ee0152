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

// FuzzP2P feeds arbitrary bytes to ParseP2P (SEED-1): whatever it accepts marshals and parses
// back to the same value.
func FuzzP2P(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParseP2P(b)
		if err != nil {
			return
		}
		out, err := p.Marshal()
		if err != nil {
			t.Fatalf("accepted %q but cannot marshal it: %v", b, err)
		}
		q, err := ParseP2P(out)
		if err != nil || q != p {
			t.Fatalf("round trip %q → %q → %+v, %v", b, out, q, err)
		}
	})
}

// FuzzE2E feeds arbitrary bytes to ParseE2E: accepted keys are of known algorithms and sizes
// and survive a round trip.
func FuzzE2E(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := ParseE2E(b)
		if err != nil {
			return
		}
		out, err := e.Marshal()
		if err != nil {
			t.Fatalf("accepted %q but cannot marshal it: %v", b, err)
		}
		g, err := ParseE2E(out)
		if err != nil || len(g.Keys) != len(e.Keys) {
			t.Fatalf("round trip %q → %q → %+v, %v", b, out, g, err)
		}
		for i := range g.Keys {
			if g.Keys[i].Alg != e.Keys[i].Alg || !bytes.Equal(g.Keys[i].Pub, e.Keys[i].Pub) {
				t.Fatalf("key %d changed in the round trip", i)
			}
		}
	})
}
