package jingle

import (
	"errors"
	"io/fs"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/xtlsjingle/xtlsjingle/testvectors"
)

// roundTrip checks Parse(Marshal(j)) == j and that Marshal is stable.
func roundTrip(t *testing.T, j *Jingle) {
	t.Helper()
	b1 := mustMarshal(t, j)
	j2, err := Parse(b1)
	if err != nil {
		t.Fatalf("re-parse of %s: %v", b1, err)
	}
	if d := cmp.Diff(j, j2); d != "" {
		t.Fatalf("round trip (-want +got):\n%s", d)
	}
	if b2 := mustMarshal(t, j2); string(b1) != string(b2) {
		t.Fatalf("marshal not stable:\n%s\n%s", b1, b2)
	}
}

func TestVectors_Valid(t *testing.T) {
	cases := []struct {
		file  string
		check func(t *testing.T, j *Jingle)
	}{
		{"XTLS-9_session-initiate-xmlstream-ibb.xml", func(t *testing.T, j *Jingle) {
			c := j.Contents[0]
			if j.Action != SessionInitiate || j.Initiator != "romeo@montague.lit/orchard" || c.Name != "xmlstream" ||
				Namespace(c.Description) != nsXS || Namespace(c.Transport) != nsIBB || Namespace(c.Security) != nsXTLS {
				t.Fatalf("%+v", j)
			}
			if !strings.Contains(string(c.Security), "<method name='srp'/>") {
				t.Fatalf("security: %s", c.Security)
			}
		}},
		{"J-10_session-accept-xmlstream-ibb.xml", func(t *testing.T, j *Jingle) {
			if j.Action != SessionAccept || j.Responder != "juliet@capulet.lit/balcony" || len(j.Contents) != 1 {
				t.Fatalf("%+v", j)
			}
		}},
		{"XTLS-17_security-info-method.xml", func(t *testing.T, j *Jingle) {
			want := "<security xmlns='" + nsXTLS + "'><method name='x509'/></security>"
			if j.Action != SecurityInfo || string(j.Contents[0].Security) != want {
				t.Fatalf("got %s", j.Contents[0].Security)
			}
		}},
		{"XTLS-5_session-terminate-security-error.xml", func(t *testing.T, j *Jingle) {
			want := &Reason{Condition: SecurityError, Text: "peer certificate not trusted"}
			if d := cmp.Diff(want, j.Reason); d != "" {
				t.Fatal(d)
			}
		}},
		{"J-23_session-terminate-alternative-session.xml", func(t *testing.T, j *Jingle) {
			want := &Reason{Condition: AlternativeSession, AlternativeSID: "b84tkkwlmb48kgfb",
				Text: "already talking on another session", Lang: "en"}
			if d := cmp.Diff(want, j.Reason); d != "" {
				t.Fatal(d)
			}
		}},
		{"J-29_session-info-ping.xml", func(t *testing.T, j *Jingle) {
			if j.Action != SessionInfo || j.Info != nil || len(j.Contents) != 0 {
				t.Fatalf("%+v", j)
			}
		}},
		{"J-15_prefixed-namespaces-initiator-on-accept.xml", func(t *testing.T, j *Jingle) {
			// The prefixed transport is re-serialised self-contained (canonical form).
			want := "<transport xmlns='" + nsIBB + "' block-size='4096' sid='ch3d9s71'/>"
			if j.Action != SessionAccept || j.Initiator == "" || string(j.Contents[0].Transport) != want {
				t.Fatalf("%+v %s", j, j.Contents[0].Transport)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			st := readVector(t, "jingle/"+c.file)
			j, err := Parse(st.child)
			if err != nil {
				t.Fatal(err)
			}
			c.check(t, j)
			roundTrip(t, j)
		})
	}
}

// TestVectors_Invalid: every *_invalid-* vector is refused with bad-request (J-1, J-12, J-13,
// J-19, J-21, J-27).
func TestVectors_Invalid(t *testing.T) {
	files, err := fs.Glob(testvectors.FS, "jingle/*_invalid-*.xml")
	if err != nil || len(files) < 6 {
		t.Fatalf("%v %v", files, err)
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			_, err := Parse(readVector(t, f).child)
			wantErr(t, err, "bad-request", "")
		})
	}
}

// TestVectors_Errors: our error values are the ones of SPEC §3.4 / J-28 / J-41 (ERR-1).
func TestVectors_Errors(t *testing.T) {
	for file, want := range map[string]*Error{
		"J-34_tie-break-error.xml":         ErrTieBreak,
		"J-37_out-of-order-error.xml":      ErrOutOfOrder,
		"J-25_unknown-session-error.xml":   ErrUnknownSession,
		"J-28_unsupported-info-error.xml":  ErrUnsupportedInfo,
		"J-41_security-required-error.xml": ErrSecurityRequired,
	} {
		t.Run(file, func(t *testing.T) {
			got := parseErrorElement(t, readVector(t, "jingle/"+file).child)
			if d := cmp.Diff(want, got); d != "" {
				t.Fatalf("(-ours +vector):\n%s", d)
			}
			if !errors.Is(got, want) {
				t.Fatal("Is does not match")
			}
		})
	}
}

// TestCapturedParse: every Jingle stanza Gajim 1.5.3 and Libervia 0.9 sent parses and
// round-trips (J-15/CONF-8: Gajim puts initiator on every action).
func TestCapturedParse(t *testing.T) {
	files, _ := fs.Glob(testvectors.FS, "captured/*.xml")
	n := 0
	for _, f := range files {
		for _, st := range capturedJingle(t, strings.TrimPrefix(f, "captured/")) {
			j, err := Parse(st.child)
			if err != nil {
				t.Fatalf("%s: %v\n%s", f, err, st.child)
			}
			roundTrip(t, j)
			n++
		}
	}
	if n < 15 {
		t.Fatalf("only %d captured jingle stanzas", n)
	}
}

func TestParse_Strict(t *testing.T) {
	ok := "<jingle xmlns='urn:xmpp:jingle:1' action='session-info' sid='s1'/>"
	if _, err := Parse([]byte(ok)); err != nil {
		t.Fatal(err)
	}
	deep := ok[:len(ok)-2] + ">" + strings.Repeat("<x xmlns='urn:x'>", maxDepth) + strings.Repeat("</x>", maxDepth) + "</jingle>"
	bad := map[string]string{
		"comment":           "<jingle xmlns='urn:xmpp:jingle:1' action='session-info' sid='s1'><!-- hi --></jingle>",
		"PI":                "<?xml version='1.0'?>" + ok,
		"DTD":               "<!DOCTYPE x [<!ENTITY a 'b'>]>" + ok,
		"entity":            "<jingle xmlns='urn:xmpp:jingle:1' action='session-info' sid='&a;'/>",
		"no action":         "<jingle xmlns='urn:xmpp:jingle:1' sid='s1'/>",
		"no sid":            "<jingle xmlns='urn:xmpp:jingle:1' action='session-info'/>",
		"wrong ns":          "<jingle xmlns='urn:xmpp:jingle:0' action='session-info' sid='s1'/>",
		"two elements":      ok + ok,
		"text outside":      ok + "x",
		"undeclared prefix": "<j:jingle action='session-info' sid='s1'/>",
		"dup attr":          "<jingle xmlns='urn:xmpp:jingle:1' action='session-info' sid='s1' sid='s2'/>",
		"too deep":          deep,
		"too big":           "<jingle xmlns='urn:xmpp:jingle:1' action='session-info' sid='s1'>" + strings.Repeat(" ", maxPayload) + "</jingle>",
		"two infos":         "<jingle xmlns='urn:xmpp:jingle:1' action='session-info' sid='s1'><a xmlns='urn:a'/><b xmlns='urn:b'/></jingle>",
		"unknown child":     "<jingle xmlns='urn:xmpp:jingle:1' action='session-info' sid='s1'><dance/></jingle>",
		"reason no cond":    "<jingle xmlns='urn:xmpp:jingle:1' action='session-terminate' sid='s1'><reason><text>x</text></reason></jingle>",
		"reason bad cond":   "<jingle xmlns='urn:xmpp:jingle:1' action='session-terminate' sid='s1'><reason><tired/></reason></jingle>",
		"two transports": "<jingle xmlns='urn:xmpp:jingle:1' action='transport-info' sid='s1'><content creator='initiator' name='a'>" +
			"<transport xmlns='urn:t'/><transport xmlns='urn:t'/></content></jingle>",
		"description in jingle ns": "<jingle xmlns='urn:xmpp:jingle:1' action='description-info' sid='s1'><content creator='initiator' name='a'><description/></content></jingle>",
		"bad creator":              "<jingle xmlns='urn:xmpp:jingle:1' action='transport-info' sid='s1'><content creator='me' name='a'><transport xmlns='urn:t'/></content></jingle>",
		"dup content":              "<jingle xmlns='urn:xmpp:jingle:1' action='content-remove' sid='s1'><content creator='initiator' name='a'/><content creator='initiator' name='a'/></jingle>",
		"bad senders":              "<jingle xmlns='urn:xmpp:jingle:1' action='content-modify' sid='s1'><content creator='initiator' name='a' senders='all'/></jingle>",
		"mismatched end":           "<jingle xmlns='urn:xmpp:jingle:1' action='session-info' sid='s1'></jingel>",
	}
	for name, in := range bad {
		t.Run(name, func(t *testing.T) {
			_, err := Parse([]byte(in))
			wantErr(t, err, "bad-request", "")
		})
	}
}

func TestMarshal_RoundTrip(t *testing.T) {
	cases := []*Jingle{
		{Action: SessionInitiate, SID: "a73sjjvkla37jfea", Initiator: "romeo@montague.lit/orchard", Contents: []Content{xsContent("xmlstream")}},
		{Action: SessionTerminate, SID: "s", Reason: &Reason{Condition: Success}},
		{Action: SessionTerminate, SID: "s", Reason: &Reason{Condition: AlternativeSession, AlternativeSID: "other", Text: "a < b & 'c'", Lang: "en",
			Extra: []byte("<detail xmlns='urn:example:reason'>x</detail>")}},
		{Action: SessionInfo, SID: "s", Info: []byte("<ringing xmlns='urn:xmpp:jingle:apps:rtp:info:1'/>")},
		{Action: ContentModify, SID: "s", Contents: []Content{{Creator: CreatorResponder, Name: "n", Senders: SendersNone}}},
		{Action: ContentAdd, SID: "s", Contents: []Content{{Creator: CreatorResponder, Name: "n2", Disposition: "early-session", Senders: SendersResponder,
			Description: []byte("<description xmlns='urn:a'><x xmlns:ns0='urn:p' ns0:attr='1' xml:lang='de'>t&amp;</x></description>"),
			Transport:   []byte("<transport xmlns='urn:t'/>")}}},
	}
	for _, j := range cases {
		t.Run(j.Action.String(), func(t *testing.T) { roundTrip(t, j) })
	}
	// Marshal refuses what Parse would refuse.
	for name, j := range map[string]*Jingle{
		"no sid":              {Action: SessionInfo},
		"bad action":          {Action: 99, SID: "s"},
		"raw not element":     {Action: SessionInfo, SID: "s", Info: []byte("text")},
		"raw in jingle ns":    {Action: SessionInfo, SID: "s", Info: []byte("<x xmlns='urn:xmpp:jingle:1'/>")},
		"transport misnamed":  {Action: TransportInfo, SID: "s", Contents: []Content{{Creator: CreatorInitiator, Name: "a", Transport: []byte("<t xmlns='urn:t'/>")}}},
		"reason bad":          {Action: SessionTerminate, SID: "s", Reason: &Reason{Condition: "nope"}},
		"initiate no content": {Action: SessionInitiate, SID: "s"},
		"invalid char":        {Action: SessionInfo, SID: "s\x01"},
	} {
		if _, err := j.Marshal(); err == nil {
			t.Errorf("%s: Marshal succeeded", name)
		}
	}
}

func TestEnumsString(t *testing.T) {
	for a := ContentAccept; a <= TransportReplace; a++ {
		if p, ok := parseAction(a.String()); !ok || p != a {
			t.Fatalf("%d: %q", a, a.String())
		}
	}
	if Action(0).String() != "action(0)" || StatePending.String() != "pending" || StateActive.String() != "active" ||
		StateEnded.String() != "ended" || State(9).String() != "state(9)" {
		t.Fatal("String")
	}
}

// TestJ12_SeveralContentsOneSession: with several contents, one of disposition session is
// enough.
func TestJ12_SeveralContentsOneSession(t *testing.T) {
	a, b := xsContent("a"), xsContent("b")
	a.Disposition = "early-session"
	j := &Jingle{Action: SessionInitiate, SID: "s", Initiator: romeo, Contents: []Content{a, b}}
	roundTrip(t, j)
	b.Disposition = "early-session"
	j.Contents = []Content{a, b}
	if _, err := j.Marshal(); err == nil {
		t.Fatal("no session content accepted")
	}
}
