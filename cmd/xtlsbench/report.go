package main

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"sort"
	"strings"
)

func verdict(ok bool, by string) string {
	if ok {
		return "met"
	}
	return "missed " + by
}

func markdown(r *Report) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Run %s, %.0f s wall. ", r.Time, r.WallSeconds)
	keys := make([]string, 0, len(r.Machine))
	for k := range r.Machine {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "%s: %s; ", k, r.Machine[k])
	}
	fmt.Fprintf(&b, "\n\nSettings: ")
	keys = keys[:0]
	for k := range r.Settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "%s = %s; ", k, r.Settings[k])
	}
	fmt.Fprintf(&b, "\n\n| measure | compared with (same run) | XTLS (median) | anchor (median) | ratio | goal | verdict |\n|---|---|---|---|---|---|---|\n")
	for _, p := range r.Throughput {
		name := p.Name
		if p.Window > 0 {
			name += fmt.Sprintf(", window %d", p.Window)
		}
		fmt.Fprintf(&b, "| %s (%s) | %s | %.2f MB/s | %.2f MB/s | %.2f× | ≥ %.2f× | %s |\n", name, p.Cipher, p.AnchorIs, p.XTLSMed, p.AnchorMed, p.Ratio, p.Goal,
			verdict(p.Ratio >= p.Goal, fmt.Sprintf("by %.0f%%", (p.Goal-p.Ratio)/p.Goal*100)))
	}
	if c := r.CPU; c != nil {
		fmt.Fprintf(&b, "| client CPU per MB, XTLS over IBB, window %d | — | %.3f cpu-s/MB both ends = %.0f MB/s per core; one end ≈ %.0f MB/s per core | | | ≥ 100 MB/s per core | %s |\n",
			c.Window, c.CPUSecPerMB, c.MBPerCoreSec, c.MBPerCoreSecOn, verdict(c.MBPerCoreSecOn >= 100, fmt.Sprintf("by %.0f%% (one-end estimate)", (100-c.MBPerCoreSecOn)/100*100)))
	}
	for _, s := range r.Setup {
		goal, v := "(no goal for srp; reported)", "—"
		if s.GoalRTTPlusH > 0 {
			goal = "≤ 8 RTT + one handshake"
			v = verdict(s.RTTsMinusHS <= 8, fmt.Sprintf("by %.1f RTT", s.RTTsMinusHS-8))
		}
		name := s.Name
		if s.OneWayLatencyMS > 0 {
			name += fmt.Sprintf(", %g ms one way on each client link", s.OneWayLatencyMS)
		}
		fmt.Fprintf(&b, "| session setup, %s | one IQ round trip %.2f ms; local handshake %.2f ms | %.1f ms = %.1f RTT | (setup − handshake) = %.1f RTT | | %s | %s |\n",
			name, s.RTTMS, s.HandshakeMS, s.MedianMS, s.RTTs, s.RTTsMinusHS, goal, v)
	}
	if m := r.Memory; m != nil {
		fmt.Fprintf(&b, "| memory per idle session end (%d sessions, %.0f s to open) | crypto/tls pair alone: %.1f KiB/end | %.1f KiB/end, %.1f goroutines/end | +%.1f KiB over TLS | | ≤ 32 KiB; 10,000 sessions | %s |\n",
			m.Sessions, m.OpenSeconds, m.TLSPairKiBPerEnd, m.XTLSKiBPerEnd, m.GoroutinesPerEnd, m.DifferenceKiB,
			verdict(m.XTLSKiBPerEnd <= 32 && m.Sessions >= 10000, fmt.Sprintf("(%.1f KiB/end, %d sessions measured)", m.XTLSKiBPerEnd, m.Sessions)))
	}
	for _, l := range r.LeftOut {
		fmt.Fprintf(&b, "\n- %s", l)
	}
	fmt.Fprintf(&b, "\n\nPer-run throughput (MB/s):\n\n")
	for _, p := range r.Throughput {
		fmt.Fprintf(&b, "- %s w%d: xtls %s; anchor %s\n", p.Transport, p.Window, floats(p.XTLS), floats(p.Anchor))
	}
	return b.String()
}

func floats(v []float64) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = fmt.Sprintf("%.1f", x)
	}
	return strings.Join(s, " ")
}

// font is a 3×5 pixel font: each glyph is 5 rows of 3 bits.
var font = map[rune][5]uint8{
	'0': {7, 5, 5, 5, 7}, '1': {2, 6, 2, 2, 7}, '2': {7, 1, 7, 4, 7}, '3': {7, 1, 3, 1, 7}, '4': {5, 5, 7, 1, 1},
	'5': {7, 4, 7, 1, 7}, '6': {7, 4, 7, 5, 7}, '7': {7, 1, 1, 2, 2}, '8': {7, 5, 7, 5, 7}, '9': {7, 5, 7, 1, 7},
	'A': {2, 5, 7, 5, 5}, 'B': {6, 5, 6, 5, 6}, 'C': {7, 4, 4, 4, 7}, 'D': {6, 5, 5, 5, 6}, 'E': {7, 4, 6, 4, 7},
	'F': {7, 4, 6, 4, 4}, 'G': {7, 4, 5, 5, 7}, 'H': {5, 5, 7, 5, 5}, 'I': {7, 2, 2, 2, 7}, 'J': {1, 1, 1, 5, 7},
	'K': {5, 5, 6, 5, 5}, 'L': {4, 4, 4, 4, 7}, 'M': {5, 7, 7, 5, 5}, 'N': {6, 5, 5, 5, 5}, 'O': {7, 5, 5, 5, 7},
	'P': {7, 5, 7, 4, 4}, 'Q': {7, 5, 5, 7, 1}, 'R': {6, 5, 6, 5, 5}, 'S': {7, 4, 7, 1, 7}, 'T': {7, 2, 2, 2, 2},
	'U': {5, 5, 5, 5, 7}, 'V': {5, 5, 5, 5, 2}, 'W': {5, 5, 7, 7, 5}, 'X': {5, 5, 2, 5, 5}, 'Y': {5, 5, 2, 2, 2},
	'Z': {7, 1, 2, 4, 7}, '.': {0, 0, 0, 0, 2}, '=': {0, 7, 0, 7, 0}, '-': {0, 0, 7, 0, 0}, '/': {1, 1, 2, 4, 4},
	'(': {1, 2, 2, 2, 1}, ')': {4, 2, 2, 2, 4}, ':': {0, 2, 0, 2, 0}, ' ': {},
}

func text(img *image.RGBA, x, y, scale int, s string, c color.Color) {
	for _, r := range strings.ToUpper(s) {
		g := font[r]
		for row := 0; row < 5; row++ {
			for col := 0; col < 3; col++ {
				if g[row]&(4>>col) != 0 {
					for dy := 0; dy < scale; dy++ {
						for dx := 0; dx < scale; dx++ {
							img.Set(x+col*scale+dx, y+row*scale+dy, c)
						}
					}
				}
			}
		}
		x += 4 * scale
	}
}

func rect(img *image.RGBA, x0, y0, x1, y1 int, c color.Color) {
	for y := y0; y < y1; y++ {
		for x := x0; x < x1; x++ {
			img.Set(x, y, c)
		}
	}
}

// plot draws median throughput (log scale) per transport and window: the anchor (grey) and
// XTLS (blue) side by side.
func plot(path string, pairs []Pair) error {
	const W, H, left, bottom, top = 1000, 520, 70, 70, 50
	img := image.NewRGBA(image.Rect(0, 0, W, H))
	rect(img, 0, 0, W, H, color.White)
	black, grid := color.Black, color.RGBA{220, 220, 220, 255}
	xtlsC, anchorC := color.RGBA{40, 90, 200, 255}, color.RGBA{150, 150, 150, 255}
	lo, hi := 0.1, 10000.0
	for _, p := range pairs {
		for _, v := range []float64{p.XTLSMed, p.AnchorMed} {
			if v > 0 {
				lo, hi = math.Min(lo, v), math.Max(hi, v)
			}
		}
	}
	lo, hi = math.Pow(10, math.Floor(math.Log10(lo))), math.Pow(10, math.Ceil(math.Log10(hi)))
	plotH := H - bottom - top
	yOf := func(v float64) int {
		return H - bottom - int(float64(plotH)*(math.Log10(v)-math.Log10(lo))/(math.Log10(hi)-math.Log10(lo)))
	}
	for d := lo; d <= hi*1.001; d *= 10 {
		y := yOf(d)
		rect(img, left, y, W-20, y+1, grid)
		text(img, 5, y-5, 2, trimNum(d), black)
	}
	text(img, left, 12, 3, "THROUGHPUT MB/S (LOG) GREY=ANCHOR BLUE=XTLS", black)
	rect(img, left, top, left+1, H-bottom, black)
	rect(img, left, H-bottom, W-20, H-bottom+1, black)
	slot := (W - 20 - left) / max(1, len(pairs))
	for i, p := range pairs {
		x := left + i*slot + slot/6
		bw := slot / 3
		for j, v := range []float64{p.AnchorMed, p.XTLSMed} {
			c := anchorC
			if j == 1 {
				c = xtlsC
			}
			if v > 0 {
				rect(img, x+j*bw, yOf(v), x+(j+1)*bw-2, H-bottom, c)
			}
		}
		label := p.Transport
		if p.Window > 0 {
			label += fmt.Sprintf(" W%d", p.Window)
		}
		text(img, left+i*slot+4, H-bottom+10, 2, label, black)
		text(img, left+i*slot+4, H-bottom+26, 2, fmt.Sprintf("%.2fX", p.Ratio), black)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func trimNum(v float64) string {
	if v < 1 {
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.0f", v)
}
