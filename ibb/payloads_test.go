package ibb

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io/fs"
	"path"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/xtlsjingle/xtlsjingle/testvectors"
)

// parseAny parses b with the parser its element name selects.
func parseAny(b []byte) (any, error) {
	s := string(b)
	switch {
	case strings.Contains(s, "<open"):
		return ParseOpen(b)
	case strings.Contains(s, "<close"):
		return ParseClose(b)
	case strings.Contains(s, "<transport"):
		return ParseTransport(b)
	default:
		return ParseData(b)
	}
}

// Every vector under testvectors/ibb: accepted, or refused with bad-request when its name
// says _reject- (IBB-1, IBB-2, IBB-6, IBB-7, IBB-8, IBB-19, ERR-5, ERR-6, JIBB-1).
func TestVectors(t *testing.T) {
	files, err := fs.Glob(testvectors.FS, "ibb/*.xml")
	if err != nil || len(files) < 20 {
		t.Fatalf("vectors: %d files, %v", len(files), err)
	}
	for _, f := range files {
		t.Run(path.Base(f), func(t *testing.T) {
			b, err := fs.ReadFile(testvectors.FS, f)
			if err != nil {
				t.Fatal(err)
			}
			v, err := parseAny(b)
			if strings.Contains(f, "_reject-") {
				if !errors.Is(err, ErrBadRequest) {
					t.Fatalf("accepted (%+v, %v); want bad-request", v, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("rejected: %v", err)
			}
		})
	}
}

// A.4: the payloads decode to the recomputed plaintexts, through the fast path and the
// strict decoder alike, and encode back to the same Base64.
func TestA4_Payloads(t *testing.T) {
	raw, err := fs.ReadFile(testvectors.FS, "ibb/A.4_payloads.json")
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Payloads []struct{ Plain, Base64 string }
		SeqWrap  []int    `json:"seq_wrap"`
		Reject   []string `json:"reject_base64"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	for i, p := range v.Payloads {
		el := AppendData(nil, "ch3d9s71", uint16(i), []byte(p.Plain))
		if !bytes.Contains(el, []byte(">"+p.Base64+"<")) {
			t.Fatalf("encoding %q: %s", p.Plain, el)
		}
		fast, ok, err := scanData(el)
		if !ok || err != nil || string(fast.Payload) != p.Plain {
			t.Fatalf("fast path: %v %v %q", ok, err, fast.Payload)
		}
		strict, err := parseDataStrict(el)
		if err != nil || string(strict.Payload) != p.Plain {
			t.Fatalf("strict: %v %q", err, strict.Payload)
		}
	}
	for _, bad := range v.Reject {
		if _, err := decodeBase64([]byte(bad)); !errors.Is(err, ErrBadRequest) {
			t.Fatalf("IBB-19: %q accepted", bad)
		}
	}
	if len(v.SeqWrap) != 4 || uint16(v.SeqWrap[1])+1 != uint16(v.SeqWrap[2]) {
		t.Fatalf("seq wrap vector %v", v.SeqWrap)
	}
}

// The captured Gajim and Libervia IBB elements parse (open, data, close, transport).
func TestCaptured(t *testing.T) {
	files, _ := fs.Glob(testvectors.FS, "captured/*ibb*.xml")
	n := 0
	for _, f := range files {
		b, _ := fs.ReadFile(testvectors.FS, f)
		for _, el := range capturedIBB(b) {
			if _, err := parseAny(el); err != nil {
				t.Errorf("%s: %s: %v", f, el, err)
			}
			n++
		}
	}
	if n < 5 {
		t.Fatalf("only %d captured IBB elements", n)
	}
}

// capturedIBB extracts the IBB and Jingle IBB child elements of captured stanzas (one stanza
// per line).
func capturedIBB(b []byte) [][]byte {
	var out [][]byte
	for _, line := range bytes.Split(b, []byte("\n")) {
		for _, start := range []string{"<open ", "<data ", "<close ", "<transport "} {
			i := bytes.Index(line, []byte(start))
			if i < 0 {
				continue
			}
			rest := line[i:]
			if !bytes.Contains(rest, []byte(NS)) && !bytes.Contains(rest, []byte(NSJingle)) {
				continue
			}
			local := strings.TrimSpace(start[1:])
			end := bytes.Index(rest, []byte("</"+local+">"))
			if j := bytes.Index(rest, []byte("/>")); j >= 0 && (end < 0 || j < bytes.IndexByte(rest, '>')+1) {
				end, local = j, ""
			}
			if end < 0 {
				continue
			}
			if local == "" {
				out = append(out, rest[:end+2])
			} else {
				out = append(out, rest[:end+len(local)+3])
			}
		}
	}
	return out
}

// Round trips of the emitted elements (go-cmp).
func TestRoundTrip(t *testing.T) {
	o := Open{SID: "ch3d9s71", BlockSize: 2048, Stanza: StanzaIQ}
	b, err := o.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	o2, err := ParseOpen(b)
	if diff := cmp.Diff(o, o2); err != nil || diff != "" {
		t.Fatalf("open: %v %s", err, diff)
	}
	tr := Transport{SID: "x-1", BlockSize: 32767, Stanza: StanzaMessage}
	b, _ = tr.Marshal()
	tr2, err := ParseTransport(b)
	if diff := cmp.Diff(tr, tr2); err != nil || diff != "" {
		t.Fatalf("transport: %v %s", err, diff)
	}
	c := Close{SID: "a.b_c:d"}
	b, _ = c.Marshal()
	c2, err := ParseClose(b)
	if diff := cmp.Diff(c, c2); err != nil || diff != "" {
		t.Fatalf("close: %v %s", err, diff)
	}
	d := Data{SID: "s", Seq: 65535, Payload: bytes.Repeat([]byte{0xff, 0, 1}, 1000)}
	b, _ = d.Marshal()
	d2, err := ParseData(b)
	if diff := cmp.Diff(d, d2); err != nil || diff != "" {
		t.Fatalf("data: %v %s", err, diff)
	}
	// ERR-6: emission is capped at 32767.
	if _, err := (Open{SID: "s", BlockSize: 32768}).Marshal(); err == nil {
		t.Fatal("block-size 32768 emitted")
	}
}

// The fast path recognises what Conn emits and the common shapes of other clients.
func TestScanDataRecognises(t *testing.T) {
	for _, s := range []string{
		string(AppendData(nil, "s", 7, []byte("hello"))),
		"<data seq='0' xmlns='http://jabber.org/protocol/ibb' sid='b72a422f-c09d-4b1a-8d7b-858a8cea51c3'>\n  QUJD\n</data>",
		`<data xmlns="http://jabber.org/protocol/ibb" sid="x" seq="3">QUJD</data>`,
	} {
		if _, ok, err := scanData([]byte(s)); !ok || err != nil {
			t.Errorf("fast path did not take %s: %v %v", s, ok, err)
		}
	}
}

func seedFuzz(f *testing.F) {
	files, _ := fs.Glob(testvectors.FS, "ibb/*.xml")
	for _, name := range files {
		b, _ := fs.ReadFile(testvectors.FS, name)
		f.Add(b)
	}
	caps, _ := fs.Glob(testvectors.FS, "captured/*ibb*.xml")
	for _, name := range caps {
		b, _ := fs.ReadFile(testvectors.FS, name)
		for _, el := range capturedIBB(b) {
			f.Add(el)
		}
	}
}

// FuzzParseData is the differential test of the fast path: whatever scanData decides, the
// strict decoder decides the same; and an accepted element survives a round trip.
func FuzzParseData(f *testing.F) {
	seedFuzz(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		fast, ok, ferr := scanData(b)
		strict, serr := parseDataStrict(b)
		if ok {
			if (ferr == nil) != (serr == nil) {
				t.Fatalf("fast err %v, strict err %v", ferr, serr)
			}
			if ferr == nil && !cmp.Equal(fast, strict) {
				t.Fatalf("fast %+v, strict %+v", fast, strict)
			}
			if ferr != nil {
				var fe, se *Error
				if !errors.As(ferr, &fe) || !errors.As(serr, &se) || fe.Condition != se.Condition {
					t.Fatalf("conditions differ: %v / %v", ferr, serr)
				}
			}
		}
		d, err := ParseData(b)
		if (err == nil) != (serr == nil) {
			t.Fatalf("ParseData err %v, strict %v", err, serr)
		}
		if err != nil {
			return
		}
		out, merr := d.Marshal()
		if merr != nil {
			t.Fatalf("accepted data does not marshal: %v", merr)
		}
		d2, err := ParseData(out)
		if err != nil || !cmp.Equal(d, d2, cmp.Comparer(func(a, b []byte) bool { return bytes.Equal(a, b) })) {
			t.Fatalf("round trip: %v", err)
		}
		if len(d.Payload) > MaxBlockSize {
			t.Fatalf("payload %d bytes", len(d.Payload))
		}
	})
}

// FuzzParseOpen: no panic; accepted opens respect IBB-1/IBB-2 and round-trip.
func FuzzParseOpen(f *testing.F) {
	seedFuzz(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		o, err := ParseOpen(b)
		if err != nil {
			return
		}
		if !ValidSID(o.SID) || o.BlockSize < 1 || o.BlockSize > MaxBlockSize {
			t.Fatalf("accepted %+v", o)
		}
		if o.BlockSize <= MaxEmitBlockSize {
			out, err := o.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if o2, err := ParseOpen(out); err != nil || o2 != o {
				t.Fatalf("round trip %+v → %+v %v", o, o2, err)
			}
		}
	})
}

// FuzzParseClose: no panic; accepted closes round-trip.
func FuzzParseClose(f *testing.F) {
	seedFuzz(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseClose(b)
		if err != nil {
			return
		}
		out, err := c.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if c2, err := ParseClose(out); err != nil || c2 != c {
			t.Fatalf("round trip %+v → %+v %v", c, c2, err)
		}
	})
}

// FuzzParseTransport: no panic; accepted transports round-trip.
func FuzzParseTransport(f *testing.F) {
	seedFuzz(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		tr, err := ParseTransport(b)
		if err != nil {
			return
		}
		if !ValidSID(tr.SID) || tr.BlockSize < 1 || tr.BlockSize > MaxBlockSize {
			t.Fatalf("accepted %+v", tr)
		}
		if tr.BlockSize <= MaxEmitBlockSize {
			out, err := tr.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if t2, err := ParseTransport(out); err != nil || t2 != tr {
				t.Fatalf("round trip %+v → %+v %v", tr, t2, err)
			}
		}
	})
}

// Base64 of the emitted data is the standard padded alphabet (IBB-6).
func TestIBB6_EmitsStdBase64(t *testing.T) {
	p := []byte{0xfb, 0xff, 0xfe}
	el := AppendData(nil, "s", 0, p)
	if !bytes.Contains(el, []byte(base64.StdEncoding.EncodeToString(p))) {
		t.Fatalf("%s", el)
	}
}
