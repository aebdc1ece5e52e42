package turn

import (
	"net"
	"net/netip"
	"sync"
)

// allocTable holds the client addresses pion has an allocation for on one
// listener, from pion's allocation events. pion does not answer a request
// that needs an allocation when there is none, and has no way to ask it
// whether there is one; the guard asks this table instead. On one listener
// the client address stands for the whole 5-tuple.
//
// It counts rather than flags: pion reports an expiry from a timer
// goroutine after it has dropped the allocation, so a new Allocate from
// the same address may be reported first. A count too high for a moment
// only lets a request through to pion; a flag cleared late would answer
// 437 to a live allocation until it expired. Creation is reported before
// pion answers the Allocate, so no request can overtake it.
type allocTable struct {
	mu    sync.Mutex
	count map[netip.AddrPort]int
}

func newAllocTable() *allocTable { return &allocTable{count: map[netip.AddrPort]int{}} }

func (t *allocTable) created(client net.Addr) {
	k := allocKey(client)
	t.mu.Lock()
	defer t.mu.Unlock()
	t.count[k]++
}

func (t *allocTable) deleted(client net.Addr) {
	k := allocKey(client)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.count[k] <= 1 {
		delete(t.count, k)
		return
	}
	t.count[k]--
}

func (t *allocTable) has(client net.Addr) bool {
	k := allocKey(client)
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.count[k] > 0
}

// allocKey unmaps IPv4-mapped addresses, so that one client is one key
// however the socket reports its address.
func allocKey(addr net.Addr) netip.AddrPort {
	ap := addrPort(addr)
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}
