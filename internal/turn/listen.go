package turn

import (
	"encoding/binary"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/stun/v4"
)

// guardedPacketConn is the UDP listener as pion sees it: requests pass
// the guard first.
type guardedPacketConn struct {
	net.PacketConn
	g *guard
}

func (c *guardedPacketConn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		n, addr, err := c.PacketConn.ReadFrom(p)
		if err != nil {
			return n, addr, err
		}
		out, v := c.g.inspect(p[:n], addr, func(b []byte) { _, _ = c.PacketConn.WriteTo(b, addr) })
		if v != pass {
			continue
		}
		return copy(p, out), addr, nil
	}
}

// guardedListener is a TCP or TLS listener as pion sees it: it caps the
// number of connections, and each connection's frames pass the guard.
type guardedListener struct {
	net.Listener
	g            *guard
	max          int64
	open         *atomic.Int64 // shared by the TCP and TLS listeners
	log          *slog.Logger
	shortTimeout time.Duration // between frames (and for the TLS handshake) until an allocation exists
	idleTimeout  time.Duration // between frames of a connection with an allocation

	mu    sync.Mutex
	conns map[*guardedConn]struct{}
}

// closeAll closes every open connection; pion leaves them to the client.
func (l *guardedListener) closeAll() {
	l.mu.Lock()
	conns := make([]*guardedConn, 0, len(l.conns))
	for c := range l.conns {
		conns = append(conns, c)
	}
	l.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
}

// Accept returns the next connection. It outlasts transient errors (out
// of file descriptors): pion stops serving a listener at the first error.
func (l *guardedListener) Accept() (net.Conn, error) {
	backoff := 5 * time.Millisecond
	for {
		conn, err := l.Listener.Accept()
		if errors.Is(err, net.ErrClosed) {
			return nil, err
		}
		if err != nil {
			l.log.Warn("accept failed; retrying", "transport", l.g.m.name, "err", err, "in", backoff)
			time.Sleep(backoff)
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		if l.open.Add(1) > l.max {
			l.open.Add(-1)
			l.g.m.connRejected.Inc()
			_ = conn.Close()
			continue
		}
		l.g.m.connections.Inc()
		c := &guardedConn{Conn: conn, l: l}
		l.mu.Lock()
		l.conns[c] = struct{}{}
		l.mu.Unlock()
		return c, nil
	}
}

// guardedConn frames the TCP byte stream into STUN messages and
// ChannelData (RFC 8656 section 12.5) so the guard sees whole requests.
type guardedConn struct {
	net.Conn
	l         *guardedListener
	allocated atomic.Bool // pion granted an allocation on this connection
	in        []byte      // bytes read but not yet framed
	out       []byte      // framed bytes not yet returned to pion
	buf       []byte      // read buffer
	raw       atomic.Bool // a data connection (RFC 6062): bytes pass unframed
	closeOnce sync.Once
}

// maxFrame is pion's inbound MTU: it cannot take a larger frame and would
// drop the connection anyway.
const maxFrame = 1600

var errFrameTooLarge = errors.New("turn: frame larger than pion's 1600-byte limit")

func (c *guardedConn) Read(p []byte) (int, error) {
	if len(c.out) == 0 && c.raw.Load() {
		if len(c.in) > 0 {
			n := copy(p, c.in)
			c.in = c.in[n:]
			return n, nil
		}
		return c.Conn.Read(p)
	}
	for len(c.out) == 0 {
		if err := c.fill(); err != nil {
			return 0, err
		}
	}
	n := copy(p, c.out)
	c.out = c.out[n:]
	return n, nil
}

// fill reads until at least one frame is complete, passes complete frames
// through the guard, and queues those pion should see.
func (c *guardedConn) fill() error {
	for {
		size, ok := frameSize(c.in)
		if ok {
			frame := c.in[:size]
			out, v := c.l.g.inspect(frame, c.RemoteAddr(), func(b []byte) { _, _ = c.Conn.Write(b) })
			if v == pass {
				c.out = append(c.out[:0], out...)
			}
			c.in = append(c.in[:0], c.in[size:]...)
			if v == pass {
				return nil
			}
			continue
		}
		if size > maxFrame {
			return errFrameTooLarge
		}
		// Until it has an allocation a connection must keep talking, so
		// idle sockets cannot hold max_connections' slots.
		timeout := c.l.shortTimeout
		if c.allocated.Load() {
			timeout = c.l.idleTimeout
		}
		_ = c.Conn.SetReadDeadline(time.Now().Add(timeout))
		if c.buf == nil {
			c.buf = make([]byte, 4096)
		}
		n, err := c.Conn.Read(c.buf)
		c.in = append(c.in, c.buf[:n]...)
		if err != nil {
			return err
		}
	}
}

// Write watches for pion's success response to ConnectionBind: from then
// on the connection carries a peer's raw bytes (RFC 6062 section 5.4). pion
// writes it on the reading goroutine before it copies data, and the client
// sends nothing before it, so everything read afterwards is data. A failed
// ConnectionBind leaves the connection framed and guarded.
// It also notes an Allocate success, after which the connection may idle
// between refreshes.
func (c *guardedConn) Write(p []byte) (int, error) {
	if !c.raw.Load() {
		switch successOf(p) {
		case stun.MethodConnectionBind:
			c.raw.Store(true)
			// Data connections live as long as their peer's.
			_ = c.Conn.SetReadDeadline(time.Time{})
		case stun.MethodAllocate:
			c.allocated.Store(true)
		}
	}
	return c.Conn.Write(p)
}

// successOf returns the method of a STUN success response, or 0. The top
// two bits tell STUN (00) from ChannelData (01), whose payload may look
// like a STUN header.
func successOf(frame []byte) stun.Method {
	if len(frame) < 20 || frame[0]&0xc0 != 0 || !stun.IsMessage(frame) {
		return 0
	}
	t := stun.MessageType{}
	t.ReadValue(binary.BigEndian.Uint16(frame[0:2]))
	if t.Class != stun.ClassSuccessResponse {
		return 0
	}
	return t.Method
}

// frameSize returns the size of the first frame in b, and whether b holds
// all of it. Garbage that is neither STUN nor ChannelData is passed on as
// a frame so that pion rejects it and closes the connection.
func frameSize(b []byte) (int, bool) {
	if len(b) < 4 {
		return 0, false
	}
	// The order of pion's STUNConn, so that both cut the stream alike.
	var size int
	switch {
	case len(b) >= 20 && stun.IsMessage(b):
		size = 20 + int(binary.BigEndian.Uint16(b[2:4]))
	case b[0]&0xc0 == 0x40: // ChannelData: 0x4000-0x7fff, padded to 4 bytes
		size = 4 + (int(binary.BigEndian.Uint16(b[2:4]))+3)&^3
	case len(b) < 20 && b[0]&0xc0 == 0:
		return 0, false
	default:
		return len(b), true
	}
	return size, len(b) >= size
}

func (c *guardedConn) Close() error {
	c.closeOnce.Do(func() {
		c.l.mu.Lock()
		delete(c.l.conns, c)
		c.l.mu.Unlock()
		c.l.open.Add(-1)
		c.l.g.m.connections.Dec()
	})
	return c.Conn.Close()
}
