package sfu

// Subscribe implements room.MediaSession: the client chooses which of the
// others' tracks it receives. Every sid is checked before anything changes,
// so a request either applies whole or fails whole.
func (p *Peer) Subscribe(trackSIDs []string, subscribe bool) error {
	ups, err := p.subscribable(trackSIDs)
	if err != nil {
		return err
	}
	p.sub.mu.Lock()
	closed := p.sub.closed
	p.sub.mu.Unlock()
	if closed {
		return errPeerClosed
	}
	if subscribe {
		p.sub.subscribe(ups...)
	} else {
		p.sub.unsubscribe(ups...)
	}
	p.log.Debug("subscriptions changed", "subscribe", subscribe, "tracks", trackSIDs)
	return nil
}
