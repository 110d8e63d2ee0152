package main

import (
	"strings"

	"rsc.io/qr"
)

// qrQuiet is the quiet zone around the code, in modules (the standard asks for 4; terminals
// show the code on a uniform background, and 2 keeps it small enough for 80 columns).
const qrQuiet = 2

// renderQR draws text as a QR code with Unicode half blocks, two modules per character row.
// With ansi the colours are set explicitly (black on white), so the code scans on dark and
// light terminal themes alike; without, dark modules are drawn as blocks on the terminal's
// background (for output that is not a terminal).
func renderQR(text string, ansi bool) (string, error) {
	code, err := qr.Encode(text, qr.M)
	if err != nil {
		return "", err
	}
	n := code.Size + 2*qrQuiet
	dark := func(x, y int) bool {
		x, y = x-qrQuiet, y-qrQuiet
		return x >= 0 && y >= 0 && x < code.Size && y < code.Size && code.Black(x, y)
	}
	var b strings.Builder
	for y := 0; y < n; y += 2 {
		for x := 0; x < n; x++ {
			top, bottom := dark(x, y), y+1 < n && dark(x, y+1)
			if y+1 >= n {
				bottom = false
			}
			if ansi {
				fg, bg := "97", "107"
				if top {
					fg = "30"
				}
				if bottom {
					bg = "40"
				}
				b.WriteString("\x1b[" + fg + ";" + bg + "m▀")
				continue
			}
			switch {
			case top && bottom:
				b.WriteString("█")
			case top:
				b.WriteString("▀")
			case bottom:
				b.WriteString("▄")
			default:
				b.WriteString(" ")
			}
		}
		if ansi {
			b.WriteString("\x1b[0m")
		}
		b.WriteString("\n")
	}
	return b.String(), nil
}
