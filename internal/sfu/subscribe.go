package sfu

import (
	"fmt"
	"strings"

	"github.com/quartet-rtc/quartet/internal/room"
)

// Subscribe implements room.MediaSession: the client chooses which of the
// others' tracks it receives. Every sid is checked before anything changes,
// so a request either applies whole or fails whole.
func (p *Peer) Subscribe(trackSIDs []string, subscribe bool) error {
	if !p.perms.CanSubscribe {
		return room.ErrNoSubscribe
	}
	ups, unknown := p.router.upTracks(trackSIDs)
	if len(unknown) > 0 {
		return fmt.Errorf("%w: %s", room.ErrUnknownTrack, strings.Join(unknown, ", "))
	}
	for _, up := range ups {
		if up.info.ParticipantSID == p.sid {
			return fmt.Errorf("%w: %s", room.ErrOwnTrack, up.info.SID)
		}
	}
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if closed {
		return errPeerClosed
	}
	if subscribe {
		p.subscribe(ups...)
	} else {
		p.unsubscribe(ups...)
	}
	p.log.Debug("subscriptions changed", "subscribe", subscribe, "tracks", trackSIDs)
	return nil
}

// subscriptionCount is how many tracks p receives.
func (p *Peer) subscriptionCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.downs)
}
