package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"

	"golang.org/x/net/ipv4"
)

const (
	modePerPacket = "perpacket"
	modeBatch     = "batch"
	modeGSO       = "gso"

	// batchSize is the most datagrams one recvmmsg returns. It is also the
	// most segments of one GSO send, which stays within the kernel's
	// UDP_MAX_SEGMENTS (64 before Linux 6.13).
	batchSize = 64
	// maxDatagram is the largest UDP payload over IPv4, and the size of
	// every read buffer, so nothing is ever truncated.
	maxDatagram = 65507
	// socketBuffer is asked for on every socket; the kernel caps it at
	// net.core.rmem_max / wmem_max.
	socketBuffer = 4 << 20
)

var modes = []string{modePerPacket, modeBatch, modeGSO}

// forwardStats counts what a forwarder did. The forwarding goroutine owns
// it; read it only after run has returned.
type forwardStats struct {
	Read        uint64 `json:"read"`         // datagrams read
	Reads       uint64 `json:"reads"`        // read calls that returned data
	Forwarded   uint64 `json:"forwarded"`    // copies the kernel accepted
	WriteErrors uint64 `json:"write_errors"` // copies the kernel refused
}

// forwarder re-sends every datagram it reads on conn to each destination,
// the least work a media server can do per forwarded packet.
type forwarder struct {
	mode  string
	conn  *net.UDPConn
	pc    *ipv4.PacketConn
	dests []netip.AddrPort // for the per-packet path, which does not allocate
	addrs []net.Addr       // the same, for WriteBatch
	log   *slog.Logger
	stats forwardStats
}

func newForwarder(mode string, conn *net.UDPConn, dests []netip.AddrPort, log *slog.Logger) (*forwarder, error) {
	switch mode {
	case modePerPacket, modeBatch, modeGSO:
	default:
		return nil, fmt.Errorf("unknown mode %q (want %s, %s or %s)", mode, modePerPacket, modeBatch, modeGSO)
	}
	if len(dests) == 0 {
		return nil, errors.New("no destinations")
	}
	addrs := make([]net.Addr, len(dests))
	for i, d := range dests {
		addrs[i] = net.UDPAddrFromAddrPort(d)
	}
	return &forwarder{mode: mode, conn: conn, pc: ipv4.NewPacketConn(conn), dests: dests, addrs: addrs, log: log}, nil
}

// run forwards until conn is closed, then returns nil.
func (f *forwarder) run() error {
	var err error
	switch f.mode {
	case modePerPacket:
		err = f.runPerPacket()
	case modeBatch:
		err = f.runBatch(plainCopier{dests: f.addrs})
	case modeGSO:
		err = f.runBatch(newGSOCopier(f.addrs))
	}
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// runPerPacket makes one read syscall per datagram and one write syscall
// per copy, like a naive forwarder.
func (f *forwarder) runPerPacket() error {
	buf := make([]byte, maxDatagram)
	for {
		n, _, err := f.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return fmt.Errorf("read: %w", err)
		}
		f.stats.Read++
		f.stats.Reads++
		for _, d := range f.dests {
			if _, err := f.conn.WriteToUDPAddrPort(buf[:n], d); err != nil {
				if errors.Is(err, net.ErrClosed) {
					return err
				}
				f.writeFailed(err, 1)
				continue
			}
			f.stats.Forwarded++
		}
	}
}

// copier turns one read batch into the messages that send it to every
// destination.
type copier interface {
	appendCopies(wms []ipv4.Message, pkts [][]byte) []ipv4.Message
}

// runBatch reads up to batchSize datagrams per recvmmsg and writes all
// their copies with as few sendmmsg calls as the kernel allows.
func (f *forwarder) runBatch(c copier) error {
	rms := make([]ipv4.Message, batchSize)
	for i := range rms {
		rms[i].Buffers = [][]byte{make([]byte, maxDatagram)}
	}
	pkts := make([][]byte, batchSize)
	wms := make([]ipv4.Message, 0, batchSize*len(f.addrs))
	for {
		n, err := f.pc.ReadBatch(rms, 0)
		if err != nil {
			return fmt.Errorf("read batch: %w", err)
		}
		f.stats.Read += uint64(n)
		f.stats.Reads++
		for i := range n {
			pkts[i] = rms[i].Buffers[0][:rms[i].N]
		}
		wms = c.appendCopies(wms[:0], pkts[:n])
		if err := f.writeAll(wms); err != nil {
			return err
		}
	}
}

// writeAll sends wms, several sendmmsg calls if the kernel takes fewer
// than all. A message the kernel refuses is counted and skipped.
func (f *forwarder) writeAll(wms []ipv4.Message) error {
	for len(wms) > 0 {
		n, err := f.pc.WriteBatch(wms, 0)
		n = max(n, 0) // x/net passes on sendmmsg's -1
		for _, m := range wms[:n] {
			// One buffer per datagram: a GSO message carries several.
			f.stats.Forwarded += uint64(len(m.Buffers))
		}
		wms = wms[n:]
		if err == nil {
			continue
		}
		if errors.Is(err, net.ErrClosed) || len(wms) == 0 {
			return fmt.Errorf("write batch: %w", err)
		}
		f.writeFailed(err, len(wms[0].Buffers))
		wms = wms[1:]
	}
	return nil
}

func (f *forwarder) writeFailed(err error, datagrams int) {
	if f.stats.WriteErrors == 0 {
		f.log.Warn("forwarder write failed; counting further failures silently", "err", err)
	}
	f.stats.WriteErrors += uint64(datagrams)
}

// plainCopier sends each datagram to each destination as its own message.
type plainCopier struct {
	dests []net.Addr
}

func (c plainCopier) appendCopies(wms []ipv4.Message, pkts [][]byte) []ipv4.Message {
	for i := range pkts {
		for _, d := range c.dests {
			wms = append(wms, ipv4.Message{Buffers: pkts[i : i+1], Addr: d})
		}
	}
	return wms
}

// gsoCopier sends each run of equal-sized datagrams to each destination as
// one UDP GSO message: the datagrams are the message's buffers, unchanged,
// and the kernel cuts them apart again at the segment size.
type gsoCopier struct {
	dests []net.Addr
	oobs  [][]byte // one UDP_SEGMENT control message per run of a batch
}

func newGSOCopier(dests []net.Addr) gsoCopier {
	oobs := make([][]byte, batchSize)
	for i := range oobs {
		oobs[i] = newSegmentCmsg()
	}
	return gsoCopier{dests: dests, oobs: oobs}
}

func (c gsoCopier) appendCopies(wms []ipv4.Message, pkts [][]byte) []ipv4.Message {
	for start, run := 0, 0; start < len(pkts); run++ {
		end := gsoRunEnd(pkts, start)
		oob := c.oobs[run]
		setSegmentSize(oob, len(pkts[start]))
		for _, d := range c.dests {
			wms = append(wms, ipv4.Message{Buffers: pkts[start:end], OOB: oob, Addr: d})
		}
		start = end
	}
	return wms
}

// gsoRunEnd returns the end of the run of datagrams from start that one
// GSO send can carry: all as long as the first, except that the last may
// be shorter, at most batchSize of them and maxDatagram bytes in all.
func gsoRunEnd(pkts [][]byte, start int) int {
	seg := len(pkts[start])
	if seg == 0 {
		return start + 1 // a zero segment size means no segmentation
	}
	total, i := 0, start
	for i < len(pkts) && i-start < batchSize {
		n := len(pkts[i])
		if n > seg || total+n > maxDatagram {
			break
		}
		total += n
		i++
		if n < seg {
			break
		}
	}
	return i
}
