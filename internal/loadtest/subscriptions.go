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
	if m.Type == "error" {
		ch.onError(fmt.Errorf("server error: %s", m.Raw))
		return
	}
	tracks, self, err := announcedTracks(m)
	if err != nil {
		ch.onError(err)
		return
	}
	if self != "" {
		ch.mu.Lock()
		ch.self = self
		ch.mu.Unlock()
	}
	if len(tracks) > 0 {
		ch.subscribe(ch.pick(tracks))
	}
}

// announcedTracks returns the tracks a joined or track_published message
// announces, and for joined the participant's own sid.
func announcedTracks(m client.Message) (tracks []room.TrackInfo, self string, err error) {
	switch m.Type {
	case "joined":
		var j struct {
			Participant  room.ParticipantInfo
			Participants []room.ParticipantInfo
		}
		if err := json.Unmarshal(m.Raw, &j); err != nil {
			return nil, "", fmt.Errorf("decode joined: %w", err)
		}
		for _, p := range j.Participants {
			tracks = append(tracks, p.Tracks...)
		}
		return tracks, j.Participant.SID, nil
	case "track_published":
		var ev struct{ Track room.TrackInfo }
		if err := json.Unmarshal(m.Raw, &ev); err != nil {
			return nil, "", fmt.Errorf("decode track_published: %w", err)
		}
		return []room.TrackInfo{ev.Track}, "", nil
	}
	return nil, "", nil
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

// qualities are what the quality spread asks for, in turn.
var qualities = []string{room.QualityLow, room.QualityMedium, room.QualityHigh}

// prefs asks for one quality of every simulcast track of the others it
// learns of, from joined and track_published (the quality spread). The
// server keeps settings for a track not yet subscribed.
type prefs struct {
	quality string
	onError func(error)

	mu      sync.Mutex
	c       *client.Client // nil until Dial returns
	self    string
	pending []string // track sids learnt before c was set
}

func newPrefs(quality string, onError func(error)) *prefs {
	return &prefs{quality: quality, onError: onError}
}

// onEvent is the client's OnEvent hook; it runs on the client's reader.
func (pr *prefs) onEvent(m client.Message) {
	tracks, self, err := announcedTracks(m)
	if err != nil {
		pr.onError(err)
		return
	}
	pr.mu.Lock()
	if self != "" {
		pr.self = self
	}
	var sids []string
	for _, t := range tracks {
		if len(t.Layers) > 1 && t.ParticipantSID != pr.self {
			sids = append(sids, t.SID)
		}
	}
	c := pr.c
	if c == nil {
		pr.pending = append(pr.pending, sids...)
	}
	pr.mu.Unlock()
	if c != nil {
		pr.send(c, sids)
	}
}

// attach gives prefs its client once Dial returned, and sends the
// settings of what joined listed.
func (pr *prefs) attach(c *client.Client) {
	pr.mu.Lock()
	pr.c = c
	sids := pr.pending
	pr.pending = nil
	pr.mu.Unlock()
	pr.send(c, sids)
}

func (pr *prefs) send(c *client.Client, sids []string) {
	for chunk := range slices.Chunk(sids, maxSIDsPerMessage) {
		if err := c.SetTrackSettings(client.TrackSettings{TrackSIDs: chunk, Quality: pr.quality}); err != nil {
			pr.onError(fmt.Errorf("track_settings: %w", err))
			return
		}
	}
}
