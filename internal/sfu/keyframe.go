package sfu

import "strings"

// IsKeyframe reports whether an RTP payload of the given codec starts or
// carries a keyframe, so that a new subscriber starts at a decodable frame.
// It never panics on malformed payloads; it returns false for them.
func IsKeyframe(mimeType string, payload []byte) bool {
	switch { // EqualFold, not ToLower: this runs per packet and must not allocate
	case strings.EqualFold(mimeType, "video/vp8"):
		return vp8Keyframe(payload)
	case strings.EqualFold(mimeType, "video/vp9"):
		return vp9Keyframe(payload)
	case strings.EqualFold(mimeType, "video/h264"):
		return h264Keyframe(payload)
	default:
		return false
	}
}

// vp8Keyframe parses the VP8 payload descriptor (RFC 7741 section 4.2) and
// checks the P bit of the VP8 frame header at the start of a partition.
func vp8Keyframe(p []byte) bool {
	if len(p) < 1 {
		return false
	}
	x, s, pid := p[0]&0x80 != 0, p[0]&0x10 != 0, p[0]&0x07
	i := 1
	if x {
		if len(p) < 2 {
			return false
		}
		ext := p[1]
		i = 2
		if ext&0x80 != 0 { // I: picture id, 7 or 15 bits
			if len(p) <= i {
				return false
			}
			if p[i]&0x80 != 0 {
				i++
			}
			i++
		}
		if ext&0x40 != 0 { // L: TL0PICIDX
			i++
		}
		if ext&0x30 != 0 { // T or K: TID/KEYIDX byte
			i++
		}
	}
	if !s || pid != 0 || len(p) <= i {
		return false
	}
	return p[i]&0x01 == 0 // P bit clear: key frame
}

// vp9Keyframe checks the VP9 payload descriptor (RFC 9628): start of a frame
// (B) that is not inter-predicted (P clear), in the base spatial layer.
func vp9Keyframe(p []byte) bool {
	if len(p) < 1 {
		return false
	}
	interPicture := p[0]&0x40 != 0
	layerIndices := p[0]&0x20 != 0
	begin := p[0]&0x08 != 0
	if interPicture || !begin {
		return false
	}
	if !layerIndices {
		return true
	}
	i := 1
	if p[0]&0x80 != 0 { // I: picture id
		if len(p) <= i {
			return false
		}
		if p[i]&0x80 != 0 {
			i++
		}
		i++
	}
	if len(p) <= i {
		return false
	}
	spatialID := (p[i] >> 1) & 0x07
	return spatialID == 0
}

// h264Keyframe looks for an IDR slice or SPS in single NAL, STAP-A and the
// first fragment of FU-A packets (RFC 6184).
func h264Keyframe(p []byte) bool {
	if len(p) < 1 {
		return false
	}
	switch nal := p[0] & 0x1F; nal {
	case 5, 7:
		return true
	case 24: // STAP-A: 16-bit sizes followed by NAL units
		for i := 1; i+2 < len(p); {
			size := int(p[i])<<8 | int(p[i+1])
			i += 2
			if size == 0 || i+size > len(p) {
				return false
			}
			if t := p[i] & 0x1F; t == 5 || t == 7 {
				return true
			}
			i += size
		}
		return false
	case 28: // FU-A: start bit and original NAL type in the FU header
		if len(p) < 2 {
			return false
		}
		start, t := p[1]&0x80 != 0, p[1]&0x1F
		return start && (t == 5 || t == 7)
	default:
		return false
	}
}
