package xtls

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// XTLS-D2: peer bare JID → pinned SHA-256 fingerprints with how each was verified and
// first/last seen; 0600, atomic, persistent, corruption reported and never reset.
func TestXTLS_D2_FileStore(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "trust.json")
	s, err := OpenFileStore(path)
	if err != nil {
		t.Fatal(err)
	}
	if pins, err := s.Pins("juliet@capulet.lit"); err != nil || len(pins) != 0 {
		t.Fatalf("empty store: %v %v", pins, err)
	}
	fp1 := FingerprintOf([]byte("cert one"))
	fp2 := FingerprintOf([]byte("cert two"))
	t0 := time.Date(2026, 11, 22, 4, 0, 0, 0, time.UTC)
	if err := s.Pin("Juliet@Capulet.lit/balcony", fp1, LeapOfFaith, t0); err != nil {
		t.Fatal(err)
	}
	if err := s.Pin("juliet@capulet.lit", fp1, VerifiedSRP, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.Pin("juliet@capulet.lit", fp2, VerifiedManual, t0.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	// No temporary files are left behind.
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("directory holds %d entries", len(ents))
	}
	// Reopen: everything persisted.
	s2, err := OpenFileStore(path)
	if err != nil {
		t.Fatal(err)
	}
	pins, err := s2.Pins("juliet@capulet.lit")
	if err != nil || len(pins) != 2 {
		t.Fatalf("pins after reopen: %v %v", pins, err)
	}
	for _, p := range pins {
		switch {
		case p.Fingerprint.Equal(fp1):
			if p.Verified != VerifiedSRP || !p.FirstSeen.Equal(t0) || !p.LastSeen.Equal(t0.Add(time.Hour)) {
				t.Errorf("fp1 pin %+v: leap of faith not upgraded or times wrong", p)
			}
		case p.Fingerprint.Equal(fp2):
			if p.Verified != VerifiedManual {
				t.Errorf("fp2 pin %+v", p)
			}
		default:
			t.Errorf("unknown pin %v", p.Fingerprint)
		}
	}
	// A verified pin is never downgraded.
	if err := s2.Pin("juliet@capulet.lit", fp1, LeapOfFaith, t0.Add(3*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if pins, _ := s2.Pins("juliet@capulet.lit"); pinOf(pins, fp1).Verified != VerifiedSRP {
		t.Error("pin downgraded")
	}
	// Seen updates LastSeen only and never changes the verification.
	if err := s2.Pin("juliet@capulet.lit/x", FingerprintOf([]byte("lof")), LeapOfFaith, t0); err != nil {
		t.Fatal(err)
	}
	if err := s2.Seen("juliet@capulet.lit", FingerprintOf([]byte("lof")), t0.Add(5*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if p := pinOf(mustPins(t, s2, "juliet@capulet.lit"), FingerprintOf([]byte("lof"))); p.Verified != LeapOfFaith || !p.LastSeen.Equal(t0.Add(5*time.Hour)) || !p.FirstSeen.Equal(t0) {
		t.Errorf("after Seen: %+v", p)
	}
	if err := s2.Seen("juliet@capulet.lit", FingerprintOf([]byte("never")), t0); !errors.Is(err, ErrNotPinned) {
		t.Errorf("Seen of an unpinned fingerprint: %v", err)
	}
	if err := s2.Unpin("juliet@capulet.lit", FingerprintOf([]byte("lof"))); err != nil {
		t.Fatal(err)
	}
	if err := s2.Unpin("juliet@capulet.lit", fp1); err != nil {
		t.Fatal(err)
	}
	s3, err := OpenFileStore(path)
	if err != nil {
		t.Fatal(err)
	}
	if pins, _ := s3.Pins("juliet@capulet.lit"); len(pins) != 1 || !pins[0].Fingerprint.Equal(fp2) {
		t.Errorf("after Unpin: %v", pins)
	}
	if err := s3.Pin("juliet@capulet.lit", Fingerprint{}, VerifiedSRP, t0); err == nil {
		t.Error("zero fingerprint pinned")
	}
	sha1fp, _ := FingerprintFromDigest(SHA1, make([]byte, 20))
	if err := s3.Pin("juliet@capulet.lit", sha1fp, VerifiedSRP, t0); err == nil {
		t.Error("SHA-1 fingerprint pinned")
	}
	if err := s3.Pin("juliet@capulet.lit", fp1, "trust-me", t0); err == nil {
		t.Error("unknown verification accepted")
	}
}

func mustPins(t *testing.T, s TrustStore, peer string) []Pin {
	t.Helper()
	pins, err := s.Pins(peer)
	if err != nil {
		t.Fatal(err)
	}
	return pins
}

func pinOf(pins []Pin, fp Fingerprint) Pin {
	for _, p := range pins {
		if p.Fingerprint.Equal(fp) {
			return p
		}
	}
	return Pin{}
}

func TestXTLS_D2_FileStoreCorruption(t *testing.T) {
	valid := `{"version":1,"peers":{"juliet@capulet.lit":[{"sha-256":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08","verified":"srp","first_seen":"2026-11-22T04:00:00Z","last_seen":"2026-11-22T04:00:00Z"}]}}`
	bad := []string{
		"",
		"{",
		"not json",
		`{"version":2,"peers":{}}`,
		`{"version":1,"peers":{},"extra":1}`,
		valid + " {}",
		`{"version":1,"peers":{"Juliet@capulet.lit":[]}}`,
		`{"version":1,"peers":{"juliet@capulet.lit":[]}}`,
		`{"version":1,"peers":{"juliet@capulet.lit":[{"sha-256":"9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08","verified":"srp","first_seen":"2026-11-22T04:00:00Z","last_seen":"2026-11-22T04:00:00Z"}]}}`,
		`{"version":1,"peers":{"juliet@capulet.lit":[{"sha-256":"9f86","verified":"srp","first_seen":"2026-11-22T04:00:00Z","last_seen":"2026-11-22T04:00:00Z"}]}}`,
		`{"version":1,"peers":{"juliet@capulet.lit":[{"sha-256":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08","verified":"maybe","first_seen":"2026-11-22T04:00:00Z","last_seen":"2026-11-22T04:00:00Z"}]}}`,
		`{"version":1,"peers":{"juliet@capulet.lit":[{"sha-256":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08","verified":"srp","first_seen":"2026-11-22T05:00:00Z","last_seen":"2026-11-22T04:00:00Z"}]}}`,
	}
	dir := t.TempDir()
	good := filepath.Join(dir, "good.json")
	if err := os.WriteFile(good, []byte(valid), 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err := OpenFileStore(good); err != nil {
		t.Fatalf("valid file: %v", err)
	} else if pins, _ := s.Pins("juliet@capulet.lit"); len(pins) != 1 {
		t.Fatal("valid file: no pin")
	}
	for i, content := range bad {
		path := filepath.Join(dir, fmt.Sprintf("bad%d.json", i))
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := OpenFileStore(path)
		if !errors.Is(err, ErrTrustStoreCorrupt) {
			t.Errorf("%d: want ErrTrustStoreCorrupt, got %v", i, err)
		}
		// Never reset: the file is untouched.
		if got, _ := os.ReadFile(path); string(got) != content {
			t.Errorf("%d: corrupt file was modified", i)
		}
	}
	// Oversized file.
	big := filepath.Join(dir, "big.json")
	if err := os.WriteFile(big, make([]byte, maxTrustFileLen+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenFileStore(big); !errors.Is(err, ErrTrustStoreCorrupt) {
		t.Errorf("oversized: %v", err)
	}
}

// Concurrent Pin/Pins from many goroutines (run with -race); every pin lands on disk.
func TestXTLS_D2_FileStoreConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "trust.json")
	s, err := OpenFileStore(path)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 5; i++ {
				peer := fmt.Sprintf("peer%d@example.com", g)
				if err := s.Pin(peer, FingerprintOf([]byte{byte(g), byte(i)}), VerifiedManual, time.Now()); err != nil {
					t.Error(err)
				}
				if _, err := s.Pins(peer); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	s2, err := OpenFileStore(path)
	if err != nil {
		t.Fatal(err)
	}
	for g := 0; g < 8; g++ {
		if pins, _ := s2.Pins(fmt.Sprintf("peer%d@example.com", g)); len(pins) != 5 {
			t.Errorf("peer%d: %d pins", g, len(pins))
		}
	}
	// The per-peer limit holds.
	m := NewMemoryStore()
	for i := 0; i < maxPinsPerPeer; i++ {
		if err := m.Pin("a@b", FingerprintOf([]byte{byte(i)}), VerifiedManual, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Pin("a@b", FingerprintOf([]byte("one more")), VerifiedManual, time.Now()); !errors.Is(err, ErrTooManyPins) {
		t.Errorf("limit: %v", err)
	}
}

// A write that fails (read-only directory) leaves memory and disk at the old state.
func TestXTLS_D2_FileStoreWriteFailure(t *testing.T) {
	if os.Geteuid() == 0 {
		// root ignores directory permissions; use a path whose directory does not exist.
		s := &FileStore{path: filepath.Join(t.TempDir(), "missing", "trust.json"), set: pinSet{}}
		if err := s.Pin("a@b", FingerprintOf([]byte("x")), VerifiedManual, time.Now()); err == nil {
			t.Fatal("write into a missing directory succeeded")
		}
		if pins, _ := s.Pins("a@b"); len(pins) != 0 {
			t.Fatal("failed write changed the in-memory store")
		}
		return
	}
	dir := t.TempDir()
	s, _ := OpenFileStore(filepath.Join(dir, "trust.json"))
	if err := os.Chmod(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(dir, 0o700)
	if err := s.Pin("a@b", FingerprintOf([]byte("x")), VerifiedManual, time.Now()); err == nil {
		t.Fatal("write into a read-only directory succeeded")
	}
	if pins, _ := s.Pins("a@b"); len(pins) != 0 {
		t.Fatal("failed write changed the in-memory store")
	}
}

// FuzzDecodeTrust: the trust-store file parser never panics, and what it accepts re-encodes
// to a file that decodes to the same pins.
func FuzzDecodeTrust(f *testing.F) {
	f.Add([]byte(`{"version":1,"peers":{"juliet@capulet.lit":[{"sha-256":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08","verified":"srp","first_seen":"2026-11-22T04:00:00Z","last_seen":"2026-11-22T04:00:00Z"}]}}`))
	f.Add([]byte(`{"version":1,"peers":{}}`))
	f.Add([]byte(`{"version":1,"peers":{"a@b":[{"sha-256":"00","verified":"manual","first_seen":"2026-11-22T04:00:00Z","last_seen":"2026-11-22T04:00:00Z"}]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		set, err := decodeTrust(data)
		if err != nil {
			return
		}
		enc, err := encodeTrust(set)
		if err != nil {
			t.Fatal(err)
		}
		again, err := decodeTrust(enc)
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if len(again) != len(set) {
			t.Fatal("peer count changed")
		}
		for peer, pins := range set {
			if len(again[peer]) != len(pins) {
				t.Fatalf("%s: pin count changed", peer)
			}
		}
	})
}
