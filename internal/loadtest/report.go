package loadtest

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pion/webrtc/v4"
)

// Report is what a run measured. Its JSON form is what --json writes and
// what the benchmarks under bench/ read.
type Report struct {
	Room         string  `json:"room"`
	Publishers   int     `json:"publishers"`
	Subscribers  int     `json:"subscribers"`
	Video        bool    `json:"video"`
	Audio        bool    `json:"audio"`
	VideoBitrate int     `json:"video_bitrate"`
	JoinRate     float64 `json:"join_rate"`
	// MaxSubscriptions is how many publishers each participant received
	// at most; 0 means all.
	MaxSubscriptions int `json:"max_subscriptions"`
	// Simulcast video: the layers' bitrates, lowest first, and whether
	// the receivers spread their quality preferences over them.
	Simulcast       bool  `json:"simulcast,omitempty"`
	SimulcastLayers []int `json:"simulcast_layers_bps,omitempty"`
	QualitySpread   bool  `json:"quality_spread,omitempty"`

	StartedAt time.Time `json:"started_at"`
	JoinedAt  time.Time `json:"joined_at"` // when the last participant had joined
	// AllMediaAt is when the last participant expecting media received its
	// first packet: from then to StoppedAt the load is steady.
	AllMediaAt time.Time `json:"all_media_at"`
	StoppedAt  time.Time `json:"stopped_at"` // when the publishers stopped
	// MediaSeconds is the time media flowed: first publisher to the stop.
	MediaSeconds float64 `json:"media_seconds"`

	Joined     int `json:"joined"`
	JoinFailed int `json:"join_failed"`
	NotJoined  int `json:"not_joined"` // still joining, or never started, when the run ended
	// Disconnected participants joined but stopped taking part before the
	// run ended: the server sent leave, the signaling connection ended, a
	// peer connection failed or closed, or media stopped for 5 s.
	// DisconnectReasons counts them by the first thing that went wrong.
	Disconnected      int            `json:"disconnected"`
	DisconnectReasons map[string]int `json:"disconnect_reasons,omitempty"`
	MediaFailed       int            `json:"media_failed"`  // expected media, received none, not disconnected
	MediaWaiting      int            `json:"media_waiting"` // joined but no peer connection up yet

	SentPackets     int64 `json:"sent_packets"`
	SentBytes       int64 `json:"sent_bytes"`
	ReceivedPackets int64 `json:"received_packets"` // media, including duplicates
	ReceivedBytes   int64 `json:"received_bytes"`   // media payload
	// PaddingPackets and PaddingBytes are the padding-only packets the
	// server sent (bandwidth probes), not counted as received media.
	PaddingPackets int64 `json:"padding_packets"`
	PaddingBytes   int64 `json:"padding_bytes"`
	ReceivedTracks int   `json:"received_tracks"` // tracks received, summed over participants
	// ReceivedVideoTracks are the video tracks of ReceivedTracks: the
	// subscriber video streams the server delivered.
	ReceivedVideoTracks int `json:"received_video_tracks"`
	// MissingTracks are tracks a participant should have received and did
	// not, summed over participants.
	MissingTracks int `json:"missing_tracks"`
	// ExpectedPackets is what the publishers sent that receivers should
	// have received: for each received track, from the first packet that
	// arrived to the last one its publisher sent; for each missing track,
	// what its publisher sent after the receiver joined. LostPackets is
	// what of that never arrived, so packets sent after a server or a path
	// went away count as lost.
	ExpectedPackets int64   `json:"expected_packets"`
	LostPackets     int64   `json:"lost_packets"`
	Loss            float64 `json:"loss"` // lost / expected
	OutOfOrder      int64   `json:"out_of_order"`
	Duplicates      int64   `json:"duplicates"`
	// LayerPackets are the simulcast video packets received, by layer,
	// lowest first (retransmissions included, padding not); nil without
	// simulcast. Loss of simulcast video is counted over the span of the
	// server's sequence numbers each receiver saw: the server renumbers
	// the layers into one stream.
	LayerPackets []int64 `json:"layer_packets,omitempty"`
	// PausedStreams counts the stream_state paused messages receivers got:
	// video the server paused because their bandwidth was too low.
	PausedStreams int64   `json:"paused_streams"`
	NACKsSent     int64   `json:"nacks_sent"`
	SentMbps      float64 `json:"sent_mbps"`
	ReceivedMbps  float64 `json:"received_mbps"`

	Latency      Percentiles `json:"latency_ms"`       // one-way, send to receive
	FirstMedia   Percentiles `json:"first_media_ms"`   // dial to the first packet
	KeyframeWait Percentiles `json:"keyframe_wait_ms"` // join (or first publish) to the first video

	Errors  []string `json:"errors,omitempty"`
	MaxLoss float64  `json:"max_loss"`
}

// Percentiles are in milliseconds.
type Percentiles struct {
	Count int64   `json:"count"`
	P50   float64 `json:"p50"`
	P95   float64 `json:"p95"`
	P99   float64 `json:"p99"`
	Max   float64 `json:"max"`
}

func percentiles(h *histogram) Percentiles {
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	return Percentiles{Count: h.n, P50: ms(h.quantile(0.5)), P95: ms(h.quantile(0.95)),
		P99: ms(h.quantile(0.99)), Max: ms(h.max)}
}

// report gathers the counts once every client is closed.
func (r *runner) report(start, joinedAt, stoppedAt time.Time) *Report {
	cfg := r.cfg
	rep := &Report{Room: cfg.Room, Publishers: cfg.Publishers, Subscribers: cfg.Subscribers,
		Video: cfg.Video, Audio: cfg.Audio, VideoBitrate: cfg.VideoBitrate, JoinRate: cfg.JoinRate,
		StartedAt: start, JoinedAt: joinedAt, AllMediaAt: joinedAt, StoppedAt: stoppedAt, MaxLoss: cfg.MaxLoss,
		SentPackets: r.sent.Packets.Load(), SentBytes: r.sent.Bytes.Load()}
	rep.MaxSubscriptions = cfg.MaxSubscriptions
	if cfg.Simulcast && cfg.Video {
		rep.Simulcast, rep.QualitySpread = true, cfg.QualitySpread
		for _, l := range cfg.layers() {
			rep.SimulcastLayers = append(rep.SimulcastLayers, l.MaxBitrate)
		}
	}
	rep.PausedStreams = r.paused.Load()
	rx := r.tracks.totals()
	if rep.Simulcast {
		rep.LayerPackets = rx.layers[:min(len(rep.SimulcastLayers), maxLayers)]
	}
	rep.ReceivedPackets, rep.ReceivedBytes, rep.ReceivedTracks = rx.packets, rx.bytes, rx.tracks
	rep.ReceivedVideoTracks = rx.videoTracks
	rep.PaddingPackets, rep.PaddingBytes = rx.padding, rx.paddingBytes
	rep.ExpectedPackets, rep.LostPackets = rx.expected, rx.lost
	rep.OutOfOrder, rep.Duplicates = rx.outOfOrder, rx.duplicates
	r.countMissingTracks(rep)
	if rep.ExpectedPackets > 0 {
		rep.Loss = float64(rep.LostPackets) / float64(rep.ExpectedPackets)
	}
	rep.Latency = percentiles(&rx.latency)
	if ms := r.mediaStart.Load(); ms != 0 {
		rep.MediaSeconds = stoppedAt.Sub(time.Unix(0, ms)).Seconds()
	}
	if rep.MediaSeconds > 0 {
		rep.SentMbps = float64(rep.SentBytes) * 8 / rep.MediaSeconds / 1e6
		rep.ReceivedMbps = float64(rep.ReceivedBytes) * 8 / rep.MediaSeconds / 1e6
	}
	r.participantStats(rep)
	r.mu.Lock()
	rep.JoinFailed = r.joinErrors
	rep.NotJoined = max(rep.Publishers+rep.Subscribers-rep.Joined-rep.JoinFailed, 0)
	rep.Errors = append(rep.Errors, r.errs...)
	r.mu.Unlock()
	return rep
}

// participantStats fills in joins, failures and the time to first media.
// Each participant counts once: a join failure, disconnected, without
// media, or fine.
func (r *runner) participantStats(rep *Report) {
	var first, keyframe histogram
	mediaStart := r.mediaStart.Load()
	for _, p := range r.participants() {
		if p.joinedAt.IsZero() || p.joinFailed {
			continue // dialled but never joined, or failed to publish: counted as a join failure
		}
		rep.Joined++
		rep.NACKsSent += p.nacks.Load()
		f := p.failure.Load()
		if f != nil {
			rep.Disconnected++
			if rep.DisconnectReasons == nil {
				rep.DisconnectReasons = map[string]int{}
			}
			rep.DisconnectReasons[f.reason]++
		}
		if !r.expectsMedia(p) {
			continue
		}
		switch {
		case f != nil:
		case p.firstMedia.Load() == 0:
			rep.MediaFailed++
			r.noteError(fmt.Errorf("participant %s: no media; subscriber connection %s, joined %.1f s into the run",
				p.c.SID(), webrtc.PeerConnectionState(p.subState.Load()), p.joinedAt.Sub(rep.StartedAt).Seconds()))
		case !p.connected.Load():
			rep.MediaWaiting++
		}
		if t := p.firstMedia.Load(); t != 0 {
			first.add(time.Unix(0, t).Sub(p.dialStart))
			if at := time.Unix(0, t); at.After(rep.AllMediaAt) {
				rep.AllMediaAt = at
			}
		}
		if t := p.firstVideo.Load(); t != 0 {
			from := max(p.joinedAt.UnixNano(), mediaStart)
			keyframe.add(time.Duration(t - from))
		}
	}
	rep.FirstMedia = percentiles(&first)
	rep.KeyframeWait = percentiles(&keyframe)
}

// countMissingTracks adds to the expected and lost packets every track a
// participant should have received but never did: all of it that was sent
// after the participant joined. Once the readers are done.
func (r *runner) countMissingTracks(rep *Report) {
	received := map[*participant]map[string]bool{}
	for _, tr := range r.tracks.all() {
		if received[tr.p] == nil {
			received[tr.p] = map[string]bool{}
		}
		received[tr.p][tr.sid] = true
	}
	r.mu.Lock()
	sent := maps.Clone(r.sentTracks)
	r.mu.Unlock()
	for _, p := range r.participants() {
		if p.joinedAt.IsZero() || p.joinFailed || !r.expectsMedia(p) {
			continue
		}
		for sid, t := range sent {
			if received[p][sid] || !r.shouldReceive(p, t) {
				continue
			}
			missed := t.count.Packets.Load() - p.sentAtJoin[sid]
			rep.MissingTracks++
			rep.ExpectedPackets += missed
			rep.LostPackets += missed
		}
	}
}

// shouldReceive reports whether p should receive track t: every other
// publisher's, or with --max-subscriptions those of the publishers it chose.
func (r *runner) shouldReceive(p *participant, t sentTrack) bool {
	if t.publisher == p.c.SID() {
		return false
	}
	return p.choose == nil || p.choose.chose(t.publisher)
}

// expectsMedia reports whether p should have received something: it has
// media and someone else publishes. With --max-subscriptions it subscribes
// to at least one of them, so the same holds.
func (r *runner) expectsMedia(p *participant) bool {
	if r.cfg.SignalingOnly {
		return false
	}
	others := r.cfg.Publishers
	if p.publisher {
		others--
	}
	return others > 0
}

// Check returns an error when participants failed or loss exceeded the
// threshold: the run did not carry its load.
func (rep *Report) Check() error {
	var errs []error
	if rep.JoinFailed > 0 {
		errs = append(errs, fmt.Errorf("%d participants failed to join", rep.JoinFailed))
	}
	if rep.NotJoined > 0 {
		errs = append(errs, fmt.Errorf("%d participants had not joined when the run ended (lower --join-rate or raise --duration)", rep.NotJoined))
	}
	if rep.Disconnected > 0 {
		errs = append(errs, fmt.Errorf("%d participants were disconnected during the run (%s)", rep.Disconnected,
			rep.disconnectSummary()))
	}
	if rep.MediaFailed > 0 {
		errs = append(errs, fmt.Errorf("%d participants received no media", rep.MediaFailed))
	}
	if rep.Loss > rep.MaxLoss {
		errs = append(errs, fmt.Errorf("loss %.3f%% exceeds %.3f%%", rep.Loss*100, rep.MaxLoss*100))
	}
	return errors.Join(errs...)
}

// WriteSummary writes the report as a table for people.
func (rep *Report) WriteSummary(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(name, format string, args ...any) {
		fmt.Fprintf(tw, "%s\t"+format+"\n", append([]any{name}, args...)...)
	}
	row("participants", "%d joined of %d (%d publishers, %d subscribers); %d join failures, %d not joined in time, %d disconnected, %d without media",
		rep.Joined, rep.Publishers+rep.Subscribers, rep.Publishers, rep.Subscribers, rep.JoinFailed, rep.NotJoined,
		rep.Disconnected, rep.MediaFailed)
	if rep.Disconnected > 0 {
		row("disconnected", "%s", rep.disconnectSummary())
	}
	row("join time", "%.2f s to join, %.2f s until all received media", rep.JoinedAt.Sub(rep.StartedAt).Seconds(),
		rep.AllMediaAt.Sub(rep.StartedAt).Seconds())
	row("sent", "%d packets, %.2f Mbps", rep.SentPackets, rep.SentMbps)
	row("received", "%d packets, %.2f Mbps, %d tracks over all participants%s, %d tracks missing; padding %d packets, %d bytes",
		rep.ReceivedPackets, rep.ReceivedMbps, rep.ReceivedTracks, subscriptionLimit(rep.MaxSubscriptions), rep.MissingTracks,
		rep.PaddingPackets, rep.PaddingBytes)
	row("loss", "%.3f%% (%d of the %d packets sent to receivers), out of order %d, duplicates %d, NACKs sent %d",
		rep.Loss*100, rep.LostPackets, rep.ExpectedPackets, rep.OutOfOrder, rep.Duplicates, rep.NACKsSent)
	if rep.Simulcast {
		spread := ""
		if rep.QualitySpread {
			spread = "; receivers ask for low, medium and high in turn"
		}
		row("simulcast", "layers %v bit/s; video packets received by layer %v%s; %d streams paused for bandwidth",
			rep.SimulcastLayers, rep.LayerPackets, spread, rep.PausedStreams)
	}
	row("latency", "%s", rep.Latency)
	row("first media", "%s", rep.FirstMedia)
	row("keyframe wait", "%s", rep.KeyframeWait)
	for _, e := range rep.Errors {
		row("error", "%s", e)
	}
	return tw.Flush()
}

// disconnectSummary lists the reasons for disconnections, most common first.
func (rep *Report) disconnectSummary() string {
	reasons := slices.Collect(maps.Keys(rep.DisconnectReasons))
	slices.SortFunc(reasons, func(a, b string) int {
		return cmp.Or(cmp.Compare(rep.DisconnectReasons[b], rep.DisconnectReasons[a]), strings.Compare(a, b))
	})
	parts := make([]string, len(reasons))
	for i, reason := range reasons {
		parts[i] = fmt.Sprintf("%d: %s", rep.DisconnectReasons[reason], reason)
	}
	return strings.Join(parts, "; ")
}

func subscriptionLimit(n int) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf(" (--max-subscriptions %d)", n)
}

func (p Percentiles) String() string {
	if p.Count == 0 {
		return "-"
	}
	return fmt.Sprintf("p50 %.1f ms, p95 %.1f ms, p99 %.1f ms, max %.1f ms (%d samples)", p.P50, p.P95, p.P99, p.Max, p.Count)
}
