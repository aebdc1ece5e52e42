package sfu

import "sync"

// maxPacketSize is the largest RTP packet the SFU handles; pion's receive
// MTU is the same.
const maxPacketSize = 1500

// PacketCache keeps the last packets of one up track by sequence number so
// that NACKs from any subscriber can be answered without asking the
// publisher. Slots are preallocated: Put and Get do not allocate.
type PacketCache struct {
	mu    sync.Mutex
	slots []cacheSlot
	// newest is the highest sequence number stored, extended to 32 bits so
	// wrap-around compares correctly; valid once started is set.
	newest  uint32
	started bool
}

type cacheSlot struct {
	seq uint32 // extended sequence number
	n   int    // 0 means empty
	buf [maxPacketSize]byte
}

// NewPacketCache returns a cache holding up to size packets.
func NewPacketCache(size int) *PacketCache {
	if size < 1 {
		size = 1
	}
	return &PacketCache{slots: make([]cacheSlot, size)}
}

// Put stores a copy of pkt, the raw RTP packet with sequence number seq.
// Packets that are too old or too large are ignored.
func (c *PacketCache) Put(seq uint16, pkt []byte) {
	if len(pkt) > maxPacketSize || len(pkt) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	ext, ok := c.extend(seq)
	if !ok {
		return
	}
	s := &c.slots[ext%uint32(len(c.slots))]
	s.seq = ext
	s.n = copy(s.buf[:], pkt)
}

// Get copies the packet with sequence number seq into dst and returns its
// length, or 0 if it is no longer (or never was) in the cache.
func (c *PacketCache) Get(seq uint16, dst []byte) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.started {
		return 0
	}
	ext := c.lookup(seq)
	s := &c.slots[ext%uint32(len(c.slots))]
	if s.n == 0 || s.seq != ext || len(dst) < s.n {
		return 0
	}
	return copy(dst, s.buf[:s.n])
}

// extend maps seq to the extended sequence space and advances newest. It
// refuses packets older than the cache holds.
func (c *PacketCache) extend(seq uint16) (uint32, bool) {
	if !c.started {
		c.started = true
		// Start far from zero so that packets slightly older than the first
		// one still map to positive numbers.
		c.newest = 1<<16 + uint32(seq)
		return c.newest, true
	}
	ext := c.lookup(seq)
	if ext > c.newest {
		c.newest = ext
	}
	if c.newest-ext >= uint32(len(c.slots)) {
		return 0, false
	}
	return ext, true
}

// lookup maps seq to the extended number closest to newest.
func (c *PacketCache) lookup(seq uint16) uint32 {
	delta := int16(seq - uint16(c.newest))
	return uint32(int64(c.newest) + int64(delta))
}
