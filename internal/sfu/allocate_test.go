package sfu

import (
	"slices"
	"testing"

	"github.com/quartet-rtc/quartet/internal/room"
)

var none = allocOption{spatial: -1}

func simulcastOptions(rates ...int) []allocOption {
	opts := make([]allocOption, len(rates))
	for i, r := range rates {
		opts[i] = allocOption{spatial: i, temporal: -1, rate: r}
	}
	return opts
}

// The budget goes to screen shares first, then speakers, then the rest;
// every track gets its lowest option before any is raised; a track whose
// lowest option does not fit is paused; upgrades (and a new track's
// start) need their 15% margin.
func TestAllocatePriorities(t *testing.T) {
	t.Parallel()
	cams := simulcastOptions(150_000, 500_000, 1_700_000)
	tests := []struct {
		name   string
		budget int
		tracks []allocTrack
		want   []int
	}{
		{"everything fits", 10_000_000, []allocTrack{{priority: priorityOther, options: cams, prev: none}, {priority: priorityOther, options: cams, prev: none}}, []int{2, 2}},
		{"screen share first", 2_200_000, []allocTrack{{priority: priorityOther, order: "a", options: cams, prev: none},
			{priority: priorityScreen, order: "b", options: cams, prev: none}}, []int{0, 2}},
		{"speaker before the rest", 900_000, []allocTrack{{priority: priorityOther, order: "a", options: cams, prev: none},
			{priority: prioritySpeaker, order: "b", options: cams, prev: none}}, []int{0, 1}},
		{"lowest for all before raising one", 350_000, []allocTrack{{priority: prioritySpeaker, options: cams, prev: none},
			{priority: priorityOther, options: cams, prev: none}}, []int{0, 0}},
		{"paused when the lowest does not fit", 200_000, []allocTrack{{priority: prioritySpeaker, order: "a", options: cams, prev: none},
			{priority: priorityOther, order: "b", options: cams, prev: none}}, []int{0, -1}},
		{"disabled gets nothing", 10_000_000, []allocTrack{{priority: priorityOther, prev: none}, {priority: priorityOther, options: cams, prev: none}}, []int{-1, 2}},
		{"an upgrade needs its margin", 520_000, []allocTrack{{options: cams, prev: cams[0]}}, []int{0}},
		{"staying needs no margin", 520_000, []allocTrack{{options: cams, prev: cams[1]}}, []int{1}},
		{"staying at a rate that rose needs no margin", 520_000, []allocTrack{{options: simulcastOptions(150_000, 510_000, 1_700_000),
			prev: cams[1]}}, []int{1}},
	}
	for _, tt := range tests {
		p := allocate(tt.budget, tt.tracks)
		if !slices.Equal(p.choice, tt.want) {
			t.Errorf("%s: choice %v, want %v", tt.name, p.choice, tt.want)
		}
		if p.used > tt.budget {
			t.Errorf("%s: used %d of %d", tt.name, p.used, tt.budget)
		}
	}
	p := allocate(350_000, []allocTrack{{priority: prioritySpeaker, options: cams, prev: none}, {priority: priorityOther, options: cams, prev: none}})
	if p.next != 350_000 || p.short != 2*1_550_000 {
		t.Errorf("next %d short %d, want 350000 and %d", p.next, p.short, 2*1_550_000)
	}
}

func TestPreferredLayer(t *testing.T) {
	t.Parallel()
	layers := []room.Layer{{RID: "q", Quality: "low", Width: 320, Height: 180}, {RID: "h", Quality: "medium", Width: 640, Height: 360},
		{RID: "f", Quality: "high", Width: 1280, Height: 720}}
	tests := []struct {
		s    room.TrackSettings
		want int
	}{
		{room.TrackSettings{}, 2},
		{room.TrackSettings{MaxQuality: "low"}, 0},
		{room.TrackSettings{MaxQuality: "medium"}, 1},
		{room.TrackSettings{Width: 300, Height: 170}, 0},
		{room.TrackSettings{Width: 320, Height: 180}, 0},
		{room.TrackSettings{Width: 600, Height: 340}, 1},
		{room.TrackSettings{Width: 1920, Height: 1080}, 2},
		{room.TrackSettings{Width: 1280, Height: 720, MaxQuality: "medium"}, 1},
	}
	for _, tt := range tests {
		if got := preferredLayer(layers, tt.s); got != tt.want {
			t.Errorf("%+v: layer %d, want %d", tt.s, got, tt.want)
		}
	}
	if got := preferredLayer([]room.Layer{{RID: "q", Quality: "low"}, {RID: "f", Quality: "high"}}, room.TrackSettings{Width: 100}); got != 1 {
		t.Errorf("sizes unknown: layer %d, want the cap", got)
	}
}
