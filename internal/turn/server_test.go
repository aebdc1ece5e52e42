package turn

import (
	"io"
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"

	pionturn "github.com/pion/turn/v5"
	"github.com/prometheus/client_golang/prometheus"
)

const testSecret = "test-secret-0123456789"

// startTURN runs a server on a free loopback port with test-friendly
// defaults; mutate adjusts the config first.
func startTURN(t testing.TB, mutate func(*Config)) *Server {
	t.Helper()
	cfg := Config{
		Host: "127.0.0.1", Realm: "quartet",
		Credentials:    &Credentials{Secret: testSecret, TTL: time.Hour},
		RelayIP:        netip.MustParseAddr("127.0.0.1"),
		MaxAllocations: 100, MaxAllocationsPerUser: 10,
		AllocationLifetime: 10 * time.Minute, MaxAllocationLifetime: time.Hour,
		MaxConnections: 100, UnauthRate: 100, UnauthBurst: 100,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	s, err := Start(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	if err != nil {
		t.Fatalf("start TURN: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// udpClient allocates a UDP relay on s with fresh REST credentials.
func udpClient(t testing.TB, s *Server, user string) (*pionturn.Client, net.PacketConn) {
	t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cred := (&Credentials{Secret: testSecret, TTL: time.Hour}).Mint(user)
	c, err := pionturn.NewClient(&pionturn.ClientConfig{
		STUNServerAddr: s.UDPAddr().String(), TURNServerAddr: s.UDPAddr().String(),
		Conn: conn, Username: cred.Username, Password: cred.Password, Realm: "quartet",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); _ = conn.Close() })
	if err := c.Listen(); err != nil {
		t.Fatal(err)
	}
	relay, err := c.Allocate()
	if err != nil {
		t.Fatalf("allocate: %v", err)
	}
	t.Cleanup(func() { _ = relay.Close() })
	return c, relay
}

// echoPeer answers every UDP packet with the same bytes.
func echoPeer(t testing.TB) *net.UDPConn {
	t.Helper()
	pc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo(buf[:n], from)
		}
	}()
	return pc
}

// roundTrips sends n packets through relay to peer and counts the echoes.
// A refused permission makes writes fail, which counts as not delivered.
func roundTrips(t testing.TB, relay net.PacketConn, peer net.Addr, n int) int {
	t.Helper()
	got := 0
	buf := make([]byte, 1500)
	for i := range n {
		if _, err := relay.WriteTo([]byte{byte(i), 1, 2, 3}, peer); err != nil {
			continue
		}
		_ = relay.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		if m, _, err := relay.ReadFrom(buf); err == nil && m == 4 && buf[0] == byte(i) {
			got++
		}
	}
	return got
}

func TestUDPRelayToAllowedPeer(t *testing.T) {
	s := startTURN(t, func(c *Config) { c.AllowPeers = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")} })
	_, relay := udpClient(t, s, "alice")
	peer := echoPeer(t)
	if got := roundTrips(t, relay, peer.LocalAddr(), 20); got != 20 {
		t.Fatalf("%d of 20 packets came back through the relay", got)
	}
}

func TestLoopbackPeerRefusedByDefault(t *testing.T) {
	s := startTURN(t, nil)
	c, relay := udpClient(t, s, "alice")
	peer := echoPeer(t)
	if err := c.CreatePermission(peer.LocalAddr()); err == nil {
		t.Fatal("CreatePermission to a loopback peer succeeded")
	}
	if got := roundTrips(t, relay, peer.LocalAddr(), 3); got != 0 {
		t.Fatalf("%d packets reached a refused peer", got)
	}
}
