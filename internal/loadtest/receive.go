package loadtest

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/quartet-rtc/quartet/internal/client"
)

// trackReader reads one received track. Only its goroutine touches seq and
// latency until it ends; the atomics feed the live progress line.
type trackReader struct {
	p       *participant
	video   bool
	seq     seqTracker
	latency histogram

	packets, bytes, lost atomic.Int64
	done                 chan struct{}
}

func newTrackReader(p *participant, t *webrtc.TrackRemote) *trackReader {
	return &trackReader{p: p, video: t.Kind() == webrtc.RTPCodecTypeVideo, done: make(chan struct{})}
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
		r.p.sawMedia(now, r.video)
		r.seq.add(hdr.SequenceNumber)
		if sent, ok := client.SentAt(r.video, buf[hlen:n]); ok {
			r.latency.add(now.Sub(sent))
		}
		r.packets.Add(1)
		r.bytes.Add(int64(n - hlen))
		r.lost.Store(r.seq.lost())
	}
}

// receiveTotals sums what the readers of a run counted.
type receiveTotals struct {
	tracks                                                 int
	packets, bytes, expected, lost, outOfOrder, duplicates int64
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
		t.packets += r.packets.Load()
		t.bytes += r.bytes.Load()
		t.expected += r.seq.expected()
		t.lost += r.seq.lost()
		t.outOfOrder += r.seq.outOfOrder
		t.duplicates += r.seq.duplicates
		t.latency.merge(&r.latency)
	}
	return t
}
