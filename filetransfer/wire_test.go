package filetransfer

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io/fs"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/xtlsjingle/xtlsjingle/testvectors"
)

func vector(t testing.TB, name string) []byte {
	t.Helper()
	b, err := fs.ReadFile(testvectors.FS, "filetransfer/"+name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestFT1_CapturedDescriptions: what Gajim 1.5.3 and Libervia 0.9 really offer parses, and
// re-encoding gives an element that parses to the same File.
func TestFT1_CapturedDescriptions(t *testing.T) {
	g, err := ParseDescription(vector(t, "FT-1_gajim153-description.xml"))
	if err != nil {
		t.Fatal(err)
	}
	if g.Name != "payload.bin" || g.Size != 300000 || !g.Date.Equal(time.Date(2026, 11, 22, 2, 39, 11, 0, time.UTC)) ||
		len(g.Hashes) != 1 || g.Hashes[0].Algo != "blake2b-512" || len(g.Hashes[0].Value) != 64 {
		t.Fatalf("gajim: %+v", g)
	}
	l, err := ParseDescription(vector(t, "FT-1_libervia09-description.xml"))
	if err != nil {
		t.Fatal(err)
	}
	if l.Name != "payload.bin" || l.Size != 300000 || l.MediaType != "application/octet-stream" ||
		len(l.HashUsed) != 1 || l.HashUsed[0] != "sha-256" || l.Range == nil || *l.Range != (Range{}) {
		t.Fatalf("libervia: %+v", l)
	}
	x, err := ParseDescription(vector(t, "FT-1_xep0234-example1-corrected.xml"))
	if err != nil {
		t.Fatal(err)
	}
	if x.Name != "test.txt" || x.Size != 6144 || x.Desc != "This is a test. If this were a real file..." || x.MediaType != "text/plain" {
		t.Fatalf("xep: %+v", x)
	}
	for _, f := range []*File{g, l, x} {
		b, err := f.Description()
		if err != nil {
			t.Fatal(err)
		}
		f2, err := ParseDescription(b)
		if err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		b2, _ := f2.Description()
		if !bytes.Equal(b, b2) {
			t.Fatalf("round trip:\n%s\n%s", b, b2)
		}
	}
}

// TestHASH2_LiberviaChecksumQuirk: Libervia's checksum is Base64 of the hex string; we decode
// it to the real digest.
func TestHASH2_LiberviaChecksumQuirk(t *testing.T) {
	v, err := ParseInfo(vector(t, "HASH-2_libervia09-checksum-hex-quirk.xml"))
	if err != nil {
		t.Fatal(err)
	}
	c, ok := v.(*Checksum)
	if !ok || c.Creator != "initiator" || c.Name != "4a756f4a-1fa2-4460-b195-f7f71f1a49a7" || len(c.Hashes) != 1 {
		t.Fatalf("%#v", v)
	}
	if got := hex.EncodeToString(c.Hashes[0].Value); got != "9c05541bbabf94cb27d71dd129d4d2cc9f6b752b10cb9d9446d9e704c4cac8b5" {
		t.Fatalf("digest %s", got)
	}
	v, err = ParseInfo(vector(t, "HASH-2_checksum-sha256.xml"))
	if err != nil {
		t.Fatal(err)
	}
	c = v.(*Checksum)
	b, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	v2, err := ParseInfo(b)
	if err != nil || !bytes.Equal(v2.(*Checksum).Hashes[0].Value, c.Hashes[0].Value) {
		t.Fatalf("round trip %s: %v", b, err)
	}
	r, err := ParseInfo(vector(t, "FT-2_received.xml"))
	if err != nil {
		t.Fatal(err)
	}
	if rr, ok := r.(*Received); !ok || rr.Name != "a-file-offer" || !bytes.Equal(rr.Marshal(), vector(t, "FT-2_received.xml")) {
		t.Fatalf("%#v", r)
	}
}

// TestHASH2_Refusals: malformed input is refused with bad-request.
func TestHASH2_Refusals(t *testing.T) {
	for _, name := range []string{"HASH-2_bad-unpadded-base64.xml", "HASH-2_bad-duplicate-algo.xml", "FT-1_bad-negative-size.xml"} {
		if _, err := ParseDescription(vector(t, name)); !errors.Is(err, ErrBadRequest) {
			t.Errorf("%s: %v", name, err)
		}
	}
	ns := "xmlns='" + NS + "'"
	for _, in := range []string{
		"<description " + ns + "><!-- c --><file/></description>",
		"<?xml version='1.0'?><description " + ns + "><file/></description>",
		"<!DOCTYPE x><description " + ns + "><file/></description>",
		"<description " + ns + "><file/><file/></description>",
		"<description " + ns + "/>",
		"<description xmlns='urn:other'><file/></description>",
		"<description " + ns + "><file><a><b><c/></b></a></file></description>",
		"<description " + ns + "><file><name>a</name><name>b</name></file></description>",
		"<description " + ns + "><file><size>1e3</size></file></description>",
		"<description " + ns + "><file><x:name>a</x:name></file></description>",
		"<description " + ns + "><file><name>" + strings.Repeat("a", 256) + "</name></file></description>",
		"<description " + ns + "><file><hash xmlns='urn:xmpp:hashes:2' algo='sha-256'>AAAA</hash></file></description>",
		"<description " + ns + "><file><hash xmlns='urn:xmpp:hashes:2'>AAAA</hash></file></description>",
		"<description " + ns + "><file/></description><x/>",
		"<description " + ns + " a='1' a='2'><file/></description>",
		"<description " + ns + "><file>" + strings.Repeat("<desc/>", 70) + "</file></description>",
		"<description " + ns + "><file><name>\xff</name></file></description>",
	} {
		if _, err := ParseDescription([]byte(in)); !errors.Is(err, ErrBadRequest) {
			t.Errorf("%q: %v", in, err)
		}
	}
	for _, in := range []string{
		"<received " + ns + " name='a'/>",
		"<received " + ns + " creator='initiator'/>",
		"<checksum " + ns + " creator='initiator' name='a'><file/></checksum>",
		"<unknown " + ns + " creator='initiator' name='a'/>",
	} {
		if _, err := ParseInfo([]byte(in)); !errors.Is(err, ErrBadRequest) {
			t.Errorf("%q: %v", in, err)
		}
	}
}

func FuzzParseDescription(f *testing.F) {
	names, _ := fs.Glob(testvectors.FS, "filetransfer/*.xml")
	for _, n := range names {
		f.Add(vector(f, path.Base(n)))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		file, err := ParseDescription(b)
		if err != nil {
			return
		}
		out, err := file.Description()
		if err != nil {
			return // e.g. a name we would not send
		}
		if _, err := ParseDescription(out); err != nil {
			t.Fatalf("our own encoding of %q does not parse: %s: %v", b, out, err)
		}
	})
}

func FuzzParseInfo(f *testing.F) {
	names, _ := fs.Glob(testvectors.FS, "filetransfer/*.xml")
	for _, n := range names {
		f.Add(vector(f, path.Base(n)))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := ParseInfo(b)
		if err != nil {
			return
		}
		if c, ok := v.(*Checksum); ok {
			if out, err := c.Marshal(); err == nil {
				if _, err := ParseInfo(out); err != nil {
					t.Fatalf("%s: %v", out, err)
				}
			}
		}
	})
}

// TestHASH2_HexDigestsForLibervia: with HexDigests the digest is written as Libervia 0.9
// writes (and requires) it — byte-identical to its captured checksum — and still parses back
// to the digest.
func TestHASH2_HexDigestsForLibervia(t *testing.T) {
	captured := vector(t, "HASH-2_libervia09-checksum-hex-quirk.xml")
	v, err := ParseInfo(captured)
	if err != nil {
		t.Fatal(err)
	}
	c := v.(*Checksum)
	c.HexDigests = true
	out, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	want := "OWMwNTU0MWJiYWJmOTRjYjI3ZDcxZGQxMjlkNGQyY2M5ZjZiNzUyYjEwY2I5ZDk0NDZkOWU3MDRjNGNhYzhiNQ=="
	if !bytes.Contains(out, []byte(">"+want+"<")) {
		t.Fatalf("%s", out)
	}
	v2, err := ParseInfo(out)
	if err != nil || !bytes.Equal(v2.(*Checksum).Hashes[0].Value, c.Hashes[0].Value) {
		t.Fatalf("%v", err)
	}
	f := File{Name: "a", Size: 1, Hashes: c.Hashes, HexDigests: true}
	d, _ := f.Description()
	f2, err := ParseDescription(d)
	if err != nil || !bytes.Equal(f2.Hashes[0].Value, c.Hashes[0].Value) || !bytes.Contains(d, []byte(want)) {
		t.Fatalf("%s %v", d, err)
	}
}
