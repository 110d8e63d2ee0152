package disco_test

import (
	"io/fs"
	"testing"

	"github.com/xtlsjingle/xtlsjingle/disco"
	"github.com/xtlsjingle/xtlsjingle/testvectors"
)

func seed(f *testing.F) {
	files, err := fs.Glob(testvectors.FS, "disco/*.xml")
	if err != nil || len(files) == 0 {
		f.Fatal("no disco vectors", err)
	}
	for _, name := range files {
		b, _ := fs.ReadFile(testvectors.FS, name)
		f.Add(b)
	}
}

// FuzzParseInfo: never panics; what parses re-encodes and parses to the same value, and its
// ver is computable.
func FuzzParseInfo(f *testing.F) {
	seed(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		info, err := disco.ParseInfo(b)
		if err != nil {
			return
		}
		_, _ = disco.Ver(info, "sha-1")
		_ = disco.IllFormed(info)
		out, err := disco.MarshalInfo(info)
		if err != nil {
			return // e.g. characters the decoder accepted but XML output cannot carry
		}
		again, err := disco.ParseInfo(out)
		if err != nil {
			t.Fatalf("re-parse of %q: %v", out, err)
		}
		if v1, v2 := disco.VerString(info), disco.VerString(again); v1 != v2 {
			t.Fatalf("round trip changed S: %q vs %q", v1, v2)
		}
	})
}

func FuzzParseItems(f *testing.F) {
	seed(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		node, items, err := disco.ParseItems(b)
		if err != nil {
			return
		}
		out, err := disco.MarshalItems(node, items)
		if err != nil {
			return
		}
		if _, _, err := disco.ParseItems(out); err != nil {
			t.Fatalf("re-parse of %q: %v", out, err)
		}
	})
}

func FuzzParseCaps(f *testing.F) {
	seed(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := disco.ParseCaps(b)
		if err != nil {
			return
		}
		if c.Hash == "" {
			return
		}
		out, err := disco.MarshalCaps(c)
		if err != nil {
			return
		}
		c2, err := disco.ParseCaps(out)
		if err != nil || c2 != c {
			t.Fatalf("round trip %+v -> %q -> %+v, %v", c, out, c2, err)
		}
	})
}
