package xtls

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"hash"
	"math/big"
	"strings"

	"filippo.io/bigmod"
)

// srpGroup is an SRP-6a group with its hash function (SPEC §14, XSRP-2). The math is
// parameterised by (N, g, H) so that the RFC 5054 Appendix B vectors (SHA-1, 1024-bit group)
// run through exactly the code that XSRP uses with SHA-256 and the 3072-bit group.
//
// All exponentiations with secret exponents (a, b, x) use filippo.io/bigmod, whose Exp is
// constant time in the exponent value (GO-4); math/big is used only on public values (A, B,
// range checks).
type srpGroup struct {
	n    *bigmod.Modulus
	nBig *big.Int
	g    *bigmod.Nat
	gBig *big.Int
	size int // len(PAD(x)) in bytes
	hash func() hash.Hash
	k    *bigmod.Nat
}

func newSRPGroup(nHex string, g int64, h func() hash.Hash) *srpGroup {
	nb, err := hex.DecodeString(strings.Join(strings.Fields(nHex), ""))
	if err != nil {
		panic(err)
	}
	m, err := bigmod.NewModulus(nb)
	if err != nil {
		panic(err)
	}
	grp := &srpGroup{n: m, nBig: new(big.Int).SetBytes(nb), gBig: big.NewInt(g), size: len(nb), hash: h}
	grp.g, err = bigmod.NewNat().SetBytes(big.NewInt(g).Bytes(), m)
	if err != nil {
		panic(err)
	}
	// k = H(N | PAD(g))
	kb := grp.h(nb, grp.pad(grp.gBig.Bytes()))
	grp.k, err = bigmod.NewNat().SetOverflowingBytes(kb, m)
	if err != nil {
		panic(err)
	}
	return grp
}

// rfc5054Group3072 is the RFC 5054 Appendix A 3072-bit group (the RFC 3526 MODP prime,
// g = 5) with H = SHA-256: the XSRP production group (XSRP-2).
var rfc5054Group3072 = newSRPGroup(`
	FFFFFFFF FFFFFFFF C90FDAA2 2168C234 C4C6628B 80DC1CD1 29024E08 8A67CC74 020BBEA6 3B139B22
	514A0879 8E3404DD EF9519B3 CD3A431B 302B0A6D F25F1437 4FE1356D 6D51C245 E485B576 625E7EC6
	F44C42E9 A637ED6B 0BFF5CB6 F406B7ED EE386BFB 5A899FA5 AE9F2411 7C4B1FE6 49286651 ECE45B3D
	C2007CB8 A163BF05 98DA4836 1C55D39A 69163FA8 FD24CF5F 83655D23 DCA3AD96 1C62F356 208552BB
	9ED52907 7096966D 670C354E 4ABC9804 F1746C08 CA18217C 32905E46 2E36CE3B E39E772C 180E8603
	9B2783A2 EC07A28F B5C55DF0 6F4C52C9 DE2BCBF6 95581718 3995497C EA956AE5 15D22618 98FA0510
	15728E5A 8AAAC42D AD33170D 04507A33 A85521AB DF1CBA64 ECFB8504 58DBEF0A 8AEA7157 5D060C7D
	B3970F85 A6E1E4C7 ABF5AE8C DB0933D7 1E8C94E0 4A25619D CEE3D226 1AD2EE6B F12FFA06 D98A0864
	D8760273 3EC86A64 521F2B18 177B200C BBE11757 7A615D6C 770988C0 BAD946E2 08E24FA0 74E5AB31
	43DB5BFC E0FD108E 4B82D120 A93AD2CA FFFFFFFF FFFFFFFF`, 5, sha256.New)

// h hashes the concatenation of parts.
func (grp *srpGroup) h(parts ...[]byte) []byte {
	d := grp.hash()
	for _, p := range parts {
		d.Write(p)
	}
	return d.Sum(nil)
}

// pad left-pads b with zeros to the length of N (PAD() of RFC 5054). b must not be longer.
func (grp *srpGroup) pad(b []byte) []byte {
	out := make([]byte, grp.size)
	copy(out[grp.size-len(b):], b)
	return out
}

// x = H(s | H(I | ":" | P)) (RFC 5054 §2.4, SRP-2).
func (grp *srpGroup) x(salt, identity, password []byte) []byte {
	d := grp.hash()
	d.Write(identity)
	d.Write([]byte{':'})
	d.Write(password)
	inner := d.Sum(nil)
	out := grp.h(salt, inner)
	clear(inner)
	return out
}

// verifier v = g^x % N.
func (grp *srpGroup) verifier(x []byte) *bigmod.Nat {
	return bigmod.NewNat().Exp(grp.g, x, grp.n)
}

// publicA = g^a % N, as PAD(A).
func (grp *srpGroup) publicA(a []byte) []byte {
	return bigmod.NewNat().Exp(grp.g, a, grp.n).Bytes(grp.n)
}

// publicB = (k*v + g^b) % N, as PAD(B).
func (grp *srpGroup) publicB(v *bigmod.Nat, b []byte) []byte {
	kv := copyNat(grp.k, grp.n).Mul(v, grp.n)
	gb := bigmod.NewNat().Exp(grp.g, b, grp.n)
	defer wipe(kv, gb)
	return kv.Add(gb, grp.n).Bytes(grp.n)
}

// u = H(PAD(A) | PAD(B)). A and B are already padded.
func (grp *srpGroup) u(paddedA, paddedB []byte) []byte {
	return grp.h(paddedA, paddedB)
}

// checkPublic implements the SRP-10 / XSRP-6 checks on a peer's public value (A or B),
// given as exactly len(N) bytes: reject v ≥ N and v % N == 0.
func (grp *srpGroup) checkPublic(padded []byte) error {
	if len(padded) != grp.size {
		return errXSRPParameter
	}
	v := new(big.Int).SetBytes(padded)
	if v.Cmp(grp.nBig) >= 0 || v.Sign() == 0 {
		return errXSRPParameter
	}
	return nil
}

// clientS = (B - k*g^x) ^ (a + u*x) % N, as PAD(S). It is computed as
// base^a · (base^u)^x so that no secret integer arithmetic is needed outside bigmod.
func (grp *srpGroup) clientS(paddedB, a, u, x []byte) ([]byte, error) {
	B, err := bigmod.NewNat().SetBytes(paddedB, grp.n)
	if err != nil {
		return nil, errXSRPParameter
	}
	v := grp.verifier(x)
	kgx := copyNat(grp.k, grp.n).Mul(v, grp.n)
	base := B.Sub(kgx, grp.n)
	left := bigmod.NewNat().Exp(base, a, grp.n)
	bu := bigmod.NewNat().Exp(base, u, grp.n)
	right := bigmod.NewNat().Exp(bu, x, grp.n)
	defer wipe(v, kgx, base, left, bu, right)
	return left.Mul(right, grp.n).Bytes(grp.n), nil
}

// serverS = (A * v^u) ^ b % N, as PAD(S).
func (grp *srpGroup) serverS(paddedA []byte, v *bigmod.Nat, u, b []byte) ([]byte, error) {
	A, err := bigmod.NewNat().SetBytes(paddedA, grp.n)
	if err != nil {
		return nil, errXSRPParameter
	}
	vu := bigmod.NewNat().Exp(v, u, grp.n)
	base := A.Mul(vu, grp.n)
	S := bigmod.NewNat().Exp(base, b, grp.n)
	defer wipe(vu, base, S)
	return S.Bytes(grp.n), nil
}

// wipe overwrites secret intermediate values (XSRP-9). bigmod's own temporaries inside Exp
// are not reachable and stay to the garbage collector.
func wipe(ns ...*bigmod.Nat) {
	for _, n := range ns {
		n.SetUint(0)
	}
}

// copyNat returns a fresh copy of x (reduced mod m).
func copyNat(x *bigmod.Nat, m *bigmod.Modulus) *bigmod.Nat {
	c, err := bigmod.NewNat().SetBytes(x.Bytes(m), m)
	if err != nil {
		panic(err) // x < m by construction
	}
	return c
}

var errXSRPParameter = errors.New("xtls: XSRP: illegal SRP parameter from peer")
