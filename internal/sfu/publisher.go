package sfu

import (
	"context"
	"fmt"
	"sync"

	"github.com/pion/webrtc/v4"

	"github.com/quartet-rtc/quartet/internal/room"
)

// maxTracksOfPeer limits how many tracks one participant may publish.
const maxTracksOfPeer = 16

// publisher is the half of a Peer that receives the participant's tracks:
// its publisher connection (the client offers) and its up tracks.
type publisher struct {
	p  *Peer
	wg sync.WaitGroup // the up tracks' reader and RTCP goroutines

	// mu guards the fields below. It is held across pion calls that build
	// descriptions (no network I/O), never while calling the router, and
	// never taken from pion callbacks that may run under pion's own locks.
	mu       sync.Mutex
	closed   bool
	pc       *webrtc.PeerConnection    // made on the first offer
	declared map[string]room.TrackInfo // by the client's track id
	ups      map[string]*UpTrack       // by track sid
}

func newPublisher(p *Peer) publisher {
	return publisher{p: p, declared: map[string]room.TrackInfo{}, ups: map[string]*UpTrack{}}
}

// connLocked returns the publisher connection, creating it on the first
// offer. pub.mu must be held.
func (pub *publisher) connLocked() (*webrtc.PeerConnection, error) {
	if pub.pc != nil {
		return pub.pc, nil
	}
	p := pub.p
	pc, err := p.e.api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, fmt.Errorf("sfu: publisher connection: %w", err)
	}
	pc.OnICECandidate(func(c *webrtc.ICECandidate) { p.cands.local(room.TargetPublisher, c) })
	pc.OnTrack(pub.onTrack)
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		p.log.Debug("publisher connection state", "state", s.String())
	})
	pub.pc = pc
	return pc, nil
}

// Publish implements room.MediaSession.
func (p *Peer) Publish(offerSDP string, metas []room.TrackMeta) error {
	_, _, err := p.pub.apply(offerSDP, metas, false)
	return err
}

// PublishGathered implements room.MediaSession. It waits for gathering
// without holding publisher.mu.
func (p *Peer) PublishGathered(ctx context.Context, offerSDP string, metas []room.TrackMeta) (room.Answer, error) {
	answer, gathered, err := p.pub.apply(offerSDP, metas, true)
	if err != nil {
		return room.Answer{}, err
	}
	if answer.SDP, err = gatheredDescription(ctx, p.pub.pc, gathered); err != nil {
		return room.Answer{}, err
	}
	p.cands.inDescription(room.TargetPublisher)
	return answer, nil
}

// apply applies a publisher offer and sets the answer. Unless whole, the
// answer is sent through the events, its candidates trickled after it;
// whole, the caller waits on gathered for the complete answer.
func (pub *publisher) apply(offerSDP string, metas []room.TrackMeta, whole bool) (room.Answer, <-chan struct{}, error) {
	p := pub.p
	if !p.perms.CanPublish {
		return room.Answer{}, nil, room.ErrForbidden
	}
	sections, err := parseOffer(offerSDP)
	if err != nil {
		return room.Answer{}, nil, err
	}
	pub.mu.Lock()
	defer pub.mu.Unlock()
	if pub.closed {
		return room.Answer{}, nil, errPeerClosed
	}
	if err := pub.declareLocked(sections, metas); err != nil {
		return room.Answer{}, nil, err
	}
	pc, err := pub.connLocked()
	if err != nil {
		return room.Answer{}, nil, err
	}
	// Held before SetRemoteDescription: an offer that restarts ICE makes
	// pion restart and gather at once, before the answer exists, and a
	// candidate with the new credentials sent before the answer that
	// carries them is dropped by the client.
	p.cands.hold(room.TargetPublisher)
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offerSDP}); err != nil {
		p.log.Info("bad publisher offer", "err", err)
		return room.Answer{}, nil, fmt.Errorf("%w: %v", room.ErrBadSDP, err)
	}
	answer, err := pc.CreateAnswer(nil)
	var gathered <-chan struct{}
	if err == nil {
		gathered = webrtc.GatheringCompletePromise(pc)
		err = pc.SetLocalDescription(answer)
	}
	if err != nil {
		p.log.Info("publisher answer failed", "err", err)
		return room.Answer{}, nil, fmt.Errorf("%w: %v", room.ErrBadSDP, err)
	}
	tracks := make([]room.TrackInfo, 0, len(sections))
	for _, s := range sections {
		if t, ok := pub.declared[s.trackID]; ok {
			tracks = append(tracks, t)
		}
	}
	if !whole {
		p.cands.sendDescription(room.TargetPublisher, func() { p.events.PublisherAnswer(answer.SDP, tracks) })
	}
	return room.Answer{SDP: answer.SDP, Tracks: tracks}, gathered, nil
}

// gatheredDescription waits for ICE gathering to complete and returns the
// local description, which then carries every candidate. Gathering on the
// one muxed UDP port takes no network round trip; it is waited for without
// the peer's locks all the same, bounded by ctx.
func gatheredDescription(ctx context.Context, pc *webrtc.PeerConnection, gathered <-chan struct{}) (string, error) {
	select {
	case <-gathered:
	case <-ctx.Done():
		return "", fmt.Errorf("sfu: gathering candidates: %w", ctx.Err())
	}
	desc := pc.LocalDescription()
	if desc == nil {
		return "", errPeerClosed
	}
	return desc.SDP, nil
}

// declareLocked assigns server ids to the tracks of an offer.
func (pub *publisher) declareLocked(sections []offerTrack, metas []room.TrackMeta) error {
	source := map[string]room.TrackMeta{}
	for _, m := range metas {
		source[m.TrackID] = m
	}
	for _, s := range sections {
		if _, ok := pub.declared[s.trackID]; ok {
			continue
		}
		if len(pub.declared) >= maxTracksOfPeer {
			return room.ErrTooMany
		}
		m := source[s.trackID]
		if !validSource(m.Source) {
			m.Source = room.SourceUnknown
		}
		t := room.TrackInfo{SID: room.NewSID("TR_"), ParticipantSID: pub.p.sid,
			TrackID: s.trackID, Kind: s.kind, Source: m.Source, Muted: m.Muted}
		if s.kind == "video" {
			t.Layers = trackLayers(m.Layers, s.rids)
		}
		pub.declared[s.trackID] = t
	}
	return nil
}

func validSource(s string) bool {
	switch s {
	case room.SourceCamera, room.SourceMicrophone, room.SourceScreen, room.SourceScreenAudio, room.SourceUnknown:
		return true
	}
	return false
}

// onTrack runs when a publisher's stream starts: the first stream of a
// track makes it an UpTrack, and each simulcast stream after it starts one
// of its layers. pion runs it on a goroutine of its own, so it may take
// pub.mu.
func (pub *publisher) onTrack(remote *webrtc.TrackRemote, receiver *webrtc.RTPReceiver) {
	p := pub.p
	pub.mu.Lock()
	if pub.closed {
		pub.mu.Unlock()
		return
	}
	up, isNew := pub.upTrackLocked(remote, receiver)
	layer := up.layerByRID(remote.RID())
	if layer == nil || layer.remote.Load() != nil {
		pub.mu.Unlock()
		p.log.Info("ignoring a stream the offer did not announce", "track", up.info.SID, "rid", remote.RID())
		return
	}
	layer.remote.Store(remote)
	up.readers.Add(1)
	pub.wg.Add(2)
	pub.mu.Unlock()

	go func() { defer pub.wg.Done(); layer.readRTCP(receiver) }()
	info := up.info
	if isNew {
		p.router.publish(up)
		p.e.reports.TrackPublished(p.router.name, info)
		p.log.Info("track published", "track", info.SID, "kind", info.Kind, "mime", info.MimeType,
			"source", info.Source, "layers", len(up.layers))
	}
	go func() {
		defer pub.wg.Done()
		layer.run()
		pub.mu.Lock()
		last := up.readers.Add(-1) == 0
		if last { // under pub.mu, so that no new layer joins a track that ended
			up.ended.Store(true)
			delete(pub.ups, info.SID)
		}
		pub.mu.Unlock()
		if !last {
			return
		}
		p.router.unpublish(up)
		p.e.reports.TrackUnpublished(p.router.name, info)
		p.log.Info("track unpublished", "track", info.SID)
	}()
}

// upTrackLocked returns the up track remote belongs to, making it if this
// is the track's first stream. pub.mu must be held.
func (pub *publisher) upTrackLocked(remote *webrtc.TrackRemote, receiver *webrtc.RTPReceiver) (*UpTrack, bool) {
	p := pub.p
	for _, up := range pub.ups {
		if up.info.TrackID == remote.ID() && up.remoteKind() == remote.Kind() {
			return up, false
		}
	}
	info, ok := pub.declared[remote.ID()]
	if !ok {
		info = room.TrackInfo{SID: room.NewSID("TR_"), ParticipantSID: p.sid, TrackID: remote.ID(), Source: room.SourceUnknown}
	}
	info.Kind = remote.Kind().String()
	info.MimeType = remote.Codec().MimeType
	if len(info.Layers) < 2 {
		info.Layers = nil // one stream, whatever its rid: nothing to select
	}
	up := newUpTrack(info, remote.Codec(), remote.Kind(), receiver, pub.pc, p.e.cfg.PacketCache, p.router.pool, p.log)
	pub.ups[info.SID] = up
	return up, true
}

// SetMuted implements room.MediaSession.
func (p *Peer) SetMuted(trackSID string, muted bool) error {
	pub := &p.pub
	pub.mu.Lock()
	defer pub.mu.Unlock()
	if up, ok := pub.ups[trackSID]; ok {
		up.muted.Store(muted)
		return nil
	}
	for id, t := range pub.declared {
		if t.SID == trackSID {
			t.Muted = muted
			pub.declared[id] = t
			return nil
		}
	}
	return room.ErrUnknownTrack
}

// addCandidate adds a remote candidate to the publisher connection, which
// needs its offer first.
func (pub *publisher) addCandidate(init webrtc.ICECandidateInit) error {
	pub.mu.Lock()
	defer pub.mu.Unlock()
	if pub.closed {
		return errPeerClosed
	}
	if pub.pc == nil || pub.pc.RemoteDescription() == nil {
		return fmt.Errorf("candidate for %s before its offer", room.TargetPublisher)
	}
	if err := pub.pc.AddICECandidate(init); err != nil {
		return fmt.Errorf("candidate rejected: %w", err)
	}
	return nil
}

// close stops the publisher connection and waits for its up tracks'
// goroutines, which unpublish them.
func (pub *publisher) close() {
	pub.mu.Lock()
	pub.closed = true // no connection is created after this
	pc := pub.pc
	pub.mu.Unlock()
	if pc != nil {
		if err := pc.Close(); err != nil {
			pub.p.log.Debug("close publisher connection", "err", err)
		}
	}
	pub.wg.Wait()
}

// retellLayers sends subscribed_layers again for every track of which a
// layer is off, for a client that may have missed it.
func (pub *publisher) retellLayers() {
	pub.mu.Lock()
	ups := make([]*UpTrack, 0, len(pub.ups))
	for _, up := range pub.ups {
		ups = append(ups, up)
	}
	pub.mu.Unlock()
	for _, up := range ups {
		if states, off := up.layerStates(); off {
			pub.p.events.SubscribedLayers(up.info.SID, states)
		}
	}
}
