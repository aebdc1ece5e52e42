package turn

import (
	"testing"

	"github.com/pion/stun/v4"
)

func TestQuotaPerUser(t *testing.T) {
	t.Parallel()
	s, reg := startTURNReg(t, func(c *Config) { c.MaxAllocationsPerUser = 2 })
	udpClient(t, s, "alice")
	udpClient(t, s, "alice")
	c := newClient(t, udpSocket(t), s.UDPAddr().String(), "alice", nil)
	_, err := c.Allocate()
	if code := turnCode(err); code != int(stun.CodeAllocQuotaReached) {
		t.Fatalf("third allocation of one user: %v (code %d), want 486", err, code)
	}
	// Other users are not affected, over any transport.
	udpClient(t, s, "bob")
	allocate(t, tcpClient(t, s, "carol"))
	// The quota counts the user, not the credential: a fresh credential for
	// alice is refused too, and so is TCP.
	tc := tcpClient(t, s, "alice")
	if _, err := tc.Allocate(); turnCode(err) != int(stun.CodeAllocQuotaReached) {
		t.Fatalf("alice's third allocation over TCP: %v, want 486", err)
	}
	if n := metric(t, reg, "quartet_turn_quota_rejections_total", map[string]string{"reason": "user"}); n < 2 {
		t.Fatalf("quartet_turn_quota_rejections_total{reason=user} = %v, want >= 2", n)
	}
}

func TestQuotaPerUserFreedOnDelete(t *testing.T) {
	t.Parallel()
	s := startTURN(t, func(c *Config) { c.MaxAllocationsPerUser = 1 })
	rc := dialRaw(t, "udp4", s.UDPAddr(), "alice")
	rc.start()
	if code := errorCode(rc.allocate()); code != 0 {
		t.Fatalf("allocate: error %d", code)
	}
	other := dialRaw(t, "udp4", s.UDPAddr(), "alice")
	other.start()
	if code := errorCode(other.allocate()); code != stun.CodeAllocQuotaReached {
		t.Fatalf("second allocation: code %d, want 486", code)
	}
	// Deleting the first allocation frees the slot.
	if res := rc.request(stun.MethodRefresh, lifetime(0)); errorCode(res) != 0 {
		t.Fatalf("delete: %v", res)
	}
	if code := errorCode(other.allocate()); code != 0 {
		t.Fatalf("allocation after the user's other one was deleted: code %d", code)
	}
}

func TestQuotaTotal(t *testing.T) {
	t.Parallel()
	s, reg := startTURNReg(t, func(c *Config) { c.MaxAllocations = 2 })
	udpClient(t, s, "alice")
	allocate(t, tcpClient(t, s, "bob")) // the limit is shared by transports
	c := newClient(t, udpSocket(t), s.UDPAddr().String(), "carol", nil)
	_, err := c.Allocate()
	if code := turnCode(err); code != int(stun.CodeInsufficientCapacity) {
		t.Fatalf("allocation beyond turn.max_allocations: %v (code %d), want 508", err, code)
	}
	if n := s.Allocations(); n != 2 {
		t.Fatalf("Allocations() = %d, want 2", n)
	}
	if n := metric(t, reg, "quartet_turn_quota_rejections_total", map[string]string{"reason": "total"}); n < 1 {
		t.Fatalf("quartet_turn_quota_rejections_total{reason=total} = %v", n)
	}
}

func TestQuotaUnit(t *testing.T) {
	t.Parallel()
	q := newQuota(3, 2)
	if err := q.acquire("a"); err != nil {
		t.Fatal(err)
	}
	if err := q.acquire("a"); err != nil {
		t.Fatal(err)
	}
	if !q.userFull("a") || q.userFull("b") {
		t.Fatal("userFull wrong after two allocations of a")
	}
	if err := q.acquire("a"); err != errUserQuota {
		t.Fatalf("third of a: %v, want errUserQuota", err)
	}
	if err := q.acquire("b"); err != nil {
		t.Fatal(err)
	}
	if q.count() != 3 {
		t.Fatalf("count() = %d at 3 of 3", q.count())
	}
	if err := q.acquire("c"); err != errCapacity {
		t.Fatalf("fourth: %v, want errCapacity", err)
	}
	q.release("a")
	q.release("b")
	if q.count() != 1 || q.userFull("a") {
		t.Fatal("release did not free")
	}
	if len(q.perUser) != 1 {
		t.Fatalf("perUser keeps %d entries, want 1 (users without allocations are forgotten)", len(q.perUser))
	}
}
