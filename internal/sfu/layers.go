package sfu

import (
	"slices"

	"github.com/quartet-rtc/quartet/internal/room"
)

// trackLayers works out the simulcast layers of a published track, lowest
// first, from what the client declared and the rids its offer sends. The
// offer decides which rids exist; the declaration, when it names them,
// decides their order and gives their size. A client that declares nothing
// (a WHIP encoder) gets its rids ordered by the usual names (q < h < f,
// low < mid < high), or as its offer lists them.
func trackLayers(declared []room.LayerMeta, rids []string) []room.Layer {
	if len(rids) == 0 {
		return nil
	}
	var metas []room.LayerMeta
	for _, m := range declared {
		if slices.Contains(rids, m.RID) && !slices.ContainsFunc(metas, func(x room.LayerMeta) bool { return x.RID == m.RID }) {
			metas = append(metas, m)
		}
	}
	if len(metas) != len(rids) { // not declared, or not matching the offer
		metas = metas[:0]
		for _, rid := range rids {
			metas = append(metas, room.LayerMeta{RID: rid})
		}
		slices.SortStableFunc(metas, func(a, b room.LayerMeta) int { return ridRank(a.RID) - ridRank(b.RID) })
	}
	names := room.QualityNames(len(metas))
	layers := make([]room.Layer, len(metas))
	for i, m := range metas {
		layers[i] = room.Layer{RID: m.RID, Quality: names[i], Width: clampDim(m.Width), Height: clampDim(m.Height),
			Bitrate: clampBitrate(m.MaxBitrate)}
	}
	return layers
}

// ridRank orders the rid names encoders commonly use; unknown names keep
// their place among themselves.
func ridRank(rid string) int {
	switch rid {
	case "q", "l", "low", "0":
		return 0
	case "h", "m", "mid", "medium", "1":
		return 1
	case "f", "high", "full", "2":
		return 2
	}
	return 1
}

func clampDim(v int) int {
	if v < 0 || v > 16384 {
		return 0
	}
	return v
}

func clampBitrate(v int) int {
	if v < 0 || v > 100_000_000 {
		return 0
	}
	return v
}
