package pubkeys_test

import (
	"bytes"
	"io/fs"
	"testing"

	"github.com/xtlsjingle/xtlsjingle/pubkeys"
	"github.com/xtlsjingle/xtlsjingle/testvectors"
)

func seed(f *testing.F) {
	files, err := fs.Glob(testvectors.FS, "pubkeys/*.xml")
	if err != nil || len(files) == 0 {
		f.Fatal("no vectors", err)
	}
	for _, name := range files {
		b, _ := fs.ReadFile(testvectors.FS, name)
		f.Add(b)
	}
}

// FuzzParseKeys: never panics; accepted answers hold bounded, parseable certificates and
// survive a round trip.
func FuzzParseKeys(f *testing.F) {
	seed(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := pubkeys.ParseKeys(b)
		if err != nil {
			return
		}
		if len(k.Keys) > pubkeys.MaxKeys {
			t.Fatalf("%d keys", len(k.Keys))
		}
		for _, ki := range k.Keys {
			if len(ki.Cert) == 0 || len(ki.Cert) > pubkeys.MaxCertSize {
				t.Fatalf("certificate of %d bytes", len(ki.Cert))
			}
		}
		out, err := pubkeys.MarshalKeys(k)
		if err != nil {
			return // e.g. a name with characters our encoder refuses
		}
		again, err := pubkeys.ParseKeys(out)
		if err != nil || len(again.Keys) != len(k.Keys) {
			t.Fatalf("round trip: %v", err)
		}
		for i := range k.Keys {
			if !bytes.Equal(again.Keys[i].Cert, k.Keys[i].Cert) {
				t.Fatal("certificate changed in round trip")
			}
		}
	})
}

func FuzzParseRequest(f *testing.F) {
	seed(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := pubkeys.ParseRequest(b)
		if err != nil {
			return
		}
		out, err := pubkeys.MarshalRequest(r)
		if err != nil {
			return // colon-separated fingerprints are accepted but not emitted
		}
		if _, err := pubkeys.ParseRequest(out); err != nil {
			t.Fatalf("re-parse of %q: %v", out, err)
		}
	})
}
