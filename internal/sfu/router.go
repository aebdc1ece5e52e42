package sfu

import (
	"cmp"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quartet-rtc/quartet/internal/room"
)

// speakerInterval is how often active speakers are computed.
const speakerInterval = 300 * time.Millisecond

// Router is the media side of one room: which up tracks exist and which
// peers subscribe to them.
type Router struct {
	e    *Engine
	name string
	pool *sync.Pool // packets of this room

	mu    sync.Mutex
	peers map[string]*Peer    // by participant sid
	ups   map[string]*UpTrack // by track sid
	sinks map[*sinkAttachment]struct{}

	// speaking is the set of participants speaking at the last tick, for
	// the subscribers' allocators.
	speaking atomic.Pointer[map[string]bool]

	stopOnce sync.Once
	stopped  chan struct{}
}

func newRouter(e *Engine, name string) *Router {
	r := &Router{
		e: e, name: name, pool: newPacketPool(),
		peers:   map[string]*Peer{},
		ups:     map[string]*UpTrack{},
		sinks:   map[*sinkAttachment]struct{}{},
		stopped: make(chan struct{}),
	}
	go r.tickLoop()
	return r
}

func (r *Router) addPeer(p *Peer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.peers[p.sid] = p
}

// removePeer forgets p and detaches its down tracks. It reports whether the
// router is now empty.
func (r *Router) removePeer(p *Peer) bool {
	r.mu.Lock()
	delete(r.peers, p.sid)
	empty := len(r.peers) == 0
	r.mu.Unlock()
	p.sub.detachAll()
	return empty
}

func (r *Router) empty() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.peers) == 0
}

func (r *Router) allPeers() []*Peer {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*Peer, 0, len(r.peers))
	for _, p := range r.peers {
		out = append(out, p)
	}
	return out
}

// subscribeToAll subscribes p to every up track of the others.
func (r *Router) subscribeToAll(p *Peer) {
	r.mu.Lock()
	ups := make([]*UpTrack, 0, len(r.ups))
	for _, up := range r.ups {
		if up.info.ParticipantSID != p.sid {
			ups = append(ups, up)
		}
	}
	r.mu.Unlock()
	p.sub.subscribe(ups...)
}

// publish makes up available to every other peer, and subscribes those that
// subscribe automatically.
func (r *Router) publish(up *UpTrack) {
	r.mu.Lock()
	r.ups[up.info.SID] = up
	subs := make([]*Peer, 0, len(r.peers))
	for _, p := range r.peers {
		if p.sid != up.info.ParticipantSID && p.autoSubscribes() {
			subs = append(subs, p)
		}
	}
	r.mu.Unlock()
	for _, p := range subs {
		p.sub.subscribe(up)
	}
}

// upTracks looks up tracks by sid; the sids it does not know are returned
// in unknown.
func (r *Router) upTracks(sids []string) (ups []*UpTrack, unknown []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, sid := range sids {
		if up, ok := r.ups[sid]; ok {
			ups = append(ups, up)
		} else {
			unknown = append(unknown, sid)
		}
	}
	return ups, unknown
}

// unpublish removes up from every subscriber.
func (r *Router) unpublish(up *UpTrack) {
	r.mu.Lock()
	delete(r.ups, up.info.SID)
	subs := make([]*Peer, 0, len(r.peers))
	for _, p := range r.peers {
		subs = append(subs, p)
	}
	r.mu.Unlock()
	for _, p := range subs {
		p.sub.unsubscribe(up)
	}
	for _, a := range r.sinksOf(up) {
		a.Detach()
	}
}

// retire adds a closed subscriber's counters to the engine's totals.
func (r *Router) retire(s *peerStats) { r.e.stats.retire(s) }

func (r *Router) stop() { r.stopOnce.Do(func() { close(r.stopped) }) }

// tickLoop, every speakerInterval, works out the active speakers, measures
// the up tracks' layer rates and tells publishers which layers are needed.
func (r *Router) tickLoop() {
	t := time.NewTicker(speakerInterval)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-r.stopped:
			return
		case now := <-t.C:
			speakers := r.activeSpeakers()
			set := make(map[string]bool, len(speakers))
			for _, s := range speakers {
				set[s.SID] = true
			}
			r.speaking.Store(&set)
			r.e.reports.ActiveSpeakers(r.name, speakers)
			r.measure(now, now.Sub(last))
			last = now
		}
	}
}

// speakers is the set of participants speaking at the last tick.
func (r *Router) speakers() map[string]bool {
	if m := r.speaking.Load(); m != nil {
		return *m
	}
	return nil
}

// measure updates every up track's layer rates and dynacast state.
func (r *Router) measure(now time.Time, elapsed time.Duration) {
	r.mu.Lock()
	ups := make([]*UpTrack, 0, len(r.ups))
	for _, up := range r.ups {
		ups = append(ups, up)
	}
	r.mu.Unlock()
	for _, up := range ups {
		up.measure(elapsed)
		if up.simulcast() {
			for _, a := range r.sinksOf(up) {
				a.followTopLayer()
			}
		}
		if states, changed := up.updateDynacast(now); changed {
			if pub := r.peer(up.info.ParticipantSID); pub != nil {
				pub.events.SubscribedLayers(up.info.SID, states)
			}
		}
	}
}

func (r *Router) peer(sid string) *Peer {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.peers[sid]
}

// activeSpeakers lists speaking participants, loudest first.
func (r *Router) activeSpeakers() []room.Speaker {
	r.mu.Lock()
	ups := make([]*UpTrack, 0, len(r.ups))
	for _, up := range r.ups {
		if !up.video {
			ups = append(ups, up)
		}
	}
	r.mu.Unlock()
	best := map[string]float64{}
	for _, up := range ups {
		if level, ok := up.speakingLevel(); ok && level > best[up.info.ParticipantSID] {
			best[up.info.ParticipantSID] = level
		}
	}
	out := make([]room.Speaker, 0, len(best))
	for sid, level := range best {
		out = append(out, room.Speaker{SID: sid, Level: level})
	}
	slices.SortFunc(out, func(a, b room.Speaker) int { return cmp.Compare(b.Level, a.Level) })
	return out
}

func (r *Router) trackCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.ups)
}
