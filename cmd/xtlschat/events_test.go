package main

import (
	"bytes"
	"encoding/json"
	"testing"
)

func TestEncodeEvent(t *testing.T) {
	got := string(encodeEvent(event{Event: evSession, Method: "srp", Transport: "s5b-direct", Peer: "juliet@capulet.lit/balcony"}))
	want := `{"event":"session","peer":"juliet@capulet.lit/balcony","method":"srp","transport":"s5b-direct"}` + "\n"
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

// Peer text in a message event must reach a script unchanged but must not drive a terminal
// that happens to show the JSON: no raw control, C1 or bidi rune in the line.
func TestEncodeEventEscapesPeerText(t *testing.T) {
	text := "<b>&\x1b[31m\u009b2J\u202etxt\u2028\n\"\\ ünïcode"
	line := encodeEvent(event{Event: evMessage, Peer: "juliet@capulet.lit/balcony", Dir: "in", Text: text})
	if bytes.Count(line, []byte("\n")) != 1 || line[len(line)-1] != '\n' {
		t.Fatalf("not one line: %q", line)
	}
	checkSafe(t, string(line[:len(line)-1]))
	var back event
	if err := json.Unmarshal(line, &back); err != nil {
		t.Fatalf("not JSON: %v: %s", err, line)
	}
	if back.Text != text || back.Event != evMessage || back.Dir != "in" {
		t.Errorf("round trip: got %+v", back)
	}
	if !bytes.Contains(line, []byte("<b>&")) {
		t.Errorf("HTML characters escaped needlessly: %s", line)
	}
}

func TestEventWriterLines(t *testing.T) {
	var buf bytes.Buffer
	w := newEventWriter(&buf)
	w.emit(event{Event: evError, Message: "no route", Code: exitPeer})
	w.emit(event{Event: evClosed, Peer: "a@b/c", Reason: "success"})
	lines := bytes.Split(bytes.TrimSuffix(buf.Bytes(), []byte("\n")), []byte("\n"))
	if len(lines) != 2 {
		t.Fatalf("want 2 lines, got %q", buf.String())
	}
	var e event
	if err := json.Unmarshal(lines[0], &e); err != nil || e.Code != exitPeer || e.Message != "no route" {
		t.Errorf("line 1: %v %+v", err, e)
	}
}
