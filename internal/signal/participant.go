package signal

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quartet-rtc/quartet/internal/room"
)

// participantState is where a participant is in its life.
type participantState int

const (
	attached participantState = iota // a connection serves it
	parked                           // its connection dropped; waiting for a resume
	done                             // it left the room; its media is closed
)

// participant is a joined member of a room. It outlives a dropped
// connection for the resume timeout, keeping its room membership and media
// session, so that a client can resume without anyone noticing. It
// implements room.Participant and room.MediaEvents.
//
// Lock order: participant.mu is taken alone; it is never held while
// sending, or while calling the room or the media session.
type participant struct {
	h        *Handler
	sid      string
	identity string
	roomName string
	info     room.ParticipantInfo // as the participant itself sees it
	log      *slog.Logger
	member   atomic.Pointer[room.Member] // set once the room is joined

	// mu guards the fields below; it is never held while sending or calling
	// the room or the media session.
	mu          sync.Mutex
	state       participantState
	conn        *session // nil unless attached
	resumeToken string
	parkTimer   *time.Timer
	endReason   string // why the server ended it (Close)
	// holding is set from joining the room (or resuming) until the joined
	// message is queued, which must be the connection's first message;
	// events meanwhile wait in held.
	holding bool
	held    []any
}

var (
	_ room.Participant = (*participant)(nil)
	_ room.MediaEvents = (*participant)(nil)
	_ Rooms            = (*room.Manager)(nil)
)

func newResumeToken() string {
	var b [24]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// send queues a message on the current connection; while parked it is
// lost, and a resumed client gets the room's state in its new joined.
func (p *participant) send(v any) {
	p.mu.Lock()
	if p.holding {
		p.held = append(p.held, v)
		p.mu.Unlock()
		return
	}
	c := p.conn
	p.mu.Unlock()
	if c != nil {
		c.send(v)
	}
}

// release sends what was held while joined was on its way, in order, and
// ends holding. It loops because more may be held while it sends.
func (p *participant) release() {
	for {
		p.mu.Lock()
		held, c := p.held, p.conn
		p.held = nil
		if len(held) == 0 {
			p.holding = false
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
		for _, v := range held {
			if c != nil {
				c.send(v)
			}
		}
	}
}

// Deliver implements room.Participant.
func (p *participant) Deliver(ev room.Event) { p.send(ev) }

// Close implements room.Participant: the server ends the participant
// (removed, room closed, shutdown, duplicate identity). Its media stops at
// once and it can no longer be resumed; the connection, if any, gets the
// reason and closes.
func (p *participant) Close(reason string) {
	p.mu.Lock()
	state, c := p.state, p.conn
	if state == done {
		p.mu.Unlock()
		return
	}
	p.state, p.endReason = done, reason
	if state == parked {
		p.parkTimer.Stop()
	}
	p.mu.Unlock()
	if c != nil {
		c.Close(reason)
	}
	p.leave(reason)
}

// joined records the membership once Manager.Join has returned. The room
// may have closed the participant before that (removed, room closed,
// shutdown, replaced by a newer join) while there was no membership to
// leave yet: then it leaves now, and joined reports false.
func (p *participant) joined(mem *room.Member) bool {
	p.mu.Lock()
	p.member.Store(mem)
	ended, reason := p.state == done, p.endReason
	p.mu.Unlock()
	if ended {
		p.leave(reason)
	}
	return !ended
}

// connectionEnded runs when c's reader stops. A participant whose client
// left, or whom the server ended, leaves the room; one whose connection
// merely dropped is parked for a resume.
func (p *participant) connectionEnded(c *session, clientLeft bool) {
	p.mu.Lock()
	if p.state != attached || p.conn != c {
		p.mu.Unlock()
		return
	}
	p.conn = nil
	if clientLeft || p.h.closing.Load() {
		p.state = done
		p.mu.Unlock()
		reason := "left"
		if !clientLeft {
			reason = room.ReasonServerShutdown
		}
		p.leave(reason)
		return
	}
	p.state = parked
	p.parkTimer = time.AfterFunc(p.h.cfg.ResumeTimeout, p.expire)
	p.mu.Unlock()
	p.log.Info("connection lost; waiting for the client to resume", "timeout", p.h.cfg.ResumeTimeout)
}

// expire ends a parked participant whose client did not come back.
func (p *participant) expire() {
	p.mu.Lock()
	if p.state != parked {
		p.mu.Unlock()
		return
	}
	p.state = done
	p.mu.Unlock()
	p.leave("resume_timeout")
}

// resume attaches a new connection to the participant. The client may
// notice a dead connection before the server does, so a participant still
// attached is taken over too: its old connection is returned, to be closed.
// It fails when the participant is done or the token does not match.
func (p *participant) resume(c *session, token, identity, roomName string) (newToken string, old *session, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	match := subtle.ConstantTimeCompare([]byte(token), []byte(p.resumeToken)) == 1
	if p.state == done || !match || identity != p.identity || roomName != p.roomName {
		return "", nil, false
	}
	if p.state == parked {
		p.parkTimer.Stop()
	}
	old = p.conn
	p.state, p.conn = attached, c
	p.holding = true // until the new joined is queued
	p.resumeToken = newResumeToken()
	return p.resumeToken, old, true
}

// leave releases the room membership and the media session; it runs once,
// on the transition to done.
func (p *participant) leave(reason string) {
	p.h.unregister(p)
	if mem := p.member.Load(); mem != nil {
		mem.Leave(reason)
	}
}

// media is the participant's media session; it is set before any handler
// that uses it runs.
func (p *participant) media() room.MediaSession { return p.member.Load().Media() }

// MediaEvents, called from media goroutines: they only queue messages.

func (p *participant) PublisherAnswer(sdp string, tracks []room.TrackInfo) {
	p.send(sdpMessage{Type: "answer", Target: room.TargetPublisher, SDP: sdp, Tracks: tracks})
}

func (p *participant) SubscriberOffer(sdp string, tracks map[string]room.TrackInfo) {
	p.send(sdpMessage{Type: "offer", Target: room.TargetSubscriber, SDP: sdp, Tracks: tracks})
}

func (p *participant) LocalCandidate(target string, c *room.Candidate) {
	p.send(candidateMessage{Type: "candidate", Target: target, Candidate: c})
}

func (p *participant) StreamState(trackSID, state, reason string) {
	p.send(streamStateMessage{Type: "stream_state", TrackSID: trackSID, State: state, Reason: reason})
}

func (p *participant) SubscribedLayers(trackSID string, layers []room.LayerState) {
	p.send(subscribedLayersMessage{Type: "subscribed_layers", TrackSID: trackSID, Layers: layers})
}
