package sfu

import (
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
	active        []bool
	unneededSince []time.Time
}

func newDynacastState(layers int) dynacastState {
	d := dynacastState{active: make([]bool, layers), unneededSince: make([]time.Time, layers)}
	for i := range d.active {
		d.active[i] = true
	}
	return d
}

// updateDynacast works out which layers anyone receiving the track wants
// (a subscriber up to its preferred layer, a sink the best) and returns
// the layer states to tell the publisher when they changed. It runs on the
// router's tick goroutine.
func (u *UpTrack) updateDynacast(now time.Time) ([]room.LayerState, bool) {
	if !u.simulcast() {
		return nil, false
	}
	want := -1
	for _, d := range *u.downs.Load() {
		want = max(want, int(d.alloc.want.Load()))
	}
	st := &u.dynacast
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
	states := make([]room.LayerState, len(u.layers))
	for i, l := range u.layers {
		states[i] = room.LayerState{RID: l.rid, Active: st.active[i]}
	}
	return states, true
}
