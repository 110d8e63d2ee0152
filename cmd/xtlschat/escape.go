package main

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// escapeTerminal returns s made safe to print on a terminal: peer text must never be able to
// move the cursor, change colours, set the window title, fake a line of our own or reorder
// what follows it (STYLE §4.10, agl appendTerminalEscaped). It escapes, in a visible and
// unambiguous form:
//
//   - every C0 control (U+0000–U+001F, ESC and line breaks included) and DEL as \xNN, except
//     \n, \r and \t which become those two-character escapes,
//   - every C1 control (U+0080–U+009F; 0x9B is a one-byte CSI on some terminals) as \uNNNN,
//   - bidirectional formatting characters (LRE, RLE, PDF, LRO, RLO, LRI, RLI, FSI, PDI, LRM,
//     RLM, ALM) and the Unicode line and paragraph separators as \uNNNN,
//   - bytes that are not valid UTF-8 as \xNN,
//   - the backslash itself as \\, so that an escape in the output always means an escape.
//
// Everything else, including printable non-ASCII text, is kept.
func escapeTerminal(s string) string {
	if !needsEscape(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b.WriteString(`\x`)
			writeHex(&b, uint32(s[i]), 2)
			i++
			continue
		}
		i += size
		switch {
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			b.WriteString(`\x`)
			writeHex(&b, uint32(r), 2)
		case unsafeRune(r):
			b.WriteString(`\u`)
			writeHex(&b, uint32(r), 4)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func needsEscape(s string) bool {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c < 0x20 || c == 0x7f || c == '\\' {
				return true
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && size == 1) || unsafeRune(r) {
			return true
		}
		i += size
	}
	return false
}

// unsafeRune reports the non-ASCII runes escapeTerminal escapes: C1 controls, bidi formatting
// characters and the line/paragraph separators.
func unsafeRune(r rune) bool {
	switch {
	case r >= 0x80 && r <= 0x9f: // C1
		return true
	case r == 0x061c, r == 0x200e, r == 0x200f: // ALM, LRM, RLM
		return true
	case r >= 0x202a && r <= 0x202e: // LRE, RLE, PDF, LRO, RLO
		return true
	case r >= 0x2066 && r <= 0x2069: // LRI, RLI, FSI, PDI
		return true
	case r == 0x2028, r == 0x2029: // line and paragraph separator
		return true
	}
	return false
}

func writeHex(b *strings.Builder, v uint32, width int) {
	h := strconv.FormatUint(uint64(v), 16)
	for n := len(h); n < width; n++ {
		b.WriteByte('0')
	}
	b.WriteString(h)
}
