package room

// watch is one TrackWatcher's registration.
type watch struct{ w TrackWatcher }

var _ Reports = (*Manager)(nil)

// TrackPublished implements Reports: the room records the track, tells its
// participants, then the watchers.
func (m *Manager) TrackPublished(roomName string, t TrackInfo) {
	m.watchMu.Lock()
	defer m.watchMu.Unlock()
	r := m.Get(roomName)
	if r == nil || !r.AddTrack(t) {
		return // the publisher left while its track started
	}
	if m.live[roomName] == nil {
		m.live[roomName] = map[string]TrackInfo{}
	}
	m.live[roomName][t.SID] = t
	for w := range m.watchers[roomName] {
		w.w.TrackAdded(t)
	}
}

// TrackUnpublished implements Reports.
func (m *Manager) TrackUnpublished(roomName string, t TrackInfo) {
	m.watchMu.Lock()
	defer m.watchMu.Unlock()
	if r := m.Get(roomName); r != nil {
		r.RemoveTrack(t) // false when its publisher already left the room
	}
	// Watchers hear of every track that ends, also after its publisher
	// left: its packets flowed until now.
	if _, ok := m.live[roomName][t.SID]; !ok {
		return
	}
	delete(m.live[roomName], t.SID)
	if len(m.live[roomName]) == 0 {
		delete(m.live, roomName)
	}
	for w := range m.watchers[roomName] {
		w.w.TrackRemoved(t)
	}
}

// ActiveSpeakers implements Reports.
func (m *Manager) ActiveSpeakers(roomName string, speakers []Speaker) {
	if r := m.Get(roomName); r != nil {
		r.SetActiveSpeakers(speakers)
	}
}

// Watch makes w follow the tracks of the named room, whether or not it is
// open yet: TrackAdded for each track being published now, then for every
// track as it is published, TrackRemoved as it ends. It follows the name,
// so a room closed and opened again is still followed. Call stop to end
// it; no call to w follows stop's return.
func (m *Manager) Watch(roomName string, w TrackWatcher) (stop func()) {
	reg := &watch{w: w}
	m.watchMu.Lock()
	defer m.watchMu.Unlock()
	if m.watchers[roomName] == nil {
		m.watchers[roomName] = map[*watch]struct{}{}
	}
	m.watchers[roomName][reg] = struct{}{}
	for _, t := range m.live[roomName] {
		w.TrackAdded(t)
	}
	return func() {
		m.watchMu.Lock()
		defer m.watchMu.Unlock()
		delete(m.watchers[roomName], reg)
		if len(m.watchers[roomName]) == 0 {
			delete(m.watchers, roomName)
		}
	}
}

// Attach makes sink receive one track of the named room (see Media.Attach).
func (m *Manager) Attach(roomName, trackSID string, sink Sink) (Attachment, error) {
	return m.media.Attach(roomName, trackSID, sink)
}
