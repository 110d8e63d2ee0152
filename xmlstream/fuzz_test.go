package xmlstream_test

import (
	"bytes"
	"context"
	"io/fs"
	"testing"
	"time"

	"github.com/xtlsjingle/xtlsjingle/testvectors"
	"github.com/xtlsjingle/xtlsjingle/xmlstream"
)

const fuzzHeader = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' from='romeo@montague.lit/orchard' to='juliet@capulet.lit/balcony' version='1.0'>"

// FuzzReader feeds arbitrary bytes to a responder (as the whole input, and after a valid
// header) and reads stanzas until the stream ends: it must never panic, must end (the input
// is finite), and every stanza delivered must re-parse as one element.
func FuzzReader(f *testing.F) {
	files, _ := fs.Glob(testvectors.FS, "xmlstream/*")
	for _, name := range files {
		b, _ := fs.ReadFile(testvectors.FS, name)
		f.Add(b, false)
		f.Add(b, true)
	}
	f.Add([]byte("<message><body>hi</body></message><iq type='get' id='1'><q xmlns='urn:x'/></iq> </stream:stream>"), true)
	f.Fuzz(func(t *testing.T, in []byte, withHeader bool) {
		if withHeader {
			in = append([]byte(fuzzHeader), in...)
		}
		c := &scriptConn{r: bytes.NewReader(in)}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		cfg := &xmlstream.Config{MaxStanzaSize: 2048, MaxDepth: 8, MaxAttrs: 8, CloseTimeout: 50 * time.Millisecond}
		s, err := xmlstream.Respond(ctx, c, "juliet@capulet.lit/balcony", "romeo@montague.lit/orchard", cfg)
		if err != nil {
			return
		}
		defer s.Close()
		for i := 0; ; i++ {
			st, err := s.Next(ctx)
			if err != nil {
				if ctx.Err() != nil {
					t.Fatal("stream did not end on finite input")
				}
				return
			}
			if len(st.Raw) > 2048+256 {
				t.Fatalf("stanza of %d bytes passed a 2048-byte limit", len(st.Raw))
			}
			if st.From != "romeo@montague.lit/orchard" && st.From != "romeo@montague.lit" {
				t.Fatalf("from %q passed XS-12", st.From)
			}
			var v struct{}
			if err := st.Decode(&v); err != nil {
				t.Fatalf("delivered stanza %q does not parse: %v", st.Raw, err)
			}
		}
	})
}

// FuzzInitiate feeds arbitrary bytes to an initiator as the responder's side of the stream
// (header, features, stanzas): never panics, always ends on finite input.
func FuzzInitiate(f *testing.F) {
	files, _ := fs.Glob(testvectors.FS, "xmlstream/*.xml")
	for _, name := range files {
		b, _ := fs.ReadFile(testvectors.FS, name)
		f.Add(b)
	}
	f.Add([]byte("<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' from='juliet@capulet.lit/balcony' to='romeo@montague.lit/orchard' id='a' version='1.0'><stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:features><message/></stream:stream>"))
	f.Fuzz(func(t *testing.T, in []byte) {
		c := &scriptConn{r: bytes.NewReader(in)}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		cfg := &xmlstream.Config{MaxStanzaSize: 2048, MaxDepth: 8, MaxAttrs: 8, CloseTimeout: 50 * time.Millisecond}
		s, err := xmlstream.Initiate(ctx, c, "romeo@montague.lit/orchard", "juliet@capulet.lit/balcony", cfg)
		if err != nil {
			return
		}
		defer s.Close()
		for {
			if _, err := s.Next(ctx); err != nil {
				if ctx.Err() != nil {
					t.Fatal("stream did not end on finite input")
				}
				return
			}
		}
	})
}
