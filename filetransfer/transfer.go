package filetransfer

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/xtlsjingle/xtlsjingle/jingle"
)

// Errors of a transfer. Errors of the peer's termination are *TerminatedError.
var (
	// ErrPlaintext: the bytestream is not secured by TLS and the user did not allow a plaintext
	// transfer for this transfer (issue 8: never silently).
	ErrPlaintext = errors.New("filetransfer: bytestream is not encrypted and plaintext was not allowed for this transfer")
	// ErrHashMismatch: the received file does not match the hash of the offer or checksum.
	ErrHashMismatch = errors.New("filetransfer: hash mismatch")
	// ErrNoHash: no hash this package can compute arrived in time (and AllowUnverified is false).
	ErrNoHash = errors.New("filetransfer: no verifiable hash")
	// ErrSizeMismatch: the sender sent more or fewer bytes than the offered size.
	ErrSizeMismatch = errors.New("filetransfer: size differs from the offer")
	// ErrTooLarge: the offered size exceeds the receiver's limit.
	ErrTooLarge = errors.New("filetransfer: file larger than the receiver's limit")
	// ErrBadName: the offered name is empty, hidden, or would leave the download directory.
	ErrBadName = errors.New("filetransfer: file name refused")
	// ErrExists: a file of that name already exists in the download directory.
	ErrExists = errors.New("filetransfer: file already exists")
)

// TerminatedError reports how a session ended when it did not end with <success/>.
type TerminatedError struct {
	Condition jingle.Condition
	Text      string
	ByPeer    bool
}

// Error implements error.
func (e *TerminatedError) Error() string {
	who := "we"
	if e.ByPeer {
		who = "peer"
	}
	s := fmt.Sprintf("filetransfer: session terminated by %s: %s", who, e.Condition)
	if e.Text != "" {
		s += " (" + e.Text + ")"
	}
	return s
}

// Progress is reported while bytes flow: Done of Total bytes (Total includes a resumed prefix).
type Progress struct {
	Done, Total int64
}

// SendOptions configures Send.
type SendOptions struct {
	// AllowPlaintext allows sending over a bytestream that is not a completed TLS connection.
	// It must come from the user for this one transfer; the default refuses (security-error).
	AllowPlaintext bool
	// Progress, if set, is called after every chunk written.
	Progress func(Progress)
	// FinishTimeout bounds the wait for the receiver's session-terminate after the last byte
	// (default 30 s).
	FinishTimeout time.Duration
}

// ReceiveOptions configures Receive and CheckOffer.
type ReceiveOptions struct {
	// Dir is the download directory; nothing is written outside it (os.Root).
	Dir string
	// MaxSize refuses offers larger than this many bytes (0: no limit).
	MaxSize int64
	// AllowPlaintext allows receiving over a bytestream that is not a completed TLS connection
	// (the user's explicit choice for this transfer; default false).
	AllowPlaintext bool
	// AllowUnverified keeps a file for which no hash this package can compute arrived
	// (e.g. an offer with only blake2b-256 and no checksum). Default false: such a file is refused with ErrNoHash.
	AllowUnverified bool
	// Progress, if set, is called after every chunk written to disk.
	Progress func(Progress)
	// ChecksumTimeout bounds the wait for a checksum session-info after the last byte when the
	// offer carried no usable hash (default 10 s).
	ChecksumTimeout time.Duration
}

// Result describes a received file.
type Result struct {
	Path   string // final path, inside Dir
	Size   int64
	SHA256 []byte
	// Verified names the algorithm the file was verified with ("" when AllowUnverified kept an
	// unverified file).
	Verified string
}

const chunk = 32 << 10

// secured reports whether conn is a TLS connection whose handshake completed (the XTLS
// bytestream, *tls.Conn or a wrapper that exposes ConnectionState).
func secured(conn net.Conn) bool {
	c, ok := conn.(interface{ ConnectionState() tls.ConnectionState })
	return ok && c.ConnectionState().HandshakeComplete
}

// ValidName reports whether name may be created in a download directory: a single local path
// element, valid UTF-8 without control characters, invisible format characters (Unicode
// category Cf: bidi controls such as U+202E RIGHT-TO-LEFT OVERRIDE, which make "gpj.exe"
// look like "exe.jpg", zero-width characters U+200B..U+200F, isolates U+2066..U+2069,
// U+FEFF), the line and paragraph separators U+2028 and U+2029 (a line break to many
// programs: a name that fakes a second line) or path separators, not hidden (a leading '.',
// which also keeps it apart from our temporary files) and short enough that its temporary
// name ".<name>.part" fits in 255 bytes.
func ValidName(name string) bool {
	if name == "" || len(name) > maxNameBytes-len(partName("")) || !utf8.ValidString(name) || name[0] == '.' ||
		strings.ContainsAny(name, `/\:`) || !filepath.IsLocal(name) || filepath.Base(name) != name {
		return false
	}
	for _, r := range name {
		if unicode.IsControl(r) || unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp) || r == unicode.ReplacementChar {
			return false
		}
	}
	return true
}

func partName(name string) string { return "." + name + ".part" }

// CheckOffer decides whether an offer can be received with opts before the session is accepted:
// the name must be valid (ValidName), the size known and within MaxSize, the name not taken.
// It returns ErrBadName, ErrTooLarge or ErrExists, and the offset of a partial earlier download
// of the same name that can be resumed (put it in the accepted description as Range{Offset}).
func CheckOffer(offer *File, opts ReceiveOptions) (resume int64, err error) {
	if !ValidName(offer.Name) {
		return 0, ErrBadName
	}
	if offer.Size < 0 {
		return 0, &Error{Condition: "bad-request", Text: "offer without size"}
	}
	if opts.MaxSize > 0 && offer.Size > opts.MaxSize {
		return 0, ErrTooLarge
	}
	root, err := os.OpenRoot(opts.Dir)
	if err != nil {
		return 0, err
	}
	defer root.Close()
	if _, err := root.Lstat(offer.Name); err == nil {
		return 0, ErrExists
	}
	if fi, err := root.Lstat(partName(offer.Name)); err == nil && fi.Mode().IsRegular() && fi.Size() <= offer.Size {
		return fi.Size(), nil
	}
	return 0, nil
}

// ReasonFor maps a refusal of CheckOffer or an error of Receive/Send to the reason of the
// session-terminate that reports it.
func ReasonFor(err error) jingle.Condition {
	var te *TerminatedError
	switch {
	case err == nil:
		return jingle.Success
	case errors.As(err, &te):
		return te.Condition
	case errors.Is(err, ErrPlaintext):
		return jingle.SecurityError
	case errors.Is(err, ErrHashMismatch), errors.Is(err, ErrSizeMismatch), errors.Is(err, ErrNoHash):
		return jingle.MediaError
	case errors.Is(err, ErrTooLarge), errors.Is(err, ErrBadName), errors.Is(err, ErrExists), errors.Is(err, ErrBadRequest):
		return jingle.Decline
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return jingle.Cancel
	}
	return jingle.FailedApplication
}

// watcher reads the session's events for the duration of a transfer: it collects checksums
// for the content, closes conn when the peer ends the session, and ends with the session.
type watcher struct {
	content   string
	conn      net.Conn
	checksums chan []Hash
	done      chan struct{}
}

func watch(s *jingle.Session, content string, conn net.Conn) *watcher {
	w := &watcher{content: content, conn: conn, checksums: make(chan []Hash, 4), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for ev := range s.Events() {
			switch ev.Action {
			case jingle.SessionTerminate:
				conn.Close()
			case jingle.SessionInfo:
				v, err := ParseInfo(ev.Info)
				if err != nil {
					continue
				}
				if c, ok := v.(*Checksum); ok && c.Name == content {
					select {
					case w.checksums <- c.Hashes:
					default:
					}
				}
			}
		}
	}()
	return w
}

// end terminates the session with the reason for err (unless it already ended), waits for
// the watcher, and returns the error to report: the peer's reason if the peer ended it first.
func end(s *jingle.Session, w *watcher, err error) error {
	select {
	case <-s.Done():
	default:
		r := &jingle.Reason{Condition: ReasonFor(err)}
		if err != nil && r.Condition != jingle.Cancel {
			r.Text = err.Error()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		s.Terminate(ctx, r)
		cancel()
	}
	w.conn.Close()
	<-w.done
	if r, byPeer := s.Reason(); byPeer && r != nil && r.Condition != jingle.Success {
		if err == nil || !errors.Is(err, context.Canceled) {
			return &TerminatedError{Condition: r.Condition, Text: r.Text, ByPeer: true}
		}
	}
	return err
}

// onCancel terminates the session with <cancel/> and closes conn (unblocking reads and
// writes) when ctx ends; the returned func stops that and waits for it if it started.
func onCancel(ctx context.Context, s *jingle.Session, conn net.Conn) func() {
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(fired)
		tctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		s.Terminate(tctx, &jingle.Reason{Condition: jingle.Cancel})
		cancel()
		conn.Close()
	})
	return func() {
		if !stop() {
			<-fired
		}
	}
}

// contentCreator returns the creator of the content named name.
func contentCreator(s *jingle.Session, name string) (jingle.Creator, *File) {
	for _, c := range s.Contents() {
		if c.Name == name {
			f, _ := ParseDescription(c.Description)
			return c.Creator, f
		}
	}
	return "", nil
}

// Send sends the file offered as f in the content named content of the active session s over
// conn, the bytestream that s.Establish returned (wrapped in TLS by the security layer). src
// yields the whole file from its start; a range offset the receiver asked for in its
// session-accept (a resumed download) is skipped but hashed. After the last byte Send sends a
// checksum session-info with the SHA-256 of the whole file (XEP-0234 §7.1), closes conn and
// waits for the receiver's session-terminate: <success/> gives nil. Send owns s.Events() until
// it returns. Cancelling ctx terminates the session with <cancel/>.
func Send(ctx context.Context, s *jingle.Session, content string, conn net.Conn, src io.Reader, f *File, opts SendOptions) error {
	w := watch(s, content, conn)
	if !secured(conn) && !opts.AllowPlaintext {
		return end(s, w, ErrPlaintext)
	}
	defer onCancel(ctx, s, conn)()
	creator, accepted := contentCreator(s, content)
	var offset int64
	if accepted != nil && accepted.Range != nil {
		offset = accepted.Range.Offset
	}
	if offset > f.Size {
		return end(s, w, &Error{Condition: "bad-request", Text: "range offset beyond the size"})
	}
	h := sha256.New()
	if _, err := io.CopyN(h, src, offset); err != nil {
		return end(s, w, fmt.Errorf("filetransfer: reading the source: %w", err))
	}
	done := offset
	buf := make([]byte, chunk)
	for done < f.Size {
		n := int64(len(buf))
		if f.Size-done < n {
			n = f.Size - done
		}
		m, err := io.ReadFull(src, buf[:n])
		if err != nil {
			return end(s, w, fmt.Errorf("filetransfer: reading the source: %w", err))
		}
		h.Write(buf[:m])
		if _, err := conn.Write(buf[:m]); err != nil {
			if ctx.Err() != nil {
				return end(s, w, ctx.Err())
			}
			return end(s, w, fmt.Errorf("filetransfer: writing: %w", err))
		}
		done += int64(m)
		if opts.Progress != nil {
			opts.Progress(Progress{Done: done, Total: f.Size})
		}
	}
	sum := h.Sum(nil)
	if len(f.Hashes) > 0 { // our own offer lies only if src changed under us
		for _, oh := range f.Hashes {
			if oh.Algo == "sha-256" && subtle.ConstantTimeCompare(oh.Value, sum) != 1 {
				return end(s, w, fmt.Errorf("%w: the source changed since the offer", ErrHashMismatch))
			}
		}
	}
	ck, err := (&Checksum{Creator: string(creator), Name: content, Hashes: []Hash{{Algo: "sha-256", Value: sum}},
		HexDigests: f.HexDigests}).Marshal()
	if err != nil {
		return end(s, w, err)
	}
	if err := s.Info(ctx, ck); err != nil && ctx.Err() != nil {
		return end(s, w, ctx.Err())
	}
	if err := conn.Close(); err != nil && ctx.Err() == nil {
		return end(s, w, fmt.Errorf("filetransfer: closing the bytestream: %w", err))
	}
	timeout := opts.FinishTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-s.Done():
		<-w.done
		r, byPeer := s.Reason()
		if byPeer && r != nil && r.Condition == jingle.Success {
			return nil
		}
		return end(s, w, nil)
	case <-ctx.Done():
		return end(s, w, ctx.Err())
	case <-t.C:
		return end(s, w, &TerminatedError{Condition: jingle.Timeout, Text: "no answer from the receiver"})
	}
}

// Receive receives the file offer in the content named content of the active session s over
// conn into opts.Dir: the bytes go to a temporary file ".<name>.part" (kept on cancel and
// on connection loss, so a later offer of the same name resumes from its length, see
// CheckOffer), are hashed on the way, and after exactly offer.Size bytes the SHA-256 (or
// another standard-library hash) is compared with the offer's hash or with the checksum
// session-info; only a match is moved to its final name (no existing file is replaced).
// Then Receive sends <received/> and terminates with <success/>. A mismatch, a lying size or a
// missing hash terminate with <media-error/>; ctx cancellation with <cancel/>. Receive owns
// s.Events() until it returns; the jingle Manager must list NS in Config.InfoNamespaces.
func Receive(ctx context.Context, s *jingle.Session, content string, conn net.Conn, offer *File, opts ReceiveOptions) (*Result, error) {
	w := watch(s, content, conn)
	if !secured(conn) && !opts.AllowPlaintext {
		return nil, end(s, w, ErrPlaintext)
	}
	if _, err := CheckOffer(offer, opts); err != nil {
		return nil, end(s, w, err)
	}
	defer onCancel(ctx, s, conn)()
	creator, accepted := contentCreator(s, content)
	var offset int64
	if accepted != nil && accepted.Range != nil {
		offset = accepted.Range.Offset
	}
	root, err := os.OpenRoot(opts.Dir)
	if err != nil {
		return nil, end(s, w, err)
	}
	defer root.Close()
	part := partName(offer.Name)
	tmp, err := root.OpenFile(part, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, end(s, w, err)
	}
	keep := true // the partial file survives unless it is known bad
	defer func() {
		tmp.Close()
		if !keep {
			root.Remove(part)
		}
	}()
	fi, err := tmp.Stat()
	if err != nil || !fi.Mode().IsRegular() || fi.Size() < offset {
		return nil, end(s, w, fmt.Errorf("filetransfer: partial file shorter than the resumed range"))
	}
	if err := tmp.Truncate(offset); err != nil {
		return nil, end(s, w, err)
	}
	// The hashes we compute: sha-256 always, plus what the offer names and we can compute.
	hashes := map[string]hash.Hash{"sha-256": sha256.New()}
	for _, oh := range offer.Hashes {
		if hh := newHash(oh.Algo); hh != nil {
			hashes[oh.Algo] = hh
		}
	}
	writers := []io.Writer{}
	for _, hh := range hashes {
		writers = append(writers, hh)
	}
	hw := io.MultiWriter(writers...)
	if _, err := io.Copy(hw, io.NewSectionReader(tmp, 0, offset)); err != nil {
		return nil, end(s, w, err)
	}
	if _, err := tmp.Seek(offset, io.SeekStart); err != nil {
		return nil, end(s, w, err)
	}
	done := offset
	buf := make([]byte, chunk)
	for done < offer.Size {
		n := int64(len(buf))
		if offer.Size-done < n {
			n = offer.Size - done
		}
		m, rerr := conn.Read(buf[:n])
		if m > 0 {
			if _, err := tmp.Write(buf[:m]); err != nil {
				return nil, end(s, w, err)
			}
			hw.Write(buf[:m])
			done += int64(m)
			if opts.Progress != nil {
				opts.Progress(Progress{Done: done, Total: offer.Size})
			}
		}
		if rerr != nil {
			if ctx.Err() != nil {
				return nil, end(s, w, ctx.Err())
			}
			// The stream ended early: if the peer is ending the session (its terminate may
			// arrive after the bytestream's close), report its reason. The partial file stays
			// for a resumed transfer, which is verified by hash like any other.
			t := time.NewTimer(2 * time.Second)
			select {
			case <-w.done:
			case <-t.C:
			}
			t.Stop()
			if rerr == io.EOF {
				return nil, end(s, w, fmt.Errorf("%w: %d of %d bytes", ErrSizeMismatch, done, offer.Size))
			}
			return nil, end(s, w, fmt.Errorf("filetransfer: reading: %w", rerr))
		}
	}
	// Exactly Size bytes: anything more is a lying size.
	var one [1]byte
	if n, _ := io.ReadFull(conn, one[:]); n > 0 {
		keep = false
		return nil, end(s, w, fmt.Errorf("%w: more than %d bytes", ErrSizeMismatch, offer.Size))
	}
	if err := tmp.Sync(); err != nil {
		return nil, end(s, w, err)
	}
	sums := map[string][]byte{}
	for a, hh := range hashes {
		sums[a] = hh.Sum(nil)
	}
	verified, err := verify(sums, offer.Hashes)
	if err == nil && verified == "" {
		// Wait for a checksum session-info.
		timeout := opts.ChecksumTimeout
		if timeout <= 0 {
			timeout = 10 * time.Second
		}
		t := time.NewTimer(timeout)
		defer t.Stop()
	wait:
		for {
			select {
			case hs := <-w.checksums:
				verified, err = verify(sums, hs)
				if err != nil || verified != "" {
					break wait
				}
			case <-t.C:
				break wait
			case <-ctx.Done():
				return nil, end(s, w, ctx.Err())
			case <-w.done:
				return nil, end(s, w, errors.New("filetransfer: session ended before the checksum"))
			}
		}
	}
	// A checksum that arrived anyway must agree as well.
	for err == nil {
		select {
		case hs := <-w.checksums:
			var v string
			v, err = verify(sums, hs)
			if verified == "" {
				verified = v
			}
			continue
		default:
		}
		break
	}
	if err != nil {
		keep = false
		return nil, end(s, w, err)
	}
	if verified == "" && !opts.AllowUnverified {
		keep = false
		return nil, end(s, w, ErrNoHash)
	}
	tmp.Close()
	if err := place(root, part, offer.Name); err != nil {
		return nil, end(s, w, err)
	}
	keep = true
	rc := &Received{Creator: string(creator), Name: content}
	ictx, cancel := context.WithTimeout(ctx, 10*time.Second)
	s.Info(ictx, rc.Marshal()) // informational; the file is already in place
	cancel()
	if err := end(s, w, nil); err != nil {
		return nil, err
	}
	return &Result{Path: filepath.Join(opts.Dir, offer.Name), Size: offer.Size, SHA256: sums["sha-256"], Verified: verified}, nil
}

// verify compares the computed sums with the given hashes: ErrHashMismatch if one we computed
// differs, otherwise the strongest algorithm that matched ("" if none applied).
func verify(sums map[string][]byte, hs []Hash) (string, error) {
	verified := ""
	for _, h := range hs {
		sum, ok := sums[h.Algo]
		if !ok {
			continue
		}
		if subtle.ConstantTimeCompare(sum, h.Value) != 1 {
			return "", fmt.Errorf("%w (%s)", ErrHashMismatch, h.Algo)
		}
		if verified == "" || digestSize(h.Algo) > digestSize(verified) {
			verified = h.Algo
		}
	}
	return verified, nil
}

// place moves the verified temporary file to its final name without replacing an existing
// file (a hard link is atomic and fails if the name exists; a rename is the fallback on file
// systems without links, after checking the name is free).
func place(root *os.Root, part, name string) error {
	if err := root.Link(part, name); err == nil {
		return root.Remove(part)
	} else if errors.Is(err, fs.ErrExist) {
		return ErrExists
	}
	if _, err := root.Lstat(name); err == nil {
		return ErrExists
	}
	return root.Rename(part, name)
}
