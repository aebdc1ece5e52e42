package sfu

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"

	"github.com/quartet-rtc/quartet/internal/room"
)

var errPeerClosed = errors.New("media session closed")

// maxTracksOfPeer limits how many tracks one participant may publish.
const maxTracksOfPeer = 16

// queued is one packet waiting in a subscriber's queue.
type queued struct {
	down *DownTrack
	pkt  *packet
}

// Peer is one participant's media session. It implements room.MediaSession.
type Peer struct {
	e      *Engine
	router *Router
	sid    string
	perms  room.Permissions
	manual bool // receives only the tracks it subscribes to; fixed at Open
	events room.MediaEvents
	log    *slog.Logger
	pub    *webrtc.PeerConnection
	sub    *webrtc.PeerConnection
	stats  peerStats

	queue chan queued // to the writer goroutine; never blocks a sender; made with sub
	done  chan struct{}
	wg    sync.WaitGroup
	once  sync.Once

	// mu guards the fields below. It is held across pion calls that build
	// descriptions (no network I/O), never while calling the router, and
	// never taken from pion callbacks that may run under pion's own locks.
	mu             sync.Mutex
	closed         bool
	started        bool
	declared       map[string]room.TrackInfo // by the client's track id
	ups            map[string]*UpTrack       // by track sid
	downs          map[string]*DownTrack     // by up track sid
	awaitingAnswer bool
	pendingOffer   bool
	restartICE     bool
	pendingCands   []webrtc.ICECandidateInit // subscriber candidates before its answer

	// candMu orders local candidates after their description; it is never
	// held across a pion call.
	candMu    sync.Mutex
	descSent  map[string]bool
	heldCands map[string][]*room.Candidate
}

func newPeer(e *Engine, r *Router, sid string, opts room.SessionOptions, events room.MediaEvents) *Peer {
	// The peer connections, the queue and its writer are made when first
	// needed: a participant that only holds its signaling connection (a
	// listener before anyone publishes, a lobby) costs a few hundred bytes
	// here instead of two pion connections.
	return &Peer{
		e: e, router: r, sid: sid, perms: opts.Permissions, manual: opts.ManualSubscribe, events: events,
		log:       e.log.With("room", r.name, "participant", sid),
		done:      make(chan struct{}),
		declared:  map[string]room.TrackInfo{},
		ups:       map[string]*UpTrack{},
		downs:     map[string]*DownTrack{},
		descSent:  map[string]bool{},
		heldCands: map[string][]*room.Candidate{},
	}
}

// publisherLocked returns the publisher connection, creating it on the
// first offer. p.mu must be held.
func (p *Peer) publisherLocked() (*webrtc.PeerConnection, error) {
	if p.pub != nil {
		return p.pub, nil
	}
	pc, err := p.e.api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, fmt.Errorf("sfu: publisher connection: %w", err)
	}
	pc.OnICECandidate(func(c *webrtc.ICECandidate) { p.sendCandidate(room.TargetPublisher, c) })
	pc.OnTrack(p.onTrack)
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		p.log.Debug("publisher connection state", "state", s.String())
	})
	p.pub = pc
	return pc, nil
}

// subscriberLocked returns the subscriber connection, creating it, its
// packet queue and its writer on the first subscription. p.mu must be held.
func (p *Peer) subscriberLocked() (*webrtc.PeerConnection, error) {
	if p.sub != nil {
		return p.sub, nil
	}
	pc, err := p.e.api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, fmt.Errorf("sfu: subscriber connection: %w", err)
	}
	pc.OnICECandidate(func(c *webrtc.ICECandidate) { p.sendCandidate(room.TargetSubscriber, c) })
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		p.log.Debug("subscriber connection state", "state", s.String())
	})
	p.sub = pc
	// Set before any down track exists: forwarders reach the queue only
	// through a down track, published after this.
	p.queue = make(chan queued, p.e.cfg.SubscriberQueue)
	p.wg.Add(1)
	go p.writeLoop()
	return pc, nil
}

// sendCandidate forwards a local candidate once the description it belongs
// to has been sent. pion calls it from its own goroutines, possibly while
// holding its locks, so it must not take p.mu.
func (p *Peer) sendCandidate(target string, c *webrtc.ICECandidate) {
	var rc *room.Candidate
	if c != nil {
		init := c.ToJSON()
		rc = &room.Candidate{Candidate: init.Candidate, SDPMid: init.SDPMid,
			SDPMLineIndex: init.SDPMLineIndex, UsernameFragment: init.UsernameFragment}
	}
	p.candMu.Lock()
	defer p.candMu.Unlock()
	if !p.descSent[target] {
		p.heldCands[target] = append(p.heldCands[target], rc)
		return
	}
	p.events.LocalCandidate(target, rc)
}

// holdCandidates makes candidates of target wait for the next description.
func (p *Peer) holdCandidates(target string) {
	p.candMu.Lock()
	p.descSent[target] = false
	p.candMu.Unlock()
}

// sendDescription sends a description with send, then the candidates that
// were held for it.
func (p *Peer) sendDescription(target string, send func()) {
	p.candMu.Lock()
	defer p.candMu.Unlock()
	send()
	p.descSent[target] = true
	for _, c := range p.heldCands[target] {
		p.events.LocalCandidate(target, c)
	}
	p.heldCands[target] = nil
}

// Start implements room.MediaSession.
func (p *Peer) Start() {
	p.mu.Lock()
	p.started = true
	if len(p.downs) > 0 { // tracks published between Open and Start
		p.negotiateLocked()
	}
	p.mu.Unlock()
	if p.autoSubscribes() {
		p.router.subscribeToAll(p)
	}
}

// autoSubscribes reports whether p receives every track of the others
// without asking.
func (p *Peer) autoSubscribes() bool { return p.perms.CanSubscribe && !p.manual }

// Publish implements room.MediaSession.
func (p *Peer) Publish(offerSDP string, metas []room.TrackMeta) error {
	if !p.perms.CanPublish {
		return room.ErrForbidden
	}
	sections, err := parseOffer(offerSDP)
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errPeerClosed
	}
	if err := p.declareLocked(sections, metas); err != nil {
		return err
	}
	pub, err := p.publisherLocked()
	if err != nil {
		return err
	}
	if err := pub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offerSDP}); err != nil {
		p.log.Info("bad publisher offer", "err", err)
		return fmt.Errorf("%w: %v", room.ErrBadSDP, err)
	}
	answer, err := pub.CreateAnswer(nil)
	if err == nil {
		p.holdCandidates(room.TargetPublisher)
		err = pub.SetLocalDescription(answer)
	}
	if err != nil {
		p.log.Info("publisher answer failed", "err", err)
		return fmt.Errorf("%w: %v", room.ErrBadSDP, err)
	}
	tracks := make([]room.TrackInfo, 0, len(sections))
	for _, s := range sections {
		if t, ok := p.declared[s.trackID]; ok {
			tracks = append(tracks, t)
		}
	}
	p.sendDescription(room.TargetPublisher, func() { p.events.PublisherAnswer(answer.SDP, tracks) })
	return nil
}

// declareLocked assigns server ids to the tracks of an offer.
func (p *Peer) declareLocked(sections []offerTrack, metas []room.TrackMeta) error {
	source := map[string]room.TrackMeta{}
	for _, m := range metas {
		source[m.TrackID] = m
	}
	for _, s := range sections {
		if _, ok := p.declared[s.trackID]; ok {
			continue
		}
		if len(p.declared) >= maxTracksOfPeer {
			return room.ErrTooMany
		}
		m := source[s.trackID]
		if !validSource(m.Source) {
			m.Source = room.SourceUnknown
		}
		p.declared[s.trackID] = room.TrackInfo{SID: room.NewSID("TR_"), ParticipantSID: p.sid,
			TrackID: s.trackID, Kind: s.kind, Source: m.Source, Muted: m.Muted}
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

// onTrack runs when a publisher's track starts: it becomes an UpTrack.
func (p *Peer) onTrack(remote *webrtc.TrackRemote, receiver *webrtc.RTPReceiver) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	info, ok := p.declared[remote.ID()]
	if !ok {
		info = room.TrackInfo{SID: room.NewSID("TR_"), ParticipantSID: p.sid, TrackID: remote.ID(), Source: room.SourceUnknown}
	}
	info.Kind = remote.Kind().String()
	info.MimeType = remote.Codec().MimeType
	up := newUpTrack(info, remote, receiver, p.pub, p.e.cfg.PacketCache, p.router.pool, p.log)
	p.ups[info.SID] = up
	p.wg.Add(2)
	p.mu.Unlock()

	go p.drainRTCP(receiver)
	p.router.publish(up)
	p.events.TrackPublished(info)
	p.log.Info("track published", "track", info.SID, "kind", info.Kind, "mime", info.MimeType, "source", info.Source)
	go func() {
		defer p.wg.Done()
		up.run()
		up.ended.Store(true)
		p.router.unpublish(up)
		p.mu.Lock()
		delete(p.ups, info.SID)
		closed := p.closed
		p.mu.Unlock()
		if !closed {
			p.events.TrackUnpublished(info)
		}
		p.log.Info("track unpublished", "track", info.SID)
	}()
}

// drainRTCP reads the publisher's RTCP so interceptors see sender reports.
func (p *Peer) drainRTCP(r *webrtc.RTPReceiver) {
	defer p.wg.Done()
	for {
		if _, _, err := r.ReadRTCP(); err != nil {
			return
		}
	}
}

// SetMuted implements room.MediaSession.
func (p *Peer) SetMuted(trackSID string, muted bool) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if up, ok := p.ups[trackSID]; ok {
		up.muted.Store(muted)
		return nil
	}
	for id, t := range p.declared {
		if t.SID == trackSID {
			t.Muted = muted
			p.declared[id] = t
			return nil
		}
	}
	return room.ErrUnknownTrack
}

// subscribe adds down tracks of ups and renegotiates once for all of them.
func (p *Peer) subscribe(ups ...*UpTrack) {
	downs := make([]*DownTrack, 0, len(ups))
	for _, up := range ups {
		d, err := newDownTrack(up, p)
		if err != nil {
			p.log.Error("create down track", "track", up.info.SID, "err", err)
			continue
		}
		downs = append(downs, d)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	added := false
	for _, d := range downs {
		added = p.addDownLocked(d) || added
	}
	if added {
		p.negotiateLocked()
	}
}

// addDownLocked adds d to the subscriber connection, unless its up track is
// already received or ending. p.mu must be held.
func (p *Peer) addDownLocked(d *DownTrack) bool {
	up := d.up
	// An ended track is being unpublished; a down track added now would
	// never be removed.
	if p.closed || up.ended.Load() || p.downs[up.info.SID] != nil {
		return false
	}
	sub, err := p.subscriberLocked()
	if err != nil {
		p.log.Error("subscriber connection", "err", err)
		return false
	}
	tr, err := p.sendTransceiverLocked(sub, d)
	if err != nil {
		p.log.Error("add down track", "track", up.info.SID, "err", err)
		return false
	}
	if err := tr.SetCodecPreferences([]webrtc.RTPCodecParameters{up.codec}); err != nil {
		p.log.Debug("codec preferences", "err", err)
	}
	d.sender = tr.Sender()
	p.downs[up.info.SID] = d
	p.wg.Add(1)
	go p.readSubscriberRTCP(d)
	// Added under p.mu, so unsubscribe, which takes it too, always sees it.
	up.addDown(d)
	return true
}

// sendTransceiverLocked sends d on a transceiver of sub: one whose track was
// removed, if there is one of d's kind, else a new one. Without reuse every
// unsubscribe and subscribe again would add a media section for good, and a
// client toggling a track would grow its offers without bound. p.mu must be
// held.
func (p *Peer) sendTransceiverLocked(sub *webrtc.PeerConnection, d *DownTrack) (*webrtc.RTPTransceiver, error) {
	kind := d.local.Kind()
	for _, tr := range sub.GetTransceivers() {
		if tr.Kind() != kind || tr.Sender() != nil || tr.Direction() != webrtc.RTPTransceiverDirectionInactive {
			continue
		}
		sender, err := p.e.api.NewRTPSender(d.local, sub.SCTP().Transport())
		if err != nil {
			return nil, err
		}
		if err := tr.SetSender(sender, d.local); err != nil { // inactive becomes sendonly
			_ = sender.Stop()
			return nil, err
		}
		return tr, nil
	}
	return sub.AddTransceiverFromTrack(d.local, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
}

// unsubscribe removes the down tracks of ups and renegotiates once.
func (p *Peer) unsubscribe(ups ...*UpTrack) {
	p.mu.Lock()
	defer p.mu.Unlock()
	removed := false
	for _, up := range ups {
		d, ok := p.downs[up.info.SID]
		if !ok {
			continue
		}
		delete(p.downs, up.info.SID)
		d.closed.Store(true)
		up.removeDown(d)
		removed = true
		if p.closed {
			continue
		}
		if err := p.sub.RemoveTrack(d.sender); err != nil {
			p.log.Debug("remove down track", "err", err)
		}
	}
	if removed {
		p.negotiateLocked()
	}
}

// readSubscriberRTCP answers a subscriber's NACKs and keyframe requests.
func (p *Peer) readSubscriberRTCP(d *DownTrack) {
	defer p.wg.Done()
	var buf [maxNACKSeqs]uint16
	for {
		pkts, _, err := d.sender.ReadRTCP()
		if err != nil {
			return
		}
		for _, pkt := range pkts {
			switch pkt := pkt.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				d.up.RequestKeyframe()
			case *rtcp.TransportLayerNack:
				p.stats.nacks.Add(1)
				d.retransmit(nackedSeqs(pkt, buf[:0]))
			}
		}
	}
}

// maxNACKSeqs bounds the retransmissions one NACK message can ask for.
const maxNACKSeqs = 64

// nackedSeqs lists the distinct sequence numbers a NACK asks for, at most
// maxNACKSeqs of them, appended to seqs.
func nackedSeqs(nack *rtcp.TransportLayerNack, seqs []uint16) []uint16 {
	for _, pair := range nack.Nacks {
		pair.Range(func(s uint16) bool {
			if len(seqs) == maxNACKSeqs {
				return false // Range calls once more before checking; this guards it
			}
			if !slices.Contains(seqs, s) {
				seqs = append(seqs, s)
			}
			return true
		})
	}
	return seqs
}
