package xmlstream

import (
	"io/fs"
	"testing"

	"github.com/xtlsjingle/xtlsjingle/testvectors"
)

// FuzzParseStanzaError: the <error/> of an IQ error answer (CORE-10) never panics and always
// yields a condition.
func FuzzParseStanzaError(f *testing.F) {
	f.Add([]byte("<iq xmlns='jabber:client' type='error' id='1'><error type='cancel'><not-acceptable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><security-required xmlns='urn:xmpp:jingle:errors:1'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>no</text></error></iq>"))
	f.Add([]byte("<iq xmlns='jabber:client' type='error' id='1'/>"))
	if b, err := fs.ReadFile(testvectors.FS, "pubkeys/XTLS-20_c2s-refusal-error.xml"); err == nil {
		f.Add(append(append([]byte("<iq xmlns='jabber:client' type='error' id='1'>"), b...), "</iq>"...))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e := parseStanzaError(b)
		if e == nil || e.Condition == "" || e.Type == "" {
			t.Fatalf("%#v", e)
		}
		if len(e.Text) > 4096 {
			t.Fatalf("text of %d bytes", len(e.Text))
		}
	})
}
