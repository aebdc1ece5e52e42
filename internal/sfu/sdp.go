package sfu

import (
	"fmt"
	"strings"

	"github.com/quartet-rtc/quartet/internal/room"

	"github.com/pion/sdp/v3"
)

// offerTrack is a track found in a publisher's offer.
type offerTrack struct {
	trackID string
	kind    string
}

// parseOffer lists the tracks a publisher offer sends, by msid track id.
func parseOffer(offer string) ([]offerTrack, error) {
	var desc sdp.SessionDescription
	if err := desc.UnmarshalString(offer); err != nil {
		return nil, fmt.Errorf("%w: %v", room.ErrBadSDP, err)
	}
	var out []offerTrack
	for _, md := range desc.MediaDescriptions {
		kind := md.MediaName.Media
		if kind != "audio" && kind != "video" {
			continue
		}
		if _, ok := md.Attribute("inactive"); ok {
			continue
		}
		if _, ok := md.Attribute("recvonly"); ok {
			continue
		}
		msid, ok := md.Attribute("msid")
		if !ok {
			continue
		}
		fields := strings.Fields(msid)
		if len(fields) != 2 {
			continue
		}
		out = append(out, offerTrack{trackID: fields[1], kind: kind})
	}
	return out, nil
}
