package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/ipv4"
)

// paceTick is how often a paced generator wakes up; it sends what is due
// in one burst, so bursts are about pps/1000 datagrams.
const paceTick = time.Millisecond

// listenLoopback opens a UDP socket on 127.0.0.1 and a free port with
// socketBuffer-sized kernel buffers.
func listenLoopback() (*net.UDPConn, error) {
	conn, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), 0)))
	if err != nil {
		return nil, fmt.Errorf("listen on 127.0.0.1: %w", err)
	}
	if err := conn.SetReadBuffer(socketBuffer); err != nil {
		conn.Close()
		return nil, fmt.Errorf("set read buffer: %w", err)
	}
	if err := conn.SetWriteBuffer(socketBuffer); err != nil {
		conn.Close()
		return nil, fmt.Errorf("set write buffer: %w", err)
	}
	return conn, nil
}

// fillPacket writes seq into the first 8 bytes of b and a pattern derived
// from it into the rest, so a receiver can tell a datagram arrived intact.
func fillPacket(b []byte, seq uint64) {
	binary.BigEndian.PutUint64(b, seq)
	for i := 8; i < len(b); i++ {
		b[i] = byte(seq) + byte(i)
	}
}

// validPacket reports whether b is a datagram fillPacket wrote with the
// given size.
func validPacket(b []byte, size int) bool {
	if len(b) != size || len(b) < 8 {
		return false
	}
	seq := binary.BigEndian.Uint64(b)
	for i := 8; i < len(b); i++ {
		if b[i] != byte(seq)+byte(i) {
			return false
		}
	}
	return true
}

// generator sends numbered datagrams of one size to the forwarder.
type generator struct {
	conn *net.UDPConn
	pc   *ipv4.PacketConn
	msgs []ipv4.Message
	seq  uint64
}

func newGenerator(dst netip.AddrPort, payload int) (*generator, error) {
	conn, err := listenLoopback()
	if err != nil {
		return nil, err
	}
	msgs := make([]ipv4.Message, batchSize)
	addr := net.UDPAddrFromAddrPort(dst)
	for i := range msgs {
		msgs[i] = ipv4.Message{Buffers: [][]byte{make([]byte, payload)}, Addr: addr}
	}
	return &generator{conn: conn, pc: ipv4.NewPacketConn(conn), msgs: msgs}, nil
}

func (g *generator) close() error { return g.conn.Close() }

// run sends for d at pps datagrams per second (0: as fast as it can) and
// returns how many it sent.
func (g *generator) run(ctx context.Context, pps int, d time.Duration) (uint64, error) {
	start := time.Now()
	var sent uint64
	for {
		elapsed := time.Since(start)
		if elapsed >= d {
			return sent, nil
		}
		if err := ctx.Err(); err != nil {
			return sent, err
		}
		due := uint64(batchSize)
		if pps > 0 {
			target := uint64(elapsed.Seconds() * float64(pps))
			due = target - min(sent, target)
		}
		if due == 0 {
			time.Sleep(paceTick)
			continue
		}
		for due > 0 {
			n := min(due, batchSize)
			if err := g.send(int(n)); err != nil {
				return sent, err
			}
			sent += n
			due -= n
		}
	}
}

// send writes the next n datagrams in sendmmsg calls.
func (g *generator) send(n int) error {
	for i := range n {
		fillPacket(g.msgs[i].Buffers[0], g.seq)
		g.seq++
	}
	for off := 0; off < n; {
		k, err := g.pc.WriteBatch(g.msgs[off:n], 0)
		if err != nil {
			return fmt.Errorf("generator write: %w", err)
		}
		off += k
	}
	return nil
}

// sink counts the datagrams arriving on one socket. Its goroutine owns
// the socket's reads; the counters are atomic for the measuring goroutine.
type sink struct {
	conn     *net.UDPConn
	received atomic.Uint64
	bad      atomic.Uint64 // wrong size, or (when verifying) wrong bytes or a repeat
}

func (s *sink) run(payload int, verify bool) {
	pc := ipv4.NewPacketConn(s.conn)
	msgs := make([]ipv4.Message, batchSize)
	for i := range msgs {
		// One byte more than expected, so a longer datagram shows.
		msgs[i].Buffers = [][]byte{make([]byte, payload+1)}
	}
	var seen map[uint64]bool // sequence numbers received, when verifying
	if verify {
		seen = make(map[uint64]bool)
	}
	for {
		n, err := pc.ReadBatch(msgs, 0)
		if err != nil {
			return // closed; any other read error ends counting too
		}
		for _, m := range msgs[:n] {
			if !accept(m.Buffers[0][:m.N], payload, seen) {
				s.bad.Add(1)
			}
		}
		s.received.Add(uint64(n))
	}
}

// accept reports whether b has the generator's size and, when seen is not
// nil, is intact and the first copy of its sequence number.
func accept(b []byte, payload int, seen map[uint64]bool) bool {
	if len(b) != payload {
		return false
	}
	if seen == nil {
		return true
	}
	seq := binary.BigEndian.Uint64(b)
	if !validPacket(b, payload) || seen[seq] {
		return false
	}
	seen[seq] = true
	return true
}

// sinkSet is the forwarder's destinations.
type sinkSet struct {
	sinks []*sink
	wg    sync.WaitGroup
}

func openSinks(n, payload int, verify bool) (*sinkSet, error) {
	s := &sinkSet{}
	for range n {
		conn, err := listenLoopback()
		if err != nil {
			s.close()
			return nil, err
		}
		k := &sink{conn: conn}
		s.sinks = append(s.sinks, k)
		s.wg.Go(func() { k.run(payload, verify) })
	}
	return s, nil
}

func (s *sinkSet) addrs() []netip.AddrPort {
	a := make([]netip.AddrPort, len(s.sinks))
	for i, k := range s.sinks {
		a[i] = k.conn.LocalAddr().(*net.UDPAddr).AddrPort()
	}
	return a
}

func (s *sinkSet) total() (received, bad uint64) {
	for _, k := range s.sinks {
		received += k.received.Load()
		bad += k.bad.Load()
	}
	return received, bad
}

func (s *sinkSet) perSink() []uint64 {
	c := make([]uint64, len(s.sinks))
	for i, k := range s.sinks {
		c[i] = k.received.Load()
	}
	return c
}

// close closes the sockets and waits for the counting goroutines.
func (s *sinkSet) close() error {
	var errs []error
	for _, k := range s.sinks {
		errs = append(errs, k.conn.Close())
	}
	s.wg.Wait()
	return errors.Join(errs...)
}

// waitDrain waits until the sinks hold want datagrams or their count has
// not moved for quiet, and returns when it last moved (at least since).
func waitDrain(ctx context.Context, s *sinkSet, want uint64, since time.Time, quiet time.Duration) time.Time {
	last := since
	lastCount, _ := s.total()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		n, _ := s.total()
		now := time.Now()
		if n != lastCount {
			lastCount = n
			if now.After(since) {
				last = now
			}
		}
		if n >= want || now.Sub(last) > quiet {
			return last
		}
		select {
		case <-ctx.Done():
			return last
		case <-tick.C:
		}
	}
}
