package turn

import (
	"errors"
	"sync"
)

var (
	errUserQuota = errors.New("turn: allocation quota of user reached")
	errCapacity  = errors.New("turn: server allocation limit reached")
)

// quota counts relay sockets per user and in total. It is shared by every
// transport, so the limits hold for the whole process.
type quota struct {
	maxTotal, maxPerUser int

	mu      sync.Mutex
	total   int
	perUser map[string]int
	// tcpPorts are the ports of TCP relay listeners. They bind with
	// SO_REUSEPORT (so Connect can dial from them), which would let two
	// allocations share a port; this set keeps them apart.
	tcpPorts map[int]bool
}

func newQuota(maxTotal, maxPerUser int) *quota {
	return &quota{maxTotal: maxTotal, maxPerUser: maxPerUser, perUser: map[string]int{}, tcpPorts: map[int]bool{}}
}

// claimTCPPort reserves port for one TCP relay listener; false if taken.
func (q *quota) claimTCPPort(port int) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.tcpPorts[port] {
		return false
	}
	q.tcpPorts[port] = true
	return true
}

func (q *quota) releaseTCPPort(port int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.tcpPorts, port)
}

// count is the number of relay sockets and connections open.
func (q *quota) count() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.total
}

// userFull is pion's quota check, answered with 486 before allocating.
func (q *quota) userFull(user string) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.perUser[user] >= q.maxPerUser
}

// acquire reserves a relay socket for user. It is the hard limit: requests
// racing past userFull are refused here (pion answers 508).
func (q *quota) acquire(user string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	switch {
	case q.total >= q.maxTotal:
		return errCapacity
	case q.perUser[user] >= q.maxPerUser:
		return errUserQuota
	}
	q.total++
	q.perUser[user]++
	return nil
}

func (q *quota) release(user string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.total--
	if q.perUser[user]--; q.perUser[user] <= 0 {
		delete(q.perUser, user)
	}
}
