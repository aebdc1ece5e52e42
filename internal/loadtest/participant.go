package loadtest

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"

	"github.com/quartet-rtc/quartet/internal/auth"
	"github.com/quartet-rtc/quartet/internal/client"
	"github.com/quartet-rtc/quartet/internal/room"
)

// participant is one synthetic client.
type participant struct {
	run       *runner
	index     int
	ordinal   int // the order it was started in, publishers first
	publisher bool
	identity  string // set before dialling, so the client's callbacks may read it
	c         *client.Client
	choose    *chooser // with --max-subscriptions; set before dialling
	prefs     *prefs   // with the quality spread; set before dialling

	dialStart, joinedAt time.Time
	// sentAtJoin is how many packets each published track (by sid) had sent
	// when this participant joined: what it should have received of a track
	// that never arrived is the rest.
	sentAtJoin map[string]int64
	joinFailed bool         // counted as a join failure; set before joinAll returns
	firstMedia atomic.Int64 // unix nanos of the first packet received
	firstVideo atomic.Int64
	lastMedia  atomic.Int64 // unix nanos of the latest packet received
	connected  atomic.Bool  // the peer connection it needs is connected
	nacks      atomic.Int64
	subState   atomic.Int32 // the subscriber connection's last state, to explain missing media
	senders    sync.WaitGroup

	// failure is why the participant stopped taking part during the run
	// (health.go); nil while it takes part. closing is set when the run
	// closes it, after which nothing counts as a failure.
	failure atomic.Pointer[failure]
	closing atomic.Bool
}

// join dials the server, joins the room and, for a publisher, starts
// sending. The error says what failed.
func (p *participant) join(ctx context.Context) error {
	cfg := p.run.cfg
	kind := "sub"
	if p.publisher {
		kind = "pub"
	}
	identity := fmt.Sprintf("loadtest-%s-%d", kind, p.index)
	p.identity = identity
	token, err := auth.Mint(cfg.APIKey, cfg.APISecret, auth.TokenSpec{Identity: identity, Room: cfg.Room,
		CanPublish: p.publisher, CanSubscribe: true, TTL: cfg.Duration + time.Hour}, time.Now())
	if err != nil {
		return err
	}
	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	opts := client.Options{
		URL: p.run.url, Token: token, Log: cfg.Log, SignalingOnly: cfg.SignalingOnly, NoHistory: true,
		OnTrack:           p.onTrack,
		OnConnectionState: p.onConnectionState,
		OnRTCPSent:        p.onRTCPSent,
		OnKeyframeRequest: p.onKeyframeRequest,
		OnEvent:           p.onEvent,
		OnDisconnect:      p.onDisconnect,
	}
	if cfg.MaxSubscriptions > 0 {
		p.choose = newChooser(cfg.MaxSubscriptions, func(err error) { p.run.noteError(fmt.Errorf("%s: %w", identity, err)) })
		opts.ManualSubscribe = true
	}
	if cfg.QualitySpread {
		p.prefs = newPrefs(qualities[p.ordinal%len(qualities)], func(err error) { p.run.noteError(fmt.Errorf("%s: %w", identity, err)) })
	}
	p.dialStart = time.Now()
	p.c, err = client.Dial(dctx, opts)
	if err != nil {
		return fmt.Errorf("%s: %w", identity, err)
	}
	p.joinedAt = time.Now()
	p.sentAtJoin = p.run.sentSnapshot()
	if p.choose != nil {
		p.choose.attach(p.c)
	}
	if p.prefs != nil {
		p.prefs.attach(p.c)
	}
	if p.publisher && !cfg.SignalingOnly {
		if err := p.publish(ctx, dctx); err != nil {
			return fmt.Errorf("%s: publish: %w", identity, err)
		}
	}
	return nil
}

func (p *participant) publish(runCtx, dialCtx context.Context) error {
	cfg := p.run.cfg
	tracks := map[webrtc.TrackLocal]string{}
	var video, audio *webrtc.TrackLocalStaticRTP
	var simulcast *client.SimulcastTrack
	var err error
	switch {
	case cfg.Video && cfg.Simulcast:
		if simulcast, err = client.NewSimulcastTrack(fmt.Sprintf("video-%d", p.index), p.c.SID(), cfg.layers()); err != nil {
			return err
		}
		if err := p.c.AddSimulcast(simulcast, room.SourceCamera); err != nil {
			return err
		}
	case cfg.Video:
		if video, err = client.NewSynthTrack(true, fmt.Sprintf("video-%d", p.index), p.c.SID()); err != nil {
			return err
		}
		tracks[video] = room.SourceCamera
	}
	if cfg.Audio {
		if audio, err = client.NewSynthTrack(false, fmt.Sprintf("audio-%d", p.index), p.c.SID()); err != nil {
			return err
		}
		tracks[audio] = room.SourceMicrophone
	}
	if err := p.c.Publish(dialCtx, tracks); err != nil {
		return err
	}
	p.run.markMediaStart(time.Now())
	if simulcast != nil {
		p.sendSimulcast(runCtx, simulcast)
	}
	if video != nil {
		// Marked, as a browser's VP8 (picture ids), and so that receivers
		// count the publisher's packets by the counter in the payload.
		p.send(runCtx, video, client.SynthConfig{Video: true, FPS: cfg.FPS, BitrateBPS: cfg.VideoBitrate,
			KeyframeInterval: cfg.KeyframeInterval, KeyframeRequests: p.run.keyframeChan(video.ID()), Marked: true})
	}
	if audio != nil {
		p.send(runCtx, audio, client.SynthConfig{AudioPayload: cfg.AudioPayload,
			AudioLevelID: p.c.HeaderExtensionID(client.AudioLevelURI), AudioLevel: p.audioLevel()})
	}
	return nil
}

// sendSimulcast starts sending every layer of st. Its receivers count
// what arrived over the one stream the server made of the layers; a
// receiver that never got the track is counted against the low layer,
// the least the server should have sent it.
func (p *participant) sendSimulcast(ctx context.Context, st *client.SimulcastTrack) {
	cfg := p.run.cfg
	layers := make([]*client.TrackCounter, len(st.Layers))
	for i := range layers {
		layers[i] = client.NewTrackCounter()
	}
	p.run.addSentTrack(p.c.TrackSID(st.ID()), p.c.SID(), layers[0], true)
	p.senders.Add(1)
	go func() {
		defer p.senders.Done()
		if _, err := client.SendSimulcastSynth(ctx, st, client.SimulcastSynthConfig{FPS: cfg.FPS,
			KeyframeInterval: cfg.KeyframeInterval, TemporalLayers: cfg.TemporalLayers, Sent: &p.run.sent, Layers: layers}); err != nil {
			p.run.noteError(fmt.Errorf("participant %d: %w", p.index, err))
		}
	}()
}

// send starts sending t, counted for the run and, by the track's sid, for
// its receivers.
func (p *participant) send(ctx context.Context, t *webrtc.TrackLocalStaticRTP, cfg client.SynthConfig) {
	cfg.Sent, cfg.Track = &p.run.sent, client.NewTrackCounter()
	p.run.addSentTrack(p.c.TrackSID(t.ID()), p.c.SID(), cfg.Track, false)
	p.senders.Add(1)
	go func() {
		defer p.senders.Done()
		if _, err := client.SendSynth(ctx, t, cfg); err != nil {
			p.run.noteError(fmt.Errorf("participant %d: %w", p.index, err))
		}
	}()
}

func (p *participant) onTrack(t *webrtc.TrackRemote, info room.TrackInfo) {
	r := newTrackReader(p, t, len(info.Layers) > 1)
	p.run.tracks.add(r)
	go r.run(t)
}

func (p *participant) onConnectionState(target string, s webrtc.PeerConnectionState) {
	if target == room.TargetSubscriber {
		p.subState.Store(int32(s))
	}
	wanted := room.TargetSubscriber
	if p.publisher {
		wanted = room.TargetPublisher
	}
	switch {
	case s == webrtc.PeerConnectionStateFailed, s == webrtc.PeerConnectionStateClosed:
		p.fail(fmt.Sprintf("%s connection %s", target, s))
	case s == webrtc.PeerConnectionStateConnected && target == wanted:
		p.connected.Store(true)
	}
}

// onEvent sees every server message: a leave means the server ended this
// participant, whatever the reason.
func (p *participant) onEvent(m client.Message) {
	if m.Type == "leave" {
		var leave struct{ Reason string }
		_ = json.Unmarshal(m.Raw, &leave)
		p.fail("server sent leave: " + cmp.Or(leave.Reason, "no reason given"))
	}
	if p.choose != nil {
		p.choose.onEvent(m)
	}
	if p.prefs != nil {
		p.prefs.onEvent(m)
	}
	if m.Type == "stream_state" {
		var st struct{ State string }
		if json.Unmarshal(m.Raw, &st) == nil && st.State == room.StreamPaused {
			p.run.paused.Add(1)
		}
	}
}

// onDisconnect runs when the signaling connection ends before the run
// closes it.
func (p *participant) onDisconnect(err error) {
	if status := websocket.CloseStatus(err); status != -1 {
		p.fail(fmt.Sprintf("server closed the signaling connection (%v)", status))
		return
	}
	p.fail("signaling connection lost")
	p.run.cfg.Log.Debug("loadtest: signaling connection lost", "participant", p.identity, "err", err)
}

func (p *participant) onRTCPSent(pkts []rtcp.Packet) {
	for _, pkt := range pkts {
		if _, ok := pkt.(*rtcp.TransportLayerNack); ok {
			p.nacks.Add(1)
		}
	}
}

func (p *participant) onKeyframeRequest(trackID string) {
	select {
	case p.run.keyframeChan(trackID) <- struct{}{}:
	default: // one pending request is enough
	}
}

// sawMedia records the first and latest packet and the first video packet.
func (p *participant) sawMedia(now time.Time, video bool) {
	p.lastMedia.Store(now.UnixNano())
	if p.firstMedia.Load() == 0 {
		p.firstMedia.CompareAndSwap(0, now.UnixNano())
	}
	if video && p.firstVideo.Load() == 0 {
		p.firstVideo.CompareAndSwap(0, now.UnixNano())
	}
}

// audioLevel makes the first publisher the one who talks, as in a meeting;
// the others send silence (-127 dBov).
func (p *participant) audioLevel() uint8 {
	if p.index == 0 {
		return 30
	}
	return 127
}
