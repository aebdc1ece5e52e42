package turn

import (
	"context"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// relayPacketConn is a UDP relay socket. pion writes what a client sends to
// a peer and reads what peers send back; both directions pass the peer
// policy per address and port, and the allocation's bandwidth limit.
// Refused packets are dropped silently, as a NAT would.
type relayPacketConn struct {
	net.PacketConn
	g                *relayGenerator
	release          func()
	toPeer, toClient *rate.Limiter
	// lastPeer and lastSource remember the last permitted address of each
	// direction: an allocation mostly talks to one peer, and this spares
	// the policy check per packet.
	lastPeer, lastSource atomic.Pointer[netip.AddrPort]
}

// permit checks ap against the policy, through the one-entry cache last.
func (c *relayPacketConn) permit(addr net.Addr, last *atomic.Pointer[netip.AddrPort]) bool {
	ap := addrPort(addr)
	if p := last.Load(); p != nil && *p == ap {
		return true
	}
	if !c.g.policy.PermitAddr(ap) {
		return false
	}
	last.Store(&ap)
	return true
}

func (c *relayPacketConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	m := c.g.m
	if !c.permit(addr, &c.lastPeer) {
		m.deniedRelay.Inc()
		return len(p), nil
	}
	if c.toPeer != nil && !c.toPeer.AllowN(time.Now(), len(p)) {
		m.dropped.Inc()
		return len(p), nil
	}
	n, err := c.PacketConn.WriteTo(p, addr)
	m.toPeerBytes.Add(float64(n))
	m.toPeerPkts.Inc()
	return n, err
}

func (c *relayPacketConn) ReadFrom(p []byte) (int, net.Addr, error) {
	m := c.g.m
	for {
		n, addr, err := c.PacketConn.ReadFrom(p)
		if err != nil {
			return n, addr, err
		}
		if !c.permit(addr, &c.lastSource) {
			m.deniedRelay.Inc()
			continue
		}
		if c.toClient != nil && !c.toClient.AllowN(time.Now(), n) {
			m.dropped.Inc()
			continue
		}
		m.toClientBytes.Add(float64(n))
		m.toClientPkts.Inc()
		return n, addr, nil
	}
}

func (c *relayPacketConn) Close() error {
	c.release()
	return c.PacketConn.Close()
}

// relayListener is a TCP relay address (RFC 6062). Connections from peers
// the policy refuses are closed before pion sees them.
type relayListener struct {
	net.Listener
	g       *relayGenerator
	release func()
}

func (l *relayListener) Accept() (net.Conn, error) {
	for {
		conn, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if !l.g.policy.PermitStream(addrPort(conn.RemoteAddr())) {
			l.g.m.deniedRelay.Inc()
			_ = conn.Close()
			continue
		}
		return l.g.wrapConn(conn), nil
	}
}

func (l *relayListener) Close() error {
	l.release()
	return l.Listener.Close()
}

// relayConn is a TCP connection to a peer. pion copies the client's data
// connection into it and back; the limit delays rather than drops, as TCP
// must.
type relayConn struct {
	net.Conn
	m                *transportMetrics
	toPeer, toClient *rate.Limiter
	ctx              context.Context // ends at Close, so a waiting copy stops
	cancel           context.CancelFunc
	release          func() // gives back a dialed connection's quota slot (idempotent)
}

func (c *relayConn) Write(p []byte) (int, error) {
	if err := wait(c.ctx, c.toPeer, len(p)); err != nil {
		return 0, err
	}
	n, err := c.Conn.Write(p)
	c.m.toPeerBytes.Add(float64(n))
	c.m.toPeerPkts.Inc()
	return n, err
}

func (c *relayConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.m.toClientBytes.Add(float64(n))
		c.m.toClientPkts.Inc()
		if werr := wait(c.ctx, c.toClient, n); werr != nil && err == nil {
			err = werr
		}
	}
	return n, err
}

func (c *relayConn) Close() error {
	c.cancel()
	c.release()
	return c.Conn.Close()
}

func wait(ctx context.Context, l *rate.Limiter, n int) error {
	if l == nil {
		return nil
	}
	return l.WaitN(ctx, min(n, l.Burst()))
}
