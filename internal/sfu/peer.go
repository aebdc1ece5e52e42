package sfu

import (
	"errors"
	"log/slog"
	"sync"

	"github.com/quartet-rtc/quartet/internal/room"
)

var errPeerClosed = errors.New("media session closed")

// Peer is one participant's media session: a publisher half (its tracks
// coming in) and a subscriber half (the others' tracks going out), each
// with its own PeerConnection and lock. It implements room.MediaSession.
type Peer struct {
	e      *Engine
	router *Router
	sid    string
	perms  room.Permissions
	manual bool // receives only the tracks it subscribes to; fixed at Open
	events room.MediaEvents
	log    *slog.Logger
	stats  peerStats // as a subscriber
	cands  candidates
	pub    publisher
	sub    subscriber
	once   sync.Once
}

var (
	_ room.MediaSession = (*Peer)(nil)
	_ room.Media        = (*Engine)(nil)
	_ room.Attachment   = (*sinkAttachment)(nil)
	_ destination       = (*sinkAttachment)(nil)
	_ destination       = (*subscription)(nil)
)

func newPeer(e *Engine, r *Router, sid string, opts room.SessionOptions, events room.MediaEvents) *Peer {
	// The peer connections, the writer and its goroutine are made when
	// first needed: a participant that only holds its signaling connection
	// (a listener before anyone publishes, a lobby) costs a few hundred
	// bytes here instead of two pion connections.
	p := &Peer{
		e: e, router: r, sid: sid, perms: opts.Permissions, manual: opts.ManualSubscribe, events: events,
		log:   e.log.With("room", r.name, "participant", sid),
		cands: newCandidates(events),
	}
	p.pub = newPublisher(p)
	p.sub = newSubscriber(p)
	return p
}

// Start implements room.MediaSession.
func (p *Peer) Start() {
	p.sub.start()
	if p.autoSubscribes() {
		p.router.subscribeToAll(p)
	}
}

// autoSubscribes reports whether p receives every track of the others
// without asking.
func (p *Peer) autoSubscribes() bool { return p.perms.CanSubscribe && !p.manual }

// Close implements room.MediaSession. It returns once every goroutine of the
// session has ended.
func (p *Peer) Close() {
	p.once.Do(func() {
		p.pub.mu.Lock()
		p.pub.closed = true
		p.pub.mu.Unlock()
		p.sub.mu.Lock()
		p.sub.closed = true
		p.sub.mu.Unlock()
		p.e.removePeer(p.router, p)
		p.pub.close()
		p.sub.close()
		p.router.retire(&p.stats)
		p.log.Debug("media session closed")
	})
}
