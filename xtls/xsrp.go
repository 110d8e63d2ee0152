package xtls

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"golang.org/x/text/secure/precis"
)

// XSRP message types (XSRP-5).
const (
	xsrpA       = 0x01 // client → server: PAD(A)
	xsrpSaltB   = 0x02 // server → client: s ‖ PAD(B)
	xsrpM1      = 0x03 // client → server: M1
	xsrpM2      = 0x04 // server → client: M2
	xsrpFailure = 0x7F // either: 1-byte failure code
)

// Failure codes carried in an XSRP failure message.
const (
	xsrpFailMalformed = 1 // unknown type, wrong length, out of order
	xsrpFailParameter = 2 // A or B illegal, u == 0 (XSRP-6)
	xsrpFailProof     = 3 // M1 or M2 did not verify (wrong password or attack)
	xsrpFailInternal  = 4 // local error (randomness, TLS state)
)

const (
	xsrpSaltLen  = 32
	xsrpProofLen = sha256.Size
	xsrpLabel    = "XTLS-SRP-v1"
	// cbLabel is the RFC 9266 tls-exporter channel binding label (CB-1).
	cbLabel = "EXPORTER-Channel-Binding"
	// xsrpSecretLen is the length of a and b: 256 random bits (SRP-7, XSRP-9).
	xsrpSecretLen = 32
	// failureWriteTimeout bounds the attempt to tell the peer about a failure.
	failureWriteTimeout = time.Second
)

// ErrXSRPFailed is wrapped by every error of an XSRP run that failed authentication: a proof
// did not verify, the peer reported a failure, or the peer sent illegal SRP values. Tell the
// user "wrong password or attack" (XSRP-8) and end the Jingle session with <security-error/>.
var ErrXSRPFailed = errors.New("xtls: password authentication failed (wrong password or attack)")

// ErrEmptyPassword is returned when the password is empty (after PRECIS preparation).
var ErrEmptyPassword = errors.New("xtls: empty password")

// xsrpMessage is one framed XSRP message (XSRP-5): type(1) | length(2, big-endian) | body.
type xsrpMessage struct {
	typ  byte
	body []byte
}

// xsrpBodyLen returns the exact body length of a message type for group grp, or -1 for an
// unknown type.
func xsrpBodyLen(grp *srpGroup, typ byte) int {
	switch typ {
	case xsrpA:
		return grp.size
	case xsrpSaltB:
		return xsrpSaltLen + grp.size
	case xsrpM1, xsrpM2:
		return xsrpProofLen
	case xsrpFailure:
		return 1
	}
	return -1
}

// parseXSRPMessage decodes one message from the start of data and returns it with the
// number of bytes used. It needs the complete message; the length must be exactly the one
// of the type (XSRP-5), so nothing unbounded is ever allocated. Errors are *ParseError.
func parseXSRPMessage(grp *srpGroup, data []byte) (xsrpMessage, int, error) {
	if len(data) < 3 {
		return xsrpMessage{}, 0, parseErrorf("xsrp: short header")
	}
	typ := data[0]
	n := int(binary.BigEndian.Uint16(data[1:3]))
	want := xsrpBodyLen(grp, typ)
	if want < 0 {
		return xsrpMessage{}, 0, parseErrorf("xsrp: unknown message type %#x", typ)
	}
	if n != want {
		return xsrpMessage{}, 0, parseErrorf("xsrp: message %#x has length %d, want %d", typ, n, want)
	}
	if len(data) < 3+n {
		return xsrpMessage{}, 0, parseErrorf("xsrp: short body")
	}
	return xsrpMessage{typ: typ, body: data[3 : 3+n]}, 3 + n, nil
}

func (m xsrpMessage) append(b []byte) []byte {
	b = append(b, m.typ, byte(len(m.body)>>8), byte(len(m.body)))
	return append(b, m.body...)
}

// readXSRP reads one message of type want (a failure message is also accepted and turned
// into an error).
func readXSRP(r io.Reader, grp *srpGroup, want byte) ([]byte, error) {
	var hdr [3]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	typ := hdr[0]
	n := int(binary.BigEndian.Uint16(hdr[1:]))
	if l := xsrpBodyLen(grp, typ); l < 0 || n != l || (typ != want && typ != xsrpFailure) {
		return nil, &xsrpAbort{code: xsrpFailMalformed, err: parseErrorf("xsrp: unexpected message %#x (length %d), want %#x", typ, n, want)}
	}
	buf := make([]byte, 3+n)
	copy(buf, hdr[:])
	if _, err := io.ReadFull(r, buf[3:]); err != nil {
		return nil, err
	}
	m, _, err := parseXSRPMessage(grp, buf)
	if err != nil {
		return nil, &xsrpAbort{code: xsrpFailMalformed, err: err}
	}
	if m.typ == xsrpFailure {
		return nil, fmt.Errorf("%w: peer reported failure code %d", ErrXSRPFailed, m.body[0])
	}
	return m.body, nil
}

// xsrpAbort is a local failure that is reported to the peer before returning.
type xsrpAbort struct {
	code byte
	err  error
}

func (e *xsrpAbort) Error() string { return e.err.Error() }
func (e *xsrpAbort) Unwrap() error { return e.err }

// xsrpSession is the state shared by both roles.
type xsrpSession struct {
	grp      *srpGroup
	conn     *tls.Conn
	identity []byte // I: normalised bare JID of the initiator
	password []byte // P after PRECIS OpaqueString
	cb       []byte // tls-exporter, 32 bytes
	fpC, fpS Fingerprint
}

// ClientXSRP runs the client (Jingle initiator) side of XSRP (SPEC §18.4) on conn, which must
// come from tls.Client with ClientConfig(…, MethodSRP, …). It completes the handshake if
// needed. initiator is the initiator's (our) JID — the SRP identity I, reduced to its
// normalised bare form (XSRP-3); local is the identity whose certificate conn presented.
//
// On success it returns the fingerprint of the responder's certificate, which the caller
// pins for the responder's bare JID with VerifiedSRP (XSRP-8); from then on the transport is
// secured (XTLS-D6) and, because M2 authenticates the responder, GO-7 is satisfied. On
// failure it has sent the XSRP failure message where possible and returns an error; errors
// from authentication wrap ErrXSRPFailed. The caller closes conn in either failure case.
// ctx bounds the whole run, handshake included: when it is done, pending I/O on conn is
// interrupted and the context's error is returned.
func ClientXSRP(ctx context.Context, conn *tls.Conn, local *Identity, initiator, password string) (Fingerprint, error) {
	return runXSRP(ctx, conn, rfc5054Group3072, local, initiator, password, true)
}

// ServerXSRP runs the server (Jingle responder) side of XSRP on conn, which must come from
// tls.Server with ServerConfig(…, MethodSRP, …). initiator is the peer's JID (the SRP identity
// I). It returns the fingerprint of the initiator's certificate for pinning on success; see
// ClientXSRP for errors. The responder has verified M1 before it sends M2, so on success it
// knows the initiator proved the password over this very TLS connection.
func ServerXSRP(ctx context.Context, conn *tls.Conn, local *Identity, initiator, password string) (Fingerprint, error) {
	return runXSRP(ctx, conn, rfc5054Group3072, local, initiator, password, false)
}

func runXSRP(ctx context.Context, conn *tls.Conn, grp *srpGroup, local *Identity, initiator, password string, client bool) (fp Fingerprint, err error) {
	if local == nil {
		return Fingerprint{}, errors.New("xtls: XSRP needs the local identity")
	}
	if password == "" {
		return Fingerprint{}, ErrEmptyPassword
	}
	p, err := precis.OpaqueString.Bytes([]byte(password))
	if err != nil {
		return Fingerprint{}, fmt.Errorf("xtls: password not allowed by PRECIS OpaqueString: %w", err)
	}
	if len(p) == 0 {
		return Fingerprint{}, ErrEmptyPassword
	}
	defer clear(p)
	I, err := BareJID(initiator)
	if err != nil {
		return Fingerprint{}, err
	}

	stop := bindContext(ctx, conn)
	defer stop()

	if err := conn.HandshakeContext(ctx); err != nil {
		return Fingerprint{}, err
	}
	cs := conn.ConnectionState()
	if cs.Version != tls.VersionTLS13 {
		return Fingerprint{}, errors.New("xtls: XSRP needs TLS 1.3")
	}
	peer, err := PeerFingerprint(cs)
	if err != nil {
		return Fingerprint{}, err
	}
	cb, err := cs.ExportKeyingMaterial(cbLabel, []byte{}, 32)
	if err != nil {
		return Fingerprint{}, err
	}
	s := &xsrpSession{grp: grp, conn: conn, identity: []byte(I), password: p, cb: cb}
	if client {
		s.fpC, s.fpS = local.Fingerprint(), peer
		err = s.client()
	} else {
		s.fpC, s.fpS = peer, local.Fingerprint()
		err = s.server()
	}
	if err != nil {
		var f *xsrpAbort
		if errors.As(err, &f) {
			// Best effort, bounded: the peer may not be reading (ERR-12). The connection is
			// unusable afterwards anyway; the caller closes it.
			if d, ok := ctx.Deadline(); !ok || time.Until(d) > failureWriteTimeout {
				_ = conn.SetWriteDeadline(time.Now().Add(failureWriteTimeout))
			}
			_ = s.send(xsrpFailure, []byte{f.code})
			if f.code == xsrpFailParameter || f.code == xsrpFailProof {
				return Fingerprint{}, fmt.Errorf("%w: %v", ErrXSRPFailed, f.err)
			}
		}
		if ctxErr := ctx.Err(); ctxErr != nil && isTimeout(err) {
			return Fingerprint{}, ctxErr
		}
		return Fingerprint{}, err
	}
	return peer, nil
}

// bindContext makes ctx's cancellation and deadline interrupt I/O on conn (the net/http
// trick: a past deadline unblocks pending reads and writes). It does not touch deadlines the
// caller set while ctx is live; once ctx is done the connection is unusable anyway.
func bindContext(ctx context.Context, conn net.Conn) func() {
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	return func() { stop() }
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func (s *xsrpSession) send(typ byte, body []byte) error {
	_, err := s.conn.Write(xsrpMessage{typ: typ, body: body}.append(nil))
	return err
}

// transcript builds T = "XTLS-SRP-v1" ‖ cb ‖ fpC ‖ fpS ‖ H(I) ‖ s ‖ PAD(A) ‖ PAD(B) (XSRP-7).
func (s *xsrpSession) transcript(salt, A, B []byte) []byte {
	t := make([]byte, 0, len(xsrpLabel)+len(s.cb)+2*sha256.Size+s.grp.hash().Size()+len(salt)+len(A)+len(B))
	t = append(t, xsrpLabel...)
	t = append(t, s.cb...)
	t = append(t, s.fpC.digest[:]...)
	t = append(t, s.fpS.digest[:]...)
	t = append(t, s.grp.h(s.identity)...)
	t = append(t, salt...)
	t = append(t, A...)
	return append(t, B...)
}

// proofs returns M1 = HMAC(K, "client" ‖ T) and M2 = HMAC(K, "server" ‖ T ‖ M1) with
// K = H(PAD(S)) (XSRP-7). S and K are zeroed.
func (s *xsrpSession) proofs(S, T []byte) (m1, m2 []byte) {
	K := s.grp.h(S)
	defer clear(K)
	mac := hmac.New(sha256.New, K)
	mac.Write([]byte("client"))
	mac.Write(T)
	m1 = mac.Sum(nil)
	mac = hmac.New(sha256.New, K)
	mac.Write([]byte("server"))
	mac.Write(T)
	mac.Write(m1)
	return m1, mac.Sum(nil)
}

func randomSecret(n int) ([]byte, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return nil, &xsrpAbort{code: xsrpFailInternal, err: err}
	}
	return b, nil
}

func isZero(b []byte) bool {
	var acc byte
	for _, c := range b {
		acc |= c
	}
	return acc == 0
}

func (s *xsrpSession) client() error {
	a, err := randomSecret(xsrpSecretLen)
	if err != nil {
		return err
	}
	defer clear(a)
	A := s.grp.publicA(a)
	if err := s.send(xsrpA, A); err != nil {
		return err
	}
	sb, err := readXSRP(s.conn, s.grp, xsrpSaltB)
	if err != nil {
		return err
	}
	salt, B := sb[:xsrpSaltLen], sb[xsrpSaltLen:]
	if err := s.grp.checkPublic(B); err != nil { // XSRP-6: B % N == 0 or B ≥ N
		return &xsrpAbort{code: xsrpFailParameter, err: errors.New("illegal B from server")}
	}
	u := s.grp.u(A, B)
	if isZero(u) {
		return &xsrpAbort{code: xsrpFailParameter, err: errors.New("u == 0")}
	}
	x := s.grp.x(salt, s.identity, s.password)
	defer clear(x)
	S, err := s.grp.clientS(B, a, u, x)
	if err != nil {
		return &xsrpAbort{code: xsrpFailParameter, err: err}
	}
	defer clear(S)
	m1, m2 := s.proofs(S, s.transcript(salt, A, B))
	if err := s.send(xsrpM1, m1); err != nil {
		return err
	}
	got, err := readXSRP(s.conn, s.grp, xsrpM2)
	if err != nil {
		return err
	}
	if !hmac.Equal(got, m2) {
		return &xsrpAbort{code: xsrpFailProof, err: errors.New("server proof M2 did not verify")}
	}
	return nil
}

func (s *xsrpSession) server() error {
	A, err := readXSRP(s.conn, s.grp, xsrpA)
	if err != nil {
		return err
	}
	if err := s.grp.checkPublic(A); err != nil { // XSRP-6: A % N == 0 or A ≥ N
		return &xsrpAbort{code: xsrpFailParameter, err: errors.New("illegal A from client")}
	}
	salt, err := randomSecret(xsrpSaltLen)
	if err != nil {
		return err
	}
	b, err := randomSecret(xsrpSecretLen)
	if err != nil {
		return err
	}
	defer clear(b)
	x := s.grp.x(salt, s.identity, s.password)
	defer clear(x)
	v := s.grp.verifier(x) // v is computed per session from the shared password (XSRP-3)
	defer wipe(v)
	B := s.grp.publicB(v, b)
	u := s.grp.u(A, B)
	if isZero(u) {
		return &xsrpAbort{code: xsrpFailParameter, err: errors.New("u == 0")}
	}
	if err := s.send(xsrpSaltB, append(append([]byte(nil), salt...), B...)); err != nil {
		return err
	}
	S, err := s.grp.serverS(A, v, u, b)
	if err != nil {
		return &xsrpAbort{code: xsrpFailParameter, err: err}
	}
	defer clear(S)
	m1, m2 := s.proofs(S, s.transcript(salt, A, B))
	got, err := readXSRP(s.conn, s.grp, xsrpM1)
	if err != nil {
		return err
	}
	if !hmac.Equal(got, m1) {
		return &xsrpAbort{code: xsrpFailProof, err: errors.New("client proof M1 did not verify")}
	}
	return s.send(xsrpM2, m2)
}
