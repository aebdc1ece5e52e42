package sfu

import "sync"

// queued is one packet waiting for a writer. Two words, copied through
// the channel per packet; a sender report for a sink travels as a packet
// whose report is set, so that it keeps its order with the media.
type queued struct {
	down *DownTrack
	pkt  *packet
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
	case q.pkt.report != nil:
		q.down.dst.senderReport(q.pkt.report)
	default:
		if err := q.down.dst.writeRTP(q.pkt); err == nil {
			w.stats.packets.Add(1)
			w.stats.bytes.Add(uint64(len(q.pkt.hdr.Payload) + 12))
		}
	}
	q.pkt.release()
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
