package gosrcxmpp

import (
	"context"
	"strings"
	"testing"
)

// TestDispatchPresence: available, unavailable and subscription presence reach the handlers in
// order with their children as exact XML; probes, errors, presence without from and oversized
// children do not.
func TestDispatchPresence(t *testing.T) {
	c := &Client{ctx: context.Background()}
	type got struct {
		from, typ string
		kids      []string
	}
	var seen []got
	remove := c.HandlePresence(func(_ context.Context, from, typ string, kids [][]byte) {
		g := got{from: from, typ: typ}
		for _, k := range kids {
			g.kids = append(g.kids, string(k))
		}
		seen = append(seen, g)
	})
	c.HandlePresence(func(context.Context, string, string, [][]byte) { panic("recovered") })
	big := "<x xmlns='urn:big'>" + strings.Repeat("a", MaxPresenceChildBytes) + "</x>"
	for _, doc := range []string{
		`<presence xmlns="jabber:client" from="a@x/1"><show>chat</show><p2p xmlns="urn:nf:iot:p2p:1.0" extIp="1.2.3.4" extPort="1" locIp="10.0.0.1" locPort="2"/>` + big + `</presence>`,
		`<presence xmlns="jabber:client" from="a@x" type="subscribe"/>`,
		`<presence xmlns="jabber:client" from="a@x/1" type="probe"/>`,
		`<presence xmlns="jabber:client" from="a@x/1" type="error"><error type="cancel"><item-not-found xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/></error></presence>`,
		`<presence xmlns="jabber:client"/>`, // no from: dropped
		`<presence xmlns="jabber:client" from="a@x/1" type="unavailable"/>`,
	} {
		st, err := parseStanza([]byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		c.dispatch(nil, st)
	}
	want := []got{
		{"a@x/1", "available", []string{`<show xmlns="jabber:client">chat</show>`, `<p2p xmlns="urn:nf:iot:p2p:1.0" extIp="1.2.3.4" extPort="1" locIp="10.0.0.1" locPort="2"></p2p>`}},
		{"a@x", "subscribe", nil},
		{"a@x/1", "unavailable", nil},
	}
	if len(seen) != len(want) {
		t.Fatalf("got %+v, want %+v", seen, want)
	}
	for i := range want {
		if seen[i].from != want[i].from || seen[i].typ != want[i].typ || strings.Join(seen[i].kids, "|") != strings.Join(want[i].kids, "|") {
			t.Errorf("presence %d: got %+v, want %+v", i, seen[i], want[i])
		}
	}
	remove()
	st, _ := parseStanza([]byte(`<presence xmlns="jabber:client" from="b@x/1"/>`))
	c.dispatch(nil, st)
	if len(seen) != len(want) {
		t.Error("removed handler still called")
	}
}
