// Package vp8 reads and rewrites the VP8 RTP payload descriptor (RFC 7741
// section 4.2).
//
// Each simulcast layer numbers its pictures on its own, so when the SFU
// switches a subscriber from one layer to another it has to rewrite the
// picture id and TL0PICIDX to keep one continuous sequence for the receiver's
// decoder. Both functions run per forwarded packet: they do not allocate and
// they never panic on malformed input.
package vp8

import "errors"

// The errors are values so that callers on the forwarding path can compare
// them without allocating; nothing assigns to them.
var (
	// ErrShort means the payload ends inside the descriptor.
	ErrShort = errors.New("vp8: payload shorter than its descriptor")
	// ErrDstShort means Rewrite's destination cannot hold the payload.
	ErrDstShort = errors.New("vp8: destination shorter than the payload")
	// ErrMismatch means the descriptor given to Rewrite does not describe
	// the source payload.
	ErrMismatch = errors.New("vp8: descriptor does not match the payload")
)

// Bits of the first byte (X R N S R PID) and of the extension byte
// (I L T K RSV) of the descriptor.
const (
	bitX     = 0x80
	bitN     = 0x20
	bitS     = 0x10
	maskPID  = 0x07
	bitI     = 0x80
	bitL     = 0x40
	bitT     = 0x20
	bitK     = 0x10
	bitM     = 0x80 // first picture id byte: the id has 15 bits, not 7
	bitY     = 0x20
	maskKey  = 0x1f
	bitP     = 0x01 // first byte of the VP8 frame header: inter frame
	extStart = 2    // optional fields follow the first byte and the extension byte
)

// Descriptor is the parsed VP8 payload descriptor. Fields whose Has flag is
// false are zero.
type Descriptor struct {
	Start  bool  // S bit: the packet starts a VP8 partition
	PartID uint8 // PID: the partition index
	NonRef bool  // N bit: no other frame references this one

	HasPictureID bool
	PictureID    uint16
	PictureIDLen int // bytes on the wire: 1 for a 7-bit id, 2 for a 15-bit id

	HasTL0PICIDX bool
	TL0PICIDX    uint8

	HasTID    bool
	TID       uint8
	LayerSync bool // Y bit

	HasKeyIdx bool
	KeyIdx    uint8

	Keyframe bool // Start && PartID == 0 && the P bit of the frame header is clear
	Size     int  // bytes of the descriptor; the VP8 payload starts here
}

// FrameStart reports whether the packet carries the first bytes of a frame:
// the start of its first partition.
func (d *Descriptor) FrameStart() bool {
	return d.Start && d.PartID == 0
}

// Parse reads the descriptor at the start of an RTP payload into d. It
// returns ErrShort, and leaves d zeroed, when the payload ends inside the
// descriptor. A payload that is only a descriptor parses; it is not a
// keyframe since there is no frame header to tell.
func Parse(payload []byte, d *Descriptor) error {
	// d is zeroed first and the fields are stored only on success, so that
	// a failed parse never leaves fields of an earlier packet behind.
	*d = Descriptor{}
	if len(payload) < 1 {
		return ErrShort
	}
	b := payload[0]
	v := Descriptor{Start: b&bitS != 0, NonRef: b&bitN != 0, PartID: b & maskPID}
	i := 1
	if b&bitX != 0 {
		if len(payload) < extStart {
			return ErrShort
		}
		ext := payload[1]
		i = extStart
		if ext&bitI != 0 {
			if len(payload) <= i {
				return ErrShort
			}
			v.HasPictureID = true
			if payload[i]&bitM != 0 {
				if len(payload) <= i+1 {
					return ErrShort
				}
				v.PictureID = uint16(payload[i]&^bitM)<<8 | uint16(payload[i+1])
				v.PictureIDLen = 2
			} else {
				v.PictureID = uint16(payload[i])
				v.PictureIDLen = 1
			}
			i += v.PictureIDLen
		}
		if ext&bitL != 0 {
			if len(payload) <= i {
				return ErrShort
			}
			v.HasTL0PICIDX = true
			v.TL0PICIDX = payload[i]
			i++
		}
		// T and K share one byte; each part is only meaningful when its
		// own bit is set (RFC 7741: receivers ignore the other part).
		if ext&(bitT|bitK) != 0 {
			if len(payload) <= i {
				return ErrShort
			}
			if ext&bitT != 0 {
				v.HasTID = true
				v.TID = payload[i] >> 6
				v.LayerSync = payload[i]&bitY != 0
			}
			if ext&bitK != 0 {
				v.HasKeyIdx = true
				v.KeyIdx = payload[i] & maskKey
			}
			i++
		}
	}
	v.Size = i
	v.Keyframe = v.FrameStart() && len(payload) > i && payload[i]&bitP == 0
	*d = v
	return nil
}

// Rewrite copies src, a payload whose descriptor d was parsed from it, to
// dst with the picture id and TL0PICIDX replaced, and returns the bytes
// written (len(src)). The layout stays the same, so the payload keeps its
// length: a 15-bit id stays 15 bits, a 7-bit id keeps the low 7 bits of
// pictureID (it wraps as the sender's would), and a field src lacks stays
// absent. dst and src may be the same slice to rewrite in place.
//
// It returns ErrMismatch if d cannot describe src (checked so that a wrong d
// fails instead of corrupting the packet) and ErrDstShort if dst is too
// small; dst is not written then.
func Rewrite(dst, src []byte, d *Descriptor, pictureID uint16, tl0 uint8) (int, error) {
	if err := check(src, d); err != nil {
		return 0, err
	}
	if len(dst) < len(src) {
		return 0, ErrDstShort
	}
	n := copy(dst, src)
	i := extStart
	if d.HasPictureID {
		if d.PictureIDLen == 2 {
			dst[i] = bitM | byte(pictureID>>8)&^bitM
			dst[i+1] = byte(pictureID)
		} else {
			dst[i] = byte(pictureID) &^ bitM
		}
		i += d.PictureIDLen
	}
	if d.HasTL0PICIDX {
		dst[i] = tl0
	}
	return n, nil
}

// check verifies the bits of src that say where the fields Rewrite writes
// are, against d. It does not re-parse the rest: a d from Parse(src) passes.
func check(src []byte, d *Descriptor) error {
	if d.Size < 1 || d.Size > len(src) {
		return ErrMismatch
	}
	if !d.HasPictureID && !d.HasTL0PICIDX {
		return nil // nothing to write, so nothing to locate
	}
	if d.Size < extStart || src[0]&bitX == 0 {
		return ErrMismatch
	}
	ext := src[1]
	if (ext&bitI != 0) != d.HasPictureID || (ext&bitL != 0) != d.HasTL0PICIDX {
		return ErrMismatch
	}
	end := extStart
	if d.HasPictureID {
		if d.PictureIDLen != 1 && d.PictureIDLen != 2 {
			return ErrMismatch
		}
		end += d.PictureIDLen
		if end > d.Size || (src[extStart]&bitM != 0) != (d.PictureIDLen == 2) {
			return ErrMismatch
		}
	}
	if d.HasTL0PICIDX {
		end++
	}
	if end > d.Size {
		return ErrMismatch
	}
	return nil
}
