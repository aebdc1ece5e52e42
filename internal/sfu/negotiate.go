package sfu

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/pion/webrtc/v4"

	"github.com/quartet-rtc/quartet/internal/room"
)

// negotiateLocked sends a new subscriber offer, or remembers to send one
// when the client answers the offer in flight, or when the connection
// first comes up (see settlingLocked). sub.mu must be held.
func (sub *subscriber) negotiateLocked() {
	p := sub.p
	if sub.closed || !sub.started || sub.pc == nil {
		return
	}
	if sub.awaitingAnswer || sub.answering || sub.settlingLocked() {
		sub.pendingOffer = true
		return
	}
	sub.pendingOffer = false // this offer carries every change so far
	// Held before CreateOffer: with ICERestart it restarts ICE and gathers
	// at once, and a candidate with the new credentials sent before the
	// offer that carries them is dropped by the client.
	p.cands.hold(room.TargetSubscriber)
	offer, err := sub.pc.CreateOffer(&webrtc.OfferOptions{ICERestart: sub.restartICE})
	sub.restartICE = false // a failed restart must not make every later offer fail
	if err == nil {
		err = sub.pc.SetLocalDescription(offer)
	}
	if errors.Is(err, webrtc.ErrConnectionClosed) {
		// The client closed its side first, as at every teardown.
		p.log.Debug("subscriber offer after the connection closed", "err", err)
		return
	}
	if err != nil {
		p.log.Error("subscriber offer failed", "err", err)
		return
	}
	sub.awaitingAnswer = true
	tracks := sub.trackMapLocked()
	p.cands.sendDescription(room.TargetSubscriber, func() { p.events.SubscriberOffer(offer.SDP, tracks) })
}

// settlingLocked reports whether the connection's first negotiation is
// applied but the connection has not come up yet. pion starts ICE on a
// goroutine of its own after that negotiation, and an offer before it ran
// races the start on both sides: the client's pion, its ICE agent not yet
// given our credentials, takes the offer for an ICE restart and answers
// with new credentials of its own; ours, applying that answer before its
// agent started, starts the agent afterwards with the first answer's
// credentials, and then discards every check from the client ("username
// mismatch"): the connection never comes up, and the subscriber gets
// nothing (the fan-out subscriber without media, issue 9). So changes
// wait for the connection, and go in one offer. An ICE restart does not
// wait: a client asks for one when its connection is stuck.
func (sub *subscriber) settlingLocked() bool {
	return !sub.connected && !sub.restartICE && sub.pc.RemoteDescription() != nil
}

// onConnected runs when the subscriber connection has come up, on a
// goroutine of pion's own: it sends the offer that waited for it.
func (sub *subscriber) onConnected() {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if sub.connected {
		return
	}
	sub.connected = true
	if sub.pendingOffer {
		sub.negotiateLocked()
	}
}

// trackMapLocked maps each transceiver mid of the subscriber connection to
// the track it carries, so the client knows whose track arrives where.
func (sub *subscriber) trackMapLocked() map[string]room.TrackInfo {
	out := map[string]room.TrackInfo{}
	for _, tr := range sub.pc.GetTransceivers() {
		sender := tr.Sender()
		if sender == nil || sender.Track() == nil || tr.Mid() == "" {
			continue
		}
		if s, ok := sub.downs[sender.Track().ID()]; ok {
			info := s.info()
			info.TrackID = ""
			out[tr.Mid()] = info
		}
	}
	return out
}

// SubscriberAnswer implements room.MediaSession.
func (p *Peer) SubscriberAnswer(sdp string) error {
	sub := &p.sub
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if sub.closed {
		return errPeerClosed
	}
	if !sub.awaitingAnswer {
		return room.ErrNoOffer
	}
	err := sub.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: sdp})
	if err != nil {
		// Go back to stable so the next change can offer again.
		if rbErr := sub.pc.SetLocalDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeRollback}); rbErr != nil {
			p.log.Warn("subscriber rollback failed", "err", rbErr)
		}
		sub.awaitingAnswer = false
		p.log.Info("bad subscriber answer", "err", err)
		return fmt.Errorf("%w: %v", room.ErrBadSDP, err)
	}
	sub.awaitingAnswer = false
	sub.applyPendingCandidatesLocked()
	if sub.pendingOffer {
		sub.pendingOffer = false
		sub.negotiateLocked()
	}
	return nil
}

// AcceptSubscriberOffer implements room.MediaSession. It waits for
// gathering without holding subscriber.mu; meanwhile the exchange counts as
// in flight, so a change to the subscriptions waits for it (pendingOffer).
func (p *Peer) AcceptSubscriberOffer(ctx context.Context, offerSDP string, trackSIDs []string) (room.Answer, error) {
	ups, err := p.subscribable(trackSIDs)
	if err != nil {
		return room.Answer{}, err
	}
	sub := &p.sub
	pc, gathered, err := sub.answerOffer(offerSDP, ups)
	if err != nil {
		return room.Answer{}, err
	}
	sdp, err := gatheredDescription(ctx, pc, gathered)
	sub.mu.Lock()
	defer sub.mu.Unlock()
	sub.answering = false
	if err != nil {
		return room.Answer{}, err
	}
	p.cands.inDescription(room.TargetSubscriber)
	answer := room.Answer{SDP: sdp, Mids: sub.trackMapLocked()}
	if sub.pendingOffer {
		sub.pendingOffer = false
		sub.negotiateLocked()
	}
	return answer, nil
}

// answerOffer applies a client's offer to receive, puts ups on its media
// sections and sets the answer. On failure the offer is rolled back and
// the subscriptions it added are removed, so the connection can negotiate
// again.
func (sub *subscriber) answerOffer(offerSDP string, ups []*UpTrack) (*webrtc.PeerConnection, <-chan struct{}, error) {
	p := sub.p
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if sub.closed {
		return nil, nil, errPeerClosed
	}
	if sub.awaitingAnswer || sub.answering {
		return nil, nil, fmt.Errorf("%w: an offer is already being answered", room.ErrBadSDP)
	}
	pc, err := sub.connLocked()
	if err != nil {
		return nil, nil, err
	}
	// Held before SetRemoteDescription: an offer that restarts ICE makes
	// pion gather at once.
	p.cands.hold(room.TargetSubscriber)
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offerSDP}); err != nil {
		p.log.Info("bad subscriber offer", "err", err)
		return nil, nil, fmt.Errorf("%w: %v", room.ErrBadSDP, err)
	}
	var added []*UpTrack
	for _, up := range ups {
		// The client's sections: each receives the next track of its kind.
		tr := sub.freeTransceiverLocked(pc, up.remoteKind())
		if tr == nil {
			p.log.Debug("no offered section left for track", "track", up.info.SID, "kind", up.info.Kind)
			continue
		}
		if sub.addLocked(up, tr) {
			added = append(added, up)
		}
	}
	answer, err := pc.CreateAnswer(nil)
	var gathered <-chan struct{}
	if err == nil {
		gathered = webrtc.GatheringCompletePromise(pc)
		err = pc.SetLocalDescription(answer)
	}
	if err != nil {
		p.log.Info("subscriber answer failed", "err", err)
		sub.removeLocked(added)
		if rbErr := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeRollback}); rbErr != nil {
			p.log.Warn("subscriber offer rollback failed", "err", rbErr)
		}
		return nil, nil, fmt.Errorf("%w: %v", room.ErrBadSDP, err)
	}
	sub.applyPendingCandidatesLocked()
	sub.answering = true
	return pc, gathered, nil
}

// subscribable looks tracks up for a subscription: all must exist and
// none may be the participant's own.
func (p *Peer) subscribable(trackSIDs []string) ([]*UpTrack, error) {
	if !p.perms.CanSubscribe {
		return nil, room.ErrNoSubscribe
	}
	ups, unknown := p.router.upTracks(trackSIDs)
	if len(unknown) > 0 {
		return nil, fmt.Errorf("%w: %s", room.ErrUnknownTrack, strings.Join(unknown, ", "))
	}
	for _, up := range ups {
		if up.info.ParticipantSID == p.sid {
			return nil, fmt.Errorf("%w: %s", room.ErrOwnTrack, up.info.SID)
		}
	}
	return ups, nil
}

// AddCandidate implements room.MediaSession.
func (p *Peer) AddCandidate(target string, c *room.Candidate) error {
	init := webrtc.ICECandidateInit{}
	if c != nil {
		init = webrtc.ICECandidateInit{Candidate: c.Candidate, SDPMid: c.SDPMid,
			SDPMLineIndex: c.SDPMLineIndex, UsernameFragment: c.UsernameFragment}
	}
	switch target {
	case room.TargetPublisher:
		return p.pub.addCandidate(init)
	case room.TargetSubscriber:
		return p.sub.addCandidate(init)
	default:
		return fmt.Errorf("unknown target %q", target)
	}
}

// RestartICE implements room.MediaSession.
func (p *Peer) RestartICE() error { return p.sub.restart(false) }

// Resync implements room.MediaSession.
//
// What the client was told while it was away is lost, so the streams paused
// for it and the layers its tracks need are told again.
func (p *Peer) Resync() error {
	err := p.sub.restart(true)
	p.sub.retellPaused()
	p.pub.retellLayers()
	return err
}

// restart makes a subscriber offer with fresh ICE credentials. With
// replace, an offer still waiting for its answer is rolled back first: the
// client may never have received it.
func (sub *subscriber) restart(replace bool) error {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if sub.closed {
		return errPeerClosed
	}
	if sub.pc == nil || sub.pc.LocalDescription() == nil {
		return nil // nothing was ever offered; the first offer has fresh credentials
	}
	sub.restartICE = true
	if replace && sub.awaitingAnswer {
		if err := sub.pc.SetLocalDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeRollback}); err != nil {
			return fmt.Errorf("roll back the unanswered offer: %w", err)
		}
		sub.awaitingAnswer, sub.pendingOffer, sub.pendingCands = false, false, nil
	}
	sub.negotiateLocked()
	return nil
}
