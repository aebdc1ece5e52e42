package turn

import (
	"bytes"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/stun/v4"
)

// TestMediaServerException: with no allow list, a relay reaches the
// co-located media server at its exact address and port, and nothing else
// on that host, in either direction.
func TestMediaServerException(t *testing.T) {
	t.Parallel()
	media := echoPeer(t)
	s, reg := startTURNDeps(t, nil, func(d *Deps) { d.MediaAddrs = []netip.AddrPort{addrPort(media.LocalAddr())} })
	_, relay := udpClient(t, s, "alice")
	if got := roundTrips(t, relay, media.LocalAddr(), 10); got != 10 {
		t.Fatalf("%d of 10 packets came back from the media server", got)
	}

	// Same IP, other port: the permission (per IP) exists, the relay
	// socket drops the packets.
	other := udpSocket(t)
	for range 10 {
		if _, err := relay.WriteTo([]byte("to another port of the media host"), other.LocalAddr()); err != nil {
			t.Fatalf("write: %v", err)
		}
	}
	if n := received(other, 300*time.Millisecond); n != 0 {
		t.Fatalf("%d packets reached %v, another port of the media server's host", n, other.LocalAddr())
	}

	// From the other port to the relay: dropped before the client. The
	// media server's marker, sent after, must be the first thing the
	// client reads.
	for range 5 {
		if _, err := other.WriteTo([]byte("unsolicited"), relay.LocalAddr()); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := media.WriteTo([]byte("marker from media"), relay.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1500)
	_ = relay.SetReadDeadline(time.Now().Add(3 * time.Second))
	n, from, err := relay.ReadFrom(buf)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if string(buf[:n]) != "marker from media" {
		t.Fatalf("client read %q from %v, want the media server's marker", buf[:n], from)
	}
	eventually(t, func() bool {
		return metric(t, reg, "quartet_turn_denied_peers_total", map[string]string{"stage": "relay"}) >= 15
	}, "quartet_turn_denied_peers_total{stage=relay} < 15")
}

// TestRelayToOwnListenerRefused: even with loopback allowed, a relay may
// not send to the TURN server's own listener (a loop through the server).
func TestRelayToOwnListenerRefused(t *testing.T) {
	t.Parallel()
	s, reg := startTURNReg(t, allowLoopback)
	c := dialRaw(t, "udp4", s.UDPAddr(), "alice")
	c.start()
	if code := errorCode(c.allocate()); code != 0 {
		t.Fatalf("allocate: error %d", code)
	}
	own := udpPeerAddr(s.UDPAddr())
	if code := errorCode(c.request(stun.MethodCreatePermission, own)); code != 0 {
		t.Fatalf("CreatePermission for 127.0.0.1: error %d", code) // the IP is allowed
	}
	// A Binding request relayed to the server itself would be answered to
	// the relay, which would forward it to the client as a Data
	// indication.
	inner := build(t, stun.BindingRequest)
	for range 3 {
		c.send(build(t, stun.NewType(stun.MethodSend, stun.ClassIndication), own,
			stun.RawAttribute{Type: stun.AttrData, Value: inner.Raw}).Raw)
	}
	deadline := time.Now().Add(500 * time.Millisecond)
	for time.Now().Before(deadline) {
		res, err := c.read(time.Until(deadline))
		if err != nil {
			break
		}
		if res.Type == stun.NewType(stun.MethodData, stun.ClassIndication) {
			t.Fatalf("the relay reached the server's own listener: %v", res)
		}
	}
	eventually(t, func() bool {
		return metric(t, reg, "quartet_turn_denied_peers_total", map[string]string{"stage": "relay"}) >= 3
	}, "quartet_turn_denied_peers_total{stage=relay} < 3")
}

// TestBandwidthLimit: a burst far above turn.max_bitrate is cut, the rest
// counted as dropped.
func TestBandwidthLimit(t *testing.T) {
	t.Parallel()
	s, reg := startTURNReg(t, func(c *Config) {
		allowLoopback(c)
		c.MaxBitrate = 80_000
	})
	_, relay := udpClient(t, s, "alice")
	pc := udpSocket(t)
	count := receiveAsync(pc, time.Second)
	payload := bytes.Repeat([]byte{0x5a}, 1000)
	for range 200 {
		if _, err := relay.WriteTo(payload, pc.LocalAddr()); err != nil {
			t.Fatalf("write: %v", err)
		}
	}
	n := count()
	if n == 0 || n >= 200 {
		t.Fatalf("peer received %d of 200 packets; want some, but clearly fewer at 80 kbit/s", n)
	}
	if d := metric(t, reg, "quartet_turn_bandwidth_dropped_packets_total", map[string]string{"transport": "udp"}); d < 1 {
		t.Fatalf("quartet_turn_bandwidth_dropped_packets_total = %v after %d of 200 delivered", d, n)
	}
	t.Logf("%d of 200 packets of 1000 bytes delivered at 80 kbit/s", n)
}

// TestNoBandwidthLimitByDefault relays 100 kB each way, more than the
// burst any limit would allow, one packet in flight at a time.
func TestNoBandwidthLimitByDefault(t *testing.T) {
	t.Parallel()
	s, reg := startTURNReg(t, allowLoopback)
	_, relay := udpClient(t, s, "alice")
	peer := echoPeer(t)
	payload := bytes.Repeat([]byte{0x5a}, 1000)
	buf := make([]byte, 1500)
	for i := range 100 {
		payload[0] = byte(i)
		if _, err := relay.WriteTo(payload, peer.LocalAddr()); err != nil {
			t.Fatalf("write: %v", err)
		}
		_ = relay.SetReadDeadline(time.Now().Add(3 * time.Second))
		n, _, err := relay.ReadFrom(buf)
		if err != nil || n != len(payload) || buf[0] != byte(i) {
			t.Fatalf("packet %d of 1000 bytes did not come back without a bandwidth limit: %v", i, err)
		}
	}
	if d := metric(t, reg, "quartet_turn_bandwidth_dropped_packets_total", nil); d != 0 {
		t.Fatalf("quartet_turn_bandwidth_dropped_packets_total = %v without a limit", d)
	}
}

func TestRelayMetrics(t *testing.T) {
	t.Parallel()
	s, reg := startTURNReg(t, nil)
	c, relay := udpClient(t, s, "alice")
	if n := metric(t, reg, "quartet_turn_allocations", map[string]string{"transport": "udp"}); n != 1 {
		t.Fatalf("quartet_turn_allocations{transport=udp} = %v, want 1", n)
	}
	peer := echoPeer(t)
	if err := c.CreatePermission(peer.LocalAddr()); turnCode(err) != int(stun.CodeForbidden) {
		t.Fatalf("CreatePermission to loopback: %v, want 403", err)
	}
	if n := metric(t, reg, "quartet_turn_denied_peers_total", map[string]string{"stage": "permission"}); n < 1 {
		t.Fatalf("quartet_turn_denied_peers_total{stage=permission} = %v after a refused CreatePermission", n)
	}
	_ = relay

	// Relaying is counted in both directions.
	s2, reg2 := startTURNReg(t, allowLoopback)
	_, relay2 := udpClient(t, s2, "bob")
	if got := roundTrips(t, relay2, peer.LocalAddr(), 5); got != 5 {
		t.Fatalf("%d of 5 packets came back", got)
	}
	// The server counts a packet to the peer after sending it, so the echo
	// may overtake the count: wait for it.
	for _, dir := range []string{"to_peer", "to_client"} {
		labels := map[string]string{"transport": "udp", "direction": dir}
		eventually(t, func() bool { return metric(t, reg2, "quartet_turn_relayed_packets_total", labels) >= 5 },
			"quartet_turn_relayed_packets_total{direction=%s} < 5", dir)
		eventually(t, func() bool { return metric(t, reg2, "quartet_turn_relayed_bytes_total", labels) >= 5*12 },
			"quartet_turn_relayed_bytes_total{direction=%s} < 60", dir)
	}
}

func TestConnectionGauge(t *testing.T) {
	t.Parallel()
	s, reg := startTURNReg(t, nil)
	c := dialRaw(t, "tcp4", s.TCPAddr(), "alice")
	binding(t, c)
	if n := metric(t, reg, "quartet_turn_connections", map[string]string{"transport": "tcp"}); n != 1 {
		t.Fatalf("quartet_turn_connections{transport=tcp} = %v with one connection open", n)
	}
	_ = c.conn.Close()
	eventually(t, func() bool {
		return metric(t, reg, "quartet_turn_connections", map[string]string{"transport": "tcp"}) == 0
	}, "quartet_turn_connections stays at 1 after the connection closed")
}

// TestTCPAllocationInbound: a peer connects to a TCP relay address; with a
// permission the client is told (ConnectionAttempt) and can accept it;
// a refused peer's connection is closed before the client hears of it.
func TestTCPAllocationInboundRefused(t *testing.T) {
	t.Parallel()
	s := startTURN(t, nil) // loopback refused
	c := tcpClient(t, s, "alice")
	alloc, err := c.AllocateTCP()
	if err != nil {
		t.Fatalf("allocate TCP: %v", err)
	}
	t.Cleanup(func() { _ = alloc.Close() })
	conn, err := net.Dial("tcp4", alloc.Addr().String())
	if err != nil {
		// Refused at once is fine too.
		return
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := conn.Read(make([]byte, 1)); err == nil {
		t.Fatal("the relay kept a connection from a refused peer open")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the relay kept a connection from a refused peer open")
	}
}

// TestTCPMediaServerNoException: the media server receives on UDP only,
// so its exception opens no TCP port, not even its own port number.
func TestTCPMediaServerNoException(t *testing.T) {
	t.Parallel()
	media, other := newTCPPeer(t), newTCPPeer(t)
	s, _ := startTURNDeps(t, nil, func(d *Deps) { d.MediaAddrs = []netip.AddrPort{media.addr().AddrPort()} })
	c := tcpClient(t, s, "alice")
	alloc, err := c.AllocateTCP()
	if err != nil {
		t.Fatalf("allocate TCP: %v", err)
	}
	t.Cleanup(func() { _ = alloc.Close() })
	for _, peer := range []*tcpPeer{media, other} {
		_, err = alloc.Connect(peer.addr())
		if code := turnCode(err); code != int(stun.CodeConnTimeoutOrFailure) {
			t.Fatalf("Connect to %v on the media host: %v (code %d), want 447", peer.addr(), err, code)
		}
	}
	if n := media.count() + other.count(); n != 0 {
		t.Fatalf("refused ports accepted %d connections", n)
	}
}

// TestRelayPortRange: relay sockets open in turn.relay_min_port to
// turn.relay_max_port.
func TestRelayPortRange(t *testing.T) {
	t.Parallel()
	const minPort, maxPort = 47100, 47199
	s := startTURN(t, func(c *Config) { c.RelayMinPort, c.RelayMaxPort = minPort, maxPort })
	if s.UDPAddr().Port != s.TCPAddr().Port {
		t.Errorf("UDP on %d, TCP on %d; want one port", s.UDPAddr().Port, s.TCPAddr().Port)
	}
	for i := range 3 {
		_, relay := udpClient(t, s, "alice")
		if p := relay.LocalAddr().(*net.UDPAddr).Port; p < minPort || p > maxPort {
			t.Fatalf("relay %d on port %d, outside %d-%d", i, p, minPort, maxPort)
		}
	}
	alloc, err := tcpClient(t, s, "bob").AllocateTCP()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = alloc.Close() })
	if p := alloc.Addr().(*net.TCPAddr).Port; p < minPort || p > maxPort {
		t.Fatalf("TCP relay on port %d, outside %d-%d", p, minPort, maxPort)
	}
}

// TestTCPRelayPortsAreNotShared: TCP relay listeners bind with
// SO_REUSEPORT, which must not let two allocations share a port.
func TestTCPRelayPortsAreNotShared(t *testing.T) {
	t.Parallel()
	const port = 47250
	s := startTURN(t, func(c *Config) { c.RelayMinPort, c.RelayMaxPort = port, port })
	first, err := tcpClient(t, s, "alice").AllocateTCP()
	if err != nil {
		t.Fatalf("first TCP allocation: %v", err)
	}
	t.Cleanup(func() { _ = first.Close() })
	_, err = tcpClient(t, s, "bob").AllocateTCP()
	if code := turnCode(err); code != int(stun.CodeInsufficientCapacity) {
		t.Fatalf("second TCP allocation on a one-port range: %v (code %d), want 508", err, code)
	}
	_ = first.Close()
	eventually(t, func() bool {
		a, err := tcpClient(t, s, "carol").AllocateTCP()
		if err == nil {
			_ = a.Close()
		}
		return err == nil
	}, "the relay port is free again after the first allocation closed")
}

// TestOwnAddressesIncludeRelayAddresses: behind 1:1 NAT the public relay
// address leads back to the listeners, so it is the server's own too.
func TestOwnAddressesIncludeRelayAddresses(t *testing.T) {
	t.Parallel()
	public := netip.MustParseAddr("198.51.100.20") // stands for a public IP
	s := startTURN(t, nil)
	own := ownAddrs(resolved{RelayIP: public, RelayIP6: netip.MustParseAddr("2001:db8::20")},
		s.udp, s.tcp.Listener, nil)
	p := NewPolicy([]netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}, nil, own)
	port := uint16(s.UDPAddr().Port)
	for _, ap := range []netip.AddrPort{netip.AddrPortFrom(public, port),
		netip.AddrPortFrom(netip.MustParseAddr("2001:db8::20"), port)} {
		if p.PermitAddr(ap) || p.PermitStream(ap) {
			t.Errorf("relay to own listener at relay address %v permitted", ap)
		}
	}
	if !p.PermitAddr(netip.AddrPortFrom(public, port+1)) {
		t.Errorf("another port of the relay address refused; relay-to-relay must work")
	}
}
