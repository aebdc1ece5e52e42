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
}

func newQuota(maxTotal, maxPerUser int) *quota {
	return &quota{maxTotal: maxTotal, maxPerUser: maxPerUser, perUser: map[string]int{}}
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

// full reports whether the server has no allocation left.
func (q *quota) full() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.total >= q.maxTotal
}
