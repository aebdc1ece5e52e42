package sfu

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"

	"github.com/quartet-rtc/quartet/internal/room"
)

// keyframeInterval is the minimum time between two keyframe requests sent
// to a publisher for one track, however many subscribers ask.
const keyframeInterval = 500 * time.Millisecond

// loudLevel is the audio level (-dBov) under which a packet counts as voice.
const loudLevel = 50

// UpTrack is a track a participant publishes. Its reader goroutine owns the
// forwarding state of every DownTrack attached to it.
type UpTrack struct {
	info   room.TrackInfo
	video  bool
	codec  webrtc.RTPCodecParameters
	remote *webrtc.TrackRemote
	pc     *webrtc.PeerConnection // the publisher connection, for PLI
	cache  *PacketCache           // nil for audio: audio is not retransmitted
	pool   *sync.Pool
	log    *slog.Logger

	audioLevelID uint8

	downsMu sync.Mutex                   // serialises changes to downs
	downs   atomic.Pointer[[]*DownTrack] // copy on write; read per packet without a lock

	lastKeyframeReq atomic.Int64 // unix nanos
	sinks           atomic.Int32 // sinks attached, which want arrival times
	muted           atomic.Bool
	ended           atomic.Bool // the publisher stopped sending; being unpublished
	// Voice activity since the last speaker tick.
	packets, loudPackets, loudness atomic.Int64
}

func newUpTrack(info room.TrackInfo, remote *webrtc.TrackRemote, receiver *webrtc.RTPReceiver,
	pc *webrtc.PeerConnection, cacheSize int, pool *sync.Pool, log *slog.Logger,
) *UpTrack {
	u := &UpTrack{
		info:   info,
		video:  remote.Kind() == webrtc.RTPCodecTypeVideo,
		codec:  remote.Codec(),
		remote: remote,
		pc:     pc,
		pool:   pool,
		log:    log.With("track", info.SID, "kind", info.Kind, "mime", info.MimeType),
	}
	u.muted.Store(info.Muted)
	if u.video {
		u.cache = NewPacketCache(cacheSize)
	}
	for _, ext := range receiver.GetParameters().HeaderExtensions {
		if ext.URI == audioLevelURI {
			u.audioLevelID = uint8(ext.ID)
		}
	}
	u.downs.Store(&[]*DownTrack{})
	return u
}

// run reads the publisher's packets and fans them out until the track ends.
func (u *UpTrack) run() {
	for {
		pkt := getPacket(u.pool)
		n, _, err := u.remote.Read(pkt.buf[:])
		if err != nil {
			pkt.release()
			return
		}
		if u.sinks.Load() > 0 { // only sinks read it: no clock read per packet otherwise
			pkt.arrival = time.Now()
		}
		u.fanOut(pkt, n)
	}
}

// readRTCP reads the publisher's RTCP for this track, so that pion's
// interceptors see it, and hands its sender reports to the down tracks
// that want them (sinks), until the track ends.
func (u *UpTrack) readRTCP(r *webrtc.RTPReceiver) {
	ssrc := uint32(u.remote.SSRC())
	for {
		pkts, _, err := r.ReadRTCP()
		if err != nil {
			return
		}
		for _, pkt := range pkts {
			if sr, ok := pkt.(*rtcp.SenderReport); ok && sr.SSRC == ssrc {
				u.senderReport(&room.SenderReport{SSRC: sr.SSRC, NTPTime: sr.NTPTime, RTPTime: sr.RTPTime,
					PacketCount: sr.PacketCount, OctetCount: sr.OctetCount, Arrival: time.Now()})
			}
		}
	}
}

// senderReport passes one sender report to every down track.
func (u *UpTrack) senderReport(sr *room.SenderReport) {
	for _, d := range *u.downs.Load() {
		d.senderReport(sr)
	}
}

// remoteKind is the track's kind as pion names it.
func (u *UpTrack) remoteKind() webrtc.RTPCodecType {
	if u.video {
		return webrtc.RTPCodecTypeVideo
	}
	return webrtc.RTPCodecTypeAudio
}

// fanOut parses the packet in pkt.buf[:n] and forwards it to every down
// track. It consumes the caller's reference to pkt.
func (u *UpTrack) fanOut(pkt *packet, n int) {
	if err := pkt.parse(n); err != nil {
		pkt.release()
		return
	}
	u.observe(pkt, n)
	pkt.stripExtensions()
	downs := *u.downs.Load()
	pkt.retain(int32(len(downs)))
	for _, d := range downs {
		d.forward(pkt)
	}
	pkt.release()
}

// observe caches video packets and measures audio level, before the
// header extensions are stripped.
func (u *UpTrack) observe(pkt *packet, n int) {
	if u.video {
		u.cache.Put(pkt.hdr.SequenceNumber, pkt.buf[:n])
		pkt.keyframe = IsKeyframe(u.codec.MimeType, pkt.hdr.Payload)
		return
	}
	if u.audioLevelID == 0 {
		return
	}
	if ext := pkt.hdr.GetExtension(u.audioLevelID); len(ext) > 0 {
		level := int64(ext[0] & 0x7F)
		u.packets.Add(1)
		if level < loudLevel {
			u.loudPackets.Add(1)
			u.loudness.Add(127 - level)
		}
	}
}

// speakingLevel returns the voice level (0..1) since the last call and
// whether the track counts as speaking.
func (u *UpTrack) speakingLevel() (float64, bool) {
	packets, loud, sum := u.packets.Swap(0), u.loudPackets.Swap(0), u.loudness.Swap(0)
	if packets == 0 || u.muted.Load() || loud*4 < packets {
		return 0, false
	}
	return float64(sum) / float64(loud) / 127, true
}

func (u *UpTrack) addDown(d *DownTrack) {
	u.downsMu.Lock()
	defer u.downsMu.Unlock()
	old := *u.downs.Load()
	next := make([]*DownTrack, 0, len(old)+1)
	next = append(append(next, old...), d)
	u.downs.Store(&next)
}

func (u *UpTrack) removeDown(d *DownTrack) {
	u.downsMu.Lock()
	defer u.downsMu.Unlock()
	old := *u.downs.Load()
	next := make([]*DownTrack, 0, len(old))
	for _, x := range old {
		if x != d {
			next = append(next, x)
		}
	}
	u.downs.Store(&next)
}

// RequestKeyframe asks the publisher for a keyframe, at most once per
// keyframeInterval.
func (u *UpTrack) RequestKeyframe() {
	if !u.video {
		return
	}
	now := time.Now().UnixNano()
	last := u.lastKeyframeReq.Load()
	if now-last < int64(keyframeInterval) || !u.lastKeyframeReq.CompareAndSwap(last, now) {
		return
	}
	pli := &rtcp.PictureLossIndication{MediaSSRC: uint32(u.remote.SSRC())}
	if err := u.pc.WriteRTCP([]rtcp.Packet{pli}); err != nil {
		u.log.Debug("keyframe request failed", "err", err)
	}
}
