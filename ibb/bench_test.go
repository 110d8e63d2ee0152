package ibb

import (
	"encoding/xml"
	"testing"
)

func benchBlock() []byte {
	p := make([]byte, DefaultBlockSize)
	for i := range p {
		p[i] = byte(i * 7)
	}
	return p
}

// BenchmarkParseData is the receive hot path: one 4096-byte block through the fast path
// (scanner + strict Base64). MB/s is payload bytes.
func BenchmarkParseData(b *testing.B) {
	el := AppendData(nil, "b72a422f-c09d-4b1a-8d7b-858a8cea51c3", 42, benchBlock())
	b.SetBytes(DefaultBlockSize)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseData(el); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseDataStrict is the generic decoder the fast path falls back to.
func BenchmarkParseDataStrict(b *testing.B) {
	el := AppendData(nil, "b72a422f-c09d-4b1a-8d7b-858a8cea51c3", 42, benchBlock())
	b.SetBytes(DefaultBlockSize)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parseDataStrict(el); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseDataUnmarshal is the xml.Unmarshal baseline of DESIGN.md (32 MB/s there).
func BenchmarkParseDataUnmarshal(b *testing.B) {
	el := AppendData(nil, "b72a422f-c09d-4b1a-8d7b-858a8cea51c3", 42, benchBlock())
	b.SetBytes(DefaultBlockSize)
	b.ReportAllocs()
	var v struct {
		XMLName xml.Name `xml:"http://jabber.org/protocol/ibb data"`
		Seq     uint16   `xml:"seq,attr"`
		SID     string   `xml:"sid,attr"`
		Text    string   `xml:",chardata"`
	}
	for b.Loop() {
		if err := xml.Unmarshal(el, &v); err != nil {
			b.Fatal(err)
		}
		if _, err := decodeBase64([]byte(v.Text)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncodeData is the send hot path: one 4096-byte block serialised.
func BenchmarkEncodeData(b *testing.B) {
	p := benchBlock()
	buf := make([]byte, 0, 8192)
	b.SetBytes(DefaultBlockSize)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendData(buf[:0], "b72a422f-c09d-4b1a-8d7b-858a8cea51c3", 42, p)
	}
}
