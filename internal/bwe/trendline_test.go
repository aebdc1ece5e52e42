package bwe

import "testing"

// feedGroups runs the detector over groups sent every 20 ms whose one-way
// delay changes by slopeMS per group, and returns the states seen.
func feedGroups(tl *trendline, n int, slopeMS float64) map[DelayState]int {
	seen := map[DelayState]int{}
	arrival := 0.0
	for range n {
		arrival += 20 + slopeMS
		tl.update(20+slopeMS, 20, arrival)
		seen[tl.state]++
	}
	return seen
}

func TestTrendlineStates(t *testing.T) {
	tl := newTrendline()
	if seen := feedGroups(&tl, 100, 0); seen[DelayOveruse]+seen[DelayUnderuse] != 0 {
		t.Fatalf("constant delay: %v", seen)
	}
	if seen := feedGroups(&tl, 40, 2); seen[DelayOveruse] == 0 {
		t.Fatalf("delay growing 2 ms per 20 ms: %v, want overuse", seen)
	}
	if seen := feedGroups(&tl, 40, -2); seen[DelayUnderuse] == 0 {
		t.Fatalf("delay shrinking: %v, want underuse", seen)
	}
	if tl.thresholdMS < thresholdMinMS || tl.thresholdMS > thresholdMaxMS {
		t.Fatalf("threshold %v outside its clamp", tl.thresholdMS)
	}
	if DelayOveruse.String() != "overuse" || DelayUnderuse.String() != "underuse" || DelayNormal.String() != "normal" {
		t.Fatal("DelayState names")
	}
}

func TestRateWindow(t *testing.T) {
	w := newRateWindow(500_000, 25_000, 200_000)
	if _, ok := w.rate(); ok {
		t.Fatal("rate before any data")
	}
	// 1000 bytes every 10 ms: 800 kbps.
	for ts := int64(0); ts <= 2_000_000; ts += 10_000 {
		w.add(ts, 1000)
	}
	if r, ok := w.rate(); !ok || r < 780_000 || r > 820_000 {
		t.Fatalf("rate %d %v, want 800 kbps", r, ok)
	}
	// A remote clock that jumps a day ahead starts the window over.
	w.add(86_400_000_000, 1000)
	if _, ok := w.rate(); ok {
		t.Fatal("rate right after a clock jump")
	}
	// And one that jumps back, too.
	for ts := int64(0); ts <= 1_000_000; ts += 10_000 {
		w.add(ts, 500)
	}
	if r, ok := w.rate(); !ok || r < 380_000 || r > 420_000 {
		t.Fatalf("rate %d %v after the jump back, want 400 kbps", r, ok)
	}
}
