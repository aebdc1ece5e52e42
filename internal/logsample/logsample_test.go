package logsample

import (
	"fmt"
	"testing"
	"time"
)

var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func TestSamplerBurstThenSteadyRate(t *testing.T) {
	t.Parallel()
	s := New(3, 10*time.Second)
	type step struct {
		at             time.Duration
		key            string
		ok             bool
		wantSuppressed int
	}
	steps := []step{
		{0, "a", true, 0},
		{0, "a", true, 0},
		{0, "a", true, 0},
		{0, "a", false, 0}, // burst spent
		{time.Second, "a", false, 0},
		{0, "b", true, 0},                // another key has its own allowance
		{10 * time.Second, "a", true, 2}, // one more per 10 s, with the count
		{10 * time.Second, "a", false, 0},
		{time.Minute, "a", true, 1},
		{time.Minute, "a", true, 0}, // refilled while quiet
	}
	for i, st := range steps {
		ok, n := s.Allow(st.key, t0.Add(st.at))
		if ok != st.ok || n != st.wantSuppressed {
			t.Errorf("step %d (%v %s): Allow = %v, %d; want %v, %d", i, st.at, st.key, ok, n, st.ok, st.wantSuppressed)
		}
	}
}

func TestSamplerFloodIsBounded(t *testing.T) {
	t.Parallel()
	s := New(DefaultBurst, DefaultEvery)
	written, suppressed := 0, 0
	for i := range 100_000 { // 10,000 a second for 10 s
		at := t0.Add(time.Duration(i) * 100 * time.Microsecond)
		if ok, n := s.Allow("flood", at); ok {
			written++
			suppressed += n
		}
	}
	if written > DefaultBurst+1 {
		t.Errorf("100,000 lines in 10 s: %d written, want at most %d", written, DefaultBurst+1)
	}
	if ok, n := s.Allow("flood", t0.Add(time.Minute)); !ok || suppressed+n+written != 100_000 {
		t.Errorf("written %d + reported suppressed %d+%d, want 100,000", written, suppressed, n)
	}
}

func TestSamplerBoundsKeys(t *testing.T) {
	t.Parallel()
	s := New(1, time.Hour)
	for i := range 10 * maxKeys {
		s.Allow(fmt.Sprint(i), t0)
	}
	if len(s.keys) > maxKeys+1 {
		t.Fatalf("%d keys kept, want at most %d", len(s.keys), maxKeys+1)
	}
	// Beyond the limit new keys share one allowance: at most one more line.
	written := 0
	for i := range 100 {
		if ok, _ := s.Allow(fmt.Sprint("new", i), t0); ok {
			written++
		}
	}
	if written > 1 {
		t.Fatalf("%d lines of new keys written beyond the limit, want at most 1", written)
	}
	// Once the allowances are full again they are forgotten, and new keys get their own.
	if ok, _ := s.Allow("later", t0.Add(2*time.Hour)); !ok {
		t.Fatal("a new key after the others went idle was refused")
	}
}
