package sfu

import (
	"bytes"
	"testing"

	"github.com/pion/rtcp"
)

func TestPacketCache(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		size    int
		put     []uint16
		get     uint16
		wantHit bool
	}{
		{"hit", 8, []uint16{1, 2, 3}, 2, true},
		{"miss never stored", 8, []uint16{1, 3}, 2, false},
		{"evicted", 4, []uint16{1, 2, 3, 4, 5, 6}, 1, false},
		{"newest after eviction", 4, []uint16{1, 2, 3, 4, 5, 6}, 6, true},
		{"wrap around", 8, []uint16{65534, 65535, 0, 1}, 65535, true},
		{"wrap around new", 8, []uint16{65534, 65535, 0, 1}, 1, true},
		{"late packet kept", 8, []uint16{10, 12, 11}, 11, true},
		{"too old packet dropped", 4, []uint16{10, 20, 11}, 11, false},
		{"future seq", 8, []uint16{10}, 11, false},
		{"empty", 8, nil, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := NewPacketCache(tt.size)
			for _, s := range tt.put {
				c.Put(s, []byte{byte(s), byte(s >> 8), 0xAA})
			}
			buf := make([]byte, maxPacketSize)
			n := c.Get(tt.get, buf)
			if (n > 0) != tt.wantHit {
				t.Fatalf("Get(%d) = %d bytes, want hit=%v", tt.get, n, tt.wantHit)
			}
			if n > 0 && !bytes.Equal(buf[:n], []byte{byte(tt.get), byte(tt.get >> 8), 0xAA}) {
				t.Fatalf("Get(%d) returned %x", tt.get, buf[:n])
			}
		})
	}
}

func TestPacketCacheRejectsOversized(t *testing.T) {
	t.Parallel()
	c := NewPacketCache(4)
	c.Put(1, make([]byte, maxPacketSize+1))
	if n := c.Get(1, make([]byte, 2*maxPacketSize)); n != 0 {
		t.Fatalf("oversized packet was cached (%d bytes)", n)
	}
}

func TestPacketCacheDoesNotAllocate(t *testing.T) {
	c := NewPacketCache(64)
	pkt := make([]byte, 1200)
	buf := make([]byte, maxPacketSize)
	seq := uint16(0)
	allocs := testing.AllocsPerRun(1000, func() {
		seq++
		c.Put(seq, pkt)
		c.Get(seq-3, buf)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per Put+Get, want 0", allocs)
	}
}

func TestNACKedSeqsAreBoundedAndDistinct(t *testing.T) {
	t.Parallel()
	nack := &rtcp.TransportLayerNack{}
	for range 370 { // a full-size NACK naming the same packets again and again
		nack.Nacks = append(nack.Nacks, rtcp.NackPair{PacketID: 100, LostPackets: 0xFFFF})
	}
	seqs := nackedSeqs(nack, nil)
	if len(seqs) != 17 {
		t.Fatalf("%d sequence numbers, want the 17 distinct ones", len(seqs))
	}
	nack.Nacks = nil
	for i := range 370 {
		nack.Nacks = append(nack.Nacks, rtcp.NackPair{PacketID: uint16(i * 17), LostPackets: 0xFFFF})
	}
	if seqs := nackedSeqs(nack, nil); len(seqs) != maxNACKSeqs {
		t.Fatalf("%d sequence numbers, want at most %d", len(seqs), maxNACKSeqs)
	}
}
