// Package turn is Quartet's STUN/TURN server, built on pion/turn: UDP, TCP
// and TLS listeners, stateless REST credentials shared with other servers,
// a peer policy that keeps relays out of the server's own network, quotas,
// rate limits and metrics.
package turn

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync/atomic"
	"time"

	pionturn "github.com/pion/turn/v5"

	"github.com/quartet-rtc/quartet/internal/pionlog"
)

// Server is a running STUN/TURN server.
type Server struct {
	log      *slog.Logger
	pion     []*pionturn.Server
	udp      net.PacketConn
	tcp, tls *guardedListener
	streams  atomic.Int64 // open TCP and TLS client connections
	quota    *quota
	uris     []string // what clients are told, see ClientURIs
}

// Start resolves c with deps, opens the listeners and serves until Close.
func Start(c Config, deps Deps) (*Server, error) {
	cfg, err := resolve(c, deps)
	if err != nil {
		return nil, err
	}
	s := &Server{log: deps.Log.With("role", "turn"), quota: newQuota(cfg.MaxAllocations, cfg.MaxAllocationsPerUser)}
	udp, tcp, err := listenPair(cfg.Host, cfg.Port)
	if err != nil {
		return nil, err
	}
	s.udp = udp
	var tlsLn net.Listener
	if cfg.TLSPort != 0 {
		if tlsLn, err = listenTLS(cfg); err != nil {
			_ = udp.Close()
			_ = tcp.Close()
			return nil, err
		}
	}
	policy := NewPolicy(cfg.AllowPeers, cfg.MediaAddrs, ownAddrs(cfg, udp, tcp, tlsLn))
	m := newMetrics(deps.Metrics)
	sources := newSourceLimiter(cfg.UnauthRate, cfg.UnauthBurst, 100_000)

	if err := s.startUDP(cfg, policy, sources, m.forTransport("udp")); err != nil {
		s.closeListeners(tcp, tlsLn)
		return nil, err
	}
	if s.tcp, err = s.startStream(cfg, tcp, policy, m.forTransport("tcp")); err != nil {
		s.closeListeners(tcp, tlsLn)
		return nil, err
	}
	tlsPort := 0
	if tlsLn != nil {
		if s.tls, err = s.startStream(cfg, tlsLn, policy, m.forTransport("tls")); err != nil {
			s.closeListeners(nil, tlsLn)
			return nil, err
		}
		tlsPort = s.TLSAddr().Port
	}
	s.uris = URIsFor(c, deps.RelayIP, s.UDPAddr().Port, tlsPort)
	return s, nil
}

// ownAddrs are the listeners' addresses as bound and as clients may name
// them: at the relay addresses too, which behind 1:1 NAT are not on any
// interface but lead back here.
func ownAddrs(cfg resolved, udp net.PacketConn, tcp, tlsLn net.Listener) []netip.AddrPort {
	own := []netip.AddrPort{addrPort(udp.LocalAddr()), addrPort(tcp.Addr())}
	ports := []uint16{addrPort(udp.LocalAddr()).Port()}
	if tlsLn != nil {
		own = append(own, addrPort(tlsLn.Addr()))
		ports = append(ports, addrPort(tlsLn.Addr()).Port())
	}
	for _, ip := range []netip.Addr{cfg.RelayIP, cfg.RelayIP6} {
		for _, port := range ports {
			if ip.IsValid() {
				own = append(own, netip.AddrPortFrom(ip, port))
			}
		}
	}
	return own
}

func (s *Server) startUDP(cfg resolved, policy *Policy, sources *sourceLimiter, m *transportMetrics) error {
	allocs := newAllocTable()
	g := s.newGuard(cfg, policy, sources, allocs, m)
	srv, err := pionturn.NewServer(s.serverConfig(cfg, m, allocs, pionturn.ServerConfig{
		PacketConnConfigs: []pionturn.PacketConnConfig{{
			PacketConn:            &guardedPacketConn{PacketConn: s.udp, g: g},
			RelayAddressGenerator: newRelayGenerator(cfg, policy, s.quota, m),
			PermissionHandler:     permissionHandler(policy, m, s.log),
		}},
	}))
	if err != nil {
		return fmt.Errorf("start TURN over UDP: %w", err)
	}
	s.pion = append(s.pion, srv)
	return nil
}

// startStream serves TCP or TLS. Its answers are not rate limited: a TCP
// source cannot be spoofed, so it is no amplification vector, and a client
// whose request got no answer would wait forever (TCP does not retransmit).
func (s *Server) startStream(cfg resolved, ln net.Listener, policy *Policy, m *transportMetrics) (*guardedListener, error) {
	allocs := newAllocTable()
	gl := &guardedListener{Listener: ln, g: s.newGuard(cfg, policy, nil, allocs, m), max: int64(cfg.MaxConnections),
		shortTimeout: 10 * time.Second, idleTimeout: cfg.MaxAllocationLifetime + 30*time.Second,
		open: &s.streams, log: s.log,
		conns: map[*guardedConn]struct{}{}}
	srv, err := pionturn.NewServer(s.serverConfig(cfg, m, allocs, pionturn.ServerConfig{
		ListenerConfigs: []pionturn.ListenerConfig{{
			Listener:              gl,
			RelayAddressGenerator: newRelayGenerator(cfg, policy, s.quota, m),
			PermissionHandler:     permissionHandler(policy, m, s.log),
		}},
	}))
	if err != nil {
		return nil, fmt.Errorf("start TURN over %s: %w", m.name, err)
	}
	s.pion = append(s.pion, srv)
	return gl, nil
}

// serverConfig fills what every transport's pion server shares. allocs
// follows the transport's allocations for its guard.
func (s *Server) serverConfig(cfg resolved, m *transportMetrics, allocs *allocTable, sc pionturn.ServerConfig) pionturn.ServerConfig {
	sc.Realm = cfg.Realm
	sc.LoggerFactory = pionlog.Factory{Log: s.log.With("transport", m.name)}
	sc.AllocationLifetime = cfg.AllocationLifetime
	sc.AuthHandler = func(ra *pionturn.RequestAttributes) (string, []byte, bool) {
		return cfg.Credentials.Key(ra.Username, ra.Realm)
	}
	sc.QuotaHandler = func(user, _ string, _ net.Addr) bool {
		if s.quota.userFull(user) {
			m.quotaUser.Inc()
			return false
		}
		return true
	}
	sc.EventHandler = pionturn.EventHandler{
		OnAllocationCreated: func(src, _ net.Addr, _, user, _ string, relay net.Addr, _ int) {
			allocs.created(src)
			m.allocations.Inc()
			s.log.Debug("allocation created", "transport", m.name, "client", src, "user", user, "relay", relay)
		},
		OnAllocationDeleted: func(src, _ net.Addr, _, user, _ string) {
			allocs.deleted(src) // before the gauge falls: tests wait for the gauge
			m.allocations.Dec()
			s.log.Debug("allocation deleted", "transport", m.name, "client", src, "user", user)
		},
	}
	return sc
}

// permissionHandler answers CreatePermission, ChannelBind and Connect.
func permissionHandler(policy *Policy, m *transportMetrics, log *slog.Logger) pionturn.PermissionHandler {
	return func(client net.Addr, peer net.IP) bool {
		ip, ok := netip.AddrFromSlice(peer)
		if ok && policy.PermitIP(ip) {
			return true
		}
		m.deniedPermission.Inc()
		log.Info("peer refused by relay policy", "transport", m.name, "client", client, "peer", peer)
		return false
	}
}

func (s *Server) newGuard(cfg resolved, policy *Policy, sources *sourceLimiter, allocs *allocTable, m *transportMetrics) *guard {
	return &guard{creds: cfg.Credentials, realm: cfg.Realm, policy: policy, maxLifetime: cfg.MaxAllocationLifetime,
		sources: sources, udp: sources != nil, ipv6: cfg.RelayIP6.IsValid(), allocs: allocs, m: m, log: s.log}
}

func newRelayGenerator(cfg resolved, policy *Policy, q *quota, m *transportMetrics) *relayGenerator {
	return &relayGenerator{bindIP4: cfg.Host, relayIP4: cfg.RelayIP, relayIP6: cfg.RelayIP6,
		minPort: cfg.RelayMinPort, maxPort: cfg.RelayMaxPort, maxBitrate: cfg.MaxBitrate,
		policy: policy, quota: q, m: m}
}

// listenPair opens UDP and TCP on the same port; with port 0 it retries
// until a free port is free for both.
func listenPair(host string, port int) (net.PacketConn, net.Listener, error) {
	var lastErr error
	for range 10 {
		udp, err := net.ListenPacket("udp", net.JoinHostPort(host, strconv.Itoa(port))) //nolint:noctx
		if err != nil {
			return nil, nil, fmt.Errorf("listen on UDP %s:%d (turn.port): %w", host, port, err)
		}
		growBuffers(udp, 4<<20)
		actual := udp.LocalAddr().(*net.UDPAddr).Port
		tcp, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(actual))) //nolint:noctx
		if err == nil {
			return udp, tcp, nil
		}
		_ = udp.Close()
		lastErr = err
		if port != 0 {
			break
		}
	}
	return nil, nil, fmt.Errorf("listen on TCP %s:%d (turn.port): %w", host, port, lastErr)
}

// growBuffers raises the UDP socket buffers so bursts of relayed media are
// not dropped by the kernel; the kernel may cap the values.
func growBuffers(conn net.PacketConn, size int) {
	if u, ok := conn.(*net.UDPConn); ok {
		_ = u.SetReadBuffer(size)
		_ = u.SetWriteBuffer(size)
	}
}

func listenTLS(cfg resolved) (net.Listener, error) {
	cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("load turn.tls_cert and turn.tls_key: %w", err)
	}
	addr := net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.TLSPort))
	ln, err := tls.Listen("tcp", addr, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	if err != nil {
		return nil, fmt.Errorf("listen on TLS %s (turn.tls_port): %w", addr, err)
	}
	return ln, nil
}

func (s *Server) closeListeners(lns ...net.Listener) {
	for _, srv := range s.pion {
		_ = srv.Close()
	}
	_ = s.udp.Close()
	for _, ln := range lns {
		if ln != nil {
			_ = ln.Close()
		}
	}
}

// UDPAddr is the STUN/TURN UDP listener's address.
func (s *Server) UDPAddr() *net.UDPAddr { return s.udp.LocalAddr().(*net.UDPAddr) }

// TCPAddr is the TCP listener's address.
func (s *Server) TCPAddr() *net.TCPAddr { return s.tcp.Addr().(*net.TCPAddr) }

// TLSAddr is the TLS listener's address, or nil without TLS.
func (s *Server) TLSAddr() *net.TCPAddr {
	if s.tls == nil {
		return nil
	}
	return s.tls.Addr().(*net.TCPAddr)
}

// ClientURIs is what clients are told for this server: turn.uris, or URIs
// derived from the address clients reach it at and the bound ports.
func (s *Server) ClientURIs() []string { return s.uris }

// Allocations is the number of relay sockets open.
func (s *Server) Allocations() int { return s.quota.count() }

// Close stops the listeners and ends every allocation and connection.
func (s *Server) Close() error {
	var errs []error
	for _, srv := range s.pion {
		if err := srv.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	for _, l := range []*guardedListener{s.tcp, s.tls} {
		if l != nil {
			l.closeAll()
		}
	}
	return errors.Join(errs...)
}
