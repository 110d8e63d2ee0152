package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/xtlsjingle/xtlsjingle/xtls"
)

// The pin commands work on the trust store without a server: /verify pins as manual,
// /pins lists every peer, /unpin removes; bad input says what is expected.
func TestPinCommands(t *testing.T) {
	st, err := openStore(t.TempDir(), "romeo@montague.lit")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	u := &ui{st: st, w: &out, o: &options{transport: "auto", method: "auto"}}
	fp, _ := xtls.ParseFingerprintText(strings.Repeat("9f", 32))
	step := func(line string, want ...string) {
		t.Helper()
		out.Reset()
		u.command(line)
		for _, w := range want {
			if !strings.Contains(out.String(), w) {
				t.Errorf("%q: output %q lacks %q", line, out.String(), w)
			}
		}
	}
	step("/pins", "no pins")
	step("/verify Juliet@Capulet.lit "+fp.Groups(), "pinned 9F9F 9F9F", "juliet@capulet.lit", "x509")
	step("/verify nurse@capulet.lit "+fp.NI(), "pinned")
	step("/pins", "juliet@capulet.lit  9F9F", "(manual,", "nurse@capulet.lit  9F9F")
	step("/fp juliet@capulet.lit", "juliet@capulet.lit  9F9F")
	if pins, _ := st.trust.Pins("juliet@capulet.lit"); len(pins) != 1 || pins[0].Verified != xtls.VerifiedManual {
		t.Fatalf("pins: %+v", pins)
	}
	step("/unpin juliet@capulet.lit "+fp.String(), "removed")
	if pins, _ := st.trust.Pins("juliet@capulet.lit"); len(pins) != 0 {
		t.Fatalf("not removed: %+v", pins)
	}
	step("/verify juliet@capulet.lit 1234", "not a SHA-256 fingerprint")
	step("/verify juliet@capulet.lit", "usage: /verify JID FINGERPRINT")
	step("/fp", st.identity.Fingerprint().Groups(), st.identity.Fingerprint().NI(), "▀", "Compare these")
	step("hello", "no session: /open FULL-JID first")
	step("/accept", "no incoming session is waiting")
	step("/open juliet@capulet.lit", "full JID")
	step("/open juliet@capulet.lit/balcony --transport tcp", "--transport must be")
	step("/open juliet@capulet.lit/balcony --method x509", "not pinned, so x509 cannot work")
	step("/frobnicate \x1b[2J", `unknown command /frobnicate`, "/help")
	if strings.Contains(out.String(), "\x1b") {
		t.Error("typed control characters echoed raw")
	}
	step("/help", "/open", "/accept", "/verify", "/unpin", "/quit", "escaped")
	step("/quit")
	if !u.quit {
		t.Error("/quit did not end the loop")
	}
}
