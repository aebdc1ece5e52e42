package turn

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/pion/transport/v5/reuseport"
	pionturn "github.com/pion/turn/v5"
	"golang.org/x/time/rate"
)

var (
	errNoIPv6    = errors.New("turn: IPv6 relays are not configured (turn.relay_ip6)")
	errPortTaken = errors.New("turn: relay port in use by another allocation")
)

// dialTimeout bounds a Connect (RFC 6062 section 5.2 asks for at least 30 s).
const dialTimeout = 30 * time.Second

// relayGenerator opens relay sockets for pion (it implements
// pion's RelayAddressGenerator) and wraps each in the peer policy, the
// bandwidth limit and the counters. One exists per client transport.
type relayGenerator struct {
	bindIP4    string     // address relay sockets bind to
	relayIP4   netip.Addr // address told to clients
	relayIP6   netip.Addr // bound and told; invalid = no IPv6 relays
	minPort    int
	maxPort    int
	maxBitrate int64
	policy     *Policy
	quota      *quota
	m          *transportMetrics
}

func (g *relayGenerator) Validate() error { return nil }

func (g *relayGenerator) AllocatePacketConn(conf pionturn.AllocateListenerConfig) (net.PacketConn, net.Addr, error) {
	var conn net.PacketConn
	release, advertised, err := g.open(conf, func(addr string) error {
		var lerr error
		conn, lerr = net.ListenPacket(conf.Network, addr) //nolint:noctx
		return lerr
	})
	if err != nil {
		return nil, nil, fmt.Errorf("open relay socket: %w", err)
	}
	// A video keyframe arrives as a burst; the default buffer (about 200
	// KiB) overflows under load while the relay goroutine waits to run.
	growBuffers(conn, 1<<20)
	port := conn.LocalAddr().(*net.UDPAddr).Port
	return &relayPacketConn{PacketConn: conn, g: g, release: release, toPeer: g.limiter(), toClient: g.limiter()},
		&net.UDPAddr{IP: advertised.AsSlice(), Port: port}, nil
}

func (g *relayGenerator) AllocateListener(conf pionturn.AllocateListenerConfig) (net.Listener, net.Addr, error) {
	// SO_REUSEPORT lets Connect (RFC 6062) dial out from the relay port.
	lc := net.ListenConfig{Control: reuseport.Control}
	var ln net.Listener
	releaseSlot, advertised, err := g.open(conf, func(addr string) error {
		var lerr error
		if ln, lerr = lc.Listen(context.Background(), conf.Network, addr); lerr != nil {
			return lerr
		}
		if !g.quota.claimTCPPort(ln.Addr().(*net.TCPAddr).Port) {
			_ = ln.Close()
			return errPortTaken
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("open relay listener: %w", err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	release := sync.OnceFunc(func() { releaseSlot(); g.quota.releaseTCPPort(port) })
	return &relayListener{Listener: ln, g: g, release: release},
		&net.TCPAddr{IP: advertised.AsSlice(), Port: port}, nil
}

// open reserves a quota slot for the user and opens a relay socket with
// listen(host:port) on the requested or a free port. The returned release
// gives the slot back, once; on error nothing is held.
func (g *relayGenerator) open(conf pionturn.AllocateListenerConfig, listen func(addr string) error) (
	release func(), advertised netip.Addr, err error,
) {
	if release, err = g.acquire(conf.UserID); err != nil {
		return nil, netip.Addr{}, err
	}
	bind, advertised, err := g.addresses(conf.Network)
	if err == nil {
		err = g.tryPorts(conf.RequestedPort, func(port int) error {
			return listen(net.JoinHostPort(bind, strconv.Itoa(port)))
		})
	}
	if err != nil {
		release()
		return nil, netip.Addr{}, err
	}
	return release, advertised, nil
}

// acquire takes a quota slot for user; release gives it back, once.
func (g *relayGenerator) acquire(user string) (release func(), err error) {
	if err := g.quota.acquire(user); err != nil {
		if errors.Is(err, errCapacity) {
			g.m.quotaTotal.Inc()
		} else {
			g.m.quotaUser.Inc()
		}
		return nil, err
	}
	return sync.OnceFunc(func() { g.quota.release(user) }), nil
}

// AllocateConn dials a peer for a Connect request (RFC 6062) from the
// allocation's relay port. pion has checked the permission for the IP;
// the port is checked here. Each connection counts against the quotas
// like a relay socket, so Connects cannot exhaust file descriptors.
func (g *relayGenerator) AllocateConn(conf pionturn.AllocateConnConfig) (net.Conn, error) {
	remote, ok := conf.RemoteAddr.(*net.TCPAddr)
	if !ok {
		return nil, fmt.Errorf("turn: unexpected peer address %v", conf.RemoteAddr)
	}
	if !g.policy.PermitStream(remote.AddrPort()) {
		g.m.deniedRelay.Inc()
		return nil, fmt.Errorf("turn: peer %v refused by relay policy", remote)
	}
	bind, _, err := g.addresses(conf.Network)
	if err != nil {
		return nil, err
	}
	local, ok := conf.LocalAddr.(*net.TCPAddr)
	if !ok {
		return nil, fmt.Errorf("turn: unexpected relay address %v", conf.LocalAddr)
	}
	// The relay address may be a public IP that is not on any interface
	// (1:1 NAT), so bind to where the relay listener is bound.
	release, err := g.acquire(conf.UserID)
	if err != nil {
		return nil, err
	}
	d := net.Dialer{Timeout: dialTimeout, Control: reuseport.Control,
		LocalAddr: &net.TCPAddr{IP: net.ParseIP(bind), Port: local.Port}}
	conn, err := d.Dial(conf.Network, remote.String())
	if err != nil {
		release()
		return nil, err
	}
	rc := g.wrapConn(conn)
	rc.release = release
	return rc, nil
}

// addresses returns where to bind and what to advertise for network.
func (g *relayGenerator) addresses(network string) (bind string, advertised netip.Addr, err error) {
	if network == "udp6" || network == "tcp6" {
		if !g.relayIP6.IsValid() {
			return "", netip.Addr{}, errNoIPv6
		}
		return g.relayIP6.String(), g.relayIP6, nil
	}
	return g.bindIP4, g.relayIP4, nil
}

// tryPorts opens a socket on the requested port, on any port, or on a
// random port of the configured range.
func (g *relayGenerator) tryPorts(requested int, open func(port int) error) error {
	if requested != 0 {
		return open(requested)
	}
	var err error
	for range 16 {
		port := 0 // the kernel picks
		if g.minPort != 0 {
			port = g.minPort + rand.IntN(g.maxPort-g.minPort+1) //nolint:gosec // not security relevant
		}
		if err = open(port); err == nil {
			return nil
		}
	}
	return fmt.Errorf("no free relay port: %w", err)
}

// limiter returns a byte-rate limiter for one direction of an allocation,
// or nil when turn.max_bitrate is 0.
func (g *relayGenerator) limiter() *rate.Limiter {
	if g.maxBitrate <= 0 {
		return nil
	}
	bytesPerSec := g.maxBitrate / 8
	// Allow a second's worth of burst, and at least one TCP copy buffer.
	return rate.NewLimiter(rate.Limit(bytesPerSec), int(max(bytesPerSec, 64<<10)))
}

func (g *relayGenerator) wrapConn(conn net.Conn) *relayConn {
	ctx, cancel := context.WithCancel(context.Background())
	return &relayConn{Conn: conn, m: g.m, toPeer: g.limiter(), toClient: g.limiter(), ctx: ctx, cancel: cancel,
		release: func() {}}
}

func addrPort(addr net.Addr) netip.AddrPort {
	switch a := addr.(type) {
	case *net.UDPAddr:
		return a.AddrPort()
	case *net.TCPAddr:
		return a.AddrPort()
	}
	return netip.AddrPort{}
}
