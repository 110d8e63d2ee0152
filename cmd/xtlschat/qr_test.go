package main

import (
	"strings"
	"testing"

	"rsc.io/qr"
)

// The terminal rendering must carry exactly the modules of the code: decode it back from the
// plain half-block form and compare with the encoder's bitmap.
func TestRenderQRModules(t *testing.T) {
	const text = "ni:///sha-256;f4OxZX_x_FO5LcGBSKHWXfwtSx-j1ncoSt3SABJtkGk"
	out, err := renderQR(text, false)
	if err != nil {
		t.Fatal(err)
	}
	code, _ := qr.Encode(text, qr.M)
	rows := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	n := code.Size + 2*qrQuiet
	if len(rows) != (n+1)/2 {
		t.Fatalf("%d rows, want %d", len(rows), (n+1)/2)
	}
	for ry, row := range rows {
		cells := []rune(row)
		if len(cells) != n {
			t.Fatalf("row %d has %d cells, want %d", ry, len(cells), n)
		}
		for x, c := range cells {
			top := c == '█' || c == '▀'
			bottom := c == '█' || c == '▄'
			for i, got := range []bool{top, bottom} {
				y := 2*ry + i - qrQuiet
				xx := x - qrQuiet
				want := xx >= 0 && y >= 0 && xx < code.Size && y < code.Size && code.Black(xx, y)
				if got != want {
					t.Fatalf("module (%d,%d): got dark=%v want %v", xx, y, got, want)
				}
			}
		}
	}
	ansi, err := renderQR(text, true)
	if err != nil || !strings.Contains(ansi, "\x1b[30;40m▀") || !strings.HasSuffix(ansi, "\x1b[0m\n") {
		t.Errorf("ANSI rendering lacks explicit colours or the final reset")
	}
}
