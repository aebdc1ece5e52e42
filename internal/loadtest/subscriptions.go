package loadtest

import (
	"encoding/json"
	"fmt"
	"slices"
	"sync"

	"github.com/quartet-rtc/quartet/internal/client"
	"github.com/quartet-rtc/quartet/internal/room"
)

// chooser subscribes a participant to the tracks of the first limit other
// publishers it learns of, from joined and track_published, so that the
// server forwards it only those (--max-subscriptions).
type chooser struct {
	limit   int
	onError func(error)

	mu      sync.Mutex
	c       *client.Client // nil until Dial returns
	self    string         // own participant sid, from joined
	chosen  map[string]bool
	pending []string // track sids learnt before c was set
}

func newChooser(limit int, onError func(error)) *chooser {
	return &chooser{limit: limit, onError: onError, chosen: map[string]bool{}}
}

// onEvent is the client's OnEvent hook; it runs on the client's reader.
func (ch *chooser) onEvent(m client.Message) {
	var tracks []room.TrackInfo
	switch m.Type {
	case "joined":
		var j struct {
			Participant  room.ParticipantInfo
			Participants []room.ParticipantInfo
		}
		if err := json.Unmarshal(m.Raw, &j); err != nil {
			ch.onError(fmt.Errorf("decode joined: %w", err))
			return
		}
		ch.mu.Lock()
		ch.self = j.Participant.SID
		ch.mu.Unlock()
		for _, p := range j.Participants {
			tracks = append(tracks, p.Tracks...)
		}
	case "track_published":
		var ev struct{ Track room.TrackInfo }
		if err := json.Unmarshal(m.Raw, &ev); err != nil {
			ch.onError(fmt.Errorf("decode track_published: %w", err))
			return
		}
		tracks = append(tracks, ev.Track)
	case "error":
		ch.onError(fmt.Errorf("server error: %s", m.Raw))
		return
	default:
		return
	}
	ch.subscribe(ch.pick(tracks))
}

// pick returns the sids of the tracks whose publishers are chosen, choosing
// publishers while fewer than limit are.
func (ch *chooser) pick(tracks []room.TrackInfo) []string {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	var sids []string
	for _, t := range tracks {
		from := t.ParticipantSID
		if from == ch.self {
			continue
		}
		if !ch.chosen[from] && len(ch.chosen) < ch.limit {
			ch.chosen[from] = true
		}
		if ch.chosen[from] {
			sids = append(sids, t.SID)
		}
	}
	if ch.c == nil {
		ch.pending = append(ch.pending, sids...)
		return nil
	}
	return sids
}

// attach gives the chooser its client once Dial returned, and subscribes
// to what joined listed.
func (ch *chooser) attach(c *client.Client) {
	ch.mu.Lock()
	ch.c = c
	sids := ch.pending
	ch.pending = nil
	ch.mu.Unlock()
	ch.subscribe(sids)
}

// chose reports whether the chooser subscribed to a publisher's tracks.
func (ch *chooser) chose(publisherSID string) bool {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return ch.chosen[publisherSID]
}

// maxSIDsPerMessage is the protocol's limit of track sids in one subscribe.
const maxSIDsPerMessage = 64

func (ch *chooser) subscribe(sids []string) {
	if len(sids) == 0 {
		return
	}
	ch.mu.Lock()
	c := ch.c
	ch.mu.Unlock()
	for chunk := range slices.Chunk(sids, maxSIDsPerMessage) {
		if err := c.Subscribe(chunk...); err != nil {
			ch.onError(fmt.Errorf("subscribe: %w", err))
			return
		}
	}
}
