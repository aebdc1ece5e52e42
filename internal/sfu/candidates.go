package sfu

import (
	"sync"

	"github.com/pion/webrtc/v4"

	"github.com/quartet-rtc/quartet/internal/room"
)

// candidates orders a peer's local ICE candidates after the description
// they belong to, per target, so a client never sees a candidate before
// its offer or answer. Its mutex is the innermost of a Peer and is never
// held across a pion call: pion reports candidates from its own
// goroutines, possibly while holding its locks.
type candidates struct {
	events room.MediaEvents

	mu   sync.Mutex
	sent map[string]bool              // by target: its description was sent
	held map[string][]*room.Candidate // by target: waiting for it
}

func newCandidates(events room.MediaEvents) candidates {
	return candidates{events: events, sent: map[string]bool{}, held: map[string][]*room.Candidate{}}
}

// local forwards a local candidate once its description has been sent.
func (cs *candidates) local(target string, c *webrtc.ICECandidate) {
	var rc *room.Candidate
	if c != nil {
		init := c.ToJSON()
		rc = &room.Candidate{Candidate: init.Candidate, SDPMid: init.SDPMid,
			SDPMLineIndex: init.SDPMLineIndex, UsernameFragment: init.UsernameFragment}
	}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if !cs.sent[target] {
		cs.held[target] = append(cs.held[target], rc)
		return
	}
	cs.events.LocalCandidate(target, rc)
}

// hold makes candidates of target wait for the next description. Call it
// before SetLocalDescription, which starts gathering.
func (cs *candidates) hold(target string) {
	cs.mu.Lock()
	cs.sent[target] = false
	cs.mu.Unlock()
}

// sendDescription sends a description with send, then the candidates
// that were held for it.
func (cs *candidates) sendDescription(target string, send func()) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	send()
	cs.sent[target] = true
	for _, c := range cs.held[target] {
		cs.events.LocalCandidate(target, c)
	}
	cs.held[target] = nil
}

// inDescription is sendDescription for a description returned whole, with
// its candidates in it: those held are dropped, later ones are sent.
func (cs *candidates) inDescription(target string) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.sent[target] = true
	cs.held[target] = nil
}
