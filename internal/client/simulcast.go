package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/quartet-rtc/quartet/internal/room"
)

// SimulcastLayer is one layer of a simulcast video track, as the client
// declares it to the server.
type SimulcastLayer struct {
	RID           string
	Width, Height int
	MaxBitrate    int // bits per second; the synthetic sender sends this much
}

// DefaultSimulcastLayers are the SDK's camera defaults, lowest first:
// q 320×180 at 150 kbit/s, h 640×360 at 500 kbit/s, f 1280×720 at
// 1.7 Mbit/s.
func DefaultSimulcastLayers() []SimulcastLayer {
	return []SimulcastLayer{
		{RID: "q", Width: 320, Height: 180, MaxBitrate: 150_000},
		{RID: "h", Width: 640, Height: 360, MaxBitrate: 500_000},
		{RID: "f", Width: 1280, Height: 720, MaxBitrate: 1_700_000},
	}
}

// SimulcastTrack is one video source sent as simulcast: a local VP8 track
// per layer, all with the same track and stream id and each with its rid,
// sent on one transceiver. The server's subscribed_layers turns layers off
// and on (Active); keyframe requests arrive per layer (KeyframeRequests).
type SimulcastTrack struct {
	Layers []SimulcastLayer
	Tracks []*webrtc.TrackLocalStaticRTP // by layer, lowest first

	active    []atomic.Bool
	keyframes []chan struct{}
	plis      []atomic.Int64

	transceiver *webrtc.RTPTransceiver // set by AddSimulcast

	mu      sync.Mutex
	changes []LayerChange
}

// LayerChange is one subscribed_layers message as the track applied it.
type LayerChange struct {
	At     time.Time
	Active []bool // by layer
}

// NewSimulcastTrack returns a simulcast VP8 track of the given layers,
// lowest first; all start active.
func NewSimulcastTrack(id, streamID string, layers []SimulcastLayer) (*SimulcastTrack, error) {
	if len(layers) == 0 {
		return nil, errors.New("client: a simulcast track needs at least one layer")
	}
	st := &SimulcastTrack{Layers: append([]SimulcastLayer(nil), layers...), active: make([]atomic.Bool, len(layers)),
		keyframes: make([]chan struct{}, len(layers)), plis: make([]atomic.Int64, len(layers))}
	seen := map[string]bool{}
	for i, l := range layers {
		if l.RID == "" || seen[l.RID] {
			return nil, fmt.Errorf("client: simulcast layer %d: rid %q is empty or repeated", i, l.RID)
		}
		seen[l.RID] = true
		t, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000},
			id, streamID, webrtc.WithRTPStreamID(l.RID))
		if err != nil {
			return nil, err
		}
		st.Tracks = append(st.Tracks, t)
		st.active[i].Store(true)
		st.keyframes[i] = make(chan struct{}, 1)
	}
	return st, nil
}

// ID is the track id all layers share.
func (st *SimulcastTrack) ID() string { return st.Tracks[0].ID() }

// Active reports whether the server wants layer i sent.
func (st *SimulcastTrack) Active(i int) bool { return st.active[i].Load() }

// KeyframeRequests receives a value when the server asked for a keyframe
// of layer i (PLI or FIR on that layer's SSRC); one pending request is kept.
func (st *SimulcastTrack) KeyframeRequests(i int) <-chan struct{} { return st.keyframes[i] }

// KeyframeRequestCount is how many keyframe requests layer i received.
func (st *SimulcastTrack) KeyframeRequestCount(i int) int64 { return st.plis[i].Load() }

// LayerChanges returns the subscribed_layers messages applied so far.
func (st *SimulcastTrack) LayerChanges() []LayerChange {
	st.mu.Lock()
	defer st.mu.Unlock()
	return append([]LayerChange(nil), st.changes...)
}

func (st *SimulcastTrack) layerIndex(rid string) int {
	for i, l := range st.Layers {
		if l.RID == rid {
			return i
		}
	}
	return -1
}

func (st *SimulcastTrack) requestKeyframe(i int) {
	st.plis[i].Add(1)
	select {
	case st.keyframes[i] <- struct{}{}:
	default:
	}
}

// setLayers applies a subscribed_layers message.
func (st *SimulcastTrack) setLayers(states []room.LayerState) {
	for _, s := range states {
		if i := st.layerIndex(s.RID); i >= 0 {
			st.active[i].Store(s.Active)
		}
	}
	change := LayerChange{At: time.Now(), Active: make([]bool, len(st.Layers))}
	for i := range st.active {
		change.Active[i] = st.active[i].Load()
	}
	st.mu.Lock()
	st.changes = append(st.changes, change)
	st.mu.Unlock()
}

// metas is what the offer declares about the layers.
func (st *SimulcastTrack) metas() []room.LayerMeta {
	out := make([]room.LayerMeta, len(st.Layers))
	for i, l := range st.Layers {
		out[i] = room.LayerMeta{RID: l.RID, Width: l.Width, Height: l.Height, MaxBitrate: l.MaxBitrate}
	}
	return out
}

// AddSimulcast adds a simulcast track with its source without negotiating:
// the next Publish (or PublishSimulcast) offers it.
func (c *Client) AddSimulcast(st *SimulcastTrack, source string) error {
	if c.pub == nil {
		return errSignalingOnly
	}
	tr, err := c.pub.AddTransceiverFromTrack(st.Tracks[0],
		webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
	if err != nil {
		return fmt.Errorf("client: add simulcast track: %w", err)
	}
	st.transceiver = tr
	sender := tr.Sender()
	for _, t := range st.Tracks[1:] {
		if err := sender.AddEncoding(t); err != nil {
			return fmt.Errorf("client: add simulcast encoding %s: %w", t.RID(), err)
		}
	}
	c.mu.Lock()
	c.sources[st.ID()] = source
	c.senders[st.ID()] = sender
	c.simulcast[st.ID()] = st
	c.mu.Unlock()
	for i, l := range st.Layers {
		go c.readSimulcastRTCP(sender, st, i, l.RID)
	}
	return nil
}

// PublishSimulcast adds a simulcast track and negotiates.
func (c *Client) PublishSimulcast(ctx context.Context, st *SimulcastTrack, source string) error {
	if err := c.AddSimulcast(st, source); err != nil {
		return err
	}
	return c.negotiate(ctx)
}

// readSimulcastRTCP reads one encoding's RTCP, so pion's interceptors see
// it, and passes its keyframe requests to the layer.
func (c *Client) readSimulcastRTCP(s *webrtc.RTPSender, st *SimulcastTrack, layer int, rid string) {
	for {
		pkts, _, err := s.ReadSimulcastRTCP(rid)
		if err != nil {
			return // closed, like readSenderRTCP
		}
		for _, p := range pkts {
			switch p.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				st.requestKeyframe(layer)
			}
		}
	}
}

// onSubscribedLayers applies the server's dynacast message to the track
// it names.
func (c *Client) onSubscribedLayers(data []byte) error {
	var m struct {
		TrackSID string            `json:"trackSid"`
		Layers   []room.LayerState `json:"layers"`
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return err
	}
	c.mu.Lock()
	var st *SimulcastTrack
	for id, sid := range c.pubSIDs {
		if sid == m.TrackSID {
			st = c.simulcast[id]
		}
	}
	c.mu.Unlock()
	if st == nil {
		return fmt.Errorf("subscribed_layers for %s, not a simulcast track of ours", m.TrackSID)
	}
	st.setLayers(m.Layers)
	return nil
}

// SimulcastSynthConfig describes synthetic simulcast video: every active
// layer at its MaxBitrate, in the marked layout (see SynthConfig.Marked).
type SimulcastSynthConfig struct {
	FPS              int
	KeyframeInterval time.Duration
	// TemporalLayers 3 sends every layer as VP8 L1T3.
	TemporalLayers int
	// Sent, if set, counts what every layer wrote.
	Sent *SendCounter
	// Layers, if set, has a counter per layer.
	Layers []*TrackCounter
	// Keyframes, if set, has a keyframe counter per layer.
	Keyframes []*atomic.Int64
}

// SendSimulcastSynth writes synthetic VP8 to every layer of st, each from
// its own goroutine, until ctx ends: a layer the server turned off sends
// nothing and restarts with a keyframe, and a keyframe request for a
// layer makes its next frame a keyframe. It returns the packets written.
func SendSimulcastSynth(ctx context.Context, st *SimulcastTrack, cfg SimulcastSynthConfig) (int, error) {
	if st.transceiver == nil || st.transceiver.Mid() == "" {
		return 0, errors.New("client: send simulcast: the track is not published")
	}
	var midID, ridID uint8
	for _, ext := range st.transceiver.Sender().GetParameters().HeaderExtensions {
		switch ext.URI {
		case sdp.SDESMidURI:
			midID = uint8(ext.ID)
		case sdp.SDESRTPStreamIDURI:
			ridID = uint8(ext.ID)
		}
	}
	if midID == 0 || ridID == 0 {
		return 0, errors.New("client: send simulcast: the mid and rid header extensions were not negotiated")
	}
	var wg sync.WaitGroup
	var total atomic.Int64
	errs := make([]error, len(st.Layers))
	for i, l := range st.Layers {
		layer := SynthConfig{Video: true, FPS: cfg.FPS, BitrateBPS: l.MaxBitrate, KeyframeInterval: cfg.KeyframeInterval,
			KeyframeRequests: st.keyframes[i], Sent: cfg.Sent, Marked: true, Layer: i, Width: l.Width, Height: l.Height,
			TemporalLayers: cfg.TemporalLayers, Active: &st.active[i],
			MID: st.transceiver.Mid(), RID: l.RID, MIDExtID: midID, RIDExtID: ridID}
		if i < len(cfg.Layers) {
			layer.Track = cfg.Layers[i]
		}
		if i < len(cfg.Keyframes) {
			layer.Keyframes = cfg.Keyframes[i]
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := sendVideo(ctx, st.Tracks[i], layer)
			total.Add(int64(n))
			if err != nil {
				errs[i] = fmt.Errorf("layer %s: %w", st.Layers[i].RID, err)
			}
		}()
	}
	wg.Wait()
	return int(total.Load()), errors.Join(errs...)
}
