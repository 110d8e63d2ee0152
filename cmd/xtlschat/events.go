package main

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"sync"
	"unicode/utf8"
)

// Event kinds printed by the scriptable subcommands, one JSON object per line.
const (
	evReady    = "ready"    // connected and logged in: jid, fingerprint, ni, external, published
	evOffer    = "offer"    // a peer asks for a session: peer, methods
	evDeclined = "declined" // we declined an offer: peer, reason
	evSession  = "session"  // a session is secured: peer, method, transport, route, fingerprint, verified, key_hint
	evPinned   = "pinned"   // a fingerprint was pinned: peer, fingerprint, verified
	evMessage  = "message"  // a chat line: peer, dir ("in" or "out"), text
	evClosed   = "closed"   // a session ended: peer, reason
	evError    = "error"    // something failed: message, code (the exit code it maps to), peer
	// File transfers (files.go): an offer, progress (at most one a second), the outcome.
	evFileOffer = "file-offer" // a peer offers a file: peer, name, size, methods
	evProgress  = "progress"   // peer, name, dir, done, size, rate (bytes/s)
	evFile      = "file"       // a file was sent or received and verified: peer, dir, name, path, size, hash, sha256
)

// event is one line of the scriptable output. Field names are part of the interface that
// scripts rely on: add fields, never rename them.
type event struct {
	Event       string   `json:"event"`
	Peer        string   `json:"peer,omitempty"`
	JID         string   `json:"jid,omitempty"`
	Method      string   `json:"method,omitempty"`
	Methods     []string `json:"methods,omitempty"`
	Transport   string   `json:"transport,omitempty"`
	Fingerprint string   `json:"fingerprint,omitempty"` // hex groups, as people compare them
	NI          string   `json:"ni,omitempty"`          // RFC 6920 ni:///sha-256;…
	Verified    string   `json:"verified,omitempty"`    // srp, manual, leap-of-faith
	Dir         string   `json:"dir,omitempty"`
	Text        string   `json:"text,omitempty"`
	Reason      string   `json:"reason,omitempty"`
	Message     string   `json:"message,omitempty"`
	Code        int      `json:"code,omitempty"`
	Name        string   `json:"name,omitempty"` // a file's name as offered (peer text)
	Path        string   `json:"path,omitempty"` // where a received file was saved
	Size        int64    `json:"size,omitempty"`
	Done        int64    `json:"done,omitempty"`
	Rate        float64  `json:"rate,omitempty"`
	Hash        string   `json:"hash,omitempty"`   // the algorithm the receiver verified, e.g. sha-256
	SHA256      string   `json:"sha256,omitempty"` // of the whole file, hex
	// Encrypted is set on the events of file transfers: false for a transfer the user allowed
	// unencrypted with a peer without XTLS (--allow-plaintext, --allow-plaintext-from).
	Encrypted *bool `json:"encrypted,omitempty"`
	// Route is which candidate won: direct-local, direct-external, proxy or ibb
	// (xtls.Session.Path; "path" is taken by received files).
	Route string `json:"route,omitempty"`
	// KeyHint compares the public key the peer published in its presence with the key of its
	// certificate: matches, differs or none. A hint only: the server can change presence.
	KeyHint string `json:"key_hint,omitempty"`
	// External is our S5B listener's address as reachable from the Internet (--s5b-forward or
	// --stun), Published whether --publish-p2p put it in our presence.
	External  string `json:"external,omitempty"`
	Published bool   `json:"published,omitempty"`
}

// encrypted returns a pointer for event.Encrypted.
func encrypted(b bool) *bool { return &b }

// eventWriter writes events as JSON lines; safe for concurrent use. Peer text cannot drive a
// terminal that shows the output: encoding/json escapes C0 controls and U+2028/U+2029, and
// encodeEvent also escapes C1 controls and bidi formatting characters as \uNNNN.
type eventWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func newEventWriter(w io.Writer) *eventWriter { return &eventWriter{w: w} }

func (w *eventWriter) emit(e event) {
	line := encodeEvent(e)
	w.mu.Lock()
	defer w.mu.Unlock()
	_, _ = w.w.Write(line) // a broken stdout shows up as the subcommand's end, not here
}

// encodeEvent returns e as one line of JSON ending in a newline.
func encodeEvent(e event) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(e); err != nil {
		// Cannot happen for this struct of strings; report it as an event rather than lose it.
		return []byte(`{"event":"error","message":"cannot encode event"}` + "\n")
	}
	out := buf.Bytes()
	if !bytes.ContainsFunc(out, unsafeRune) {
		return out
	}
	// The runes unsafeRune matches only occur inside JSON strings (keys are ASCII), where
	// \uNNNN is an equivalent spelling.
	var b strings.Builder
	for len(out) > 0 {
		r, size := utf8.DecodeRune(out)
		if unsafeRune(r) {
			b.WriteString(`\u`)
			writeHex(&b, uint32(r), 4)
		} else {
			b.Write(out[:size])
		}
		out = out[size:]
	}
	return []byte(b.String())
}
