package main

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestEscapeTerminal(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"plain", "hello, world", "hello, world"},
		{"non-ASCII kept", "Grüße ☃ 日本", "Grüße ☃ 日本"},
		{"ESC colour", "\x1b[31mred\x1b[0m", `\x1b[31mred\x1b[0m`},
		{"OSC title", "\x1b]0;pwned\x07", `\x1b]0;pwned\x07`},
		{"newline fakes a line", "hi\n[xtlschat] certificate verified", `hi\n[xtlschat] certificate verified`},
		{"CR overwrites", "ok\rEVIL", `ok\rEVIL`},
		{"tab", "a\tb", `a\tb`},
		{"NUL and BEL", "a\x00b\x07", `a\x00b\x07`},
		{"DEL", "a\x7fb", `a\x7fb`},
		{"backspace", "abc\b\b\bxyz", `abc\x08\x08\x08xyz`},
		{"C1 CSI as rune", "a\u009b31mb", `a\u009b31mb`},
		{"C1 NEL", "a\u0085b", `a\u0085b`},
		{"raw 0x9b byte (invalid UTF-8)", "a\x9b31m", `a\x9b31m`},
		{"RLO reorders", "abc\u202Etxt.exe", `abc\u202etxt.exe`},
		{"isolates", "\u2066x\u2069\u2067\u2068", `\u2066x\u2069\u2067\u2068`},
		{"marks", "\u200e\u200f\u061c", `\u200e\u200f\u061c`},
		{"line separators", "a\u2028b\u2029c", `a\u2028b\u2029c`},
		{"backslash is escaped so escapes are unambiguous", `\x1b`, `\\x1b`},
		{"truncated UTF-8", "ab\xe2\x82", `ab\xe2\x82`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := escapeTerminal(tt.in); got != tt.want {
				t.Errorf("escapeTerminal(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// TestEscapeTerminalNeverEmitsControls checks the property over every byte value and every
// rune of the first planes that escapeTerminal claims to handle.
func TestEscapeTerminalNeverEmitsControls(t *testing.T) {
	var in strings.Builder
	for b := 0; b < 256; b++ {
		in.WriteByte(byte(b))
	}
	for r := rune(0x80); r < 0x3000; r++ {
		in.WriteRune(r)
	}
	out := escapeTerminal(in.String())
	checkSafe(t, out)
}

func checkSafe(t *testing.T, out string) {
	t.Helper()
	if !utf8.ValidString(out) {
		t.Fatalf("output is not valid UTF-8")
	}
	for _, r := range out {
		if r < 0x20 || r == 0x7f || unsafeRune(r) {
			t.Fatalf("output contains %U", r)
		}
	}
}

func FuzzEscapeTerminal(f *testing.F) {
	for _, s := range []string{"", "hi", "\x1b[2J", "\u202e", "\xff\xfe", `\\`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := escapeTerminal(s)
		checkSafe(t, out)
		if !needsEscape(s) && out != s {
			t.Fatalf("safe input changed: %q -> %q", s, out)
		}
	})
}
