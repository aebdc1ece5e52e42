package server_test

import (
	"bufio"
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/transport/v5/vnet"
	"github.com/pion/webrtc/v4"

	"github.com/quartet-rtc/quartet/internal/client"
	"github.com/quartet-rtc/quartet/internal/config"
	"github.com/quartet-rtc/quartet/internal/pionlog"
	"github.com/quartet-rtc/quartet/internal/room"
	"github.com/quartet-rtc/quartet/internal/testserver"
)

// The shaped link of subscriber A: a token bucket on what arrives at its
// network interface (the server-to-subscriber direction), with a bucket of
// a few packets and a queue of 20 KB (400 ms at 400 kbit/s), dropping at
// the tail when full, as tc's tbf does.
const (
	tbfBurst = 4000   // bytes
	tbfQueue = 20_000 // bytes
)

// shapedNet is a pion/transport vnet: the server's media socket, the
// publisher, and subscribers A (shaped) and B (not) on one virtual LAN.
type shapedNet struct {
	wan               *vnet.Router
	server, pub, a, b *vnet.Net
	tbfA              *vnet.TBFQueue
	queueA            *vnet.Queue
}

func newShapedNet(t *testing.T, rateA int) *shapedNet {
	t.Helper()
	wan, err := vnet.NewRouter(&vnet.RouterConfig{CIDR: "10.10.0.0/24", LoggerFactory: pionlog.Factory{Log: testserver.Logger()}})
	if err != nil {
		t.Fatal(err)
	}
	n := &shapedNet{wan: wan}
	mk := func(ip string) *vnet.Net {
		v, err := vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{ip}})
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	n.server, n.pub, n.a, n.b = mk("10.10.0.1"), mk("10.10.0.2"), mk("10.10.0.3"), mk("10.10.0.4")
	n.tbfA = vnet.NewTBFQueue(rateA, tbfBurst, tbfQueue)
	if n.queueA, err = vnet.NewQueue(n.a, n.tbfA); err != nil {
		t.Fatal(err)
	}
	for _, nic := range []vnet.NIC{n.server, n.pub, n.queueA, n.b} {
		if err := wan.AddNet(nic); err != nil {
			t.Fatal(err)
		}
	}
	if err := wan.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // after the server and the clients are gone
		_ = wan.Stop()
		_ = n.queueA.Close()
	})
	return n
}

// rxVideo is one video packet a subscriber received.
type rxVideo struct {
	at      time.Duration // since the recorder started
	seq     uint16
	padding bool // padding only (a probe): no payload
	late    bool // not above the highest sequence number before it: a retransmission
	layer   int8 // -1 for padding
	pic     uint16
	key     bool
	idx     uint16
	count   uint16
}

// recorder keeps every packet a subscriber received, for the analysis
// after (or during) the run.
type recorder struct {
	name  string
	start time.Time

	mu     sync.Mutex
	video  []rxVideo
	audio  []time.Duration
	aseqs  []uint16
	videoT string // the video track's sid
}

func newRecorder(name string, start time.Time) *recorder { return &recorder{name: name, start: start} }

func (r *recorder) onTrack(t *webrtc.TrackRemote, info room.TrackInfo) {
	video := t.Kind() == webrtc.RTPCodecTypeVideo
	if video {
		r.mu.Lock()
		r.videoT = info.SID
		r.mu.Unlock()
	}
	go r.read(t, video)
}

func (r *recorder) read(t *webrtc.TrackRemote, video bool) {
	buf := make([]byte, 1500)
	var pkt rtp.Packet
	var highest uint16
	started := false
	for {
		n, _, err := t.Read(buf)
		if err != nil {
			return
		}
		at := time.Since(r.start)
		if pkt.Unmarshal(buf[:n]) != nil {
			continue
		}
		if !video {
			r.mu.Lock()
			r.audio = append(r.audio, at)
			r.aseqs = append(r.aseqs, pkt.SequenceNumber)
			r.mu.Unlock()
			continue
		}
		v := rxVideo{at: at, seq: pkt.SequenceNumber, layer: -1, padding: len(pkt.Payload) == 0}
		if started && int16(v.seq-highest) <= 0 {
			v.late = true
		} else {
			highest, started = v.seq, true
		}
		if !v.padding {
			p, ok := client.ParseSynth(true, pkt.Payload)
			if !ok || !p.Marked {
				continue
			}
			v.layer, v.pic, v.key, v.idx, v.count = int8(p.Layer), p.PictureID, p.Keyframe, uint16(p.Index), uint16(p.Count)
		}
		r.mu.Lock()
		r.video = append(r.video, v)
		r.mu.Unlock()
	}
}

func (r *recorder) snapshot() ([]rxVideo, []time.Duration, []uint16) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.video), slices.Clone(r.audio), slices.Clone(r.aseqs)
}

func (r *recorder) since() time.Duration { return time.Since(r.start) }

// layersIn counts media packets by layer in [from, to), retransmissions
// left out.
func layersIn(video []rxVideo, from, to time.Duration) (counts [3]int, padding int) {
	for _, v := range video {
		if v.at < from || v.at >= to || v.late {
			continue
		}
		if v.padding {
			padding++
		} else if v.layer >= 0 && v.layer < 3 {
			counts[v.layer]++
		}
	}
	return counts, padding
}

// lastOtherThan is the arrival of the last media packet in [from, to) of a
// layer other than layer, or from when there is none.
func lastOtherThan(video []rxVideo, layer int8, from, to time.Duration) time.Duration {
	last := from
	for _, v := range video {
		if v.at >= from && v.at < to && !v.padding && v.layer != layer {
			last = v.at
		}
	}
	return last
}

// firstOf is the arrival of the first media packet of layer in [from, to),
// or -1.
func firstOf(video []rxVideo, layer int8, from, to time.Duration) time.Duration {
	for _, v := range video {
		if v.at >= from && v.at < to && !v.padding && v.layer == layer {
			return v.at
		}
	}
	return -1
}

// seqLoss is the loss of the rewritten RTP stream over the packets that
// arrived in [from, to): the span of their sequence numbers against the
// distinct ones received, retransmissions included, as a receiver's
// packetsLost counts it.
func seqLoss(seqs []uint16, ats []time.Duration, from, to time.Duration) (expected, lost int) {
	var ext []int64
	var last int64
	started := false
	for i, s := range seqs {
		var e int64
		if !started {
			e, started = int64(s)+1<<20, true
		} else {
			e = last + int64(int16(s-uint16(last)))
		}
		last = max(last, e)
		if ats[i] >= from && ats[i] < to {
			ext = append(ext, e)
		}
	}
	if len(ext) == 0 {
		return 0, 0
	}
	slices.Sort(ext)
	ext = slices.Compact(ext)
	expected = int(ext[len(ext)-1]-ext[0]) + 1
	return expected, expected - len(ext)
}

func videoSeqLoss(video []rxVideo, from, to time.Duration) (expected, lost int) {
	seqs := make([]uint16, len(video))
	ats := make([]time.Duration, len(video))
	for i, v := range video {
		seqs[i], ats[i] = v.seq, v.at
	}
	return seqLoss(seqs, ats, from, to)
}

// frame is one video frame as the subscriber's decoder would see it.
type frame struct {
	pic       int64 // picture id, unwrapped
	key       bool
	count     int
	got       map[uint16]bool
	firstAt   time.Duration // when its first packet arrived
	done      time.Duration // when its last missing packet arrived; -1 never
	decodedAt time.Duration // -1: not decodable
}

// frames assembles the received video into frames by picture id (which
// the server keeps continuous across layers) and works out which a
// decoder could decode: a complete keyframe, or a complete frame whose
// predecessor was decoded; a decoder waits for a late predecessor.
func frames(video []rxVideo) []*frame {
	byPic := map[int64]*frame{}
	var last int64
	started := false
	for _, v := range video {
		if v.padding {
			continue
		}
		var p int64
		if !started {
			p, started = int64(v.pic)+1<<20, true
		} else {
			d := (int64(v.pic) - last%(1<<15) + 1<<15) % (1 << 15)
			if d >= 1<<14 {
				d -= 1 << 15
			}
			p = last + d
		}
		last = max(last, p)
		f := byPic[p]
		if f == nil {
			f = &frame{pic: p, count: int(v.count), got: map[uint16]bool{}, firstAt: v.at, done: -1}
			byPic[p] = f
		}
		if v.key {
			f.key = true
		}
		if !f.got[v.idx] {
			f.got[v.idx] = true
			if len(f.got) == f.count {
				f.done = v.at
			}
		}
	}
	out := make([]*frame, 0, len(byPic))
	for _, f := range byPic {
		out = append(out, f)
	}
	slices.SortFunc(out, func(a, b *frame) int { return cmp.Compare(a.pic, b.pic) })
	var prev *frame
	for _, f := range out {
		f.decodedAt = -1
		switch {
		case f.done < 0:
		case f.key:
			f.decodedAt = f.done
		case prev != nil && prev.pic == f.pic-1 && prev.decodedAt >= 0:
			f.decodedAt = max(f.done, prev.decodedAt)
		}
		prev = f
	}
	return out
}

// frameStats over [from, to): the longest time without a decodable frame
// (window edges included), and of the frames whose first packet arrived
// then, how many were decodable, and how many of their packets never came.
func frameStats(fs []*frame, from, to time.Duration) (maxGap time.Duration, decodable, total, missingPackets, packets int) {
	var times []time.Duration
	for _, f := range fs {
		if f.decodedAt >= from && f.decodedAt < to {
			times = append(times, f.decodedAt)
		}
	}
	slices.Sort(times)
	prev := from
	for _, at := range times {
		maxGap = max(maxGap, at-prev)
		prev = at
	}
	maxGap = max(maxGap, to-prev)
	for _, f := range fs {
		if f.firstAt < from || f.firstAt >= to {
			continue
		}
		total++
		packets += f.count
		missingPackets += f.count - len(f.got)
		if f.decodedAt >= 0 {
			decodable++
		}
	}
	return maxGap, decodable, total, missingPackets, packets
}

// estimates reads the subscribers' bandwidth estimate histogram from
// /metrics: its sum, count and buckets.
type estimates struct {
	sum     float64
	count   float64
	buckets map[string]float64 // by le
	padding float64            // quartet_probe_padding_bytes_total
	swaps   float64            // quartet_layer_switches_total
}

func readEstimates(t *testing.T, url string) estimates {
	t.Helper()
	e := estimates{buckets: map[string]float64{}}
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Logf("metrics: %v", err)
		return e
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	const name = "quartet_subscriber_bandwidth_estimate_bps"
	for sc.Scan() {
		line := sc.Text()
		field := strings.Fields(line)
		if len(field) != 2 {
			continue
		}
		v, err := strconv.ParseFloat(field[1], 64)
		if err != nil {
			continue
		}
		switch {
		case strings.HasPrefix(line, name+"_bucket{le=\""):
			le := strings.TrimSuffix(strings.TrimPrefix(field[0], name+"_bucket{le=\""), "\"}")
			e.buckets[le] = v
		case field[0] == name+"_sum":
			e.sum = v
		case field[0] == name+"_count":
			e.count = v
		case field[0] == "quartet_probe_padding_bytes_total":
			e.padding = v
		case field[0] == "quartet_layer_switches_total":
			e.swaps = v
		}
	}
	return e
}

// since describes the estimates sampled between two readings (both
// subscribers' samples, twice a second each): their mean and how many fell
// in each bucket.
func (e estimates) since(old estimates) string {
	n := e.count - old.count
	if n <= 0 {
		return "no estimates sampled"
	}
	les := make([]string, 0, len(e.buckets))
	for le := range e.buckets {
		les = append(les, le)
	}
	slices.SortFunc(les, func(a, b string) int {
		fa, _ := strconv.ParseFloat(a, 64)
		fb, _ := strconv.ParseFloat(b, 64)
		return cmp.Compare(fa, fb)
	})
	var parts []string
	prev := 0.0
	for _, le := range les {
		c := e.buckets[le] - old.buckets[le]
		if c-prev > 0 {
			parts = append(parts, fmt.Sprintf("≤%s: %.0f", le, c-prev))
		}
		prev = c
	}
	return fmt.Sprintf("%.0f samples, mean %.0f kbit/s; %s; padding %.0f KB, layer switches %.0f", n,
		(e.sum-old.sum)/n/1000, strings.Join(parts, ", "), (e.padding-old.padding)/1000, e.swaps-old.swaps)
}

// timeline logs, second by second, what a subscriber received.
func timeline(t *testing.T, r *recorder, from, to time.Duration) {
	video, audio, _ := r.snapshot()
	var lines []string
	for s := from.Truncate(time.Second); s < to; s += time.Second {
		c, pad := layersIn(video, s, s+time.Second)
		a := 0
		for _, at := range audio {
			if at >= s && at < s+time.Second {
				a++
			}
		}
		lines = append(lines, fmt.Sprintf("%3.0fs low %3d med %3d high %3d pad %3d audio %2d", s.Seconds(), c[0], c[1], c[2], pad, a))
	}
	t.Logf("%s, packets per second:\n%s", r.name, strings.Join(lines, "\n"))
}

// A publisher sends three simulcast layers and audio through a real server
// to two subscribers on a pion/transport vnet. A's downlink is shaped by a
// token bucket: at 400 kbit/s it must settle on the low layer within 10 s
// (with under 2% loss after and no second without a decodable frame),
// return to the high layer within 15 s of the limit going to 5 Mbit/s, and
// at 100 kbit/s have its video paused (told by stream_state) while audio
// goes on. B, unshaped, gets the high layer throughout.
func TestSimulcastShapedDownlink(t *testing.T) {
	if testing.Short() {
		t.Skip("a minute of shaped media")
	}
	const (
		limited  = 400_000
		lifted   = 5_000_000
		starved  = 100_000
		converge = 10 * time.Second
		hold     = 8 * time.Second // on the low layer, for loss and gaps
		recover  = 15 * time.Second
		pauseBy  = 10 * time.Second
	)
	vn := newShapedNet(t, limited)
	udp, err := vn.server.ListenPacket("udp4", "10.10.0.1:7882")
	if err != nil {
		t.Fatal(err)
	}
	allocs := &allocLog{mu: &sync.Mutex{}, recs: &[]allocRec{}, start: time.Now(), next: testserver.Logger().Handler()}
	srv := testserver.Start(t, testserver.Options{UDPConn: udp, Log: slog.New(allocs),
		Config: func(c *config.Config) { c.Media.LoopbackOnly = false }})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dial := func(identity string, network *vnet.Net, opts client.Options) *client.Client {
		opts.URL, opts.Token, opts.Log, opts.Net = srv.WSURL(), srv.Token(t, "shaped", identity), testserver.Logger(), network
		c, err := client.Dial(ctx, opts)
		if err != nil {
			t.Fatalf("%s: %v", identity, err)
		}
		return c
	}

	pub := dial("pub", vn.pub, client.Options{})
	defer pub.Close()
	st, err := client.NewSimulcastTrack("camera", pub.SID(), client.DefaultSimulcastLayers())
	if err != nil {
		t.Fatal(err)
	}
	mic, err := client.NewSynthTrack(false, "mic", pub.SID())
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.AddSimulcast(st, room.SourceCamera); err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish(ctx, map[webrtc.TrackLocal]string{mic: room.SourceMicrophone}); err != nil {
		t.Fatal(err)
	}
	sendCtx, stopSending := context.WithCancel(ctx)
	var senders sync.WaitGroup
	defer func() { stopSending(); senders.Wait() }()
	senders.Add(2)
	go func() {
		defer senders.Done()
		// Keyframes come on request; the periodic ones are rare, as from
		// a browser's encoder.
		if _, err := client.SendSimulcastSynth(sendCtx, st, client.SimulcastSynthConfig{FPS: 30, KeyframeInterval: 10 * time.Second}); err != nil {
			t.Errorf("simulcast sender: %v", err)
		}
	}()
	go func() {
		defer senders.Done()
		_, _ = client.SendSynth(sendCtx, mic, client.SynthConfig{AudioPayload: 80}) // 32 kbit/s Opus
	}()

	start := time.Now()
	recA, recB := newRecorder("A (shaped)", start), newRecorder("B (unshaped)", start)
	a := dial("a", vn.a, client.Options{OnTrack: recA.onTrack})
	defer a.Close()
	b := dial("b", vn.b, client.Options{OnTrack: recB.onTrack})
	defer b.Close()

	// Phase 1: 400 kbit/s from the start.
	metrics0 := readEstimates(t, srv.URL())
	waitUntil(t, 10*time.Second, "A's first video", func() bool { v, _, _ := recA.snapshot(); return len(v) > 0 })
	v, _, _ := recA.snapshot()
	t0 := v[0].at
	time.Sleep(time.Until(start.Add(t0 + converge + hold)))
	t1 := recA.since()
	metrics1 := readEstimates(t, srv.URL())
	video, _, _ := recA.snapshot()
	// Settled: from the first low-layer packet after the last packet of
	// another layer and after the last pause, only the low layer arrives.
	settledFrom := lastOtherThan(video, 0, t0, t1)
	paused := false
	for _, s := range a.StreamStates() {
		if at := s.At.Sub(start); at < t1 {
			// A pause ends a settled stretch; a resume starts the stream
			// again.
			paused = s.State == room.StreamPaused
			settledFrom = max(settledFrom, at)
		}
	}
	conv := firstOf(video, 0, settledFrom+1, t1)
	if conv < 0 || paused {
		conv = t1 // never settled: what follows reports nothing
	}
	counts, _ := layersIn(video, conv, t1)
	exp, lost := videoSeqLoss(video, conv, t1)
	fsA := frames(video)
	gap, dec, total, missing, pkts := frameStats(fsA, conv, t1)
	initialGap, _, _, _, _ := frameStats(fsA, t0, conv)
	t.Logf("400 kbit/s: A settled on the low layer %.2f s after its first video packet; after that: %d low, %d medium, %d high packets; "+
		"RTP loss %d of %d (%.2f%%); frames decodable %d of %d, %d of %d packets missing from frames; longest gap without a decodable frame %v (before settling %v)",
		(conv - t0).Seconds(), counts[0], counts[1], counts[2], lost, exp, pct(lost, exp), dec, total, missing, pkts, gap.Round(time.Millisecond), initialGap.Round(time.Millisecond))
	t.Logf("400 kbit/s estimates: %s", metrics1.since(metrics0))
	if conv-t0 > converge || counts[0] == 0 {
		t.Errorf("A did not settle on the low layer within %v at 400 kbit/s (paused at the end: %v; last other layer or pause %.2f s after its first video packet)",
			converge, paused, (settledFrom - t0).Seconds())
	}
	if pct(lost, exp) >= 2 {
		t.Errorf("A lost %.2f%% of its video after settling, want < 2%%", pct(lost, exp))
	}
	if gap > time.Second {
		t.Errorf("A went %v without a decodable frame after settling, want at most 1 s", gap)
	}

	// Phase 2: the limit lifts.
	vn.tbfA.SetRate(lifted)
	var high time.Duration = -1
	waitUntil(t, recover+5*time.Second, "the high layer at A, or the recovery deadline", func() bool {
		video, _, _ := recA.snapshot()
		high = firstOf(video, 2, t1, recA.since())
		return high >= 0 || recA.since()-t1 > recover+time.Second
	})
	time.Sleep(3 * time.Second)
	t2 := recA.since()
	metrics2 := readEstimates(t, srv.URL())
	video, _, _ = recA.snapshot()
	if high < 0 || high-t1 > recover {
		t.Errorf("A did not return to the high layer within %v of the limit lifting to 5 Mbit/s (first high packet at %.2f s after)", recover, (high - t1).Seconds())
	} else {
		after, _ := layersIn(video, high+time.Second, t2)
		exp, lost := videoSeqLoss(video, t1, t2)
		t.Logf("5 Mbit/s: A back on the high layer %.2f s after the limit lifted; from 1 s later: %d low, %d medium, %d high packets; RTP loss since the lift %d of %d (%.2f%%)",
			(high - t1).Seconds(), after[0], after[1], after[2], lost, exp, pct(lost, exp))
		if after[0]+after[1] > 0 {
			t.Errorf("A left the high layer again after returning to it: %v", after)
		}
	}
	t.Logf("5 Mbit/s estimates: %s", metrics2.since(metrics1))

	// Phase 3: starved.
	vn.tbfA.SetRate(starved)
	var pausedAt time.Duration = -1
	sid := recA.videoSID()
	waitUntil(t, pauseBy+5*time.Second, "stream_state paused at A, or the deadline", func() bool {
		for _, s := range a.StreamStates() {
			if s.TrackSID == sid && s.State == room.StreamPaused && s.At.Sub(start) > t2 {
				pausedAt = s.At.Sub(start)
				return true
			}
		}
		return recA.since()-t2 > pauseBy+time.Second
	})
	states := a.StreamStates()
	if pausedAt < 0 || pausedAt-t2 > pauseBy {
		t.Errorf("A got no stream_state paused within %v at 100 kbit/s; stream states %+v", pauseBy, states)
	} else {
		time.Sleep(6 * time.Second)
		t3 := recA.since()
		video, audio, aseqs := recA.snapshot()
		// What the queue held when the video paused still arrives: 20 KB
		// take 1.6 s at 100 kbit/s.
		drain := time.Duration(tbfQueue*8*int64(time.Second)/starved) + 500*time.Millisecond
		media, _ := layersIn(video, pausedAt+drain, t3)
		n := 0
		var ats []time.Duration
		for _, at := range audio {
			if at >= pausedAt && at < t3 {
				n++
			}
			ats = append(ats, at)
		}
		late := 0
		for _, v := range video {
			if v.at >= pausedAt && v.late && !v.padding {
				late++
			}
		}
		aexp, alost := seqLoss(aseqs, ats, pausedAt, t3)
		sexp, slost := seqLoss(aseqs, ats, pausedAt+drain, t3)
		rate := float64(n) / (t3 - pausedAt).Seconds()
		t.Logf("100 kbit/s: video paused %.2f s after the limit fell; in the %.1f s after: audio %.1f packets/s, audio loss %d of %d (%.2f%%), "+
			"from %v on (the queue drained) %d of %d (%.2f%%) and video packets by layer %v; video retransmissions after the pause %d",
			(pausedAt - t2).Seconds(), (t3 - pausedAt).Seconds(), rate, alost, aexp, pct(alost, aexp), drain, slost, sexp, pct(slost, sexp), media, late)
		if media[0]+media[1]+media[2] > 0 {
			t.Errorf("A received %v video packets more than %v after it was told the video is paused", media, drain)
		}
		if rate < 40 {
			t.Errorf("A received %.1f audio packets/s while its video was paused, want about 50", rate)
		}
		for _, s := range a.StreamStates() {
			if s.At.Sub(start) > pausedAt && s.State == room.StreamActive {
				t.Errorf("the video was resumed at %.2f s though the link still carries 100 kbit/s", s.At.Sub(start).Seconds())
			}
		}
	}
	t.Logf("100 kbit/s estimates: %s", readEstimates(t, srv.URL()).since(metrics2))
	end := recA.since()
	t.Logf("A's stream states: %s", describeStates(a.StreamStates(), start))
	timeline(t, recA, 0, end)
	t.Logf("A's allocations (logged when a layer choice changes):\n%s", allocs.describe(a.SID(), start))

	// B: the high layer throughout, from its first second on.
	videoB, _, _ := recB.snapshot()
	if len(videoB) == 0 {
		t.Fatal("B received no video")
	}
	b0 := videoB[0].at
	countsB, _ := layersIn(videoB, b0+2*time.Second, end)
	expB, lostB := videoSeqLoss(videoB, b0, end)
	gapB, decB, totalB, _, _ := frameStats(frames(videoB), b0+2*time.Second, end)
	t.Logf("B: %v packets by layer from 2 s after its first; RTP loss %d of %d (%.2f%%); frames decodable %d of %d; longest gap %v; stream states %s",
		countsB, lostB, expB, pct(lostB, expB), decB, totalB, gapB.Round(time.Millisecond), describeStates(b.StreamStates(), start))
	if countsB[0]+countsB[1] > 0 || countsB[2] == 0 {
		t.Errorf("B, unshaped, left the high layer: %v", countsB)
	}
	if len(b.StreamStates()) > 0 {
		t.Errorf("B got stream states: %s", describeStates(b.StreamStates(), start))
	}
	if t.Failed() {
		timeline(t, recB, 0, end)
	}
}

func (r *recorder) videoSID() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.videoT
}

func pct(part, whole int) float64 {
	if whole == 0 {
		return 0
	}
	return float64(part) * 100 / float64(whole)
}

func describeStates(states []client.StreamState, start time.Time) string {
	if len(states) == 0 {
		return "none"
	}
	var parts []string
	for _, s := range states {
		parts = append(parts, fmt.Sprintf("%.2f s %s %s", s.At.Sub(start).Seconds(), s.State, s.Reason))
	}
	return strings.Join(parts, "; ")
}

// allocLog keeps the server's "allocation" debug records (the allocator's
// plan, estimate, acknowledged rate, loss and delay state when a layer
// choice changes) and passes every record on to next.
type allocLog struct {
	mu    *sync.Mutex
	recs  *[]allocRec
	start time.Time
	attrs []slog.Attr
	next  slog.Handler
}

type allocRec struct {
	at          time.Time
	participant string
	text        string
}

func (h *allocLog) Enabled(context.Context, slog.Level) bool { return true }

func (h *allocLog) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "allocation" {
		rec := allocRec{at: r.Time}
		var parts []string
		add := func(a slog.Attr) bool {
			if a.Key == "participant" {
				rec.participant = a.Value.String()
			} else if a.Key != "room" {
				parts = append(parts, a.Key+"="+a.Value.String())
			}
			return true
		}
		for _, a := range h.attrs {
			add(a)
		}
		r.Attrs(add)
		rec.text = strings.Join(parts, " ")
		h.mu.Lock()
		*h.recs = append(*h.recs, rec)
		h.mu.Unlock()
	}
	if h.next.Enabled(ctx, r.Level) {
		return h.next.Handle(ctx, r)
	}
	return nil
}

func (h *allocLog) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(slices.Clone(h.attrs), attrs...)
	c.next = h.next.WithAttrs(attrs)
	return &c
}

func (h *allocLog) WithGroup(name string) slog.Handler {
	c := *h
	c.next = h.next.WithGroup(name)
	return &c
}

// describe lists the allocations of one participant's subscriber.
func (h *allocLog) describe(participant string, start time.Time) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var lines []string
	for _, r := range *h.recs {
		if r.participant == participant {
			lines = append(lines, fmt.Sprintf("%6.2fs %s", r.at.Sub(start).Seconds(), r.text))
		}
	}
	if len(lines) == 0 {
		return "none logged"
	}
	return strings.Join(lines, "\n")
}
