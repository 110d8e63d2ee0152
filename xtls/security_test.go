package xtls

import (
	"bufio"
	"bytes"
	"encoding/xml"
	"errors"
	"io/fs"
	"path"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/xtlsjingle/xtlsjingle/testvectors"
)

// securityElement cuts the <security/> element out of a stanza vector (the vectors keep the
// whole corrected SPEC example; ParseSecurity takes only the element).
func securityElement(t testing.TB, stanza []byte) []byte {
	t.Helper()
	i := bytes.Index(stanza, []byte("<security"))
	if i < 0 {
		t.Fatalf("no <security> in vector")
	}
	rest := stanza[i:]
	if j := bytes.Index(rest, []byte("</security>")); j >= 0 {
		return rest[:j+len("</security>")]
	}
	j := bytes.Index(rest, []byte("/>"))
	return rest[:j+2]
}

func mustFP(t testing.TB, algo, hexv string) Fingerprint {
	t.Helper()
	f, err := ParseFingerprint(algo, hexv)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestXTLS_D1_SecurityVectors(t *testing.T) {
	sha256Test := "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	gajim := "9528c0d28de0fd62556149c8de92a8ef260240db8960840586cdb7d8159279b6"
	cases := map[string]*Security{
		"XTLS-2.1_security.xml":                     {Fingerprint: mustFP(t, "sha-256", sha256Test), Methods: []string{"x509", "srp"}},
		"XTLS-9_session-initiate.xml":               {Fingerprint: mustFP(t, "sha-256", sha256Test), Methods: []string{"x509", "srp"}},
		"XTLS-13_accept-srp-only.xml":               {Methods: []string{"srp"}},
		"XTLS-17_security-info.xml":                 {Methods: []string{"x509"}},
		"XTLS-D1_emitted.xml":                       {Fingerprint: mustFP(t, "sha-256", gajim), Methods: []string{"x509", "srp"}},
		"XTLS-D1_gajim-no-algo-colon-uppercase.xml": {Fingerprint: mustFP(t, "sha-256", gajim), Methods: []string{"x509"}},
		"XTLS-D1_draft-sha1.xml":                    {Fingerprint: mustFP(t, "sha-1", "a94a8fe5ccb19ba61c4c0873d391e987982fbbd3"), Methods: []string{"x509", "srp", "openpgp"}},
	}
	files, err := fs.Glob(testvectors.FS, "xtls/*.xml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no vectors: %v", err)
	}
	seen := 0
	for _, name := range files {
		base := path.Base(name)
		raw, err := fs.ReadFile(testvectors.FS, name)
		if err != nil {
			t.Fatal(err)
		}
		if base == "XTLS-5_session-terminate-security-error.xml" {
			// No <security/> here: check it is well-formed and carries <security-error/>.
			var iq struct {
				Jingle struct {
					Reason struct {
						SecurityError *struct{} `xml:"urn:xmpp:jingle:1 security-error"`
					} `xml:"urn:xmpp:jingle:1 reason"`
				} `xml:"urn:xmpp:jingle:1 jingle"`
			}
			if err := xml.Unmarshal(raw, &iq); err != nil || iq.Jingle.Reason.SecurityError == nil {
				t.Errorf("%s: %v", base, err)
			}
			seen++
			continue
		}
		el := securityElement(t, raw)
		got, err := ParseSecurity(el)
		if strings.Contains(base, "_invalid-") {
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Errorf("%s: want *ParseError, got %v", base, err)
				continue
			}
			if _, cond, _, _ := pe.StanzaError(); cond != "bad-request" {
				t.Errorf("%s: condition %q", base, cond)
			}
			seen++
			continue
		}
		want, ok := cases[base]
		if !ok {
			t.Errorf("vector %s has no expectation in the test", base)
			continue
		}
		seen++
		if err != nil {
			t.Errorf("%s: %v", base, err)
			continue
		}
		if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b Fingerprint) bool { return a == b })); diff != "" {
			t.Errorf("%s: (-want +got)\n%s", base, diff)
		}
		// Round trip: what we emit parses back to the same value.
		again, err := ParseSecurity(got.Element())
		if err != nil || !cmp.Equal(got, again, cmp.Comparer(func(a, b Fingerprint) bool { return a == b })) {
			t.Errorf("%s: round trip: %v", base, err)
		}
	}
	if seen != len(files) {
		t.Errorf("checked %d of %d vectors", seen, len(files))
	}
}

// The emitted form is exactly XTLS-D1: algo='sha-256', lowercase hex.
func TestXTLS_D1_EmitLowercaseSHA256(t *testing.T) {
	raw, err := fs.ReadFile(testvectors.FS, "xtls/XTLS-D1_gajim-no-algo-colon-uppercase.xml")
	if err != nil {
		t.Fatal(err)
	}
	s, err := ParseSecurity(bytes.TrimSpace(raw))
	if err != nil {
		t.Fatal(err)
	}
	s.Methods = append(s.Methods, MethodSRP)
	want, err := fs.ReadFile(testvectors.FS, "xtls/XTLS-D1_emitted.xml")
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Element(); string(got) != string(bytes.TrimSpace(want)) {
		t.Errorf("emitted\n%s\nwant\n%s", got, want)
	}
	if got := (&Security{}).Element(); string(got) != "<security xmlns='urn:xmpp:jingle:security:xtls:0'/>" {
		t.Errorf("empty: %s", got)
	}
}

// Every <security/> in the captured Gajim traffic parses (XTLS-D1: no algo, colon hex).
func TestXTLS_D1_GajimCaptured(t *testing.T) {
	files, _ := fs.Glob(testvectors.FS, "captured/*gajim*.xml")
	n := 0
	for _, name := range files {
		raw, _ := fs.ReadFile(testvectors.FS, name)
		sc := bufio.NewScanner(bytes.NewReader(raw))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			if !bytes.Contains(line, []byte("<security xmlns='"+NS+"'")) {
				continue
			}
			s, err := ParseSecurity(securityElement(t, line))
			if err != nil {
				t.Errorf("%s: %v", name, err)
				continue
			}
			if s.Fingerprint.Algo() != SHA256 || !s.Has(MethodX509) {
				t.Errorf("%s: %+v", name, s)
			}
			n++
		}
	}
	if n == 0 {
		t.Fatal("no Gajim <security/> found in captured vectors")
	}
}

func TestParseSecurityRejects(t *testing.T) {
	fp := "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	bad := []string{
		"",
		"<security xmlns='" + NS + "'>",
		"<other xmlns='" + NS + "'/>",
		"<?xml version='1.0'?><security xmlns='" + NS + "'/>",
		"<!DOCTYPE x><security xmlns='" + NS + "'/>",
		"<security xmlns='" + NS + "'><!-- c --></security>",
		"<security xmlns='" + NS + "'>text</security>",
		"<security xmlns='" + NS + "'/><security xmlns='" + NS + "'/>",
		"<security xmlns='" + NS + "'/>trailing",
		"<security xmlns='" + NS + "'><bogus/></security>",
		"<security xmlns='" + NS + "'><method name='x509'><method name='srp'/></method></security>",
		"<security xmlns='" + NS + "'><fingerprint>" + fp + "</fingerprint><fingerprint>" + fp + "</fingerprint></security>",
		"<security xmlns='" + NS + "'><fingerprint algo='sha-512'>" + fp + "</fingerprint></security>",
		"<security xmlns='" + NS + "'><fingerprint>" + fp[:62] + "</fingerprint></security>",
		"<security xmlns='" + NS + "'><fingerprint>9f:86:d0</fingerprint></security>",
		"<security xmlns='" + NS + "'><fingerprint>9f:8:6d0</fingerprint></security>",
		"<security xmlns='" + NS + "'><fingerprint algo='sha-1'>" + fp + "</fingerprint></security>",
		"<security xmlns='" + NS + "'>" + strings.Repeat("<method name='m'/>", 300) + "</security>",
		"<security xmlns='" + NS + "'><x xmlns='y'><a><b><c/></b></a></x></security>",
		"<security xmlns='" + NS + "'>" + strings.Repeat(" ", maxSecurityBytes) + "</security>",
	}
	bad = append(bad, "<security xmlns='"+NS+"'>"+manyMethods(maxMethods+1)+"</security>")
	for i, in := range bad {
		_, err := ParseSecurity([]byte(in))
		var pe *ParseError
		if !errors.As(err, &pe) {
			t.Errorf("%d: %.80q: want *ParseError, got %v", i, in, err)
		}
	}
	// Foreign children are skipped; duplicates collapse.
	s, err := ParseSecurity([]byte("<security xmlns='" + NS + "'><x xmlns='urn:other'><y/></x><method name='srp'/><method name='srp'/></security>"))
	if err != nil || len(s.Methods) != 1 {
		t.Errorf("foreign child / duplicate: %v %v", s, err)
	}
}

func manyMethods(n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		b.WriteString("<method name='m")
		b.WriteString(strings.Repeat("x", i+1))
		b.WriteString("'/>")
	}
	return b.String()
}

func TestNI6_RFC6920Vectors(t *testing.T) {
	raw, err := fs.ReadFile(testvectors.FS, "xtls/NI-6_A.5.txt")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		hexv, uri, _ := strings.Cut(line, " ")
		f := mustFP(t, "sha-256", hexv)
		if got := f.NI(); got != uri {
			t.Errorf("NI(%s) = %s, want %s", hexv, got, uri)
		}
		g, err := ParseNI(uri)
		if err != nil || !g.Equal(f) {
			t.Errorf("ParseNI(%s) = %v, %v", uri, g, err)
		}
		// NI-3: authority and query are ignored.
		withAuth := strings.Replace(uri, "ni:///", "ni://example.com/", 1) + "?ct=application/pkix-cert"
		if g, err := ParseNI(withAuth); err != nil || !g.Equal(f) {
			t.Errorf("ParseNI(%s) = %v, %v", withAuth, g, err)
		}
		if g, err := ParseFingerprintText(f.Groups()); err != nil || !g.Equal(f) {
			t.Errorf("ParseFingerprintText(Groups) = %v, %v", g, err)
		}
		n++
	}
	if n != 2 {
		t.Fatalf("read %d vectors", n)
	}
	for _, bad := range []string{"ni:///sha-256;47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU=", "ni:///sha-512;47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU",
		"ni:///sha-256;47DEQpj8HBSa+/TImW-5JCeuQeRkm5NMpJWZG3hSuFU", "ni:sha-256;x", "ni:///sha-256;AAAA", "http:///sha-256;47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU"} {
		if _, err := ParseNI(bad); err == nil {
			t.Errorf("ParseNI(%q) accepted", bad)
		}
	}
}

func TestFingerprintEqualAndDisplay(t *testing.T) {
	a := FingerprintOf([]byte("cert"))
	b := FingerprintOf([]byte("cert"))
	c := FingerprintOf([]byte("other"))
	if !a.Equal(b) || a.Equal(c) || (Fingerprint{}).Equal(Fingerprint{}) {
		t.Error("Equal")
	}
	s1, _ := FingerprintFromDigest(SHA1, a.Digest()[:20])
	if s1.Equal(a) {
		t.Error("SHA-1 equals SHA-256 with same prefix")
	}
	if g := a.Groups(); len(g) != 64+15 || strings.ToUpper(strings.ReplaceAll(g, " ", "")) != strings.ToUpper(a.String()) {
		t.Errorf("Groups = %q", g)
	}
	for _, in := range []string{a.String(), strings.ToUpper(a.String()), colonHex(a), a.NI(), " " + a.Groups() + "\n"} {
		if g, err := ParseFingerprintText(in); err != nil || !g.Equal(a) {
			t.Errorf("ParseFingerprintText(%q) = %v", in, err)
		}
	}
	if _, err := ParseFingerprintText(s1.String()); err == nil {
		t.Error("ParseFingerprintText accepted a SHA-1 digest as a pin")
	}
	var pe *ParseError
	_, err := ParseFingerprint("", "zz")
	if !errors.As(err, &pe) {
		t.Errorf("typed error: %v", err)
	}
	if typ, cond, app, _ := pe.StanzaError(); typ != "modify" || cond != "bad-request" || app != (xml.Name{}) {
		t.Error("StanzaError")
	}
}

func colonHex(f Fingerprint) string {
	h := strings.ToUpper(f.String())
	var parts []string
	for i := 0; i < len(h); i += 2 {
		parts = append(parts, h[i:i+2])
	}
	return strings.Join(parts, ":")
}

// FuzzParseSecurity: no panic on any input; whatever parses re-encodes to an element that
// parses to the same value.
func FuzzParseSecurity(f *testing.F) {
	files, _ := fs.Glob(testvectors.FS, "xtls/*.xml")
	for _, name := range files {
		raw, _ := fs.ReadFile(testvectors.FS, name)
		f.Add(securityElement(f, raw))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseSecurity(data)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("untyped error %T", err)
			}
			return
		}
		again, err := ParseSecurity(s.Element())
		if err != nil {
			t.Fatalf("re-parse of %s: %v", s.Element(), err)
		}
		if !again.Fingerprint.Equal(s.Fingerprint) && !(again.Fingerprint.IsZero() && s.Fingerprint.IsZero()) {
			t.Fatal("fingerprint changed in round trip")
		}
		if !cmp.Equal(again.Methods, s.Methods) {
			t.Fatalf("methods changed: %q vs %q", s.Methods, again.Methods)
		}
	})
}

// FuzzParseFingerprintText covers the hex, colon and ni forms people paste.
func FuzzParseFingerprintText(f *testing.F) {
	a := FingerprintOf([]byte("x"))
	for _, s := range []string{a.String(), colonHex(a), a.NI(), a.Groups(), "ni://h/sha-256;47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU?x=y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		fp, err := ParseFingerprintText(s)
		if err != nil {
			return
		}
		for _, enc := range []string{fp.String(), fp.NI(), fp.Groups()} {
			g, err := ParseFingerprintText(enc)
			if err != nil || !g.Equal(fp) {
				t.Fatalf("round trip %q: %v", enc, err)
			}
		}
	})
}
