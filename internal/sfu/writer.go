package sfu

import (
	"sync"

	"github.com/pion/rtp"

	"github.com/quartet-rtc/quartet/internal/sfu/vp8"
)

// queued is one packet waiting for a writer, with how it is rewritten for
// its destination; a sender report for a sink travels as a packet whose
// report is set, so that it keeps its order with the media.
type queued struct {
	down *DownTrack
	pkt  *packet
	rw   rewrite
}

// writer is the goroutine that sends what forwarders queue for one
// destination owner: a subscriber's PeerConnection (shared by all its down
// tracks) or one in-process sink. Forwarders never wait for it: a full
// queue drops (DownTrack.forward).
type writer struct {
	queue chan queued
	done  chan struct{} // closed to stop loop; what is still queued is released
	stats *peerStats
	wg    sync.WaitGroup // the loop goroutine

	// out and payload are where each packet is rewritten for its
	// destination: the queued packet is shared with other subscribers and
	// stays as it came. Only the loop goroutine uses them.
	out     rtp.Packet
	payload [maxPacketSize]byte
}

func newWriter(size int, stats *peerStats) *writer {
	return &writer{queue: make(chan queued, size), done: make(chan struct{}), stats: stats}
}

// start runs the loop on a goroutine of its own; then, if set, after runs
// on it once the loop ended.
func (w *writer) start(after func()) {
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		w.loop()
		if after != nil {
			after()
		}
	}()
}

// stop ends the loop without waiting for it; wait waits.
func (w *writer) stop() { close(w.done) }
func (w *writer) wait() { w.wg.Wait() }

// enqueue hands an item to the writer; false means the queue is full and
// the caller keeps its reference.
func (w *writer) enqueue(q queued) bool {
	select {
	case w.queue <- q:
		return true
	default:
		return false
	}
}

func (w *writer) loop() {
	for {
		select {
		case <-w.done:
			w.drain()
			return
		case q := <-w.queue:
			w.write(q)
			// Items that were already waiting are taken with a plain
			// receive: a select locks both channels, and this goroutine is
			// the queue's only reader, so these receives never block.
			for range len(w.queue) {
				w.write(<-w.queue)
			}
		}
	}
}

// write sends one queued packet and releases it.
func (w *writer) write(q queued) {
	switch {
	case q.down.closed.Load():
	case q.rw.gen != uint8(q.down.gen.Load()): // numbered before a fresh restart
	case q.pkt.report != nil:
		q.down.dst.senderReport(q.pkt.report)
	default:
		if out := w.rewrite(q); out != nil && q.down.dst.writeRTP(out, q.pkt) == nil {
			w.stats.packets.Add(1)
			w.stats.bytes.Add(uint64(out.Header.MarshalSize() + len(out.Payload) + int(out.Header.PaddingSize)))
			if q.rw.layer >= 0 {
				w.stats.layers[q.rw.layer].Add(1)
			}
		}
	}
	q.pkt.release()
}

// rewrite builds the packet the destination gets in w.out; nil if the
// packet cannot be rewritten.
func (w *writer) rewrite(q queued) *rtp.Packet {
	pkt, out := q.pkt, &w.out
	if pkt.padding > 0 {
		out.Header = rtp.Header{Version: 2, Padding: true, PaddingSize: pkt.padding,
			SequenceNumber: q.rw.seq, Timestamp: q.rw.ts}
		out.Payload = nil
		return out
	}
	out.Header = pkt.hdr.Header
	out.SequenceNumber, out.Timestamp = q.rw.seq, q.rw.ts
	out.Payload = pkt.hdr.Payload
	if q.rw.vp8 {
		n, err := vp8.Rewrite(w.payload[:], pkt.hdr.Payload, &pkt.vp8, q.rw.pic, q.rw.tl0)
		if err != nil {
			return nil
		}
		out.Payload = w.payload[:n]
	}
	return out
}

// drain releases every queued packet without sending it.
func (w *writer) drain() {
	for {
		select {
		case q := <-w.queue:
			q.pkt.release()
		default:
			return
		}
	}
}
