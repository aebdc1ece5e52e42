package bwe

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// link is a simulated bottleneck: random loss, then a FIFO draining at
// capacity bits per second with a drop-tail queue bounded in time, then a
// fixed propagation delay. capacity 0 means no bottleneck.
type link struct {
	capacity  float64
	maxQueue  time.Duration
	baseDelay time.Duration
	loss      float64
	rng       *rand.Rand
	busyUntil time.Duration // when the FIFO has sent everything queued
}

func (l *link) transmit(at time.Duration, size int) (arrival time.Duration, ok bool) {
	if l.loss > 0 && l.rng.Float64() < l.loss {
		return 0, false
	}
	if l.capacity <= 0 {
		return at + l.baseDelay, true
	}
	start := at
	if l.busyUntil > at {
		if l.busyUntil-at > l.maxQueue {
			return 0, false // queue full: drop tail
		}
		start = l.busyUntil
	}
	l.busyUntil = start + time.Duration(float64(size*8)/l.capacity*float64(time.Second))
	return l.busyUntil + l.baseDelay, true
}

// queueDelay is how long a packet sent at now would wait in the FIFO.
func (l *link) queueDelay(now time.Duration) time.Duration {
	return max(l.busyUntil-now, 0)
}

type simPacket struct {
	seq     uint16
	arrival time.Duration
	dropped bool
}

type pendingFeedback struct {
	at time.Duration
	fb []byte
}

// sender decides, each millisecond, the media and padding rates in bps
// given the estimate.
type sender func(now time.Duration, estimate int) (media, padding int)

type sample struct {
	at       time.Duration
	estimate int
	stats    Stats
	queue    time.Duration
}

// sim drives an Estimator through a link in simulated time: the sender
// side of the SFU, a receiver that sends TWCC feedback every 50–100 ms
// (marshalled and parsed by pion), and the uncongested return path.
type sim struct {
	tb        testing.TB
	e         *Estimator
	link      *link
	rng       *rand.Rand
	epoch     time.Time
	now       time.Duration
	remote    time.Duration // the receiver's clock minus ours
	seq       uint16
	inflight  []simPacket // sent, not yet reported
	feedbacks []pendingFeedback
	nextFb    time.Duration
	fbCount   uint8
	media     float64 // byte budgets
	padding   float64
	samples   []sample
	sent      int
	lost      int
	// Feedback path faults: the chance a feedback is delivered twice, and
	// that it is held back 80 ms so the next one overtakes it.
	duplicate float64
	reorder   float64
	fbLoss    float64 // the chance a feedback is lost on the way back
}

const (
	mediaPacket = 1200
	probePacket = 300 // padding-only RTP: at most 255 bytes of padding plus headers
	step        = time.Millisecond
)

func newSim(tb testing.TB, cfg Config, l *link, seed uint64) *sim {
	rng := rand.New(rand.NewPCG(seed, 1))
	l.rng = rng
	return &sim{
		tb:     tb,
		e:      New(cfg),
		link:   l,
		rng:    rng,
		epoch:  time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
		remote: 1234*time.Second + 567*time.Microsecond,
		seq:    65000, // wraps early on
	}
}

func (s *sim) send(size int, probe bool, at time.Duration) {
	s.e.Sent(s.seq, size, s.epoch.Add(at), probe)
	arr, ok := s.link.transmit(at, size)
	s.inflight = append(s.inflight, simPacket{seq: s.seq, arrival: arr, dropped: !ok})
	s.seq++
	s.sent++
	if !ok {
		s.lost++
	}
}

// feedback reports everything up to the newest packet that has arrived,
// with the drops before it as lost, like a receiver that only learns of a
// loss from a later packet.
func (s *sim) feedback() {
	last := -1
	for i, p := range s.inflight {
		if p.dropped {
			continue
		}
		if p.arrival > s.now {
			break
		}
		last = i
	}
	if last < 0 {
		return
	}
	arr := make([]int64, last+1)
	for i, p := range s.inflight[:last+1] {
		if p.dropped {
			arr[i] = lostUS
		} else {
			arr[i] = (p.arrival + s.remote).Microseconds()
		}
	}
	fb := buildFeedback(s.tb, s.inflight[0].seq, arr, s.fbCount)
	s.fbCount++
	b, err := fb.Marshal()
	if err != nil {
		s.tb.Fatalf("marshal feedback: %v", err)
	}
	s.inflight = append(s.inflight[:0], s.inflight[last+1:]...)
	if s.rng.Float64() < s.fbLoss {
		return
	}
	at := s.now + s.link.baseDelay
	if s.rng.Float64() < s.reorder {
		at += 80 * time.Millisecond
	}
	s.queueFeedback(pendingFeedback{at: at, fb: b})
	if s.rng.Float64() < s.duplicate {
		s.queueFeedback(pendingFeedback{at: at + 30*time.Millisecond, fb: b})
	}
}

// queueFeedback inserts p in delivery order.
func (s *sim) queueFeedback(p pendingFeedback) {
	i := len(s.feedbacks)
	for i > 0 && s.feedbacks[i-1].at > p.at {
		i--
	}
	s.feedbacks = append(s.feedbacks, pendingFeedback{})
	copy(s.feedbacks[i+1:], s.feedbacks[i:])
	s.feedbacks[i] = p
}

func (s *sim) run(d time.Duration, snd sender) {
	end := s.now + d
	for ; s.now < end; s.now += step {
		est := s.e.Estimate()
		media, padding := snd(s.now, est)
		s.media = min(s.media+float64(media)/8*step.Seconds(), 3*mediaPacket)
		s.padding = min(s.padding+float64(padding)/8*step.Seconds(), 3*mediaPacket)
		var n time.Duration
		for s.media >= mediaPacket {
			s.send(mediaPacket, false, s.now+n*20*time.Microsecond)
			s.media -= mediaPacket
			n++
		}
		for s.padding >= probePacket {
			s.send(probePacket, true, s.now+n*20*time.Microsecond)
			s.padding -= probePacket
			n++
		}
		if s.now >= s.nextFb {
			s.feedback()
			s.nextFb = s.now + 50*time.Millisecond + time.Duration(s.rng.IntN(51))*time.Millisecond
		}
		for len(s.feedbacks) > 0 && s.feedbacks[0].at <= s.now {
			s.e.Feedback(mustUnmarshalTWCC(s.tb, s.feedbacks[0].fb), s.epoch.Add(s.now))
			s.feedbacks = s.feedbacks[1:]
		}
		if s.now%(100*time.Millisecond) == 0 {
			s.samples = append(s.samples, sample{at: s.now, estimate: s.e.Estimate(), stats: s.e.Stats(), queue: s.link.queueDelay(s.now)})
		}
	}
}

// converged returns the first time from which every sample in [from, to)
// has the estimate within [lo, hi], or false.
func (s *sim) converged(from, to time.Duration, lo, hi int) (time.Duration, bool) {
	at, ok := time.Duration(-1), false
	for _, x := range s.samples {
		if x.at < from || x.at >= to {
			continue
		}
		if x.estimate < lo || x.estimate > hi {
			at, ok = -1, false
			continue
		}
		if at < 0 {
			at, ok = x.at, true
		}
	}
	return at - from, ok
}

// firstAtLeast returns how long after from the estimate first reached v.
func (s *sim) firstAtLeast(from time.Duration, v int) (time.Duration, bool) {
	for _, x := range s.samples {
		if x.at >= from && x.estimate >= v {
			return x.at - from, true
		}
	}
	return 0, false
}

func (s *sim) minMax(from, to time.Duration) (lo, hi int) {
	lo = 1 << 62
	for _, x := range s.samples {
		if x.at >= from && x.at < to {
			lo, hi = min(lo, x.estimate), max(hi, x.estimate)
		}
	}
	return lo, hi
}

// trace logs two lines a second, for -v runs and failures.
func (s *sim) trace(tb testing.TB) {
	var b strings.Builder
	for _, x := range s.samples {
		if x.at%(500*time.Millisecond) == 0 {
			fmt.Fprintf(&b, "\n%5.1fs est %5d kbps acked %5d send %5d probe %5d loss %4.1f%% %-8s rtt %3dms queue %3dms",
				x.at.Seconds(), x.estimate/1000, x.stats.AckedBitrate/1000, x.stats.SendBitrate/1000, x.stats.ProbeBitrate/1000,
				100*x.stats.Loss, x.stats.DelayState, x.stats.RTT.Milliseconds(), x.queue.Milliseconds())
		}
	}
	tb.Log(b.String())
}

// allocator is the test's stand-in for the SFU's per-subscriber allocator:
// media up to offer, no more than headroom × the estimate; while probing,
// padding up to 2 × the estimate in 500 ms bursts every second, until the
// estimate reaches goal.
func allocator(offer int, headroom float64, goal int, probe func(now time.Duration) bool) sender {
	return func(now time.Duration, est int) (int, int) {
		media := min(offer, int(float64(est)*headroom))
		if probe == nil || !probe(now) || est >= goal || now%time.Second >= 500*time.Millisecond {
			return media, 0
		}
		return media, max(2*est-media, 0)
	}
}

func after(t time.Duration) func(time.Duration) bool {
	return func(now time.Duration) bool { return now >= t }
}

func TestBottleneck400k(t *testing.T) {
	l := &link{capacity: 400_000, maxQueue: 300 * time.Millisecond, baseDelay: 25 * time.Millisecond}
	s := newSim(t, Config{}, l, 1)
	s.run(5*time.Second, allocator(2_000_000, 1, 4_000_000, nil))
	lost, sent := s.lost, s.sent
	s.run(15*time.Second, allocator(2_000_000, 1, 4_000_000, nil))
	defer func() {
		if t.Failed() || testing.Verbose() {
			s.trace(t)
		}
	}()
	conv, ok := s.converged(0, 20*time.Second, 250_000, 450_000)
	if !ok || conv > 10*time.Second {
		t.Fatalf("estimate not within 250–450 kbps from 10 s on (converged %v at %v)", ok, conv)
	}
	lo, hi := s.minMax(10*time.Second, 20*time.Second)
	loss := float64(s.lost-lost) / float64(s.sent-sent)
	if loss >= 0.02 {
		t.Fatalf("%.1f%% packet loss after 5 s", 100*loss)
	}
	t.Logf("400 kbps link: converged after %v; 10–20 s estimate %d–%d kbps; %d of %d packets lost in the first 5 s, %.2f%% after",
		conv, lo/1000, hi/1000, lost, sent, 100*loss)
}

// TestBottleneckFeedbackFaults repeats the 400 kbps case with a fifth of
// the feedback duplicated, a fifth overtaken by the next one and a tenth
// lost.
func TestBottleneckFeedbackFaults(t *testing.T) {
	l := &link{capacity: 400_000, maxQueue: 300 * time.Millisecond, baseDelay: 25 * time.Millisecond}
	s := newSim(t, Config{}, l, 6)
	s.duplicate, s.reorder, s.fbLoss = 0.2, 0.2, 0.1
	s.run(20*time.Second, allocator(2_000_000, 1, 4_000_000, nil))
	defer func() {
		if t.Failed() || testing.Verbose() {
			s.trace(t)
		}
	}()
	conv, ok := s.converged(0, 20*time.Second, 250_000, 450_000)
	if !ok || conv > 10*time.Second {
		t.Fatalf("estimate not within 250–450 kbps from 10 s on (converged %v at %v)", ok, conv)
	}
	for _, x := range s.samples {
		if x.at > 2*time.Second && x.stats.AckedBitrate > 450_000 {
			t.Fatalf("%v: acked %d bps over a 400 kbps link: duplicates counted", x.at, x.stats.AckedBitrate)
		}
	}
	lo, hi := s.minMax(10*time.Second, 20*time.Second)
	t.Logf("400 kbps link, duplicated, reordered and lost feedback: converged after %v; 10–20 s estimate %d–%d kbps", conv, lo/1000, hi/1000)
}

func TestCapacityLifts(t *testing.T) {
	l := &link{capacity: 400_000, maxQueue: 300 * time.Millisecond, baseDelay: 25 * time.Millisecond}
	s := newSim(t, Config{}, l, 2)
	defer func() {
		if t.Failed() || testing.Verbose() {
			s.trace(t)
		}
	}()
	lift := 20 * time.Second
	s.run(lift, allocator(2_000_000, 1, 4_000_000, nil))
	// Now the sender runs 10% over the estimate and probes.
	l.capacity = 5_000_000
	s.run(15*time.Second, allocator(2_000_000, 1.1, 4_000_000, after(lift)))
	reach, ok := s.firstAtLeast(lift, 2_500_000)
	if !ok {
		t.Fatalf("estimate never reached 2.5 Mbps within 15 s of the lift")
	}
	lo, hi := s.minMax(lift+reach, lift+15*time.Second)
	t.Logf("400 kbps → 5 Mbps: 2.5 Mbps reached %v after the lift; afterwards %d–%d kbps", reach, lo/1000, hi/1000)
}

func TestRandomLoss(t *testing.T) {
	l := &link{baseDelay: 25 * time.Millisecond, loss: 0.20}
	s := newSim(t, Config{}, l, 3)
	defer func() {
		if t.Failed() || testing.Verbose() {
			s.trace(t)
		}
	}()
	s.run(10*time.Second, allocator(2_000_000, 1, 4_000_000, nil))
	_, hi := s.minMax(5*time.Second, 10*time.Second)
	if hi >= DefaultInitial*7/10 {
		t.Fatalf("with 20%% loss the estimate is still up to %d kbps after 5 s", hi/1000)
	}
	if end := s.e.Estimate(); end >= DefaultInitial/2 {
		t.Fatalf("with 20%% loss the estimate is still %d kbps after 10 s", end/1000)
	}
	var sum float64
	var n int
	for _, x := range s.samples[20:] {
		sum += x.stats.Loss
		n++
	}
	if mean := sum / float64(n); mean < 0.15 || mean > 0.25 {
		t.Fatalf("mean reported loss %.3f, want about 0.2", mean)
	}
	t.Logf("20%% random loss: estimate from %d kbps to ≤ %d kbps by 5 s, %d kbps at 10 s",
		DefaultInitial/1000, hi/1000, s.e.Estimate()/1000)
}

func TestLowLossHolds(t *testing.T) {
	l := &link{baseDelay: 25 * time.Millisecond, loss: 0.01}
	s := newSim(t, Config{}, l, 4)
	s.run(10*time.Second, allocator(2_000_000, 1, 4_000_000, nil))
	if lo, _ := s.minMax(0, 10*time.Second); lo < DefaultInitial {
		s.trace(t)
		t.Fatalf("with 1%% loss the estimate fell to %d kbps", lo/1000)
	}
}

func TestUnconstrained1M(t *testing.T) {
	l := &link{baseDelay: 25 * time.Millisecond}
	s := newSim(t, Config{Initial: 1_000_000}, l, 5)
	defer func() {
		if t.Failed() || testing.Verbose() {
			s.trace(t)
		}
	}()
	fixed := func(time.Duration, int) (int, int) { return 1_000_000, 0 }
	s.run(10*time.Second, fixed)
	lo, hi := s.minMax(0, 10*time.Second)
	if lo < 900_000 {
		t.Fatalf("unconstrained 1 Mbps sender: estimate fell to %d kbps", lo/1000)
	}
	before := s.e.Estimate()
	probing := func(now time.Duration, est int) (int, int) {
		if now%time.Second >= 500*time.Millisecond {
			return 1_000_000, 0
		}
		return 1_000_000, max(2*est-1_000_000, 0)
	}
	s.run(5*time.Second, probing)
	after := s.e.Estimate()
	if after < 2*before {
		t.Fatalf("probing for 5 s took the estimate only from %d to %d kbps", before/1000, after/1000)
	}
	t.Logf("unconstrained, 1 Mbps sender: estimate %d–%d kbps over 10 s; 5 s of probing: %d → %d kbps",
		lo/1000, hi/1000, before/1000, after/1000)
}

// TestDeepQueueDrains: a bufferbloated bottleneck (2 s of fifo, like tc's
// default 1000-packet queue at 300 kbps) filled by the start at 800 kbps.
// Backing off to 0.85 × acked would take about ten seconds to drain it;
// the standing-queue estimate cuts deeper.
func TestDeepQueueDrains(t *testing.T) {
	l := &link{capacity: 300_000, maxQueue: 2 * time.Second, baseDelay: 5 * time.Millisecond}
	s := newSim(t, Config{}, l, 7)
	defer func() {
		if t.Failed() || testing.Verbose() {
			s.trace(t)
		}
	}()
	s.run(30*time.Second, allocator(2_000_000, 1, 4_000_000, nil))
	var drained time.Duration = -1
	var worst time.Duration
	for _, x := range s.samples {
		if drained < 0 && x.at > time.Second && x.queue < 100*time.Millisecond {
			drained = x.at
		}
		if x.at >= 10*time.Second {
			worst = max(worst, x.queue)
		}
	}
	lo, hi := s.minMax(10*time.Second, 30*time.Second)
	if drained < 0 || drained > 8*time.Second || worst > 250*time.Millisecond || lo < 200_000 || hi > 340_000 {
		t.Fatalf("queue under 100 ms at %v, worst after 10 s %v, estimate %d–%d kbps", drained, worst, lo/1000, hi/1000)
	}
	t.Logf("300 kbps link, 2 s fifo: peak queue drained under 100 ms at %v; after 10 s queue ≤ %v, estimate %d–%d kbps",
		drained, worst, lo/1000, hi/1000)
}

// TestShallowBufferLoss: a 50 ms drop-tail buffer is full before the delay
// trend says much. Classic GCC holds between 2 and 10% loss and would sit
// above capacity losing ~9%; loss with a full queue cuts instead.
func TestShallowBufferLoss(t *testing.T) {
	l := &link{capacity: 400_000, maxQueue: 50 * time.Millisecond, baseDelay: 25 * time.Millisecond}
	s := newSim(t, Config{}, l, 8)
	defer func() {
		if t.Failed() || testing.Verbose() {
			s.trace(t)
		}
	}()
	snd := allocator(2_000_000, 1, 4_000_000, nil)
	s.run(10*time.Second, snd)
	lost, sent := s.lost, s.sent
	s.run(20*time.Second, snd)
	loss := float64(s.lost-lost) / float64(s.sent-sent)
	lo, hi := s.minMax(10*time.Second, 30*time.Second)
	if loss > 0.02 || lo < 250_000 || hi > 450_000 {
		t.Fatalf("10–30 s: %.1f%% loss, estimate %d–%d kbps", 100*loss, lo/1000, hi/1000)
	}
	t.Logf("400 kbps link, 50 ms buffer: 10–30 s %.2f%% packet loss, estimate %d–%d kbps", 100*loss, lo/1000, hi/1000)
}
