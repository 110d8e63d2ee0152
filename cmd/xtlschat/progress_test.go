package main

import (
	"testing"
	"time"
)

// The bar shows fraction, sizes, the average rate since the first report (a resumed prefix
// does not count as speed) and the time left at that rate.
func TestMeterBar(t *testing.T) {
	var m meter
	t0 := time.Unix(1000, 0)
	m.update(2<<20, 8<<20, t0) // resumed at 2 MiB
	if !m.due(t0, time.Second) {
		t.Fatal("first report not due")
	}
	m.update(4<<20, 8<<20, t0.Add(time.Second))
	if m.due(t0.Add(500*time.Millisecond), time.Second) {
		t.Fatal("a report due within the interval")
	}
	got := m.bar(t0.Add(time.Second), 10)
	want := "[#####-----]  50%  4.0/8.0 MiB  2.0 MiB/s  ETA 0:02"
	if got != want {
		t.Fatalf("bar = %q, want %q", got, want)
	}
	m.update(8<<20, 8<<20, t0.Add(3*time.Second))
	if !m.due(t0.Add(3*time.Second+time.Millisecond), time.Hour) {
		t.Fatal("the last report is always due")
	}
	if got := m.bar(t0.Add(3*time.Second), 4); got != "[####] 100%  8.0/8.0 MiB  2.0 MiB/s" {
		t.Fatalf("final bar = %q", got)
	}
	var empty meter
	empty.update(0, 0, t0)
	if got := empty.bar(t0, 4); got != "[####] 100%  0.0/0.0 MiB" {
		t.Fatalf("empty file bar = %q", got)
	}
}
