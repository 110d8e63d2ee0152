package jingle

import (
	"bytes"
	"errors"
	"strings"
)

// Parse decodes a <jingle xmlns='urn:xmpp:jingle:1'/> element (the payload of a Jingle IQ-set).
// It is strict and bounded (see the limits in the package documentation) and returns an *Error
// with condition bad-request for anything XEP-0166 marks invalid: an unknown or missing action
// (J-13), a missing sid (J-14), a content without creator or name (J-19), content-modify without
// senders (J-21), a <reason/> without exactly one condition (J-27), missing description or
// transport in session-initiate and session-accept (J-1, J-10), no content with disposition
// "session" in session-initiate (J-12), contents of session-initiate not created by the
// initiator (J-19). It tolerates what real clients send: namespace prefixes, xml:lang and other
// unknown attributes, and initiator/responder on any action (J-15, CONF-8).
func Parse(payload []byte) (*Jingle, error) {
	root, err := parseTree(payload)
	if err != nil {
		return nil, err
	}
	return fromTree(root)
}

func fromTree(root *node) (*Jingle, error) {
	if root.name.Space != NS || root.name.Local != "jingle" {
		return nil, badRequest("not a jingle element")
	}
	j := &Jingle{}
	a, _ := root.attr("action")
	if a == "" {
		return nil, badRequest("missing action")
	}
	var ok bool
	if j.Action, ok = parseAction(a); !ok {
		return nil, badRequest("unknown action") // J-13
	}
	j.SID, _ = root.attr("sid")
	j.Initiator, _ = root.attr("initiator")
	j.Responder, _ = root.attr("responder")
	kids, err := root.elements()
	if err != nil {
		return nil, err
	}
	for _, k := range kids {
		switch {
		case k.name.Space == NS && k.name.Local == "content":
			if len(j.Contents) == maxContents {
				return nil, badRequest("too many contents")
			}
			c, err := contentFromTree(k)
			if err != nil {
				return nil, err
			}
			j.Contents = append(j.Contents, c)
		case k.name.Space == NS && k.name.Local == "reason":
			if j.Reason != nil {
				return nil, badRequest("more than one reason")
			}
			if j.Reason, err = reasonFromTree(k); err != nil {
				return nil, err
			}
		case k.name.Space == NS:
			return nil, badRequest("unknown element <" + k.name.Local + "/> in jingle")
		case k.name.Space == "":
			return nil, badRequest("payload element without namespace")
		default:
			if j.Info != nil {
				return nil, badRequest("more than one payload element")
			}
			j.Info = canonical(k)
		}
	}
	if err := j.check(); err != nil {
		return nil, err
	}
	return j, nil
}

func contentFromTree(n *node) (Content, error) {
	var c Content
	cr, _ := n.attr("creator")
	c.Creator = Creator(cr)
	c.Name, _ = n.attr("name")
	c.Disposition, _ = n.attr("disposition")
	s, _ := n.attr("senders")
	c.Senders = Senders(s)
	kids, err := n.elements()
	if err != nil {
		return c, err
	}
	for _, k := range kids {
		if k.name.Space == NS || k.name.Space == "" {
			return c, badRequest("unexpected <" + k.name.Local + "/> in content")
		}
		var dst *[]byte
		switch k.name.Local {
		case "description":
			dst = &c.Description
		case "transport":
			dst = &c.Transport
		case "security":
			dst = &c.Security
		default:
			return c, badRequest("unexpected <" + k.name.Local + "/> in content")
		}
		if *dst != nil {
			return c, badRequest("more than one <" + k.name.Local + "/> in content")
		}
		*dst = canonical(k)
	}
	return c, nil
}

func reasonFromTree(n *node) (*Reason, error) {
	r := &Reason{}
	kids, err := n.elements()
	if err != nil {
		return nil, err
	}
	haveText := false
	for _, k := range kids {
		switch {
		case k.name.Space == NS && k.name.Local == "text":
			if haveText {
				return nil, badRequest("more than one <text/> in reason")
			}
			haveText = true
			t, hasEl := k.text()
			if hasEl || len(t) > maxReason {
				return nil, badRequest("invalid reason text")
			}
			r.Text = t
			for _, a := range k.attrs {
				if a.Name.Space == nsXML && a.Name.Local == "lang" {
					r.Lang = a.Value
				}
			}
		case k.name.Space == NS:
			if r.Condition != "" {
				return nil, badRequest("more than one reason condition")
			}
			r.Condition = Condition(k.name.Local)
			if !r.Condition.valid() {
				return nil, badRequest("unknown reason condition")
			}
			sub, err := k.elements()
			if err != nil {
				return nil, err
			}
			for _, s := range sub {
				if r.Condition != AlternativeSession || s.name.Space != NS || s.name.Local != "sid" || r.AlternativeSID != "" {
					return nil, badRequest("unexpected element in reason condition")
				}
				t, hasEl := s.text()
				if hasEl || t == "" {
					return nil, badRequest("invalid alternative-session sid")
				}
				r.AlternativeSID = t
			}
		case k.name.Space == "":
			return nil, badRequest("reason element without namespace")
		default:
			if r.Extra != nil {
				return nil, badRequest("more than one extra element in reason")
			}
			r.Extra = canonical(k)
		}
	}
	if r.Condition == "" {
		return nil, badRequest("reason without condition") // J-27
	}
	return r, nil
}

// check applies the structural rules of XEP-0166 that do not depend on session state.
func (j *Jingle) check() error {
	if !j.Action.valid() {
		return badRequest("unknown action")
	}
	if j.SID == "" || len(j.SID) > maxIDLen {
		return badRequest("missing or too long sid") // J-14
	}
	if len(j.Initiator) > maxJIDLen || len(j.Responder) > maxJIDLen {
		return badRequest("JID too long")
	}
	if len(j.Contents) > maxContents {
		return badRequest("too many contents")
	}
	type key struct {
		c Creator
		n string
	}
	seen := map[key]bool{}
	sessionDisposition := false
	for _, c := range j.Contents {
		if c.Creator != CreatorInitiator && c.Creator != CreatorResponder {
			return badRequest("content creator must be initiator or responder") // J-19
		}
		if c.Name == "" || len(c.Name) > maxIDLen || len(c.Disposition) > maxIDLen {
			return badRequest("missing or too long content name") // J-19
		}
		if seen[key{c.Creator, c.Name}] {
			return badRequest("duplicate content") // J-19: (creator, name) is unique
		}
		seen[key{c.Creator, c.Name}] = true
		if !c.Senders.valid() {
			return badRequest("invalid senders")
		}
		if c.Disposition == "" || c.Disposition == "session" {
			sessionDisposition = true
		}
		need := func(b []byte, what string) error {
			if b == nil {
				return badRequest(j.Action.String() + ": content without " + what)
			}
			return nil
		}
		var err error
		switch j.Action {
		case SessionInitiate, SessionAccept, ContentAdd:
			if err = need(c.Description, "description"); err == nil {
				err = need(c.Transport, "transport") // J-1, J-10
			}
		case TransportInfo, TransportReplace, TransportAccept, TransportReject:
			err = need(c.Transport, "transport")
		case SecurityInfo:
			err = need(c.Security, "security")
		case DescriptionInfo:
			err = need(c.Description, "description")
		case ContentModify:
			if c.Senders == "" {
				err = badRequest("content-modify without senders") // J-21
			}
		}
		if err != nil {
			return err
		}
		if j.Action == SessionInitiate && c.Creator != CreatorInitiator {
			return badRequest("session-initiate content not created by the initiator") // J-19
		}
	}
	switch j.Action {
	case SessionInitiate, SessionAccept, ContentAdd, ContentAccept, ContentReject, ContentRemove,
		ContentModify, TransportInfo, TransportReplace, TransportAccept, TransportReject,
		SecurityInfo, DescriptionInfo:
		if len(j.Contents) == 0 {
			return badRequest(j.Action.String() + " without content")
		}
	}
	if j.Action == SessionInitiate && !sessionDisposition {
		return badRequest("no content with disposition session") // J-12
	}
	return nil
}

// errTooLarge: the canonical form of an element is larger than the decoder accepts.
var errTooLarge = errors.New("jingle: element too large")

// Marshal encodes j. It applies the same rules as Parse, so it never produces an element that
// Parse rejects; raw children (Content.Description etc., Jingle.Info, Reason.Extra) must each be
// one well-formed element in a namespace other than Jingle's and are written canonically.
func (j *Jingle) Marshal() ([]byte, error) {
	if err := j.check(); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString("<jingle xmlns='" + NS + "' action='" + j.Action.String() + "'")
	for _, a := range [...]struct{ n, v string }{{"sid", j.SID}, {"initiator", j.Initiator}, {"responder", j.Responder}} {
		if a.v == "" {
			continue
		}
		if err := checkXMLString(a.v); err != nil {
			return nil, err
		}
		b.WriteString(" " + a.n + "='")
		escapeAttr(&b, a.v)
		b.WriteByte('\'')
	}
	b.WriteByte('>')
	for _, c := range j.Contents {
		b.WriteString("<content creator='")
		escapeAttr(&b, string(c.Creator))
		b.WriteString("' name='")
		if err := checkXMLString(c.Name); err != nil {
			return nil, err
		}
		escapeAttr(&b, c.Name)
		b.WriteByte('\'')
		if c.Disposition != "" {
			if err := checkXMLString(c.Disposition); err != nil {
				return nil, err
			}
			b.WriteString(" disposition='")
			escapeAttr(&b, c.Disposition)
			b.WriteByte('\'')
		}
		if c.Senders != "" {
			b.WriteString(" senders='" + string(c.Senders) + "'")
		}
		b.WriteByte('>')
		for _, r := range [...]struct {
			local string
			raw   []byte
		}{{"description", c.Description}, {"transport", c.Transport}, {"security", c.Security}} {
			if r.raw == nil {
				continue
			}
			if err := writeRaw(&b, r.raw, r.local); err != nil {
				return nil, err
			}
		}
		b.WriteString("</content>")
	}
	if j.Reason != nil {
		if err := j.Reason.write(&b); err != nil {
			return nil, err
		}
	}
	if j.Info != nil {
		if err := writeRaw(&b, j.Info, ""); err != nil {
			return nil, err
		}
	}
	b.WriteString("</jingle>")
	if b.Len() > maxPayload {
		return nil, errTooLarge
	}
	return b.Bytes(), nil
}

func (r *Reason) write(b *bytes.Buffer) error {
	if !r.Condition.valid() {
		return badRequest("unknown reason condition")
	}
	if r.AlternativeSID != "" && r.Condition != AlternativeSession {
		return errors.New("jingle: alternative sid without alternative-session")
	}
	for _, s := range []string{r.AlternativeSID, r.Text, r.Lang} {
		if err := checkXMLString(s); err != nil {
			return err
		}
	}
	if len(r.Text) > maxReason {
		return errors.New("jingle: reason text too long")
	}
	b.WriteString("<reason>")
	if r.AlternativeSID != "" {
		b.WriteString("<alternative-session><sid>")
		escapeText(b, r.AlternativeSID)
		b.WriteString("</sid></alternative-session>")
	} else {
		b.WriteString("<" + string(r.Condition) + "/>")
	}
	if r.Text != "" || r.Lang != "" {
		b.WriteString("<text")
		if r.Lang != "" {
			b.WriteString(" xml:lang='")
			escapeAttr(b, r.Lang)
			b.WriteByte('\'')
		}
		if r.Text == "" {
			b.WriteString("/>")
		} else {
			b.WriteByte('>')
			escapeText(b, r.Text)
			b.WriteString("</text>")
		}
	}
	if r.Extra != nil {
		if err := writeRaw(b, r.Extra, ""); err != nil {
			return err
		}
	}
	b.WriteString("</reason>")
	return nil
}

// writeRaw checks that raw is one element outside the Jingle namespace (named local, if not
// empty) and writes it canonically.
func writeRaw(b *bytes.Buffer, raw []byte, local string) error {
	n, err := parseTree(raw)
	if err != nil {
		return errors.New("jingle: raw child element: " + err.Error())
	}
	if n.name.Space == "" || n.name.Space == NS || (local != "" && n.name.Local != local) {
		what := local
		if what == "" {
			what = "payload"
		}
		return errors.New("jingle: raw " + what + " element must be <" + strings.TrimSpace(what) + "/> in its own namespace")
	}
	writeNode(b, n, "\x00")
	return nil
}

// Namespace returns the namespace of the raw element b (one element, as in Content), or "" if b
// is not one well-formed element.
func Namespace(b []byte) string {
	n, err := parseTree(b)
	if err != nil {
		return ""
	}
	return n.name.Space
}
