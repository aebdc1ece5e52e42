package sfu

import (
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"

	"github.com/quartet-rtc/quartet/internal/room"
)

// keyframeInterval is the minimum time between two keyframe requests sent
// to a publisher for one layer of a track, however many subscribers ask.
const keyframeInterval = 500 * time.Millisecond

// loudLevel is the audio level (-dBov) under which a packet counts as voice.
const loudLevel = 50

// maxTemporal is how many VP8 temporal layers are measured; a higher TID
// counts as the top one.
const maxTemporal = 4

// UpTrack is a track a participant publishes: one stream, or the simulcast
// layers of one video source. Each layer's reader goroutine forwards to
// every DownTrack attached; a DownTrack takes the packets of the layer it
// has selected.
type UpTrack struct {
	info   room.TrackInfo // Layers lists the simulcast layers, if any
	video  bool
	vp8    bool
	codec  webrtc.RTPCodecParameters
	pc     *webrtc.PeerConnection // the publisher connection, for PLI
	pool   *sync.Pool
	log    *slog.Logger
	layers []*upLayer // lowest first; one for a track without simulcast
	// dynacast is the publisher's layer state as last sent to it (router
	// tick goroutine only).
	dynacast dynacastState

	audioLevelID uint8

	downsMu sync.Mutex                   // serialises changes to downs
	downs   atomic.Pointer[[]*DownTrack] // copy on write; read per packet without a lock

	readers atomic.Int32 // layer readers running; the track ends when the last stops
	sinks   atomic.Int32 // sinks attached, which want arrival times
	muted   atomic.Bool
	ended   atomic.Bool // the publisher stopped sending; being unpublished
	// Voice activity since the last speaker tick.
	packets, loudPackets, loudness atomic.Int64
}

// upLayer is one simulcast layer of an up track, or its only stream.
type upLayer struct {
	up     *UpTrack
	index  int
	rid    string
	remote atomic.Pointer[webrtc.TrackRemote] // set when its first packet arrived
	cache  *PacketCache                       // nil for audio: audio is not retransmitted

	lastKeyframeReq atomic.Int64 // unix nanos
	// bytes counts payload bytes by temporal layer since the last rate
	// tick; rates are the bits per second of temporal layers 0..i together,
	// as measured at the last tick, and active says the layer flowed then.
	bytes   [maxTemporal]atomic.Int64
	rates   [maxTemporal]atomic.Int64
	active  atomic.Bool
	packets atomic.Uint64 // received, for the per-layer metric
}

func newUpTrack(info room.TrackInfo, codec webrtc.RTPCodecParameters, kind webrtc.RTPCodecType,
	receiver *webrtc.RTPReceiver, pc *webrtc.PeerConnection, cacheSize int, pool *sync.Pool, log *slog.Logger,
) *UpTrack {
	u := &UpTrack{
		info:  info,
		video: kind == webrtc.RTPCodecTypeVideo,
		vp8:   strings.EqualFold(codec.MimeType, webrtc.MimeTypeVP8),
		codec: codec,
		pc:    pc,
		pool:  pool,
		log:   log.With("track", info.SID, "kind", info.Kind, "mime", info.MimeType),
	}
	u.muted.Store(info.Muted)
	count := max(len(info.Layers), 1)
	for i := range count {
		l := &upLayer{up: u, index: i}
		if len(info.Layers) > 0 {
			l.rid = info.Layers[i].RID
		}
		if u.video {
			l.cache = NewPacketCache(cacheSize)
		}
		u.layers = append(u.layers, l)
	}
	u.dynacast.init(count)
	for _, ext := range receiver.GetParameters().HeaderExtensions {
		if ext.URI == audioLevelURI {
			u.audioLevelID = uint8(ext.ID)
		}
	}
	u.downs.Store(&[]*DownTrack{})
	return u
}

// simulcast reports whether the track has more than one layer.
func (u *UpTrack) simulcast() bool { return len(u.layers) > 1 }

// layerByRID finds the layer a simulcast stream carries; nil for an rid
// the offer did not list. A track of one stream has one layer, whatever
// its rid.
func (u *UpTrack) layerByRID(rid string) *upLayer {
	if !u.simulcast() {
		return u.layers[0]
	}
	for _, l := range u.layers {
		if l.rid == rid {
			return l
		}
	}
	return nil
}

// run reads one layer's packets and fans them out until the stream ends.
func (l *upLayer) run() {
	remote := l.remote.Load()
	for {
		pkt := getPacket(l.up.pool)
		n, _, err := remote.Read(pkt.buf[:])
		if err != nil {
			pkt.release()
			return
		}
		if l.up.sinks.Load() > 0 { // only sinks read it: no clock read per packet otherwise
			pkt.arrival = time.Now()
		}
		l.fanOut(pkt, n)
	}
}

// readRTCP reads the publisher's RTCP for one layer, so that pion's
// interceptors see it, and hands its sender reports to the down tracks
// that want them (sinks), until the stream ends.
func (l *upLayer) readRTCP(r *webrtc.RTPReceiver) {
	remote := l.remote.Load()
	ssrc, rid := uint32(remote.SSRC()), remote.RID()
	for {
		var pkts []rtcp.Packet
		var err error
		if rid == "" {
			pkts, _, err = r.ReadRTCP()
		} else {
			pkts, _, err = r.ReadSimulcastRTCP(rid)
		}
		if err != nil {
			return
		}
		for _, pkt := range pkts {
			if sr, ok := pkt.(*rtcp.SenderReport); ok && sr.SSRC == ssrc {
				l.senderReport(&room.SenderReport{SSRC: sr.SSRC, NTPTime: sr.NTPTime, RTPTime: sr.RTPTime,
					PacketCount: sr.PacketCount, OctetCount: sr.OctetCount, Arrival: time.Now()})
			}
		}
	}
}

// senderReport passes one sender report to every down track.
func (l *upLayer) senderReport(sr *room.SenderReport) {
	for _, d := range *l.up.downs.Load() {
		d.senderReport(sr, l.index)
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
func (l *upLayer) fanOut(pkt *packet, n int) {
	if err := pkt.parse(n); err != nil {
		pkt.release()
		return
	}
	l.observe(pkt, n)
	pkt.stripExtensions()
	downs := *l.up.downs.Load()
	pkt.retain(int32(len(downs)))
	for _, d := range downs {
		d.forward(pkt, l.index)
	}
	pkt.release()
}

// observe caches video packets, reads their VP8 descriptor and counts
// their bytes, and measures audio level, before the header extensions are
// stripped.
func (l *upLayer) observe(pkt *packet, n int) {
	u := l.up
	l.packets.Add(1)
	if u.video {
		l.cache.Put(pkt.hdr.SequenceNumber, pkt.buf[:n])
		tid := 0
		if u.vp8 {
			if pkt.parseVP8() {
				pkt.keyframe = pkt.vp8.Keyframe
				if pkt.vp8.HasTID {
					tid = min(int(pkt.vp8.TID), maxTemporal-1)
				}
			}
		} else {
			pkt.keyframe = IsKeyframe(u.codec.MimeType, pkt.hdr.Payload)
		}
		l.bytes[tid].Add(int64(n))
		return
	}
	l.bytes[0].Add(int64(n))
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

// measure turns the bytes counted since the last call, elapsed ago, into
// the layers' rates. It runs on the router's tick.
func (u *UpTrack) measure(elapsed time.Duration) {
	for _, l := range u.layers {
		var sum int64
		for t := range maxTemporal {
			sum += l.bytes[t].Swap(0)
			sample := sum * 8 * int64(time.Second) / int64(max(elapsed, time.Millisecond))
			if old := l.rates[t].Load(); old > 0 && sample > 0 {
				// Smoothed over about a second: a keyframe is a burst.
				sample = (2*old + sample) / 3
			}
			l.rates[t].Store(sample)
		}
		l.active.Store(sum > 0)
	}
}

// rate is the measured bitrate of layer s up to temporal layer t (all of
// it when t < 0); 0 for a layer that did not flow at the last tick.
func (u *UpTrack) rate(s, t int) int {
	if t < 0 || t >= maxTemporal {
		t = maxTemporal - 1
	}
	return int(u.layers[s].rates[t].Load())
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

// RequestKeyframe asks the publisher for a keyframe on every layer that
// flows, each at most once per keyframeInterval.
func (u *UpTrack) RequestKeyframe() {
	for _, l := range u.layers {
		l.requestKeyframe()
	}
}

// requestKeyframe asks the publisher for a keyframe of this layer, at most
// once per keyframeInterval.
func (l *upLayer) requestKeyframe() {
	remote := l.remote.Load()
	if !l.up.video || remote == nil {
		return
	}
	now := time.Now().UnixNano()
	last := l.lastKeyframeReq.Load()
	if now-last < int64(keyframeInterval) || !l.lastKeyframeReq.CompareAndSwap(last, now) {
		return
	}
	pli := &rtcp.PictureLossIndication{MediaSSRC: uint32(remote.SSRC())}
	if err := l.up.pc.WriteRTCP([]rtcp.Packet{pli}); err != nil {
		l.up.log.Debug("keyframe request failed", "layer", l.index, "err", err)
	}
}
