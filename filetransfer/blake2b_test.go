package filetransfer

import (
	"bytes"
	"encoding/hex"
	"testing"
)

// TestHASH4_Blake2b512: RFC 7693 Appendix A ("abc") and the empty message; any split of the
// input into writes gives the same digest, across the 128-byte block boundaries.
func TestHASH4_Blake2b512(t *testing.T) {
	for in, want := range map[string]string{
		"abc": "ba80a53f981c4d0d6a2797b69f12f6e94c212f14685ac4b74b12bb6fdbffa2d17d87c5392aab792dc252d5de4533cc9518d38aa8dbf1925ab92386edd4009923",
		"":    "786a02f742015903c6c6fd852552d272912f4740e15847618a86e217f71f5419d25e1031afee585313896444934eb04b903a685b1448b755d56f701afe9be2ce",
	} {
		h := newBlake2b512()
		h.Write([]byte(in))
		if got := hex.EncodeToString(h.Sum(nil)); got != want {
			t.Errorf("blake2b-512(%q) = %s", in, got)
		}
	}
	data := make([]byte, 1000)
	for i := range data {
		data[i] = byte(i * 7)
	}
	for _, n := range []int{0, 1, 127, 128, 129, 255, 256, 257, 1000} {
		h := newBlake2b512()
		h.Write(data[:n])
		one := h.Sum(nil)
		h.Reset()
		for i := 0; i < n; i += 3 {
			h.Write(data[i:min(i+3, n)])
		}
		if !bytes.Equal(one, h.Sum(nil)) {
			t.Errorf("split writes of %d bytes differ", n)
		}
		// Cross-checked with Python's hashlib.blake2b (block-boundary lengths).
		if want, ok := map[int]string{
			128:  "0be555525cf1e0b9b74d2a743dd1ee3164b1de36feaa6084a1d054af06a5091346d6a2be5068fd5c612e0f8cbcefaacac2f5b309226bfc28817916fbc3ef0b23",
			256:  "f8517f3d1accbf944ef17fc76662f7d91e6bbff44a7c5a0ed63bc52d177810f5dee0881ae4541269f230ae91b0c4f8d8c9fa1fd094280e5ed38bc7da95427820",
			1000: "b49dc7bf928d7dee879fafc64c1c93088810acc1f4a02264c4c09809c0f3dbc771e25e2dedce3dbbc0640da14af9fe42fb42b02c9fdff701b817f22192b7b2db",
		}[n]; ok && hex.EncodeToString(one) != want {
			t.Errorf("blake2b-512 of %d bytes = %x", n, one)
		}
	}
}
