package main

import (
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := median(c.in); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

// The report states met/missed from the ratios, and the plot is a PNG with one pair of bars per
// measure (issue 9 deliverables).
func TestReportAndPlot(t *testing.T) {
	r := &Report{Machine: map[string]string{"go": "x"}, Settings: map[string]string{"runs": "5"},
		Throughput: []Pair{
			{Name: "XTLS over IBB", Transport: "ibb", Window: 8, XTLSMed: 0.8, AnchorMed: 1, Ratio: 0.8, Goal: 0.85},
			{Name: "XTLS over direct S5B", Transport: "s5b-direct", XTLSMed: 950, AnchorMed: 1000, Ratio: 0.95, Goal: 0.9},
			{Name: "XTLS over IBB vs slixmpp", Transport: "ibb-vs-slixmpp", Window: 8, XTLSMed: 2.8, AnchorMed: 2, Ratio: 1.4, Goal: 1.5},
		}}
	r.Slixmpp = &r.Throughput[2]
	md := markdown(r)
	if !strings.Contains(md, "| 0.80× | ≥ 0.85× | missed by 6% |") || !strings.Contains(md, "| 0.95× | ≥ 0.90× | met |") ||
		!strings.Contains(md, "| XTLS over IBB vs slixmpp, window 8 (") || !strings.Contains(md, "| 1.40× | ≥ 1.50× | missed by 7% |") {
		t.Fatalf("verdicts wrong:\n%s", md)
	}
	js, err := json.Marshal(r)
	if err != nil || !strings.Contains(string(js), `"slixmpp_ibb":{"name":"XTLS over IBB vs slixmpp"`) {
		t.Fatalf("results.json lacks the slixmpp measure: %v\n%s", err, js)
	}
	path := filepath.Join(t.TempDir(), "p.png")
	if err := plot(path, r.Throughput); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != 1000 || b.Dy() != 520 {
		t.Fatalf("size %v", b)
	}
}
