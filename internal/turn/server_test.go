package turn

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/stun/v4"
	pionturn "github.com/pion/turn/v5"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/quartet-rtc/quartet/internal/pionlog"
)

const testSecret = "test-secret-0123456789"

var (
	loopback4 = netip.MustParsePrefix("127.0.0.0/8")
	discard   = slog.New(slog.DiscardHandler)
)

// testCreds mints credentials the test servers accept.
func testCreds() *Credentials { return &Credentials{Secret: testSecret, TTL: time.Hour} }

// startTURN runs a server on a free loopback port with test-friendly
// defaults; mutate adjusts the config first.
func startTURN(t testing.TB, mutate func(*Config)) *Server {
	t.Helper()
	s, _ := startTURNReg(t, mutate)
	return s
}

// startTURNReg is startTURN that also returns the registry the server's
// metrics are in.
func startTURNReg(t testing.TB, mutate func(*Config)) (*Server, *prometheus.Registry) {
	t.Helper()
	return startTURNDeps(t, mutate, nil)
}

// startTURNDeps is startTURNReg with mutateDeps adjusting the Deps too.
func startTURNDeps(t testing.TB, mutate func(*Config), mutateDeps func(*Deps)) (*Server, *prometheus.Registry) {
	t.Helper()
	cfg := Config{
		Host: "127.0.0.1", Realm: "quartet", CredentialTTL: time.Hour,
		MaxAllocations: 100, MaxAllocationsPerUser: 10,
		AllocationLifetime: 10 * time.Minute, MaxAllocationLifetime: time.Hour,
		MaxConnections: 100, UnauthRate: 100, UnauthBurst: 100,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	reg := prometheus.NewRegistry()
	deps := Deps{Log: discard, Metrics: reg, Secret: testSecret, RelayIP: "127.0.0.1"}
	if mutateDeps != nil {
		mutateDeps(&deps)
	}
	s, err := Start(cfg, deps)
	if err != nil {
		t.Fatalf("start TURN: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, reg
}

func allowLoopback(c *Config) { c.AllowPeers = []string{loopback4.String()} }

// newClient starts a pion TURN client that talks to server over conn with
// fresh REST credentials for user. It does not allocate.
func newClient(t testing.TB, conn net.PacketConn, server, user string, mutate func(*pionturn.ClientConfig)) *pionturn.Client {
	t.Helper()
	cred := testCreds().Mint(user)
	cfg := &pionturn.ClientConfig{
		STUNServerAddr: server, TURNServerAddr: server,
		Conn: conn, Username: cred.Username, Password: cred.Password, Realm: "quartet",
		LoggerFactory: pionlog.Factory{Log: discard},
	}
	if mutate != nil {
		mutate(cfg)
	}
	c, err := pionturn.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); _ = conn.Close() })
	if err := c.Listen(); err != nil {
		t.Fatal(err)
	}
	return c
}

// udpSocket opens a UDP socket on 127.0.0.1.
func udpSocket(t testing.TB) *net.UDPConn {
	t.Helper()
	pc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	return pc
}

// udpClient allocates a UDP relay on s over UDP with fresh REST credentials.
func udpClient(t testing.TB, s *Server, user string) (*pionturn.Client, net.PacketConn) {
	t.Helper()
	c := newClient(t, udpSocket(t), s.UDPAddr().String(), user, nil)
	return c, allocate(t, c)
}

// tcpClient is a client whose connection to s is TCP (or conn, if given).
func tcpClient(t testing.TB, s *Server, user string) *pionturn.Client {
	t.Helper()
	conn, err := net.Dial("tcp4", s.TCPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	return newClient(t, pionturn.NewSTUNConn(conn), s.TCPAddr().String(), user, nil)
}

func allocate(t testing.TB, c *pionturn.Client) net.PacketConn {
	t.Helper()
	relay, err := c.Allocate()
	if err != nil {
		t.Fatalf("allocate: %v", err)
	}
	t.Cleanup(func() { _ = relay.Close() })
	return relay
}

// turnCode is the STUN error code in a pion client error, or 0.
func turnCode(err error) int {
	var p *stun.TurnError
	if errors.As(err, &p) {
		return int(p.ErrorCodeAttr.Code)
	}
	var v stun.TurnError
	if errors.As(err, &v) {
		return int(v.ErrorCodeAttr.Code)
	}
	return 0
}

// echoPeer answers every UDP packet with the same bytes.
func echoPeer(t testing.TB) *net.UDPConn {
	t.Helper()
	return echoPeerOn(t, "udp4", net.IPv4(127, 0, 0, 1))
}

func echoPeerOn(t testing.TB, network string, ip net.IP) *net.UDPConn {
	t.Helper()
	pc, err := net.ListenUDP(network, &net.UDPAddr{IP: ip})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { _ = pc.Close(); wg.Wait() })
	wg.Go(func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo(buf[:n], from)
		}
	})
	return pc
}

// roundTrips sends n packets through relay to peer and counts the echoes.
// A refused permission makes writes fail, which counts as not delivered.
//
// The packets are 12 bytes: pion's TCP framing (STUNConn) does not return
// a ChannelData frame shorter than 9 bytes until more bytes follow, so a
// payload of 4 bytes or less stalls over TCP and TLS.
func roundTrips(t testing.TB, relay net.PacketConn, peer net.Addr, n int) int {
	t.Helper()
	got := 0
	buf := make([]byte, 1500)
	for i := range n {
		msg := []byte{byte(i), 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}
		if _, err := relay.WriteTo(msg, peer); err != nil {
			continue
		}
		_ = relay.SetReadDeadline(time.Now().Add(time.Second))
		if m, _, err := relay.ReadFrom(buf); err == nil && m == len(msg) && buf[0] == byte(i) {
			got++
		}
	}
	return got
}

// received counts the packets that arrive at pc until none has arrived for
// quiet.
func received(pc net.PacketConn, quiet time.Duration) int {
	n := 0
	buf := make([]byte, 2048)
	for {
		_ = pc.SetReadDeadline(time.Now().Add(quiet))
		if _, _, err := pc.ReadFrom(buf); err != nil {
			return n
		}
		n++
	}
}

// receiveAsync counts the packets arriving at pc in the background, so the
// socket buffer never overflows, until none has arrived for quiet; the
// returned function waits for the count.
func receiveAsync(pc net.PacketConn, quiet time.Duration) func() int {
	ch := make(chan int, 1)
	go func() { ch <- received(pc, quiet) }()
	return func() int { return <-ch }
}

// tcpPeer is a TCP echo server that counts the connections it accepts.
type tcpPeer struct {
	ln       net.Listener
	mu       sync.Mutex
	accepted int
	conns    []net.Conn
}

func newTCPPeer(t testing.TB) *tcpPeer {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpPeer{ln: ln}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		_ = ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			_ = c.Close()
		}
		p.mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			p.accepted++
			p.conns = append(p.conns, c)
			p.mu.Unlock()
			wg.Go(func() { _, _ = io.Copy(c, c); _ = c.Close() })
		}
	})
	return p
}

func (p *tcpPeer) addr() *net.TCPAddr { return p.ln.Addr().(*net.TCPAddr) }

func (p *tcpPeer) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accepted
}

// eventually fails the test if cond does not become true within a few
// seconds: for state that a server goroutine updates just after the
// event the test observed.
func eventually(t testing.TB, cond func() bool, format string, args ...any) {
	t.Helper()
	for range 250 {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf(format, args...)
}

// metric sums the samples of the metric family name whose labels include
// every pair in labels.
func metric(t testing.TB, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if !hasLabels(m, labels) {
				continue
			}
			switch {
			case m.Counter != nil:
				sum += m.Counter.GetValue()
			case m.Gauge != nil:
				sum += m.Gauge.GetValue()
			}
		}
	}
	return sum
}

func hasLabels(m *dto.Metric, want map[string]string) bool {
	for k, v := range want {
		found := false
		for _, l := range m.GetLabel() {
			if l.GetName() == k && l.GetValue() == v {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// selfSignedCert writes a certificate for 127.0.0.1 and its key into a
// temporary directory and returns their paths and a pool trusting it.
func selfSignedCert(t testing.TB) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "quartet test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// freeTCPPort returns a TCP port on 127.0.0.1 that was free a moment ago.
// Config.TLSPort 0 means "no TLS", so a TLS test must name a port.
func freeTCPPort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	return port
}

func TestUDPRelayToAllowedPeer(t *testing.T) {
	t.Parallel()
	s := startTURN(t, allowLoopback)
	_, relay := udpClient(t, s, "alice")
	peer := echoPeer(t)
	if got := roundTrips(t, relay, peer.LocalAddr(), 20); got != 20 {
		t.Fatalf("%d of 20 packets came back through the relay", got)
	}
}

func TestLoopbackPeerRefusedByDefault(t *testing.T) {
	t.Parallel()
	s := startTURN(t, nil)
	c, relay := udpClient(t, s, "alice")
	peer := echoPeer(t)
	err := c.CreatePermission(peer.LocalAddr())
	if code := turnCode(err); code != int(stun.CodeForbidden) {
		t.Fatalf("CreatePermission to a loopback peer: got %v (code %d), want 403", err, code)
	}
	if got := roundTrips(t, relay, peer.LocalAddr(), 3); got != 0 {
		t.Fatalf("%d packets reached a refused peer", got)
	}
}

func TestUDPRelayOverTCP(t *testing.T) {
	t.Parallel()
	s := startTURN(t, allowLoopback)
	c := tcpClient(t, s, "alice")
	relay := allocate(t, c)
	peer := echoPeer(t)
	if got := roundTrips(t, relay, peer.LocalAddr(), 20); got != 20 {
		t.Fatalf("%d of 20 packets came back through a relay allocated over TCP", got)
	}
}

func TestUDPRelayOverTLS(t *testing.T) {
	t.Parallel()
	certFile, keyFile, pool := selfSignedCert(t)
	s := startTURN(t, func(c *Config) {
		allowLoopback(c)
		c.TLSPort, c.TLSCert, c.TLSKey = freeTCPPort(t), certFile, keyFile
	})
	if s.TLSAddr() == nil {
		t.Fatal("TLSAddr is nil with TLSPort set")
	}
	conn, err := tls.Dial("tcp4", s.TLSAddr().String(), &tls.Config{RootCAs: pool, ServerName: "127.0.0.1",
		MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatalf("TLS handshake with the TURN server: %v", err)
	}
	c := newClient(t, pionturn.NewSTUNConn(conn), s.TLSAddr().String(), "alice", nil)
	relay := allocate(t, c)
	peer := echoPeer(t)
	if got := roundTrips(t, relay, peer.LocalAddr(), 20); got != 20 {
		t.Fatalf("%d of 20 packets came back through a relay allocated over TLS", got)
	}
}

func TestNoTLSListenerByDefault(t *testing.T) {
	t.Parallel()
	if s := startTURN(t, nil); s.TLSAddr() != nil {
		t.Fatalf("TLS listener on %v without TLSPort", s.TLSAddr())
	}
}

func TestStartFailsWithBadTLSCert(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := Config{Host: "127.0.0.1", Realm: "quartet", CredentialTTL: time.Hour,
		TLSPort: freeTCPPort(t), TLSCert: filepath.Join(dir, "missing.pem"), TLSKey: filepath.Join(dir, "missing.key"),
		MaxAllocations: 1, MaxAllocationsPerUser: 1, MaxConnections: 1, UnauthRate: 1, UnauthBurst: 1}
	s, err := Start(cfg, Deps{Log: discard, Metrics: prometheus.NewRegistry(), Secret: testSecret, RelayIP: "127.0.0.1"})
	if err == nil {
		_ = s.Close()
		t.Fatal("Start succeeded with a missing TLS certificate")
	}
	if !strings.Contains(err.Error(), "turn.tls_cert") {
		t.Fatalf("Start: %v, want the error to name turn.tls_cert", err)
	}
}

// TestTCPAllocation is RFC 6062: the relay dials a TCP peer and the client
// exchanges bytes with it over a separate data connection.
func TestTCPAllocation(t *testing.T) {
	t.Parallel()
	s := startTURN(t, allowLoopback)
	c := tcpClient(t, s, "alice")
	alloc, err := c.AllocateTCP()
	if err != nil {
		t.Fatalf("allocate TCP: %v", err)
	}
	t.Cleanup(func() { _ = alloc.Close() })
	peer := newTCPPeer(t)
	conn, err := alloc.Dial("tcp4", peer.addr().String())
	if err != nil {
		t.Fatalf("dial a TCP peer through the relay: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	// Payloads that look like ChannelData, STUN and neither: after
	// ConnectionBind the data connection carries raw bytes.
	for _, msg := range []string{"\xff\xfe binary", "hello, peer", "\x00\x01\x00\x08 not stun"} {
		if _, err := conn.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(conn, got); err != nil {
			t.Fatalf("echo of %q through the TCP relay: %v", msg, err)
		}
		if string(got) != msg {
			t.Fatalf("echo: got %q, want %q", got, msg)
		}
	}
	if peer.count() != 1 {
		t.Fatalf("peer accepted %d connections, want 1", peer.count())
	}
}

func TestTCPConnectToLoopbackRefusedByDefault(t *testing.T) {
	t.Parallel()
	s := startTURN(t, nil)
	c := tcpClient(t, s, "alice")
	alloc, err := c.AllocateTCP()
	if err != nil {
		t.Fatalf("allocate TCP: %v", err)
	}
	t.Cleanup(func() { _ = alloc.Close() })
	peer := newTCPPeer(t)
	_, err = alloc.Connect(peer.addr())
	if code := turnCode(err); code != int(stun.CodeForbidden) {
		t.Fatalf("Connect to a loopback peer: got %v (code %d), want 403", err, code)
	}
	if _, err := alloc.Dial("tcp4", peer.addr().String()); err == nil {
		t.Fatal("Dial to a loopback peer through the relay succeeded")
	}
	// The peer listener is idle; a connection from the relay would be
	// counted when accepted.
	time.Sleep(200 * time.Millisecond)
	if n := peer.count(); n != 0 {
		t.Fatalf("refused peer accepted %d connections from the relay", n)
	}
}

// TestIPv6Relay is RFC 6156: an IPv4 client asks for an IPv6 relay.
func TestIPv6Relay(t *testing.T) {
	t.Parallel()
	probe, err := net.ListenPacket("udp6", "[::1]:0")
	if err != nil {
		t.Skipf("cannot bind ::1: %v", err)
	}
	_ = probe.Close()
	s := startTURN(t, func(c *Config) {
		c.RelayIP6 = "::1"
		c.AllowPeers = []string{"::1/128"}
	})
	c := newClient(t, udpSocket(t), s.UDPAddr().String(), "alice", func(cfg *pionturn.ClientConfig) {
		cfg.RequestedAddressFamily = pionturn.RequestedAddressFamilyIPv6
	})
	relay := allocate(t, c)
	if ip := relay.LocalAddr().(*net.UDPAddr).IP; !ip.Equal(net.IPv6loopback) {
		t.Fatalf("relay address %v, want ::1", relay.LocalAddr())
	}
	peer := echoPeerOn(t, "udp6", net.IPv6loopback)
	if got := roundTrips(t, relay, peer.LocalAddr(), 10); got != 10 {
		t.Fatalf("%d of 10 packets came back through the IPv6 relay", got)
	}
	// NAT64 to IPv4 loopback stays refused on an IPv6 relay.
	nat64 := &net.UDPAddr{IP: net.ParseIP("64:ff9b::7f00:1"), Port: peer.LocalAddr().(*net.UDPAddr).Port}
	if code := turnCode(c.CreatePermission(nat64)); code != int(stun.CodeForbidden) {
		t.Fatalf("CreatePermission to %v: code %d, want 403", nat64, code)
	}
}

func TestIPv6RelayNotConfigured(t *testing.T) {
	t.Parallel()
	s := startTURN(t, nil)
	c := newClient(t, udpSocket(t), s.UDPAddr().String(), "alice", func(cfg *pionturn.ClientConfig) {
		cfg.RequestedAddressFamily = pionturn.RequestedAddressFamilyIPv6
	})
	_, err := c.Allocate()
	if code := turnCode(err); code != int(stun.CodeAddrFamilyNotSupported) {
		t.Fatalf("IPv6 allocation without turn.relay_ip6: got %v (code %d), want 440 (RFC 6156)", err, code)
	}
}

func TestCloseEndsRelaysAndConnections(t *testing.T) {
	t.Parallel()
	s := startTURN(t, allowLoopback)
	udpClient(t, s, "alice")
	allocate(t, tcpClient(t, s, "bob"))
	if n := s.Allocations(); n != 2 {
		t.Fatalf("Allocations() = %d, want 2", n)
	}
	conn, err := net.Dial("tcp4", s.TCPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := conn.Read(make([]byte, 1)); err == nil {
		t.Fatal("TCP connection still open after Close")
	}
	// pion ends the allocations once its read loops have stopped.
	eventually(t, func() bool { return s.Allocations() == 0 }, "allocations remain after Close")
}

// TestTinyPayloadOverTCP: pion's TCP framing (proto.STUNConn) needs 9
// bytes before it parses a frame, so a ChannelData frame of 8 bytes (a
// payload of 4 bytes or less) waits in the server until more bytes arrive.
// Upstream bug in pion/turn v5.1.3 consumeSingleTURNFrame.
func TestTinyPayloadOverTCP(t *testing.T) {
	knownBug(t, "pion/turn STUNConn holds ChannelData frames shorter than 9 bytes")
	t.Parallel()
	s := startTURN(t, allowLoopback)
	c := dialRaw(t, "tcp4", s.TCPAddr(), "alice")
	c.start()
	if code := errorCode(c.allocate()); code != 0 {
		t.Fatalf("allocate: error %d", code)
	}
	pc := udpSocket(t)
	if code := errorCode(c.request(stun.MethodChannelBind, channelNumber(0x4000), udpPeerAddr(pc.LocalAddr()))); code != 0 {
		t.Fatalf("ChannelBind: error %d", code)
	}
	c.send(channelData(0x4000, []byte("tiny")))
	buf := make([]byte, 100)
	_ = pc.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, _, err := pc.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "tiny" {
		t.Fatalf("4-byte payload over TCP: peer got %q, %v", buf[:n], err)
	}
}
