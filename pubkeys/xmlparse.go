package pubkeys

import (
	"bytes"

	"github.com/xtlsjingle/xtlsjingle/internal/xmltree"
)

// The strict, bounded tree decoder and the escaping helpers are shared with the other payload
// packages (internal/xmltree); these names keep the package's code short.
type (
	limits = xmltree.Limits
	node   = xmltree.Node
)

// parse decodes exactly one element strictly and within lim (xmltree.Parse); a refusal is a
// bad-request error of this package.
func parse(b []byte, lim limits) (*node, error) {
	n, err := xmltree.Parse(b, lim)
	if err != nil {
		return nil, badRequest("%s", err)
	}
	return n, nil
}

func escAttr(b *bytes.Buffer, s string)        { xmltree.EscAttr(b, s) }
func attr(b *bytes.Buffer, name, value string) { xmltree.Attr(b, name, value) }
func escText(b *bytes.Buffer, s string)        { xmltree.EscText(b, s) }
