package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/xtlsjingle/xtlsjingle/xtls"
)

// Environment variables read by xtlschat. Secrets never come from the command line, where
// other users of the machine can read them (ps, /proc/*/cmdline).
const (
	envPassword       = "XTLSCHAT_PASSWORD"        // the XMPP account password
	envSharedPassword = "XTLSCHAT_SHARED_PASSWORD" // the one-time password for srp sessions
	envConfigDir      = "XTLSCHAT_CONFIG_DIR"      // overrides the default config directory
)

const (
	identityFile = "identity.pem" // our certificate and private key (secret)
	pinsFile     = "pins.json"    // the trust store
	maxSecret    = 4 << 10        // bytes read from a password file
)

// defaultConfigDir returns os.UserConfigDir()/xtlschat, or $XTLSCHAT_CONFIG_DIR when set.
func defaultConfigDir(getenv func(string) string) (string, error) {
	if d := getenv(envConfigDir); d != "" {
		return d, nil
	}
	d, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("no config directory (%v): pass --config-dir DIR", err)
	}
	return filepath.Join(d, "xtlschat"), nil
}

// accountDir returns the directory of the account bare under root: root/<bare JID>. Bare JIDs
// cannot contain '/', but a name the server would never hand out must not escape root either.
func accountDir(root, bare string) (string, error) {
	if bare == "" || strings.HasPrefix(bare, ".") || strings.ContainsAny(bare, "/\\\x00") {
		return "", fmt.Errorf("%q cannot name a directory", bare)
	}
	return filepath.Join(root, bare), nil
}

// ensurePrivateDir creates dir (and its parents) with mode 0700, and tightens the mode of an
// existing dir that others could read: identity.pem holds a private key.
func ensurePrivateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("cannot create the config directory: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("cannot make %s private (chmod 700): %w", dir, err)
		}
	}
	return nil
}

// store is what xtlschat keeps on disk for one account.
type store struct {
	dir      string
	identity *xtls.Identity
	trust    *xtls.FileStore
	created  bool // the identity was generated now
}

// openStore loads (or on first use creates) the identity of bare and opens its trust store
// under root/<bare JID>/, mode 0700 directory, 0600 files.
func openStore(root, bare string) (*store, error) {
	dir, err := accountDir(root, bare)
	if err != nil {
		return nil, err
	}
	if err := ensurePrivateDir(dir); err != nil {
		return nil, err
	}
	s := &store{dir: dir}
	idPath := filepath.Join(dir, identityFile)
	data, err := os.ReadFile(idPath)
	switch {
	case err == nil:
		if fi, err := os.Stat(idPath); err == nil && fi.Mode().Perm()&0o077 != 0 {
			return nil, fmt.Errorf("%s is readable by other users; its private key may be known to them: run chmod 600 %s, or delete it to create a new identity (peers must then verify you again)", idPath, idPath)
		}
		s.identity, err = xtls.LoadIdentity(data)
		if err != nil {
			return nil, fmt.Errorf("cannot load %s: %w (move it away to create a new identity; peers must then verify you again)", idPath, err)
		}
		if s.identity.JID() != bare {
			return nil, fmt.Errorf("%s belongs to %s, not %s", idPath, s.identity.JID(), bare)
		}
	case errors.Is(err, fs.ErrNotExist):
		s.identity, err = xtls.NewIdentity(bare, xtls.KeyEd25519)
		if err != nil {
			return nil, err
		}
		pemData, err := s.identity.MarshalPEM()
		if err != nil {
			return nil, err
		}
		if err := writeFileAtomic(idPath, pemData); err != nil {
			return nil, fmt.Errorf("cannot save the new identity: %w", err)
		}
		s.created = true
	default:
		return nil, err
	}
	s.trust, err = xtls.OpenFileStore(filepath.Join(dir, pinsFile))
	if err != nil {
		return nil, fmt.Errorf("%w (the file is left as it is; move it away to start with no pins)", err)
	}
	return s, nil
}

// writeFileAtomic writes data to path with mode 0600 through a temporary file and a rename,
// so that a crash leaves the old file or the new one, never half of one.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after the rename
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// readSecretFile reads a password from path: the first line, without its line ending. The
// file must not be readable by others.
func readSecretFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("%s is readable by other users: run chmod 600 %s", path, path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxSecret+1))
	if err != nil {
		return "", err
	}
	if len(data) > maxSecret {
		return "", fmt.Errorf("%s is longer than %d bytes; it should hold one password", path, maxSecret)
	}
	if i := bytes.IndexByte(data, '\n'); i >= 0 {
		data = data[:i]
	}
	data = bytes.TrimSuffix(data, []byte("\r"))
	if len(data) == 0 {
		return "", fmt.Errorf("%s is empty", path)
	}
	return string(data), nil
}
