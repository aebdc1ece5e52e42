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
	// rids are the simulcast streams the section sends (a=simulcast send),
	// in the order the offer lists them.
	rids []string
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
		out = append(out, offerTrack{trackID: fields[1], kind: kind, rids: simulcastRIDs(md)})
	}
	return out, nil
}

// maxLayers is the most simulcast layers a track may have.
const maxLayers = 3

// simulcastRIDs lists the rids of a media section's "a=simulcast:send"
// (RFC 8853), without paused ("~") markers or alternatives after the first;
// nil when the section sends one stream.
func simulcastRIDs(md *sdp.MediaDescription) []string {
	value, ok := md.Attribute("simulcast")
	if !ok {
		return nil
	}
	fields := strings.Fields(value)
	for i := 0; i+1 < len(fields); i++ {
		if fields[i] != "send" {
			continue
		}
		var rids []string
		for _, stream := range strings.Split(fields[i+1], ";") {
			rid := strings.TrimPrefix(strings.Split(stream, ",")[0], "~")
			if rid != "" && len(rid) <= 32 && len(rids) < maxLayers {
				rids = append(rids, rid)
			}
		}
		return rids
	}
	return nil
}
