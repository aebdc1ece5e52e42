package sfu

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/pion/webrtc/v4"

	"github.com/quartet-rtc/quartet/internal/bwe"
	"github.com/quartet-rtc/quartet/internal/room"
)

// maxPendingCandidates bounds the remote subscriber candidates kept until
// the first answer.
const maxPendingCandidates = 64

// subscriber is the half of a Peer that sends the participant the others'
// tracks: its subscriber connection (the server offers, or answers a
// client's offer to receive), its subscriptions and their writer.
type subscriber struct {
	p  *Peer
	wg sync.WaitGroup // the subscriptions' RTCP readers

	// mu guards the fields below. It is held across pion calls that build
	// descriptions (no network I/O), never while calling the router, and
	// never taken from pion callbacks that may run under pion's own locks.
	mu             sync.Mutex
	closed         bool
	started        bool
	pc             *webrtc.PeerConnection        // made on the first subscription
	out            *writer                       // made with pc
	alloc          *allocator                    // made with pc
	settings       map[string]room.TrackSettings // by track sid, for tracks received or to come
	downs          map[string]*subscription      // by up track sid
	awaitingAnswer bool                          // a server offer waits for the client's answer
	answering      bool                          // a client offer's answer is gathering candidates
	pendingOffer   bool
	restartICE     bool
	connected      bool                      // the connection has come up once
	pendingCands   []webrtc.ICECandidateInit // until the answer to the offer in flight
}

func newSubscriber(p *Peer) subscriber {
	return subscriber{p: p, downs: map[string]*subscription{}, settings: map[string]room.TrackSettings{}}
}

// connLocked returns the subscriber connection, creating it, its writer
// and the writer's goroutine on the first subscription. sub.mu must be held.
func (sub *subscriber) connLocked() (*webrtc.PeerConnection, error) {
	if sub.pc != nil {
		return sub.pc, nil
	}
	p := sub.p
	est := bwe.New(bwe.Config{})
	api, err := p.e.subscriberAPI(est)
	if err != nil {
		return nil, fmt.Errorf("sfu: subscriber connection: %w", err)
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, fmt.Errorf("sfu: subscriber connection: %w", err)
	}
	pc.OnICECandidate(func(c *webrtc.ICECandidate) { p.cands.local(room.TargetSubscriber, c) })
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		p.log.Debug("subscriber connection state", "state", s.String())
		if s == webrtc.PeerConnectionStateConnected {
			sub.onConnected()
		}
	})
	sub.pc = pc
	// Made before any subscription exists: forwarders reach the writer
	// only through a down track, added to its up track after this.
	sub.out = newWriter(p.e.cfg.SubscriberQueue, &p.stats)
	sub.out.start(nil)
	sub.alloc = newAllocator(sub, est)
	return pc, nil
}

// start lets negotiation begin; tracks subscribed between Open and Start
// are offered now.
func (sub *subscriber) start() {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	sub.started = true
	if len(sub.downs) > 0 {
		sub.negotiateLocked()
	}
}

// subscribe adds subscriptions to ups and renegotiates once for all.
func (sub *subscriber) subscribe(ups ...*UpTrack) {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	added := false
	for _, up := range ups {
		added = sub.addLocked(up, nil) || added
	}
	if added {
		sub.negotiateLocked()
	}
}

// addLocked subscribes to up, unless it is already received or ending, on
// tr or, if tr is nil, on a free or new transceiver. sub.mu must be held.
func (sub *subscriber) addLocked(up *UpTrack, tr *webrtc.RTPTransceiver) bool {
	p := sub.p
	// An ended track is being unpublished; a subscription added now would
	// never be removed.
	if sub.closed || up.ended.Load() || sub.downs[up.info.SID] != nil {
		return false
	}
	pc, err := sub.connLocked()
	if err != nil {
		p.log.Error("subscriber connection", "err", err)
		return false
	}
	if pc.ConnectionState() == webrtc.PeerConnectionStateClosed {
		return false // the client closed it; a resume or a leave follows
	}
	s, err := newSubscription(up, sub.out)
	if err != nil {
		p.log.Error("create down track", "track", up.info.SID, "err", err)
		return false
	}
	if tr == nil {
		tr = sub.freeTransceiverLocked(pc, s.local.Kind())
	}
	if tr, err = sub.sendOnLocked(pc, tr, s); err != nil {
		p.log.Error("add down track", "track", up.info.SID, "err", err)
		return false
	}
	if err := tr.SetCodecPreferences([]webrtc.RTPCodecParameters{up.codec}); err != nil {
		p.log.Debug("codec preferences", "err", err)
	}
	s.sender = tr.Sender()
	s.alloc.want.Store(int32(wantedLayer(up, sub.settings[up.info.SID])))
	sub.downs[up.info.SID] = s
	if up.video {
		sub.alloc.soon()
	}
	sub.wg.Add(1)
	go func() { defer sub.wg.Done(); s.readRTCP(&p.stats) }()
	// Added under sub.mu, so unsubscribe, which takes it too, always sees it.
	up.addDown(s.DownTrack)
	return true
}

// freeTransceiverLocked returns a transceiver of kind that sends nothing:
// one whose track was removed, or one a client offered to receive on. Without
// reuse every unsubscribe and subscribe again would add a media section for
// good, and a client toggling a track would grow its offers without bound.
func (sub *subscriber) freeTransceiverLocked(pc *webrtc.PeerConnection, kind webrtc.RTPCodecType) *webrtc.RTPTransceiver {
	for _, tr := range pc.GetTransceivers() {
		dir := tr.Direction()
		free := dir == webrtc.RTPTransceiverDirectionInactive || dir == webrtc.RTPTransceiverDirectionSendonly
		if tr.Kind() == kind && tr.Sender() == nil && free {
			return tr
		}
	}
	return nil
}

// sendOnLocked sends s on a new transceiver if tr is nil, else on a free
// one, tr or another pion finds first (the same, for a client's offer).
// pion's AddTrack is how a free transceiver is reused: a sender made
// apart from the connection would skip its interceptors (sender reports,
// transport-cc). A transceiver whose removal is not negotiated yet is not
// free for pion; AddTrack then adds a new one.
func (sub *subscriber) sendOnLocked(pc *webrtc.PeerConnection, tr *webrtc.RTPTransceiver, s *subscription) (*webrtc.RTPTransceiver, error) {
	if tr == nil {
		return pc.AddTransceiverFromTrack(s.local, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
	}
	sender, err := pc.AddTrack(s.local)
	if err != nil {
		return nil, err
	}
	for _, t := range pc.GetTransceivers() {
		if t.Sender() == sender {
			return t, nil
		}
	}
	return nil, fmt.Errorf("sfu: no transceiver holds the new sender")
}

// unsubscribe removes the subscriptions to ups and renegotiates once.
func (sub *subscriber) unsubscribe(ups ...*UpTrack) {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if sub.removeLocked(ups) {
		sub.negotiateLocked()
	}
}

// removeLocked removes the subscriptions to ups, reporting whether there
// was any. sub.mu must be held.
func (sub *subscriber) removeLocked(ups []*UpTrack) bool {
	removed := false
	for _, up := range ups {
		s, ok := sub.downs[up.info.SID]
		if !ok {
			continue
		}
		delete(sub.downs, up.info.SID)
		if up.ended.Load() {
			delete(sub.settings, up.info.SID)
		}
		s.closed.Store(true) // before the count: the allocator checks it after pausing
		if s.alloc.paused.Swap(false) {
			sub.p.e.stats.paused.Add(-1)
		}
		up.removeDown(s.DownTrack)
		removed = true
		if sub.closed {
			_ = s.sender.Stop() // close no longer sees it in downs
			continue
		}
		if err := sub.pc.RemoveTrack(s.sender); err != nil {
			// The client closed the connection first (pion closes its side
			// then): the sender is stopped here so that its RTCP reader ends.
			sub.p.log.Debug("remove down track", "err", err)
			_ = s.sender.Stop()
		}
	}
	return removed
}

// detachAll takes every subscription off its up track, for a peer that is
// closing: forwarders stop reaching it.
func (sub *subscriber) detachAll() {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	for _, s := range sub.downs {
		s.closed.Store(true)
		s.up.removeDown(s.DownTrack)
	}
}

// count is how many tracks the subscriber receives.
func (sub *subscriber) count() int {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	return len(sub.downs)
}

// addCandidate adds a remote candidate, queueing it until the connection
// has its first answer, and while an offer waits for its answer: a client
// may send the candidates of its answer before the answer, and after an
// ICE restart those carry the new credentials, which pion checks against
// the remote description in place and drops ("doesn't match the current
// ufrags"). Applied after the answer, they match.
func (sub *subscriber) addCandidate(init webrtc.ICECandidateInit) error {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if sub.closed {
		return errPeerClosed
	}
	if sub.pc == nil || sub.pc.RemoteDescription() == nil || sub.awaitingAnswer {
		if len(sub.pendingCands) < maxPendingCandidates {
			sub.pendingCands = append(sub.pendingCands, init)
		}
		return nil
	}
	if err := sub.pc.AddICECandidate(init); err != nil {
		return fmt.Errorf("candidate rejected: %w", err)
	}
	return nil
}

// applyPendingCandidatesLocked adds the candidates queued before the
// answer. sub.mu must be held.
func (sub *subscriber) applyPendingCandidatesLocked() {
	for _, c := range sub.pendingCands {
		if err := sub.pc.AddICECandidate(c); err != nil {
			sub.p.log.Debug("queued candidate rejected", "err", err)
		}
	}
	sub.pendingCands = nil
}

// close stops the subscriber connection and its writer and waits for
// their goroutines; queued packets are released.
func (sub *subscriber) close() {
	sub.mu.Lock()
	sub.closed = true // no connection is created after this
	pc, out, alloc := sub.pc, sub.out, sub.alloc
	for _, s := range sub.downs {
		s.closed.Store(true) // as in removeLocked
		if s.alloc.paused.Swap(false) {
			sub.p.e.stats.paused.Add(-1)
		}
	}
	senders := make([]*webrtc.RTPSender, 0, len(sub.downs))
	for _, s := range sub.downs {
		senders = append(senders, s.sender)
	}
	sub.mu.Unlock()
	if pc != nil {
		if err := pc.Close(); err != nil {
			sub.p.log.Debug("close subscriber connection", "err", err)
		}
	}
	// pion stops the senders of its transceivers when it closes, but when
	// the client closed the connection first pion closed it already, and a
	// sender set on a transceiver after that would never be stopped: its
	// RTCP reader would wait forever (found by TestConcurrentRoomChurn).
	for _, s := range senders {
		_ = s.Stop()
	}
	sub.wg.Wait()
	if alloc != nil {
		alloc.stop()
	}
	if out != nil {
		out.stop()
		out.wait()
		out.drain() // what forwarders queued after the writer stopped
	}
}

// videoDowns lists the video subscriptions with their settings, for the
// allocator; false once the subscriber closed.
func (sub *subscriber) videoDowns() ([]allocDown, bool) {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if sub.closed {
		return nil, false
	}
	out := make([]allocDown, 0, len(sub.downs))
	for sid, s := range sub.downs {
		if s.up.video {
			out = append(out, allocDown{subscription: s, settings: sub.settings[sid]})
		}
	}
	// In a stable order, so that a plan logged reads the same when it is.
	slices.SortFunc(out, func(a, b allocDown) int { return strings.Compare(a.up.info.SID, b.up.info.SID) })
	return out, true
}

// audioRate is what the audio the subscriber receives costs, bits per
// second.
func (sub *subscriber) audioRate() int {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	total := 0
	for _, s := range sub.downs {
		if !s.up.video {
			total += max(s.up.rate(0, -1), audioReserve/2)
		}
	}
	return total
}

// wantedLayer is the highest layer of up a subscriber with settings wants,
// -1 if none.
func wantedLayer(up *UpTrack, settings room.TrackSettings) int {
	if settings.Disabled {
		return -1
	}
	return preferredLayer(up.info.Layers, settings)
}

// maxSettings bounds the settings a subscriber keeps for tracks it does
// not receive yet.
const maxSettings = 256

// SetTrackSettings implements room.MediaSession.
func (p *Peer) SetTrackSettings(trackSIDs []string, settings room.TrackSettings) error {
	ups, unknown := p.router.upTracks(trackSIDs)
	if len(unknown) > 0 {
		return fmt.Errorf("%w: %s", room.ErrUnknownTrack, strings.Join(unknown, ", "))
	}
	for _, up := range ups {
		if up.info.ParticipantSID == p.sid {
			return room.ErrOwnTrack
		}
	}
	sub := &p.sub
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if sub.closed {
		return errPeerClosed
	}
	for _, up := range ups {
		if _, ok := sub.settings[up.info.SID]; !ok && len(sub.settings) >= maxSettings {
			return room.ErrTooMany
		}
		sub.settings[up.info.SID] = settings
		if s, ok := sub.downs[up.info.SID]; ok {
			s.alloc.want.Store(int32(wantedLayer(up, settings)))
		}
	}
	if sub.alloc != nil {
		sub.alloc.soon()
	}
	return nil
}

// retellPaused sends stream_state again for every track paused for
// bandwidth, for a client that may have missed it.
func (sub *subscriber) retellPaused() {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	for sid, s := range sub.downs {
		if s.alloc.paused.Load() {
			sub.p.events.StreamState(sid, room.StreamPaused, room.ReasonBandwidth)
		}
	}
}
