package sfu

import (
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/quartet-rtc/quartet/internal/room"
)

// countingWriter stands in for a negotiated sender: it marshals each packet
// as SRTP would need and counts it, but sends nothing.
type countingWriter struct {
	packets atomic.Int64
	buf     []byte
}

func (w *countingWriter) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	n, err := h.MarshalTo(w.buf)
	if err != nil {
		return 0, err
	}
	n += copy(w.buf[n:], payload)
	w.packets.Add(1)
	return n, nil
}

func (w *countingWriter) Write(b []byte) (int, error) { return len(b), nil }

// fakeBinding is the TrackLocalContext pion would pass when binding a track.
type fakeBinding struct {
	codec  webrtc.RTPCodecParameters
	writer *countingWriter
}

func (f fakeBinding) CodecParameters() []webrtc.RTPCodecParameters {
	return []webrtc.RTPCodecParameters{f.codec}
}
func (f fakeBinding) HeaderExtensions() []webrtc.RTPHeaderExtensionParameter { return nil }
func (f fakeBinding) SSRC() webrtc.SSRC                                      { return 1234 }
func (f fakeBinding) SSRCRetransmission() webrtc.SSRC                        { return 0 }
func (f fakeBinding) SSRCForwardErrorCorrection() webrtc.SSRC                { return 0 }
func (f fakeBinding) WriteStream() webrtc.TrackLocalWriter                   { return f.writer }
func (f fakeBinding) ID() string                                             { return "bench" }
func (f fakeBinding) RTCPReader() interceptor.RTCPReader                     { return nil }

var vp8Codec = webrtc.RTPCodecParameters{
	RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000},
	PayloadType:        96,
}

// fanOutFixture is one video up track with n subscribers (or sinks), each
// with its own writer goroutine, as in a room.
type fanOutFixture struct {
	up          *UpTrack
	outs        []*writer
	writers     []*countingWriter // PeerConnection subscribers
	sinks       []*countingSink   // or in-process sinks
	attachments []*sinkAttachment
}

// countingSink is an in-process sink that counts what it gets.
type countingSink struct {
	packets, keyframes, reports atomic.Int64
	reportAt                    atomic.Int64 // packets before the last report
	ended, afterEnd             atomic.Bool
}

func (c *countingSink) WriteRTP(_ *rtp.Packet, meta room.PacketMeta) {
	if c.ended.Load() {
		c.afterEnd.Store(true)
	}
	c.packets.Add(1)
	if meta.Keyframe {
		c.keyframes.Add(1)
	}
}

func (c *countingSink) SenderReport(room.SenderReport) {
	c.reportAt.Store(c.packets.Load())
	c.reports.Add(1)
}

func (c *countingSink) Ended() {
	if c.ended.Swap(true) {
		c.afterEnd.Store(true) // a second Ended
	}
}

func newUpFixture() *fanOutFixture {
	pool := newPacketPool()
	up := testUpTrack(room.TrackInfo{SID: "TR_up", ParticipantSID: "PA_pub", Kind: "video"}, vp8Codec, pool)
	return &fanOutFixture{up: up}
}

func newFanOutFixture(tb testing.TB, n, queue int) *fanOutFixture {
	tb.Helper()
	f := newUpFixture()
	for range n {
		out := newWriter(queue, &peerStats{})
		s, err := newSubscription(f.up, out)
		if err != nil {
			tb.Fatal(err)
		}
		w := &countingWriter{buf: make([]byte, maxPacketSize)}
		if _, err := s.local.TrackLocalStaticRTP.Bind(fakeBinding{codec: vp8Codec, writer: w}); err != nil {
			tb.Fatal(err)
		}
		f.up.addDown(s.DownTrack)
		out.start(nil)
		f.outs, f.writers = append(f.outs, out), append(f.writers, w)
	}
	return f
}

// newSinkFixture is newFanOutFixture with in-process sinks as the
// destinations, wired as Engine.Attach wires them.
func newSinkFixture(n, queue int) *fanOutFixture {
	f := newUpFixture()
	for range n {
		a := &sinkAttachment{sink: &countingSink{}}
		a.out = newWriter(queue, &a.stats)
		a.down = newDownTrack(f.up, a.out, a, 0)
		a.down.reports = true
		f.up.addDown(a.down)
		a.out.start(a.sink.Ended)
		f.attachments = append(f.attachments, a)
		f.outs, f.sinks = append(f.outs, a.out), append(f.sinks, a.sink.(*countingSink))
	}
	return f
}

func (f *fanOutFixture) close() {
	for _, w := range f.outs {
		w.stop()
		w.wait()
	}
}

// pause stops a writer's goroutine so that its queue fills; resume starts
// it again.
func pause(w *writer) {
	w.stop()
	w.wait()
	w.done = make(chan struct{})
}

func resume(w *writer) { w.start(nil) }

// send fans out one VP8 packet; every 30th starts a keyframe.
func (f *fanOutFixture) send(tmpl []byte, seq uint16) {
	pkt := getPacket(f.up.pool)
	n := copy(pkt.buf[:], tmpl)
	pkt.buf[2], pkt.buf[3] = byte(seq>>8), byte(seq)
	pkt.buf[13] = 0x01 // delta frame
	if seq%30 == 0 {
		pkt.buf[13] = 0x00
	}
	f.up.layers[0].fanOut(pkt, n)
}

func vp8Template(size int) []byte {
	h := rtp.Header{Version: 2, PayloadType: 96, SSRC: 42, Timestamp: 1000}
	b, _ := h.Marshal()
	payload := make([]byte, size-len(b))
	payload[0] = 0x10
	return append(b, payload...)
}

func (f *fanOutFixture) delivered() int64 {
	var total int64
	for _, w := range f.writers {
		total += w.packets.Load()
	}
	for _, s := range f.sinks {
		total += s.packets.Load()
	}
	return total
}

// cpuTime is the CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkFanOut measures the SFU's forwarding path for one publisher to
// N subscribers: parse, cache, keyframe logic, queueing, and the per
// subscriber header rewrite and marshal; SRTP and the socket are left out
// (see bench/ for the whole server). One op is one published packet.
func BenchmarkFanOut(b *testing.B) {
	for _, n := range []int{1, 10, 50, 200} {
		b.Run(fmt.Sprintf("subscribers=%d", n), func(b *testing.B) {
			benchmarkFanOut(b, newFanOutFixture(b, n, 4096))
		})
	}
}

// BenchmarkSinkFanOut is BenchmarkFanOut with in-process sinks (that only
// count) in place of PeerConnection subscribers: the cost of the sink seam.
func BenchmarkSinkFanOut(b *testing.B) {
	for _, n := range []int{1, 10, 50} {
		b.Run(fmt.Sprintf("sinks=%d", n), func(b *testing.B) {
			benchmarkFanOut(b, newSinkFixture(n, 4096))
		})
	}
}

func benchmarkFanOut(b *testing.B, f *fanOutFixture) {
	defer f.close()
	tmpl := vp8Template(1200)
	f.send(tmpl, 0) // a keyframe opens every down track
	b.ReportAllocs()
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime()
	for i := range b.N {
		f.send(tmpl, uint16(i+1))
		if i%64 == 0 { // keep queues from overflowing: measure forwarding, not dropping
			for f.queued() > 2048 {
				time.Sleep(10 * time.Microsecond)
			}
		}
	}
	for f.queued() > 0 {
		time.Sleep(10 * time.Microsecond)
	}
	elapsed, cpu := time.Since(start), cpuTime()-cpu0
	b.StopTimer()
	b.ReportMetric(float64(f.delivered())/elapsed.Seconds(), "fwd-pkts/s")
	b.ReportMetric(float64(f.delivered())/cpu.Seconds(), "fwd-pkts/cpu-s")
	b.ReportMetric(float64(elapsed.Nanoseconds())/float64(f.delivered()), "ns/fwd-pkt")
}

func (f *fanOutFixture) queued() int {
	most := 0
	for _, w := range f.outs {
		most = max(most, len(w.queue))
	}
	return most
}

func TestFanOutDeliversToEverySubscriber(t *testing.T) {
	t.Parallel()
	f := newFanOutFixture(t, 5, 1024)
	tmpl := vp8Template(1000)
	for i := range 300 {
		f.send(tmpl, uint16(i))
	}
	deadline := time.Now().Add(5 * time.Second)
	for f.delivered() < 5*300 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	f.close()
	for i, w := range f.writers {
		if got := w.packets.Load(); got != 300 {
			t.Errorf("subscriber %d got %d packets, want 300", i, got)
		}
	}
}

func TestFanOutWaitsForKeyframeAndDropsWhenFull(t *testing.T) {
	t.Parallel()
	f := newFanOutFixture(t, 1, 4)
	pause(f.outs[0]) // so that the queue fills
	tmpl := vp8Template(500)
	for i := 1; i <= 10; i++ { // delta frames before any keyframe: not queued
		f.send(tmpl, uint16(i))
	}
	if got := len(f.outs[0].queue); got != 0 {
		t.Fatalf("%d packets queued before a keyframe, want 0", got)
	}
	for i := 30; i < 40; i++ { // a keyframe, then more than the queue holds
		f.send(tmpl, uint16(i))
	}
	if got, dropped := len(f.outs[0].queue), f.outs[0].stats.dropped.Load(); got != 4 || dropped != 6 {
		t.Fatalf("queued %d, dropped %d; want 4 and 6", got, dropped)
	}
	resume(f.outs[0])
	f.close()
}

func TestFanOutAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts need a build without -race; scripts/test.sh runs this test so")
	}
	f := newFanOutFixture(t, 4, 4096)
	defer f.close()
	checkNoAllocations(t, f, "4 subscribers")
}

// checkNoAllocations fails t unless fanning video out through f allocates
// nothing per packet in steady state.
func checkNoAllocations(t *testing.T, f *fanOutFixture, what string) {
	t.Helper()
	tmpl := vp8Template(1200)
	f.send(tmpl, 0)
	seq := uint16(0)
	var mu sync.Mutex
	allocs := testing.AllocsPerRun(2000, func() {
		mu.Lock()
		seq++
		mu.Unlock()
		f.send(tmpl, seq)
		for f.queued() > 1024 {
			time.Sleep(time.Microsecond)
		}
	})
	t.Logf("%.2f allocations per published packet (%s)", allocs, what)
	if allocs > 0.5 {
		t.Fatalf("%.2f allocations per published packet, want 0 in steady state", allocs)
	}
}

func TestAudioFanOutAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts need a build without -race; scripts/test.sh runs this test so")
	}
	f := newFanOutFixture(t, 4, 4096)
	defer f.close()
	f.up.video, f.up.vp8, f.up.layers[0].cache, f.up.audioLevelID = false, false, nil, 1
	for _, d := range *f.up.downs.Load() {
		d.updateInterestLocked()
	}
	h := rtp.Header{Version: 2, PayloadType: 111, SSRC: 42}
	if err := h.SetExtension(1, []byte{0x90}); err != nil {
		t.Fatal(err)
	}
	hdr, _ := h.Marshal()
	tmpl := append(hdr, make([]byte, 80)...)
	send := func() {
		pkt := getPacket(f.up.pool)
		f.up.layers[0].fanOut(pkt, copy(pkt.buf[:], tmpl))
		for f.queued() > 1024 {
			time.Sleep(time.Microsecond)
		}
	}
	for range 5000 { // fill the packet pool: steady state is what counts
		send()
	}
	allocs := testing.AllocsPerRun(2000, send)
	if allocs > 0.5 {
		t.Fatalf("%.2f allocations per audio packet, want 0", allocs)
	}
	if f.up.packets.Load() == 0 || f.up.loudPackets.Load() == 0 {
		t.Fatal("the audio level was not read")
	}
}

// A subscriber whose writer is stuck (as on a connection whose writes
// block) loses packets itself; the publisher's reader and the other
// subscribers never wait for it.
func TestStuckSubscriberDoesNotBlockOthers(t *testing.T) {
	t.Parallel()
	f := newFanOutFixture(t, 3, 64)
	stuck := f.outs[0]
	pause(stuck) // its writer goroutine ends: nothing drains its queue
	tmpl := vp8Template(1000)
	const sent = 500
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for i := range sent {
			f.send(tmpl, uint16(i))
			for max(len(f.outs[1].queue), len(f.outs[2].queue)) > 32 {
				time.Sleep(10 * time.Microsecond) // healthy ones drain; do not outrun them
			}
		}
	}()
	select {
	case <-finished:
	case <-time.After(10 * time.Second):
		t.Fatal("the publisher's fan-out blocked on a stuck subscriber")
	}
	deadline := time.Now().Add(5 * time.Second)
	for (f.writers[1].packets.Load() < sent || f.writers[2].packets.Load() < sent) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	for i := 1; i < 3; i++ {
		if got := f.writers[i].packets.Load(); got != sent {
			t.Errorf("healthy subscriber %d got %d of %d packets", i, got, sent)
		}
	}
	if got, dropped := len(stuck.queue), stuck.stats.dropped.Load(); got != 64 || dropped != sent-64 {
		t.Errorf("stuck subscriber: %d queued, %d dropped; want 64 and %d", got, dropped, sent-64)
	}
	resume(stuck)
	f.close()
}
