package sfu

import (
	"errors"
	"fmt"

	"github.com/pion/webrtc/v4"

	"github.com/quartet-rtc/quartet/internal/room"
)

// negotiateLocked sends a new subscriber offer, or remembers to send one
// when the client answers the offer in flight. p.mu must be held.
func (p *Peer) negotiateLocked() {
	if p.closed || !p.started || p.sub == nil {
		return
	}
	if p.awaitingAnswer {
		p.pendingOffer = true
		return
	}
	offer, err := p.sub.CreateOffer(&webrtc.OfferOptions{ICERestart: p.restartICE})
	p.restartICE = false // a failed restart must not make every later offer fail
	if err == nil {
		p.holdCandidates(room.TargetSubscriber)
		err = p.sub.SetLocalDescription(offer)
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
	p.awaitingAnswer = true
	tracks := p.trackMapLocked()
	p.sendDescription(room.TargetSubscriber, func() { p.events.SubscriberOffer(offer.SDP, tracks) })
}

// trackMapLocked maps each transceiver mid of the subscriber connection to
// the track it carries, so the client knows whose track arrives where.
func (p *Peer) trackMapLocked() map[string]room.TrackInfo {
	out := map[string]room.TrackInfo{}
	for _, tr := range p.sub.GetTransceivers() {
		sender := tr.Sender()
		if sender == nil || sender.Track() == nil || tr.Mid() == "" {
			continue
		}
		if d, ok := p.downs[sender.Track().ID()]; ok {
			info := d.info()
			info.TrackID = ""
			out[tr.Mid()] = info
		}
	}
	return out
}

// SubscriberAnswer implements room.MediaSession.
func (p *Peer) SubscriberAnswer(sdp string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errPeerClosed
	}
	if !p.awaitingAnswer {
		return room.ErrNoOffer
	}
	err := p.sub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: sdp})
	if err != nil {
		// Go back to stable so the next change can offer again.
		if rbErr := p.sub.SetLocalDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeRollback}); rbErr != nil {
			p.log.Warn("subscriber rollback failed", "err", rbErr)
		}
		p.awaitingAnswer = false
		p.log.Info("bad subscriber answer", "err", err)
		return fmt.Errorf("%w: %v", room.ErrBadSDP, err)
	}
	p.awaitingAnswer = false
	for _, c := range p.pendingCands {
		if err := p.sub.AddICECandidate(c); err != nil {
			p.log.Debug("queued candidate rejected", "err", err)
		}
	}
	p.pendingCands = nil
	if p.pendingOffer {
		p.pendingOffer = false
		p.negotiateLocked()
	}
	return nil
}

// AddCandidate implements room.MediaSession.
func (p *Peer) AddCandidate(target string, c *room.Candidate) error {
	init := webrtc.ICECandidateInit{}
	if c != nil {
		init = webrtc.ICECandidateInit{Candidate: c.Candidate, SDPMid: c.SDPMid,
			SDPMLineIndex: c.SDPMLineIndex, UsernameFragment: c.UsernameFragment}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errPeerClosed
	}
	var pc *webrtc.PeerConnection
	switch target {
	case room.TargetPublisher:
		pc = p.pub
	case room.TargetSubscriber:
		pc = p.sub
		if pc == nil || pc.RemoteDescription() == nil {
			if len(p.pendingCands) < 64 {
				p.pendingCands = append(p.pendingCands, init)
			}
			return nil
		}
	default:
		return fmt.Errorf("unknown target %q", target)
	}
	if pc == nil || pc.RemoteDescription() == nil {
		return fmt.Errorf("candidate for %s before its offer", target)
	}
	if err := pc.AddICECandidate(init); err != nil {
		return fmt.Errorf("candidate rejected: %w", err)
	}
	return nil
}

// RestartICE implements room.MediaSession.
func (p *Peer) RestartICE() error { return p.restart(false) }

// Resync implements room.MediaSession.
func (p *Peer) Resync() error { return p.restart(true) }

// restart makes a subscriber offer with fresh ICE credentials. With
// replace, an offer still waiting for its answer is rolled back first: the
// client may never have received it.
func (p *Peer) restart(replace bool) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errPeerClosed
	}
	if p.sub == nil || p.sub.LocalDescription() == nil {
		return nil // nothing was ever offered; the first offer has fresh credentials
	}
	p.restartICE = true
	if replace && p.awaitingAnswer {
		if err := p.sub.SetLocalDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeRollback}); err != nil {
			return fmt.Errorf("roll back the unanswered offer: %w", err)
		}
		p.awaitingAnswer, p.pendingOffer, p.pendingCands = false, false, nil
	}
	p.negotiateLocked()
	return nil
}

// enqueue hands a packet to the writer goroutine; false means the queue is
// full and the caller keeps its reference.
func (p *Peer) enqueue(d *DownTrack, pkt *packet) bool {
	select {
	case p.queue <- queued{down: d, pkt: pkt}:
		return true
	default:
		return false
	}
}

// writeLoop writes queued packets to the subscriber connection.
func (p *Peer) writeLoop() {
	defer p.wg.Done()
	for {
		select {
		case <-p.done:
			p.drainQueue()
			return
		case q := <-p.queue:
			p.write(q)
			// Packets that were already waiting are taken with a plain
			// receive: a select locks both channels, and this goroutine is
			// the queue's only reader, so these receives never block.
			for range len(p.queue) {
				p.write(<-p.queue)
			}
		}
	}
}

// write sends one queued packet and releases it.
func (p *Peer) write(q queued) {
	if !q.down.closed.Load() {
		if err := q.down.local.WriteRTP(&q.pkt.hdr); err == nil {
			p.stats.packets.Add(1)
			p.stats.bytes.Add(uint64(len(q.pkt.hdr.Payload) + 12))
		}
	}
	q.pkt.release()
}

// Close implements room.MediaSession. It returns once every goroutine of the
// session has ended.
func (p *Peer) Close() {
	p.once.Do(func() {
		p.mu.Lock()
		p.closed = true // no connection is created after this
		pub, sub := p.pub, p.sub
		p.mu.Unlock()
		p.e.removePeer(p.router, p)
		if pub != nil {
			if err := pub.Close(); err != nil {
				p.log.Debug("close publisher connection", "err", err)
			}
		}
		if sub != nil {
			if err := sub.Close(); err != nil {
				p.log.Debug("close subscriber connection", "err", err)
			}
		}
		close(p.done)
		p.wg.Wait()
		p.drainQueue() // what forwarders queued after the writer stopped
		p.router.retire(p)
		p.log.Debug("media session closed")
	})
}

// drainQueue releases every queued packet without sending it.
func (p *Peer) drainQueue() {
	for {
		select {
		case q := <-p.queue:
			q.pkt.release()
		default:
			return
		}
	}
}
