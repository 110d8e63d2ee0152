package jingle

import (
	"context"
	"testing"

	"github.com/xtlsjingle/xtlsjingle/internal/xmpptest"
)

// BenchmarkParse decodes Gajim's captured session-initiate (XTLS over S5B, file transfer).
func BenchmarkParse(b *testing.B) {
	payload := capturedJingle(b, "trace-gajim153-xtls-s5b.xml")[0].child
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(payload); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMarshal encodes the same element.
func BenchmarkMarshal(b *testing.B) {
	j, err := Parse(capturedJingle(b, "trace-gajim153-xtls-s5b.xml")[0].child)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := j.Marshal(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSession runs initiate → accept → terminate between two managers over the
// in-memory network (no faults): six IQs per session.
func BenchmarkSession(b *testing.B) {
	n := xmpptest.NewNetwork(1)
	r, j := n.Party(romeo), n.Party(juliet)
	defer r.Close()
	defer j.Close()
	ctx := context.Background()
	mj := NewManager(j, Config{Incoming: func(s *Session) { _ = s.Accept(ctx, s.Contents(), nil) }})
	defer mj.Close()
	mr := NewManager(r, Config{})
	defer mr.Close()
	contents := []Content{xsContent("xmlstream")}
	b.ReportAllocs()
	for b.Loop() {
		s, err := mr.Initiate(ctx, juliet, contents, nil)
		if err != nil {
			b.Fatal(err)
		}
		if ev := <-s.Events(); ev.Action != SessionAccept {
			b.Fatal(ev.Action)
		}
		if err := s.Terminate(ctx, &Reason{Condition: Success}); err != nil {
			b.Fatal(err)
		}
	}
}
