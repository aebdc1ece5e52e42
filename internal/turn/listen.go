package turn

import (
	"encoding/binary"
	"errors"
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
	open         atomic.Int64
	firstTimeout time.Duration // until the first frame (and TLS handshake)
	idleTimeout  time.Duration // between frames afterwards

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

func (l *guardedListener) Accept() (net.Conn, error) {
	for {
		conn, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.open.Add(1) > l.max {
			l.open.Add(-1)
			l.g.m.connRejected.Inc()
			_ = conn.Close()
			continue
		}
		l.g.m.connections.Inc()
		c := &guardedConn{Conn: conn, l: l, first: true}
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
	first     bool
	in        []byte      // bytes read but not yet framed
	out       []byte      // framed bytes not yet returned to pion
	buf       []byte      // read buffer
	raw       atomic.Bool // a data connection (RFC 6062): bytes pass unframed
	closeOnce sync.Once
}

var errFrameTooLarge = errors.New("turn: frame larger than 64 KiB")

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
		if size > 0xffff+4 {
			return errFrameTooLarge
		}
		timeout := c.l.idleTimeout
		if c.first {
			timeout = c.l.firstTimeout
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
		c.first = false
	}
}

// Write watches for pion's success response to ConnectionBind: from then
// on the connection carries a peer's raw bytes (RFC 6062 section 5.4). pion
// writes it on the reading goroutine before it copies data, and the client
// sends nothing before it, so everything read afterwards is data. A failed
// ConnectionBind leaves the connection framed and guarded.
func (c *guardedConn) Write(p []byte) (int, error) {
	if !c.raw.Load() && isConnectionBindSuccess(p) {
		c.raw.Store(true)
		// Data connections live as long as their peer's.
		_ = c.Conn.SetReadDeadline(time.Time{})
	}
	return c.Conn.Write(p)
}

func isConnectionBindSuccess(frame []byte) bool {
	if len(frame) < 20 || !stun.IsMessage(frame) {
		return false
	}
	t := stun.MessageType{}
	t.ReadValue(binary.BigEndian.Uint16(frame[0:2]))
	return t.Method == stun.MethodConnectionBind && t.Class == stun.ClassSuccessResponse
}

// frameSize returns the size of the first frame in b, and whether b holds
// all of it. Garbage that is neither STUN nor ChannelData is passed on as
// a frame so that pion rejects it and closes the connection.
func frameSize(b []byte) (int, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var size int
	switch {
	case b[0]&0xc0 == 0x40: // ChannelData: 0x4000-0x7fff, padded to 4 bytes
		size = 4 + (int(binary.BigEndian.Uint16(b[2:4]))+3)&^3
	case len(b) >= 20 && stun.IsMessage(b):
		size = 20 + int(binary.BigEndian.Uint16(b[2:4]))
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
