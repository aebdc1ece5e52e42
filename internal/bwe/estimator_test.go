package bwe

import (
	"math"
	"testing"
	"time"

	"github.com/pion/rtcp"
)

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func TestConfigDefaults(t *testing.T) {
	e := New(Config{})
	if e.cfg != (Config{Initial: DefaultInitial, Min: DefaultMin, Max: DefaultMax}) || e.Estimate() != DefaultInitial {
		t.Fatalf("defaults: %+v, estimate %d", e.cfg, e.Estimate())
	}
	e = New(Config{Initial: 10, Min: 100_000, Max: 50_000})
	if e.cfg.Max != 100_000 || e.Estimate() != 100_000 {
		t.Fatalf("clamped: %+v, estimate %d", e.cfg, e.Estimate())
	}
}

// sendAndArrive sends n packets 5 ms apart from seq and returns their
// remote arrivals (50 ms later, remote clock offset by 1000 s).
func sendAndArrive(e *Estimator, seq uint16, n int, start time.Duration) []int64 {
	arr := make([]int64, n)
	for i := range n {
		at := start + time.Duration(i)*5*time.Millisecond
		e.Sent(seq+uint16(i), 1000, t0.Add(at), false)
		arr[i] = (at + 50*time.Millisecond + 1000*time.Second).Microseconds()
	}
	return arr
}

func TestDuplicateAndUnknownFeedback(t *testing.T) {
	e := New(Config{})
	arr := sendAndArrive(e, 100, 100, 0)
	fb := roundTrip(t, buildFeedback(t, 100, arr, 0))
	e.Feedback(fb, t0.Add(600*time.Millisecond))
	want := e.Stats()
	if want.AckedBitrate < 1_500_000 || want.AckedBitrate > 1_700_000 {
		t.Fatalf("acked %d bps, want 1.6 Mbps", want.AckedBitrate)
	}
	// The same report again, and one for packets never sent.
	e.Feedback(fb, t0.Add(610*time.Millisecond))
	e.Feedback(roundTrip(t, buildFeedback(t, 5000, arr, 1)), t0.Add(620*time.Millisecond))
	got := e.Stats()
	if got.AckedBitrate != want.AckedBitrate || got.Loss != 0 {
		t.Fatalf("after duplicate and unknown feedback: %+v, want %+v", got, want)
	}
}

func TestLateArrivalAfterLoss(t *testing.T) {
	e := New(Config{})
	arr := sendAndArrive(e, 0, 40, 0)
	first := append([]int64(nil), arr...)
	for i := 10; i < 20; i++ {
		first[i] = lostUS
	}
	e.Feedback(roundTrip(t, buildFeedback(t, 0, first, 0)), t0.Add(300*time.Millisecond))
	if l := e.Stats().Loss; math.Abs(l-0.25) > 1e-9 {
		t.Fatalf("loss %.3f, want 0.25", l)
	}
	// The receiver later reports the ten as received after all.
	e.Feedback(roundTrip(t, buildFeedback(t, 10, arr[10:20], 1)), t0.Add(350*time.Millisecond))
	if l := e.Stats().Loss; l != 0 {
		t.Fatalf("loss %.3f after the late report, want 0", l)
	}
}

func TestFeedbackBeforeSent(t *testing.T) {
	e := New(Config{})
	e.Feedback(roundTrip(t, buildFeedback(t, 0, []int64{1000, 2000}, 0)), t0)
	e.Feedback(nil, t0)
	if e.Estimate() != DefaultInitial {
		t.Fatalf("estimate %d", e.Estimate())
	}
}

func TestSentAllocs(t *testing.T) {
	e := New(Config{})
	seq := uint16(0)
	at := t0
	if n := testing.AllocsPerRun(10_000, func() {
		e.Sent(seq, 1200, at, seq%4 == 0)
		seq++
		at = at.Add(100 * time.Microsecond)
	}); n != 0 {
		t.Fatalf("Sent: %v allocations per call", n)
	}
}

func TestFeedbackAllocs(t *testing.T) {
	e := New(Config{})
	arr := sendAndArrive(e, 0, 4000, 0)
	fbs := make([]*rtcp.TransportLayerCC, 0, 200)
	for i := 0; i+20 <= len(arr); i += 20 {
		fbs = append(fbs, roundTrip(t, buildFeedback(t, uint16(i), arr[i:i+20], uint8(i/20))))
	}
	i := 0
	if n := testing.AllocsPerRun(len(fbs)-1, func() {
		e.Feedback(fbs[i], t0.Add(time.Duration(i)*100*time.Millisecond+time.Second))
		i++
	}); n != 0 {
		t.Fatalf("Feedback: %v allocations per call", n)
	}
}

// TestConcurrentUse runs the writer, the RTCP reader and a stats reader at
// once, for the race detector.
func TestConcurrentUse(t *testing.T) {
	const batches, n = 50, 20
	scratch := New(Config{}) // only to compute the arrivals
	fbs := make([]*rtcp.TransportLayerCC, batches)
	for i := range batches {
		arr := sendAndArrive(scratch, uint16(i*n), n, time.Duration(i)*100*time.Millisecond)
		fbs[i] = roundTrip(t, buildFeedback(t, uint16(i*n), arr, uint8(i)))
	}
	e := New(Config{})
	sent := make(chan int, batches)
	done := make(chan struct{})
	go func() { // the writer
		defer close(sent)
		for i := range batches {
			sendAndArrive(e, uint16(i*n), n, time.Duration(i)*100*time.Millisecond)
			sent <- i
		}
	}()
	go func() { // the RTCP reader
		defer close(done)
		for i := range sent {
			e.Feedback(fbs[i], t0.Add(time.Duration(i)*100*time.Millisecond+200*time.Millisecond))
		}
	}()
	for {
		select {
		case <-done:
			if st := e.Stats(); st.AckedBitrate == 0 {
				t.Fatalf("no acked rate after %d feedbacks: %+v", batches, st)
			}
			return
		default:
			_ = e.Stats()
			_ = e.Estimate()
		}
	}
}

func BenchmarkSent(b *testing.B) {
	e := New(Config{})
	at := t0
	var seq uint16
	for b.Loop() {
		e.Sent(seq, 1200, at, false)
		seq++
		at = at.Add(100 * time.Microsecond)
	}
}

// FuzzFeedback feeds arbitrary bytes that pion parses as RTCP to an
// estimator with a full history: no panic, and the estimate and stats stay
// in range whatever the feedback claims.
func FuzzFeedback(f *testing.F) {
	e := New(Config{})
	arr := sendAndArrive(e, 65000, 300, 0)
	for _, seed := range [][]int64{
		arr[:50],
		{arr[0], lostUS, lostUS, arr[3], arr[4] + 70_000, arr[5]},
		{arr[10] + 5_000_000, arr[11], arr[12] - 1_000_000},
	} {
		b, err := buildFeedback(f, 65000, seed, 3).Marshal()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	cfg := Config{Initial: 500_000, Min: 100_000, Max: 3_000_000}
	f.Fuzz(func(t *testing.T, data []byte) {
		pkts, err := rtcp.Unmarshal(data)
		if err != nil {
			return
		}
		e := New(cfg)
		for i := range 2000 {
			e.Sent(uint16(64000+i), 100+i%1200, t0.Add(time.Duration(i)*time.Millisecond), i%5 == 0)
		}
		at := t0.Add(2 * time.Second)
		for round := range 3 {
			for _, p := range pkts {
				fb, ok := p.(*rtcp.TransportLayerCC)
				if !ok {
					continue
				}
				e.Feedback(fb, at)
				at = at.Add(time.Duration(round*40+10) * time.Millisecond)
				if est := e.Estimate(); est < cfg.Min || est > cfg.Max {
					t.Fatalf("estimate %d outside [%d, %d]", est, cfg.Min, cfg.Max)
				}
				st := e.Stats()
				if !(st.Loss >= 0 && st.Loss <= 1) || st.RTT < 0 || st.AckedBitrate < 0 || st.Estimate != e.Estimate() {
					t.Fatalf("stats %+v", st)
				}
			}
		}
	})
}
