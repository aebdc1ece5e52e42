package sfu

import (
	"testing"
	"time"

	"github.com/quartet-rtc/quartet/internal/room"
)

// A layer nobody wants is turned off after dynacastOff, and on again as
// soon as a down track wants it; layerStates tells what was last sent.
func TestDynacast(t *testing.T) {
	t.Parallel()
	layers := []room.Layer{{RID: "q", Quality: "low"}, {RID: "h", Quality: "medium"}, {RID: "f", Quality: "high"}}
	up := testUpTrack(room.TrackInfo{SID: "TR_d", Kind: "video", Layers: layers}, vp8Codec, newPacketPool())
	d := newDownTrack(up, newWriter(8, &peerStats{}), &captureDst{}, 0)
	d.alloc.want.Store(0)
	up.addDown(d)
	now := time.Now()
	if _, changed := up.updateDynacast(now); changed {
		t.Fatal("changed at once: layers are turned off only after a while")
	}
	states, changed := up.updateDynacast(now.Add(dynacastOff))
	if !changed || len(states) != 3 || !states[0].Active || states[1].Active || states[2].Active {
		t.Fatalf("after %v: %v %v, want only q on", dynacastOff, states, changed)
	}
	if again, off := up.layerStates(); !off || again[1].Active {
		t.Fatalf("layerStates %v %v", again, off)
	}
	d.alloc.want.Store(2)
	states, changed = up.updateDynacast(now.Add(dynacastOff + time.Millisecond))
	if !changed || !states[1].Active || !states[2].Active {
		t.Fatalf("wanted again: %v %v, want all on at once", states, changed)
	}
	up.removeDown(d)
	up.updateDynacast(now.Add(2 * dynacastOff))
	states, _ = up.updateDynacast(now.Add(4 * dynacastOff))
	for _, s := range states {
		if s.Active {
			t.Fatalf("no down track left, yet %v", states)
		}
	}
}
