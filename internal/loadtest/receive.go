package loadtest

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/quartet-rtc/quartet/internal/client"
)

// trackReader reads one received track. Only its goroutine touches seq,
// ctr, latency and the first-packet fields until it ends; the atomics feed
// the live progress line.
//
// Loss is counted three ways. Audio reaches receivers with its
// publisher's sequence numbers, so what was sent from the first packet
// that arrived on is what should have arrived. Video carries the
// publisher's own packet counter in its payload (the synthetic marked
// layout), which the server's renumbering (padding it adds, packets it
// hides) does not touch. Simulcast video is counted over the span of the
// server's sequence numbers the receiver saw, padding included: the server
// makes one contiguous stream of the layers it switches between.
type trackReader struct {
	p         *participant
	sid       string // the server's track sid
	video     bool
	simulcast bool
	seq       seqTracker
	ctr       seqTracker // the publisher's packet counters of marked video
	lowestCtr int64      // the lowest counter received; -1 before any
	latency   histogram

	// sent is the publisher's count of the track, if known: what was sent
	// from firstIndex on is what this receiver should have received.
	sent       *client.TrackCounter
	firstIndex int64  // which packet of the track arrived first
	firstExt   uint64 // its extended sequence number in seq

	// layers counts the media packets of each simulcast layer (marked
	// synthetic video), lowest first; read once the reader is done.
	layers [maxLayers]int64

	packets, bytes, lost  atomic.Int64
	padding, paddingBytes atomic.Int64 // padding-only packets (the server's probes)
	done                  chan struct{}
}

// maxLayers is how many simulcast layers are counted apart.
const maxLayers = 3

func newTrackReader(p *participant, t *webrtc.TrackRemote, simulcast bool) *trackReader {
	return &trackReader{p: p, sid: t.ID(), video: t.Kind() == webrtc.RTPCodecTypeVideo, simulcast: simulcast,
		lowestCtr: -1, done: make(chan struct{})}
}

// run reads until the track ends, when the client closes.
func (r *trackReader) run(t *webrtc.TrackRemote) {
	defer close(r.done)
	buf := make([]byte, 1500)
	var hdr rtp.Header
	for {
		n, _, err := t.Read(buf)
		if err != nil {
			return
		}
		now := time.Now()
		hlen, err := hdr.Unmarshal(buf[:n])
		if err != nil {
			continue
		}
		payload := buf[hlen:n]
		if hdr.Padding && len(payload) > 0 {
			pad := int(payload[len(payload)-1])
			if pad == 0 || pad > len(payload) {
				continue
			}
			payload = payload[:len(payload)-pad]
		}
		first := !r.seq.started
		r.seq.add(hdr.SequenceNumber)
		if first {
			r.placeFirst(hdr.SequenceNumber)
		}
		if len(payload) == 0 {
			r.padding.Add(1)
			r.paddingBytes.Add(int64(n - hlen))
			continue
		}
		r.p.sawMedia(now, r.video)
		if p, ok := client.ParseSynth(r.video, payload); ok {
			r.latency.add(now.Sub(p.SentAt))
			if p.Marked {
				if p.Layer < maxLayers {
					r.layers[p.Layer]++
				}
				r.ctr.add(uint16(p.Counter))
				if c := int64(p.Counter); r.lowestCtr < 0 || c < r.lowestCtr {
					r.lowestCtr = c
				}
			}
		}
		r.packets.Add(1)
		r.bytes.Add(int64(len(payload)))
		r.lost.Store(r.liveLost())
	}
}

// counted says whether loss is counted by the publisher's counter.
func (r *trackReader) counted() bool { return !r.simulcast && r.ctr.started }

func (r *trackReader) liveLost() int64 {
	if r.counted() {
		return r.ctr.lost()
	}
	return r.seq.lost()
}

// placeFirst finds where in its publisher's stream the first packet fell.
func (r *trackReader) placeFirst(seq uint16) {
	r.firstExt = r.seq.first
	sent := r.p.run.sentTrack(r.sid)
	if sent == nil {
		return
	}
	r.sent = sent
	if firstSeq, ok := sent.FirstSeq(); ok {
		r.firstIndex = packetIndex(firstSeq, seq, sent.Packets.Load())
	}
}

// expectedAndLost is what the publisher sent this receiver, from the first
// packet that arrived to the last one sent, and how much of it never came:
// packets sent after the server or the path went away count as lost. Once
// the readers are done and the senders stopped. Without the publisher's
// count it falls back to the span received.
func (r *trackReader) expectedAndLost() (expected, lost int64) {
	switch {
	case r.simulcast:
		expected = r.seq.expected()
		return expected, max(expected-r.seq.unique, 0)
	case r.counted():
		expected = r.ctr.expected()
		if r.sent != nil {
			expected = max(r.sent.Packets.Load()-r.lowestCtr, expected)
		}
		return expected, max(expected-r.ctr.unique, 0)
	}
	expected = r.seq.expected()
	if r.sent != nil {
		lowest := r.firstIndex - int64(r.firstExt-r.seq.first) // a late packet may precede the first
		expected = max(r.sent.Packets.Load()-lowest, expected)
	}
	return expected, max(expected-r.seq.unique, 0)
}

// receiveTotals sums what the readers of a run counted; expected and lost
// are per expectedAndLost.
type receiveTotals struct {
	tracks, videoTracks                                    int
	packets, bytes, expected, lost, outOfOrder, duplicates int64
	padding, paddingBytes                                  int64
	layers                                                 [maxLayers]int64
	latency                                                histogram
}

// trackSet holds every reader of a run.
type trackSet struct {
	mu      sync.Mutex
	readers []*trackReader
}

func (s *trackSet) add(r *trackReader) {
	s.mu.Lock()
	s.readers = append(s.readers, r)
	s.mu.Unlock()
}

func (s *trackSet) all() []*trackReader {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*trackReader(nil), s.readers...)
}

// live returns packets, bytes and lost packets so far, from any goroutine.
func (s *trackSet) live() (packets, bytes, lost int64) {
	for _, r := range s.all() {
		packets += r.packets.Load()
		bytes += r.bytes.Load()
		lost += r.lost.Load()
	}
	return packets, bytes, lost
}

// totals waits for every reader to end and sums their counts. The clients
// must be closed first, or it waits forever.
func (s *trackSet) totals() receiveTotals {
	var t receiveTotals
	for _, r := range s.all() {
		<-r.done
		t.tracks++
		if r.video {
			t.videoTracks++
		}
		t.packets += r.packets.Load()
		t.bytes += r.bytes.Load()
		t.padding += r.padding.Load()
		t.paddingBytes += r.paddingBytes.Load()
		expected, lost := r.expectedAndLost()
		t.expected += expected
		t.lost += lost
		if r.counted() {
			t.outOfOrder += r.ctr.outOfOrder
			t.duplicates += r.ctr.duplicates
		} else {
			t.outOfOrder += r.seq.outOfOrder
			t.duplicates += r.seq.duplicates
		}
		for i, n := range r.layers {
			t.layers[i] += n
		}
		t.latency.merge(&r.latency)
	}
	return t
}
