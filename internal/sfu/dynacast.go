package sfu

import (
	"sync"
	"time"

	"github.com/quartet-rtc/quartet/internal/room"
)

// dynacastOff is how long no subscriber must need a layer before its
// publisher is told to stop sending it; a layer needed again is turned on
// at once.
const dynacastOff = 3 * time.Second

// dynacastState is what a publisher was last told about the layers of one
// of its tracks. All layers start on, as the client publishes them.
type dynacastState struct {
	mu            sync.Mutex // the router's tick and a resync
	active        []bool
	unneededSince []time.Time
}

func (d *dynacastState) init(layers int) {
	d.active, d.unneededSince = make([]bool, layers), make([]time.Time, layers)
	for i := range d.active {
		d.active[i] = true
	}
}

// updateDynacast works out which layers anyone receiving the track wants
// (a subscriber up to its preferred layer, a sink the best) and returns
// the layer states to tell the publisher when they changed. It runs on the
// router's tick goroutine; the events go out after, so a resync's may
// come in between (the client applies whichever is last: both are the
// same by then or the newer is).
func (u *UpTrack) updateDynacast(now time.Time) ([]room.LayerState, bool) {
	if !u.simulcast() {
		return nil, false
	}
	want := -1
	for _, d := range *u.downs.Load() {
		want = max(want, int(d.alloc.want.Load()))
	}
	st := &u.dynacast
	st.mu.Lock()
	defer st.mu.Unlock()
	changed := false
	for i := range u.layers {
		switch {
		case i <= want:
			st.unneededSince[i] = time.Time{}
			if !st.active[i] {
				st.active[i], changed = true, true
			}
		case !st.active[i]:
		case st.unneededSince[i].IsZero():
			st.unneededSince[i] = now
		case now.Sub(st.unneededSince[i]) >= dynacastOff:
			st.active[i], changed = false, true
		}
	}
	if !changed {
		return nil, false
	}
	return u.layerStatesLocked(), true
}

// layerStates returns what the publisher was last told, and whether any
// layer is off.
func (u *UpTrack) layerStates() ([]room.LayerState, bool) {
	if !u.simulcast() {
		return nil, false
	}
	u.dynacast.mu.Lock()
	defer u.dynacast.mu.Unlock()
	states := u.layerStatesLocked()
	for _, s := range states {
		if !s.Active {
			return states, true
		}
	}
	return states, false
}

func (u *UpTrack) layerStatesLocked() []room.LayerState {
	states := make([]room.LayerState, len(u.layers))
	for i, l := range u.layers {
		states[i] = room.LayerState{RID: l.rid, Active: u.dynacast.active[i]}
	}
	return states
}
