package sfu

import (
	"cmp"
	"slices"
)

// Priorities of video tracks when a subscriber's bandwidth is shared out:
// lower goes first.
const (
	priorityScreen = iota
	prioritySpeaker
	priorityOther
)

// Hysteresis of the allocator: an upgrade must fit with this margin
// (percent), so that an estimate hovering at a layer's rate does not make
// the layer come and go.
const upgradeMargin = 115

// allocOption is one way to send a track: a spatial and temporal layer
// (temporal -1: all of them) and what it costs.
type allocOption struct {
	spatial, temporal int
	rate              int // bits per second
}

// allocTrack is one video track as the allocator sees it.
type allocTrack struct {
	priority int
	order    string // ties between equal priorities, for a stable plan
	// options are the ways to send it that the subscriber's preferences
	// allow, cheapest first; empty when it is disabled.
	options []allocOption
	// prev is the option chosen last time (spatial -1: paused or new): an
	// option above it must fit with the upgrade margin. By layer, not by
	// rate: a keyframe that raises the measured rate of the layer being
	// sent does not make staying on it an upgrade.
	prev allocOption
}

// plan is an allocation: per track the index of its option, -1 paused.
type plan struct {
	choice []int
	used   int // bits per second the choices cost
	// short is how much more bandwidth would give every track the best
	// option its preferences allow; next is how much more the next
	// upgrade of the first track (by priority) below its best needs: what
	// a probe should look for.
	short, next int
}

// allocate shares budget (bits per second) among tracks: first every
// track in priority order gets its cheapest option (or is paused when even
// that does not fit), then, again in priority order, each is raised as far
// as what is left allows.
func allocate(budget int, tracks []allocTrack) plan {
	order := make([]int, len(tracks))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		return cmp.Or(cmp.Compare(tracks[a].priority, tracks[b].priority), cmp.Compare(tracks[a].order, tracks[b].order))
	})
	p := plan{choice: make([]int, len(tracks))}
	left := budget
	for _, i := range order {
		t := &tracks[i]
		p.choice[i] = -1
		if len(t.options) == 0 {
			continue
		}
		if cost := t.cost(0); cost <= left {
			p.choice[i] = 0
			left -= t.options[0].rate
		}
	}
	for _, i := range order {
		t := &tracks[i]
		c := p.choice[i]
		if c < 0 {
			continue
		}
		for next := len(t.options) - 1; next > c; next-- {
			if extra := t.cost(next) - t.options[c].rate; extra <= left {
				left -= t.options[next].rate - t.options[c].rate
				p.choice[i] = next
				break
			}
		}
	}
	for _, i := range order {
		t := &tracks[i]
		if c := p.choice[i]; p.next == 0 && len(t.options) > 0 && c < len(t.options)-1 {
			if c < 0 {
				p.next = t.options[0].rate
			} else {
				p.next = t.options[c+1].rate - t.options[c].rate
			}
		}
	}
	for i, t := range tracks {
		if len(t.options) == 0 {
			continue
		}
		best := t.options[len(t.options)-1].rate
		if c := p.choice[i]; c >= 0 {
			p.used += t.options[c].rate
			best -= t.options[c].rate
		}
		p.short += best
	}
	return p
}

// cost is what option i must fit in: its rate, with the upgrade margin
// when it is a higher layer than was chosen last time.
func (t *allocTrack) cost(i int) int {
	o := t.options[i]
	if t.prev.spatial < 0 || o.spatial > t.prev.spatial ||
		(o.spatial == t.prev.spatial && temporalRank(o.temporal) > temporalRank(t.prev.temporal)) {
		return o.rate * upgradeMargin / 100
	}
	return o.rate
}

// temporalRank orders temporal layers, -1 (all of them) the highest.
func temporalRank(t int) int {
	if t < 0 {
		return maxTemporal
	}
	return t
}
