package turn

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/stun/v4"
)

// transports are the ways a raw client reaches a test server.
var transports = []struct {
	name    string
	network string
	addr    func(*Server) net.Addr
}{
	{"udp", "udp4", func(s *Server) net.Addr { return s.UDPAddr() }},
	{"tcp", "tcp4", func(s *Server) net.Addr { return s.TCPAddr() }},
}

// TestCreatePermissionRefusedEncodings sends CreatePermission for peers the
// policy refuses, in the encodings an attacker would try, and checks for
// 403 and that nothing reaches the peer afterwards.
func TestCreatePermissionRefusedEncodings(t *testing.T) {
	t.Parallel()
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			t.Parallel()
			s, reg := startTURNReg(t, nil)
			pc := udpSocket(t)
			port := addrPort(pc.LocalAddr()).Port()
			c := dialRaw(t, tr.network, tr.addr(s), "mallory")
			if !c.start() {
				t.Fatal("no 401 to the first Allocate")
			}
			if code := errorCode(c.allocate()); code != 0 {
				t.Fatalf("allocate: error %d", code)
			}
			for _, ip := range []string{"::ffff:127.0.0.1", "127.0.0.1", "0.0.0.0", "::ffff:0.0.0.0",
				"169.254.169.254", "::ffff:169.254.169.254", "10.0.0.1", "224.0.0.1", "255.255.255.255"} {
				p := peerAddress(netip.AddrPortFrom(netip.MustParseAddr(ip), port))
				res := c.request(stun.MethodCreatePermission, p)
				if code := errorCode(res); code != stun.CodeForbidden {
					t.Errorf("CreatePermission for %v: code %d, want 403", netip.AddrPort(p), code)
				}
				// Data to the refused peer, as an indication: pion drops it
				// (no permission).
				c.send(build(t, stun.NewType(stun.MethodSend, stun.ClassIndication), p,
					stun.RawAttribute{Type: stun.AttrData, Value: []byte("should not arrive")}).Raw)
			}
			if n := received(pc, 300*time.Millisecond); n != 0 {
				t.Fatalf("%d packets reached a refused peer", n)
			}
			if n := metric(t, reg, "quartet_turn_denied_peers_total", map[string]string{"stage": "permission", "transport": tr.name}); n < 9 {
				t.Fatalf("quartet_turn_denied_peers_total{stage=permission} = %v, want >= 9", n)
			}
		})
	}
}

// TestCreatePermissionMappedAllowed checks that the 403 above is the
// policy's answer, not a parse failure: with loopback allowed, the same
// IPv4-mapped peer is permitted and reached.
func TestCreatePermissionMappedAllowed(t *testing.T) {
	t.Parallel()
	s := startTURN(t, allowLoopback)
	pc := udpSocket(t)
	c := dialRaw(t, "udp4", s.UDPAddr(), "alice")
	c.start()
	if code := errorCode(c.allocate()); code != 0 {
		t.Fatalf("allocate: error %d", code)
	}
	mapped := peerAddress(netip.AddrPortFrom(netip.MustParseAddr("::ffff:127.0.0.1"), addrPort(pc.LocalAddr()).Port()))
	if code := errorCode(c.request(stun.MethodCreatePermission, mapped)); code != 0 {
		t.Fatalf("CreatePermission for an allowed IPv4-mapped peer: error %d", code)
	}
	c.send(build(t, stun.NewType(stun.MethodSend, stun.ClassIndication), udpPeerAddr(pc.LocalAddr()),
		stun.RawAttribute{Type: stun.AttrData, Value: []byte("hello")}).Raw)
	buf := make([]byte, 100)
	_ = pc.SetReadDeadline(time.Now().Add(3 * time.Second))
	if n, _, err := pc.ReadFrom(buf); err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("allowed peer got %q, %v", buf[:n], err)
	}
}

// TestChannelBindRefusedPeer: pion answers a ChannelBind to a refused peer
// with 401; Quartet's guard answers 403 so clients do not retry.
func TestChannelBindRefusedPeer(t *testing.T) {
	t.Parallel()
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			t.Parallel()
			s := startTURN(t, nil)
			pc := udpSocket(t)
			c := dialRaw(t, tr.network, tr.addr(s), "mallory")
			c.start()
			if code := errorCode(c.allocate()); code != 0 {
				t.Fatalf("allocate: error %d", code)
			}
			port := addrPort(pc.LocalAddr()).Port()
			for i, ip := range []string{"127.0.0.1", "::ffff:127.0.0.1", "0.0.0.0", "169.254.169.254"} {
				ch := uint16(0x4000 + i)
				p := peerAddress(netip.AddrPortFrom(netip.MustParseAddr(ip), port))
				res := c.request(stun.MethodChannelBind, channelNumber(ch), p)
				if code := errorCode(res); code != stun.CodeForbidden {
					t.Errorf("ChannelBind to %v: code %d, want 403", netip.AddrPort(p), code)
				}
				if err := c.key.Check(res); err != nil {
					t.Errorf("403 to ChannelBind is not signed with the client's key: %v", err)
				}
				c.send(channelData(ch, []byte("should not arrive")))
			}
			if n := received(pc, 300*time.Millisecond); n != 0 {
				t.Fatalf("%d packets reached a refused peer", n)
			}
		})
	}
}

// TestChannelBindAllowedPeer is the control for the test above.
func TestChannelBindAllowedPeer(t *testing.T) {
	t.Parallel()
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			t.Parallel()
			s := startTURN(t, allowLoopback)
			pc := udpSocket(t)
			c := dialRaw(t, tr.network, tr.addr(s), "alice")
			c.start()
			if code := errorCode(c.allocate()); code != 0 {
				t.Fatalf("allocate: error %d", code)
			}
			if code := errorCode(c.request(stun.MethodChannelBind, channelNumber(0x4001), udpPeerAddr(pc.LocalAddr()))); code != 0 {
				t.Fatalf("ChannelBind to an allowed peer: error %d", code)
			}
			c.send(channelData(0x4001, []byte("hello, peer")))
			buf := make([]byte, 100)
			_ = pc.SetReadDeadline(time.Now().Add(3 * time.Second))
			n, _, err := pc.ReadFrom(buf)
			if err != nil || string(buf[:n]) != "hello, peer" {
				t.Fatalf("peer got %q, %v", buf[:n], err)
			}
		})
	}
}

// TestLifetimeCapped: a requested LIFETIME above
// turn.max_allocation_lifetime is lowered to it, on Allocate and Refresh,
// and the response still authenticates.
func TestLifetimeCapped(t *testing.T) {
	t.Parallel()
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			t.Parallel()
			s := startTURN(t, func(c *Config) {
				c.AllocationLifetime, c.MaxAllocationLifetime = 30*time.Second, 60*time.Second
			})
			c := dialRaw(t, tr.network, tr.addr(s), "alice")
			c.start()
			res := c.allocate(lifetime(3000))
			if code := errorCode(res); code != 0 {
				t.Fatalf("allocate: error %d", code)
			}
			if err := c.key.Check(res); err != nil {
				t.Fatalf("Allocate response fails MESSAGE-INTEGRITY: %v", err)
			}
			if got := lifetimeOf(t, res); got != 60 {
				t.Fatalf("Allocate with LIFETIME 3000: granted %d s, want 60", got)
			}
			res = c.request(stun.MethodRefresh, lifetime(86400))
			if code := errorCode(res); code != 0 {
				t.Fatalf("refresh: error %d", code)
			}
			if got := lifetimeOf(t, res); got != 60 {
				t.Fatalf("Refresh with LIFETIME 86400: granted %d s, want 60", got)
			}
			res = c.request(stun.MethodRefresh, lifetime(45))
			if got := lifetimeOf(t, res); got != 45 {
				t.Fatalf("Refresh with LIFETIME 45: granted %d s, want 45", got)
			}
			res = c.request(stun.MethodRefresh)
			if got := lifetimeOf(t, res); got != 30 {
				t.Fatalf("Refresh without LIFETIME: granted %d s, want the default 30", got)
			}
			// LIFETIME 0 deletes the allocation.
			if res := c.request(stun.MethodRefresh, lifetime(0)); errorCode(res) != 0 || lifetimeOf(t, res) != 0 {
				t.Fatalf("Refresh with LIFETIME 0: %v", res)
			}
			eventually(t, func() bool { return s.Allocations() == 0 }, "allocation remains after Refresh with LIFETIME 0")
		})
	}
}

// TestUnauthenticatedRateLimit: one source sending many unauthenticated
// requests gets few answers, and other sources are unaffected.
func TestUnauthenticatedRateLimit(t *testing.T) {
	t.Parallel()
	other := netip.MustParseAddr("127.0.0.2")
	if ln, err := net.ListenPacket("udp4", "127.0.0.2:0"); err != nil {
		t.Skipf("cannot bind 127.0.0.2 for a second source: %v", err)
	} else {
		_ = ln.Close()
	}
	s, reg := startTURNReg(t, func(c *Config) {
		allowLoopback(c)
		c.UnauthRate, c.UnauthBurst = 1, 3
	})
	flood := dialRaw(t, "udp4", s.UDPAddr(), "mallory")
	ids := map[[stun.TransactionIDSize]byte]bool{}
	for range 20 {
		m := build(t, stun.NewType(stun.MethodAllocate, stun.ClassRequest), requestedTransport(17))
		ids[m.TransactionID] = true
		flood.send(m.Raw)
	}
	answers := 0
	for {
		res, err := flood.read(500 * time.Millisecond)
		if err != nil {
			break
		}
		if ids[res.TransactionID] && errorCode(res) == stun.CodeUnauthorized {
			answers++
		}
	}
	if answers < 1 || answers > 5 {
		t.Fatalf("%d of 20 unauthenticated requests answered; want the burst of 3 (at most 5)", answers)
	}
	if n := metric(t, reg, "quartet_turn_unauthenticated_dropped_total", nil); n < 15 {
		t.Fatalf("quartet_turn_unauthenticated_dropped_total = %v, want >= 15", n)
	}

	// Requests with a wrong MESSAGE-INTEGRITY draw answers (here 438, the
	// nonce being made up) from the same budget.
	badMI := dialRawFrom(t, "udp4", s.UDPAddr(), "mallory", netip.MustParseAddr("127.0.0.3"))
	badMI.realm, badMI.nonce = stun.NewRealm("quartet"), stun.NewNonce("whatever")
	wrongKey := stun.NewLongTermIntegrity(badMI.username, "quartet", "not the password")
	ids = map[[stun.TransactionIDSize]byte]bool{}
	for range 20 {
		m := badMI.authed(stun.MethodAllocate, wrongKey, requestedTransport(17))
		ids[m.TransactionID] = true
		badMI.send(m.Raw)
	}
	answers = 0
	for {
		res, err := badMI.read(500 * time.Millisecond)
		if err != nil {
			break
		}
		if ids[res.TransactionID] {
			answers++
		}
	}
	if answers < 1 || answers > 5 {
		t.Fatalf("%d of 20 requests with a wrong MESSAGE-INTEGRITY answered; want at most 5", answers)
	}

	// A client from another address is unaffected.
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: other.AsSlice()})
	if err != nil {
		t.Fatal(err)
	}
	c := newClient(t, conn, s.UDPAddr().String(), "alice", nil)
	relay := allocate(t, c)
	peer := echoPeer(t)
	if got := roundTrips(t, relay, peer.LocalAddr(), 3); got != 3 {
		t.Fatalf("%d of 3 packets came back for a client from another source", got)
	}
}

// badInputs are datagrams or stream frames a broken or hostile client
// might send. Each is labelled with whether a TCP server should close the
// connection over it.
func badInputs(t testing.TB) []struct {
	name  string
	b     []byte
	close bool // over TCP
} {
	t.Helper()
	valid := build(t, stun.BindingRequest).Raw
	truncated := append([]byte(nil), valid...)
	binary.BigEndian.PutUint16(truncated[2:4], 100) // claims 100 bytes it does not have
	huge := append([]byte(nil), valid[:20]...)
	binary.BigEndian.PutUint16(huge[2:4], 0xfffc)
	overflow := build(t, stun.BindingRequest, stun.NewSoftware("x")).Raw
	binary.BigEndian.PutUint16(overflow[22:24], 0xff00) // attribute longer than the message
	hugeChannel := []byte{0x40, 0x00, 0xff, 0xff, 1, 2, 3, 4}
	return []struct {
		name  string
		b     []byte
		close bool
	}{
		// A TLS ClientHello on the plain port. (An HTTP request would be
		// framed as ChannelData, 'G' being 0x47, and wait for its length.)
		{"TLS on the TCP port", append([]byte{0x16, 0x03, 0x01, 0x00, 0xf0, 0x01}, bytes.Repeat([]byte{0xaa}, 40)...), true},
		{"garbage", bytes.Repeat([]byte{0xff}, 64), true},
		{"zeros", make([]byte, 64), true},
		{"huge STUN length", huge, true},
		{"huge ChannelData length", hugeChannel, true},
		{"attribute overflows message", overflow, false},
		{"truncated STUN", truncated, false},
		{"unsolicited success response", build(t, stun.NewType(stun.MethodBinding, stun.ClassSuccessResponse)).Raw, false},
		{"ChannelData without allocation", channelData(0x4000, []byte("data")), false},
		{"unknown method", build(t, stun.NewType(stun.Method(0x0fff), stun.ClassRequest)).Raw, false},
	}
}

// binding checks that the server still answers a Binding request on c.
func binding(t testing.TB, c *rawClient) {
	t.Helper()
	res := c.roundTrip(build(t, stun.BindingRequest, stun.Fingerprint))
	if res == nil || res.Type != stun.BindingSuccess {
		t.Fatalf("no Binding success response after bad input: %v", res)
	}
}

func TestBadInputUDP(t *testing.T) {
	t.Parallel()
	s, reg := startTURNReg(t, allowLoopback)
	c := dialRaw(t, "udp4", s.UDPAddr(), "mallory")
	for _, in := range badInputs(t) {
		c.send(in.b)
		binding(t, c)
	}
	c.send(nil)
	binding(t, c)

	// A wrong MESSAGE-INTEGRITY is answered 401, nothing allocated.
	c.start()
	res := c.roundTrip(c.authed(stun.MethodAllocate, stun.NewLongTermIntegrity(c.username, "quartet", "wrong"),
		requestedTransport(17)))
	if res == nil || errorCode(res) != stun.CodeUnauthorized {
		t.Fatalf("Allocate with a wrong MESSAGE-INTEGRITY: %v, want 401", res)
	}
	if n := s.Allocations(); n != 0 {
		t.Fatalf("%d allocations after bad input", n)
	}
	if n := metric(t, reg, "quartet_turn_malformed_total", map[string]string{"transport": "udp"}); n < 1 {
		t.Fatalf("quartet_turn_malformed_total = %v after malformed STUN", n)
	}
	if n := metric(t, reg, "quartet_turn_auth_failures_total", map[string]string{"transport": "udp"}); n < 1 {
		t.Fatalf("quartet_turn_auth_failures_total = %v after a wrong MESSAGE-INTEGRITY", n)
	}

	// Another client is served as usual.
	_, relay := udpClient(t, s, "alice")
	peer := echoPeer(t)
	if got := roundTrips(t, relay, peer.LocalAddr(), 3); got != 3 {
		t.Fatalf("%d of 3 packets came back after bad input", got)
	}
}

func TestBadInputTCP(t *testing.T) {
	t.Parallel()
	s := startTURN(t, allowLoopback)
	for _, in := range badInputs(t) {
		t.Run(in.name, func(t *testing.T) {
			c := dialRaw(t, "tcp4", s.TCPAddr(), "mallory")
			c.send(in.b)
			if in.close {
				if _, err := c.read(5 * time.Second); err == nil {
					t.Fatal("got a STUN message, want the connection closed")
				} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
					t.Fatal("connection still open after bad input")
				}
				return
			}
			if in.name == "truncated STUN" {
				// The frame completes with 100 bytes that are no valid
				// attributes; the server drops it and goes on.
				c.send(bytes.Repeat([]byte{0xff}, 100))
			}
			binding(t, c)
		})
	}
	t.Run("wrong integrity", func(t *testing.T) {
		c := dialRaw(t, "tcp4", s.TCPAddr(), "mallory")
		c.start()
		res := c.roundTrip(c.authed(stun.MethodAllocate, stun.NewLongTermIntegrity(c.username, "quartet", "wrong"),
			requestedTransport(17)))
		if res == nil || errorCode(res) != stun.CodeUnauthorized {
			t.Fatalf("Allocate with a wrong MESSAGE-INTEGRITY: %v, want 401", res)
		}
	})
	t.Run("split and coalesced frames", func(t *testing.T) {
		// Two requests in one write, then one request a byte at a time.
		c := dialRaw(t, "tcp4", s.TCPAddr(), "alice")
		a, b := build(t, stun.BindingRequest), build(t, stun.BindingRequest)
		c.send(append(append([]byte(nil), a.Raw...), b.Raw...))
		for _, want := range []*stun.Message{a, b} {
			res, err := c.read(3 * time.Second)
			if err != nil || res.TransactionID != want.TransactionID {
				t.Fatalf("coalesced requests: %v, %v", res, err)
			}
		}
		m := build(t, stun.BindingRequest)
		for i := range m.Raw {
			c.send(m.Raw[i : i+1])
		}
		if res, err := c.read(3 * time.Second); err != nil || res.TransactionID != m.TransactionID {
			t.Fatalf("request sent byte by byte: %v, %v", res, err)
		}
	})

	// Another client is served as usual.
	c := tcpClient(t, s, "alice")
	relay := allocate(t, c)
	peer := echoPeer(t)
	if got := roundTrips(t, relay, peer.LocalAddr(), 3); got != 3 {
		t.Fatalf("%d of 3 packets came back after bad input", got)
	}
}

// TestTCPConnectionCap: with turn.max_connections reached, a new TCP
// connection is closed at once; a slot frees when a connection ends.
func TestTCPConnectionCap(t *testing.T) {
	t.Parallel()
	s, reg := startTURNReg(t, func(c *Config) { c.MaxConnections = 2 })
	var open []*rawClient
	for i := range 2 {
		c := dialRaw(t, "tcp4", s.TCPAddr(), fmt.Sprint("user", i))
		binding(t, c) // accepted and served
		open = append(open, c)
	}
	third := dialRaw(t, "tcp4", s.TCPAddr(), "user3")
	third.send(build(t, stun.BindingRequest).Raw)
	if res, err := third.read(5 * time.Second); err == nil {
		t.Fatalf("third connection answered %v; want it closed", res)
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("third connection neither served nor closed")
	}
	if n := metric(t, reg, "quartet_turn_connections_rejected_total", map[string]string{"transport": "tcp"}); n < 1 {
		t.Fatalf("quartet_turn_connections_rejected_total = %v", n)
	}

	// Closing one frees its slot (once the server has noticed).
	_ = open[0].conn.Close()
	for attempt := 0; ; attempt++ {
		c := dialRaw(t, "tcp4", s.TCPAddr(), "user4")
		res := c.roundTrip(build(t, stun.BindingRequest))
		if res != nil {
			break
		}
		if attempt == 50 {
			t.Fatal("no connection accepted after one of two was closed")
		}
		time.Sleep(20 * time.Millisecond)
	}
	binding(t, open[1])
}

// TestFailedConnectionBindKeepsGuard: a data connection (RFC 6062) passes
// bytes unframed after ConnectionBind succeeds. A ConnectionBind that
// fails must not switch the guard off for the rest of the connection, or a
// client could lift the lifetime cap, the rate limit and the connection's
// read deadlines with one bogus request.
func TestFailedConnectionBindKeepsGuard(t *testing.T) {
	t.Parallel()
	connectionID := stun.RawAttribute{Type: stun.AttrConnectionID, Value: []byte{0, 0, 0x30, 0x39}}
	for _, tc := range []struct {
		name string
		send func(c *rawClient) *stun.Message
		want stun.ErrorCode
	}{
		{"unauthenticated", func(c *rawClient) *stun.Message {
			return c.roundTrip(build(t, stun.NewType(stun.MethodConnectionBind, stun.ClassRequest), connectionID))
		}, stun.CodeUnauthorized},
		{"unknown connection ID", func(c *rawClient) *stun.Message {
			return c.request(stun.MethodConnectionBind, connectionID)
		}, stun.CodeBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := startTURN(t, func(c *Config) {
				c.AllocationLifetime, c.MaxAllocationLifetime = 30*time.Second, 60*time.Second
			})
			c := dialRaw(t, "tcp4", s.TCPAddr(), "alice")
			c.start()
			res := tc.send(c)
			if res == nil || errorCode(res) != tc.want {
				t.Fatalf("ConnectionBind: %v, want error %d", res, tc.want)
			}
			res = c.allocate(lifetime(3000))
			if code := errorCode(res); code != 0 {
				t.Fatalf("allocate after a failed ConnectionBind: error %d", code)
			}
			if got := lifetimeOf(t, res); got != 60 {
				t.Fatalf("after a failed ConnectionBind, LIFETIME 3000 was granted %d s, want the cap of 60", got)
			}
		})
	}
}

// TestUnauthenticatedOverTCPIsAnswered checks that the amplification limit
// spares TCP: its source cannot be spoofed, and a TCP client whose request
// got no answer would wait forever (it does not retransmit).
func TestUnauthenticatedOverTCPIsAnswered(t *testing.T) {
	t.Parallel()
	s := startTURN(t, func(c *Config) { c.UnauthRate, c.UnauthBurst = 1, 1 })
	c := dialRaw(t, "tcp4", s.TCPAddr(), "mallory")
	for i := range 10 {
		res := c.roundTrip(build(t, stun.NewType(stun.MethodAllocate, stun.ClassRequest), requestedTransport(17)))
		if res == nil || errorCode(res) != stun.CodeUnauthorized {
			t.Fatalf("request %d over TCP: got %v, want 401", i, res)
		}
	}
}

// TestTCPRelayOverUDPRefused: RFC 6062 allocations need a TCP control
// connection (section 5.1). Granting one over UDP would let a Connect
// block the UDP listener while the server dials.
func TestTCPRelayOverUDPRefused(t *testing.T) {
	t.Parallel()
	s := startTURN(t, nil)
	c := dialRaw(t, "udp4", s.UDPAddr(), "alice")
	if !c.start() {
		t.Fatal("no answer to the first Allocate")
	}
	res := c.request(stun.MethodAllocate, requestedTransport(protoTCP))
	if code := errorCode(res); code != stun.CodeBadRequest {
		t.Fatalf("TCP relay over UDP: code %d, want 400", code)
	}
	if err := stun.MessageIntegrity(c.key).Check(res); err != nil {
		t.Fatalf("400 without the client's MESSAGE-INTEGRITY: %v", err)
	}
	if n := s.Allocations(); n != 0 {
		t.Fatalf("%d allocations after the refusal", n)
	}
}

// TestChannelBindNumberRange: RFC 8656 allows channels 0x4000-0x4FFF
// (section 12) and answers a ChannelBind for any other number with 400
// (section 11.2). pion binds whatever number it is given, and installs a
// permission for the peer with it.
func TestChannelBindNumberRange(t *testing.T) {
	t.Parallel()
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			t.Parallel()
			s := startTURN(t, allowLoopback)
			c := dialRaw(t, tr.network, tr.addr(s), "alice")
			c.start()
			if code := errorCode(c.allocate()); code != 0 {
				t.Fatalf("allocate: error %d", code)
			}
			bind := func(channel uint16, want stun.ErrorCode) *net.UDPConn {
				t.Helper()
				// A peer for each channel: pion refuses a second channel
				// to the same peer with 400 whatever the number.
				pc := udpSocket(t)
				res := c.request(stun.MethodChannelBind, channelNumber(channel), udpPeerAddr(pc.LocalAddr()))
				if code := errorCode(res); code != want {
					t.Errorf("ChannelBind for channel %#04x: code %d, want %d", channel, code, want)
				}
				if err := c.key.Check(res); err != nil {
					t.Errorf("answer to ChannelBind for channel %#04x is not signed with the client's key: %v", channel, err)
				}
				return pc
			}
			// A refused ChannelBind leaves no permission behind. Permissions
			// are per IP address, so this is checked before any bind
			// succeeds.
			var waits []func() int
			for _, channel := range []uint16{0x0000, 0x3fff, 0x8000, 0xffff} {
				pc := bind(channel, stun.CodeBadRequest)
				waits = append(waits, receiveAsync(pc, 300*time.Millisecond))
				c.send(build(t, stun.NewType(stun.MethodSend, stun.ClassIndication), udpPeerAddr(pc.LocalAddr()),
					stun.RawAttribute{Type: stun.AttrData, Value: []byte("should not arrive")}).Raw)
			}
			for _, wait := range waits {
				if n := wait(); n != 0 {
					t.Errorf("%d packets reached a peer whose ChannelBind was refused", n)
				}
			}
			for _, channel := range []uint16{0x4000, 0x4fff, 0x5000, 0x7fff} {
				bind(channel, 0)
			}
		})
	}
}

// TestRequestWithoutAllocation: a request other than Allocate on a 5-tuple
// without an allocation gets 437 Allocation Mismatch (RFC 8656 section 5),
// signed like any answer to an authenticated request. pion sends nothing,
// and the client retransmits until it gives up. A 5-tuple loses its
// allocation to Refresh with LIFETIME 0 or to expiry, and a new Allocate
// gives it one again.
func TestRequestWithoutAllocation(t *testing.T) {
	t.Parallel()
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			t.Parallel()
			s, reg := startTURNReg(t, allowLoopback)
			c := dialRaw(t, tr.network, tr.addr(s), "alice")
			c.start()
			p := udpPeerAddr(udpSocket(t).LocalAddr())
			ok := func(step string, res *stun.Message) {
				t.Helper()
				if code := errorCode(res); code != 0 {
					t.Fatalf("%s: error %d", step, code)
				}
			}
			mismatch := func(step string, method stun.Method, attrs ...stun.Setter) {
				t.Helper()
				res := c.request(method, attrs...)
				if code := errorCode(res); code != stun.CodeAllocMismatch {
					t.Fatalf("%s: %v got code %d, want 437", step, method, code)
				}
				if err := c.key.Check(res); err != nil {
					t.Fatalf("%s: 437 to %v is not signed with the client's key: %v", step, method, err)
				}
			}

			ok("allocate", c.allocate())
			ok("Refresh with LIFETIME 0", c.request(stun.MethodRefresh, lifetime(0)))
			mismatch("after Refresh with LIFETIME 0", stun.MethodRefresh)
			mismatch("after Refresh with LIFETIME 0", stun.MethodRefresh, lifetime(0)) // a retransmitted delete
			mismatch("after Refresh with LIFETIME 0", stun.MethodCreatePermission, p)
			mismatch("after Refresh with LIFETIME 0", stun.MethodChannelBind, channelNumber(0x4000), p)

			ok("allocate again", c.allocate(lifetime(1)))
			ok("Refresh of the new allocation", c.request(stun.MethodRefresh, lifetime(1)))
			ok("CreatePermission on the new allocation", c.request(stun.MethodCreatePermission, p))
			// The gauge falls after the guard has heard of the deletion.
			eventually(t, func() bool {
				return metric(t, reg, "quartet_turn_allocations", map[string]string{"transport": tr.name}) == 0
			}, "the allocation did not expire")
			mismatch("after expiry", stun.MethodRefresh)
		})
	}
}

// TestRequestBeforeAllocate: the same 437 before any Allocate.
func TestRequestBeforeAllocate(t *testing.T) {
	t.Parallel()
	s := startTURN(t, allowLoopback)
	c := dialRaw(t, "udp4", s.UDPAddr(), "alice")
	c.start()
	p := udpPeerAddr(udpSocket(t).LocalAddr())
	for _, m := range []struct {
		method stun.Method
		attrs  []stun.Setter
	}{
		{stun.MethodRefresh, nil},
		{stun.MethodCreatePermission, []stun.Setter{p}},
		{stun.MethodChannelBind, []stun.Setter{channelNumber(0x4000), p}},
	} {
		if code := errorCode(c.request(m.method, m.attrs...)); code != stun.CodeAllocMismatch {
			t.Errorf("%v without an allocation: code %d, want 437", m.method, code)
		}
	}
}
