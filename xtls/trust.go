package xtls

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"
)

// Verification says how a pinned fingerprint came to be trusted.
type Verification string

// Ways a pin is verified. LeapOfFaith marks a pin accepted without verification (only behind
// an explicit user choice, XTLS-14/16, SPEC §18.2 G); the others count as verified.
const (
	VerifiedSRP    Verification = "srp"           // an XSRP run with a shared password succeeded
	VerifiedManual Verification = "manual"        // a person compared the fingerprint out of band
	LeapOfFaith    Verification = "leap-of-faith" // accepted unverified on first contact
)

func (v Verification) valid() bool {
	return v == VerifiedSRP || v == VerifiedManual || v == LeapOfFaith
}

// Pin is one trusted certificate fingerprint of a peer (XTLS-D2).
type Pin struct {
	Fingerprint Fingerprint // always SHA-256
	Verified    Verification
	FirstSeen   time.Time
	LastSeen    time.Time
}

// TrustStore maps a peer's bare JID to the SHA-256 fingerprints pinned for it (XTLS-D2).
// Implementations are safe for concurrent use. Peers are given as bare JIDs; implementations
// normalise them with BareJID.
type TrustStore interface {
	// Pins returns the pins of peer (nil when there are none).
	Pins(peer string) ([]Pin, error)
	// Pin adds fp for peer, or, when it is pinned already, updates its LastSeen and upgrades a
	// leap-of-faith pin to how when how is a verification. FirstSeen is kept.
	Pin(peer string, fp Fingerprint, how Verification, now time.Time) error
	// Seen records that peer presented the pinned fp now (after a successful x509 session):
	// it updates LastSeen only, never the verification. It returns an error wrapping
	// ErrNotPinned when fp is not pinned for peer.
	Seen(peer string, fp Fingerprint, now time.Time) error
	// Unpin removes fp from peer's pins; removing an absent pin is not an error.
	Unpin(peer string, fp Fingerprint) error
}

// ErrNotPinned is returned by TrustStore.Seen for a fingerprint that is not pinned.
var ErrNotPinned = errors.New("xtls: fingerprint not pinned")

// Limits of a trust store.
const (
	maxPinsPerPeer  = 64
	maxTrustPeers   = 100000
	maxTrustFileLen = 16 << 20
)

// ErrTooManyPins is returned when a peer already has the maximum number of pins (64).
var ErrTooManyPins = errors.New("xtls: too many pins for one peer")

// pinSet is the in-memory state shared by MemoryStore and FileStore.
type pinSet map[string][]Pin

func (s pinSet) pins(peer string) ([]Pin, error) {
	bare, err := BareJID(peer)
	if err != nil {
		return nil, err
	}
	return append([]Pin(nil), s[bare]...), nil
}

// pin applies TrustStore.Pin.
func (s pinSet) pin(peer string, fp Fingerprint, how Verification, now time.Time) error {
	bare, err := BareJID(peer)
	if err != nil {
		return err
	}
	if fp.Algo() != SHA256 {
		return fmt.Errorf("xtls: pins must be SHA-256 fingerprints")
	}
	if !how.valid() {
		return fmt.Errorf("xtls: unknown verification %q", how)
	}
	now = now.UTC().Truncate(time.Second)
	pins := s[bare]
	for i := range pins {
		if pins[i].Fingerprint.Equal(fp) {
			if now.After(pins[i].LastSeen) {
				pins[i].LastSeen = now
			}
			if pins[i].Verified == LeapOfFaith && how != LeapOfFaith {
				pins[i].Verified = how
			}
			return nil
		}
	}
	if len(pins) >= maxPinsPerPeer {
		return ErrTooManyPins
	}
	if pins == nil && len(s) >= maxTrustPeers {
		return fmt.Errorf("xtls: trust store full")
	}
	s[bare] = append(pins, Pin{Fingerprint: fp, Verified: how, FirstSeen: now, LastSeen: now})
	return nil
}

func (s pinSet) seen(peer string, fp Fingerprint, now time.Time) error {
	bare, err := BareJID(peer)
	if err != nil {
		return err
	}
	now = now.UTC().Truncate(time.Second)
	pins := s[bare]
	for i := range pins {
		if pins[i].Fingerprint.Equal(fp) {
			if now.After(pins[i].LastSeen) {
				pins[i].LastSeen = now
			}
			return nil
		}
	}
	return fmt.Errorf("%w: %s for %s", ErrNotPinned, fp.NI(), bare)
}

func (s pinSet) unpin(peer string, fp Fingerprint) error {
	bare, err := BareJID(peer)
	if err != nil {
		return err
	}
	pins := s[bare]
	out := pins[:0]
	for _, p := range pins {
		if !p.Fingerprint.Equal(fp) {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		delete(s, bare)
	} else {
		s[bare] = out
	}
	return nil
}

func (s pinSet) clone() pinSet {
	c := make(pinSet, len(s))
	for k, v := range s {
		c[k] = append([]Pin(nil), v...)
	}
	return c
}

// MemoryStore is a TrustStore that lives only in memory (tests, ephemeral clients).
type MemoryStore struct {
	mu  sync.Mutex
	set pinSet
}

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore { return &MemoryStore{set: pinSet{}} }

// Pins implements TrustStore.
func (m *MemoryStore) Pins(peer string) ([]Pin, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.set.pins(peer)
}

// Pin implements TrustStore.
func (m *MemoryStore) Pin(peer string, fp Fingerprint, how Verification, now time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.set.pin(peer, fp, how, now)
}

// Seen implements TrustStore.
func (m *MemoryStore) Seen(peer string, fp Fingerprint, now time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.set.seen(peer, fp, now)
}

// Unpin implements TrustStore.
func (m *MemoryStore) Unpin(peer string, fp Fingerprint) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.set.unpin(peer, fp)
}

// FileStore is a TrustStore kept in one JSON file. Every change is written atomically (a
// temporary file in the same directory with mode 0600, fsync, rename over the old file, fsync
// of the directory), so a crash leaves either the old or the new store. A file that does not
// parse, or violates the limits (16 MiB, 64 pins per peer), makes OpenFileStore fail with an
// error wrapping ErrTrustStoreCorrupt; the file is never reset or overwritten in that case.
// A FileStore is safe for concurrent use within one process; two processes must not share
// one file.
type FileStore struct {
	path string
	mu   sync.Mutex
	set  pinSet
}

// OpenFileStore opens the store at path. A missing file is an empty store; the file is
// created on the first change.
func OpenFileStore(path string) (*FileStore, error) {
	fs := &FileStore{path: path, set: pinSet{}}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return fs, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxTrustFileLen+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxTrustFileLen {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrTrustStoreCorrupt, path, maxTrustFileLen)
	}
	set, err := decodeTrust(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrTrustStoreCorrupt, path, err)
	}
	fs.set = set
	return fs, nil
}

// Pins implements TrustStore.
func (s *FileStore) Pins(peer string) ([]Pin, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.set.pins(peer)
}

// Pin implements TrustStore; the change is on disk when Pin returns nil.
func (s *FileStore) Pin(peer string, fp Fingerprint, how Verification, now time.Time) error {
	return s.update(func(set pinSet) error { return set.pin(peer, fp, how, now) })
}

// Seen implements TrustStore; the change is on disk when Seen returns nil.
func (s *FileStore) Seen(peer string, fp Fingerprint, now time.Time) error {
	return s.update(func(set pinSet) error { return set.seen(peer, fp, now) })
}

// Unpin implements TrustStore; the change is on disk when Unpin returns nil.
func (s *FileStore) Unpin(peer string, fp Fingerprint) error {
	return s.update(func(set pinSet) error { return set.unpin(peer, fp) })
}

// update applies change to a copy, writes it, and keeps it only if the write succeeded.
func (s *FileStore) update(change func(pinSet) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := s.set.clone()
	if err := change(next); err != nil {
		return err
	}
	data, err := encodeTrust(next)
	if err != nil {
		return err
	}
	if len(data) > maxTrustFileLen {
		return fmt.Errorf("xtls: trust store would exceed %d bytes", maxTrustFileLen)
	}
	if err := writeFileAtomic(s.path, data); err != nil {
		return err
	}
	s.set = next
	return nil
}

// trustFile is the on-disk format.
type trustFile struct {
	Version int                   `json:"version"`
	Peers   map[string][]trustPin `json:"peers"`
}

type trustPin struct {
	SHA256    string       `json:"sha-256"`
	Verified  Verification `json:"verified"`
	FirstSeen time.Time    `json:"first_seen"`
	LastSeen  time.Time    `json:"last_seen"`
}

func encodeTrust(set pinSet) ([]byte, error) {
	tf := trustFile{Version: 1, Peers: make(map[string][]trustPin, len(set))}
	for peer, pins := range set {
		out := make([]trustPin, 0, len(pins))
		for _, p := range pins {
			out = append(out, trustPin{SHA256: p.Fingerprint.String(), Verified: p.Verified, FirstSeen: p.FirstSeen, LastSeen: p.LastSeen})
		}
		sort.Slice(out, func(i, j int) bool { return out[i].SHA256 < out[j].SHA256 })
		tf.Peers[peer] = out
	}
	return json.MarshalIndent(tf, "", "  ")
}

func decodeTrust(data []byte) (pinSet, error) {
	d := json.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	var tf trustFile
	if err := d.Decode(&tf); err != nil {
		return nil, err
	}
	if d.More() {
		return nil, errors.New("trailing data")
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, errors.New("trailing data")
	}
	if tf.Version != 1 {
		return nil, fmt.Errorf("unknown version %d", tf.Version)
	}
	if len(tf.Peers) > maxTrustPeers {
		return nil, errors.New("too many peers")
	}
	set := make(pinSet, len(tf.Peers))
	for peer, pins := range tf.Peers {
		bare, err := BareJID(peer)
		if err != nil || bare != peer {
			return nil, fmt.Errorf("peer %.64q is not a normalised bare JID", peer)
		}
		if len(pins) == 0 || len(pins) > maxPinsPerPeer {
			return nil, fmt.Errorf("peer %.64q: %d pins", peer, len(pins))
		}
		for _, p := range pins {
			if len(p.SHA256) != 64 {
				return nil, fmt.Errorf("peer %.64q: bad fingerprint", peer)
			}
			fp, err := ParseFingerprint("sha-256", p.SHA256)
			if err != nil || fp.String() != p.SHA256 {
				return nil, fmt.Errorf("peer %.64q: bad fingerprint", peer)
			}
			if !p.Verified.valid() {
				return nil, fmt.Errorf("peer %.64q: unknown verification %.32q", peer, p.Verified)
			}
			if p.FirstSeen.IsZero() || p.LastSeen.Before(p.FirstSeen) {
				return nil, fmt.Errorf("peer %.64q: bad timestamps", peer)
			}
			for _, q := range set[peer] {
				if q.Fingerprint.Equal(fp) {
					return nil, fmt.Errorf("peer %.64q: duplicate fingerprint", peer)
				}
			}
			set[peer] = append(set[peer], Pin{Fingerprint: fp, Verified: p.Verified, FirstSeen: p.FirstSeen, LastSeen: p.LastSeen})
		}
	}
	return set, nil
}

// writeFileAtomic replaces path with data: temporary file (0600) in the same directory,
// fsync, rename, fsync of the directory.
func writeFileAtomic(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = os.Remove(tmp.Name())
		}
	}()
	if err = tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err = tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err = tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
