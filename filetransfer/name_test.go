package filetransfer_test

import (
	"path/filepath"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/xtlsjingle/xtlsjingle/filetransfer"
)

// TestFT3_ValidNameRefusesFormatCharacters: names with bidi controls or other invisible
// format characters (Unicode category Cf) are refused, so an offer cannot show "exe.jpg"
// for a file that is saved as "gpj.exe" (issue 8).
func TestFT3_ValidNameRefusesFormatCharacters(t *testing.T) {
	for _, name := range []string{
		"holiday\u202egpj.exe",                         // RIGHT-TO-LEFT OVERRIDE: shows as "holidayexe.jpg"
		"a\u202ab", "a\u202bb", "a\u202cb", "a\u202db", // LRE, RLE, PDF, LRO
		"a\u200bb", "a\u200cb", "a\u200db", "a\u200eb", "a\u200fb", // zero width, LRM, RLM
		"a\u2066b", "a\u2067b", "a\u2068b", "a\u2069b", // isolates
		"\ufeffreport.pdf", "a\u2060b", "a\u00adb", "a\u061cb", // BOM, word joiner, soft hyphen, ALM
		"a\U000e0001b",         // LANGUAGE TAG
		"a\u2028b", "a\u2029b", // LINE and PARAGRAPH SEPARATOR (Zl, Zp)
	} {
		if filetransfer.ValidName(name) {
			t.Errorf("ValidName(%+q) accepted a name with a format character", name)
		}
	}
	for _, name := range []string{"photo.jpg", "שלום.txt", "مرحبا.pdf", "日本語.png", "Résumé 2026.pdf"} {
		if !filetransfer.ValidName(name) {
			t.Errorf("ValidName(%+q) refused a plain name", name)
		}
	}
}

// FuzzValidName checks the invariants of an accepted name: one local path element, not
// hidden, valid UTF-8 without control, format (Cf) or line/paragraph separator characters, within 255 bytes as a
// temporary ".<name>.part".
func FuzzValidName(f *testing.F) {
	for _, s := range []string{"payload.bin", "holiday\u202egpj.exe", "a\u200bb", "\ufeffx", "../x", ".x", "a/b", "x\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if !filetransfer.ValidName(name) {
			return
		}
		if !utf8.ValidString(name) || name == "" || name[0] == '.' || len(name)+len("..part") > 255 ||
			!filepath.IsLocal(name) || filepath.Base(name) != name || strings.ContainsAny(name, `/\:`) {
			t.Fatalf("ValidName(%+q) accepted a bad name", name)
		}
		for _, r := range name {
			if unicode.IsControl(r) || unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp) {
				t.Fatalf("ValidName(%+q) accepted %U", name, r)
			}
		}
	})
}
