package main

import (
	"fmt"
	"strings"
	"time"
)

// meter follows one transfer's progress and renders it as a bar with rate and ETA, e.g.
//
//	[#########-----------]  45%  3.6/8.0 MiB  12.3 MiB/s  ETA 0:03
//
// It is written by hand: twenty lines did not justify a dependency, and the bar has to live
// in x/term's prompt line (ui.go), which progress libraries that own the terminal cannot share.
type meter struct {
	start     time.Time
	startDone int64 // bytes already there at the first report (a resumed transfer)
	started   bool
	done      int64
	total     int64
	last      time.Time // of the last report let through by due
}

// update records that done of total bytes are there at now.
func (m *meter) update(done, total int64, now time.Time) {
	if !m.started {
		m.start, m.startDone, m.started = now, done, true
	}
	m.done, m.total = done, total
}

// due reports whether a report is due (at most one per interval; the last one always).
func (m *meter) due(now time.Time, interval time.Duration) bool {
	if m.done >= m.total || now.Sub(m.last) >= interval {
		m.last = now
		return true
	}
	return false
}

// rate is the average rate since the first report, in bytes per second (0 when unknown).
func (m *meter) rate(now time.Time) float64 {
	el := now.Sub(m.start).Seconds()
	if !m.started || el <= 0 {
		return 0
	}
	return float64(m.done-m.startDone) / el
}

// eta is the time left at the average rate (-1 when unknown).
func (m *meter) eta(now time.Time) time.Duration {
	r := m.rate(now)
	if r <= 0 {
		return -1
	}
	return time.Duration(float64(m.total-m.done) / r * float64(time.Second))
}

// bar renders the progress in width characters of bar.
func (m *meter) bar(now time.Time, width int) string {
	frac := 1.0
	if m.total > 0 {
		frac = float64(m.done) / float64(m.total)
	}
	frac = min(max(frac, 0), 1)
	n := int(frac * float64(width))
	var b strings.Builder
	b.WriteString("[" + strings.Repeat("#", n) + strings.Repeat("-", width-n) + "]")
	fmt.Fprintf(&b, " %3d%%  %s/%s", int(frac*100), mib(m.done), mib(m.total)+" MiB")
	if r := m.rate(now); r > 0 {
		fmt.Fprintf(&b, "  %s MiB/s", mib(int64(r)))
	}
	if m.done < m.total {
		if d := m.eta(now); d >= 0 {
			s := int(d.Round(time.Second).Seconds())
			fmt.Fprintf(&b, "  ETA %d:%02d", s/60, s%60)
		} else {
			b.WriteString("  ETA ?")
		}
	}
	return b.String()
}

func mib(n int64) string { return fmt.Sprintf("%.1f", float64(n)/(1<<20)) }
