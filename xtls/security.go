package xtls

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"strings"
)

// NS is the namespace of the XTLS security precondition and its disco feature (XTLS-1).
const NS = "urn:xmpp:jingle:security:xtls:0"

// Method names of the draft's registry (§2.1). MethodX509 and MethodSRP are the two this
// package implements (XTLS-6); srp is realised as XSRP (SPEC §18.4).
const (
	MethodX509    = "x509"
	MethodSRP     = "srp"
	MethodOpenPGP = "openpgp"
)

// Limits of the <security/> decoder.
const (
	maxSecurityBytes  = 4096 // whole element
	maxSecurityDepth  = 4    // security > foreign > … nesting
	maxMethods        = 16
	maxMethodNameLen  = 64
	maxSecurityTokens = 256
)

// Security is the <security xmlns='urn:xmpp:jingle:security:xtls:0'/> element of a Jingle
// content (SPEC §2.1): the sender's certificate fingerprint (zero when absent) and the
// methods it offers (session-initiate, session-accept) or chose (security-info, exactly one).
type Security struct {
	Fingerprint Fingerprint
	Methods     []string
}

// Has reports whether m is among s.Methods.
func (s *Security) Has(m string) bool {
	for _, x := range s.Methods {
		if x == m {
			return true
		}
	}
	return false
}

// Element returns the element: the fingerprint as algo='sha-256' lowercase hex (XTLS-D1),
// then one <method name/> per method.
func (s *Security) Element() []byte {
	var b bytes.Buffer
	b.WriteString("<security xmlns='" + NS + "'")
	if s.Fingerprint.IsZero() && len(s.Methods) == 0 {
		b.WriteString("/>")
		return b.Bytes()
	}
	b.WriteString(">")
	if !s.Fingerprint.IsZero() {
		b.WriteString("<fingerprint algo='" + s.Fingerprint.Algo().String() + "'>")
		b.WriteString(s.Fingerprint.String())
		b.WriteString("</fingerprint>")
	}
	for _, m := range s.Methods {
		b.WriteString("<method name='")
		_ = xml.EscapeText(&b, []byte(m))
		b.WriteString("'/>")
	}
	b.WriteString("</security>")
	return b.Bytes()
}

// ParseSecurity decodes exactly one <security/> element in the XTLS namespace. It is strict
// and bounded: at most 4 KiB, no DTD, comments or processing instructions, at most one
// <fingerprint/>, at most 16 methods with non-empty names, no stray text, nothing after the
// element. Children in other namespaces are skipped (bounded depth); unknown children in the
// XTLS namespace are rejected. Duplicate methods are reported once. Unknown method names are
// kept (C2C-2: the caller ignores what it does not understand). Errors are *ParseError.
func ParseSecurity(data []byte) (*Security, error) {
	if len(data) > maxSecurityBytes {
		return nil, parseErrorf("security: element larger than %d bytes", maxSecurityBytes)
	}
	d := xml.NewDecoder(bytes.NewReader(data))
	d.Strict = true
	var (
		s       Security
		depth   int
		started bool
		done    bool
		inFP    bool
		fpSeen  bool
		fpAlgo  string
		fpText  strings.Builder
		skip    int // depth of a foreign subtree being skipped (0 = none)
		tokens  int
	)
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, parseErrorf("security: malformed XML")
		}
		tokens++
		if tokens > maxSecurityTokens {
			return nil, parseErrorf("security: too many tokens")
		}
		switch t := tok.(type) {
		case xml.ProcInst, xml.Directive, xml.Comment:
			return nil, parseErrorf("security: restricted XML (DTD, comment or processing instruction)")
		case xml.StartElement:
			if done {
				return nil, parseErrorf("security: content after the element")
			}
			depth++
			if depth > maxSecurityDepth {
				return nil, parseErrorf("security: nested too deeply")
			}
			if !started {
				if t.Name.Space != NS || t.Name.Local != "security" {
					return nil, parseErrorf("security: not a <security xmlns='%s'/> element", NS)
				}
				started = true
				continue
			}
			if skip > 0 {
				continue
			}
			if depth > 2 || t.Name.Space != NS {
				if t.Name.Space == NS {
					return nil, parseErrorf("security: unexpected nested element")
				}
				skip = depth
				continue
			}
			switch t.Name.Local {
			case "fingerprint":
				if fpSeen {
					return nil, parseErrorf("security: more than one <fingerprint/>")
				}
				fpSeen, inFP = true, true
				fpAlgo = attr(t, "algo")
			case "method":
				name := attr(t, "name")
				if name == "" || len(name) > maxMethodNameLen {
					return nil, parseErrorf("security: <method/> without a valid name")
				}
				if !s.Has(name) {
					if len(s.Methods) == maxMethods {
						return nil, parseErrorf("security: too many methods")
					}
					s.Methods = append(s.Methods, name)
				}
			default:
				return nil, parseErrorf("security: unknown element <%.32s/>", t.Name.Local)
			}
		case xml.EndElement:
			depth--
			if skip > 0 {
				if depth < skip {
					skip = 0
				}
				continue
			}
			if inFP {
				inFP = false
				fp, err := ParseFingerprint(fpAlgo, fpText.String())
				if err != nil {
					return nil, err
				}
				s.Fingerprint = fp
			}
			if depth == 0 {
				done = true
			}
		case xml.CharData:
			if skip > 0 {
				continue
			}
			if inFP {
				if fpText.Len()+len(t) > maxFingerprintText {
					return nil, parseErrorf("fingerprint: value too long")
				}
				fpText.Write(t)
				continue
			}
			if len(bytes.Trim(t, " \t\r\n")) != 0 {
				return nil, parseErrorf("security: unexpected text")
			}
		}
	}
	if !done {
		return nil, parseErrorf("security: no complete element")
	}
	return &s, nil
}

func attr(t xml.StartElement, local string) string {
	for _, a := range t.Attr {
		if a.Name.Space == "" && a.Name.Local == local {
			return a.Value
		}
	}
	return ""
}
