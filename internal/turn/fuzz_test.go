package turn

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/stun/v4"
	"github.com/prometheus/client_golang/prometheus"
)

// The fuzz targets share fixed credentials so that seeds carrying a valid
// MESSAGE-INTEGRITY stay valid.
var (
	fuzzNow     = time.Unix(1_800_000_000, 0)
	fuzzCreds   = &Credentials{Secret: "fuzz", TTL: time.Hour, Now: func() time.Time { return fuzzNow }}
	fuzzCred    = fuzzCreds.Mint("alice")
	fuzzKey     = stun.NewLongTermIntegrity(fuzzCred.Username, "quartet", fuzzCred.Password)
	fuzzSrc     = &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000} // has an allocation
	fuzzNoAlloc = &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40001}
)

const fuzzMaxLifetime = time.Minute

func fuzzGuard() *guard {
	allocs := newAllocTable()
	allocs.created(fuzzSrc)
	return &guard{creds: fuzzCreds, realm: "quartet", policy: NewPolicy(nil, nil, nil),
		maxLifetime: fuzzMaxLifetime, sources: newSourceLimiter(math.Inf(1), 1, 1000),
		udp: true, allocs: allocs, m: newMetrics(prometheus.NewRegistry()).forTransport("udp"),
		log: slog.New(slog.DiscardHandler)}
}

// fuzzSeeds are valid frames of each kind the guard treats differently.
func fuzzSeeds(t testing.TB) [][]byte {
	t.Helper()
	auth := []stun.Setter{stun.NewUsername(fuzzCred.Username), stun.NewRealm("quartet"), stun.NewNonce("nonce"), fuzzKey, stun.Fingerprint}
	req := func(method stun.Method, attrs ...stun.Setter) []byte {
		return build(t, append(append([]stun.Setter{stun.NewType(method, stun.ClassRequest)}, attrs...), auth...)...).Raw
	}
	refused := peerAddress(netip.MustParseAddrPort("127.0.0.1:5000"))
	mapped := peerAddress(netip.MustParseAddrPort("[::ffff:127.0.0.1]:5000"))
	public := peerAddress(netip.MustParseAddrPort("8.8.8.8:5000"))
	return [][]byte{
		build(t, stun.NewType(stun.MethodAllocate, stun.ClassRequest), requestedTransport(17), stun.Fingerprint).Raw,
		req(stun.MethodAllocate, requestedTransport(17)),
		req(stun.MethodAllocate, requestedTransport(17), lifetime(3000)),
		req(stun.MethodAllocate, requestedTransport(protoTCP)),
		req(stun.MethodRefresh, lifetime(86400)),
		req(stun.MethodChannelBind, channelNumber(0x4000), refused),
		req(stun.MethodChannelBind, channelNumber(0x4001), mapped),
		req(stun.MethodChannelBind, channelNumber(0x4002), public),
		req(stun.MethodChannelBind, channelNumber(0x3fff), public),
		req(stun.MethodChannelBind, channelNumber(0x5000), public),
		req(stun.MethodRefresh),
		req(stun.MethodConnect, public),
		req(stun.MethodCreatePermission, refused),
		req(stun.MethodConnectionBind, stun.RawAttribute{Type: stun.AttrConnectionID, Value: []byte{0, 0, 0, 1}}),
		build(t, stun.BindingRequest).Raw,
		build(t, stun.NewType(stun.MethodSend, stun.ClassIndication), public,
			stun.RawAttribute{Type: stun.AttrData, Value: []byte("data")}).Raw,
		channelData(0x4000, []byte("hello")),
		channelData(0x7fff, nil),
		{0x40, 0x00, 0xff, 0xff},
		{0x00, 0x01, 0x00, 0x00},
	}
}

func FuzzGuardInspect(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	g := fuzzGuard()
	maxSecs := uint32(fuzzMaxLifetime / time.Second)
	f.Fuzz(func(t *testing.T, b []byte) {
		// From a client with an allocation and from one without.
		for _, src := range []net.Addr{fuzzSrc, fuzzNoAlloc} {
			checkInspect(t, g, b, src, maxSecs)
		}
	})
}

// checkInspect checks the guard's verdict on b from src.
func checkInspect(t *testing.T, g *guard, b []byte, src net.Addr, maxSecs uint32) {
	t.Helper()
	in := append([]byte(nil), b...)
	var replies [][]byte
	out, v := g.inspect(b, src, func(r []byte) { replies = append(replies, append([]byte(nil), r...)) })
	if !bytes.Equal(b, in) {
		t.Fatal("inspect modified its input")
	}
	switch v {
	case pass:
		if out == nil && len(b) > 0 {
			t.Fatal("verdict pass with a nil frame")
		}
		if len(replies) != 0 {
			t.Fatal("verdict pass, but the guard replied too")
		}
		if !bytes.Equal(out, b) {
			checkRewrite(t, b, out, maxSecs)
		}
	case replied:
		if len(replies) != 1 {
			t.Fatalf("verdict replied with %d replies", len(replies))
		}
		checkReply(t, in, replies[0])
	case drop:
		if len(replies) != 0 {
			t.Fatal("verdict drop, but the guard replied")
		}
	default:
		t.Fatalf("unknown verdict %d", v)
	}
}

// checkReply checks an answer of the guard's own: an error response to
// the request, with one of the guard's codes, signed with the client's
// key (the guard answers only requests that authenticate).
func checkReply(t *testing.T, in, reply []byte) {
	t.Helper()
	res := &stun.Message{Raw: reply}
	if err := res.Decode(); err != nil {
		t.Fatalf("the guard's reply does not decode: %v", err)
	}
	req := &stun.Message{Raw: in}
	_ = req.Decode()
	if res.TransactionID != req.TransactionID || res.Type != stun.NewType(req.Type.Method, stun.ClassErrorResponse) {
		t.Fatalf("reply %v to %v", res, req)
	}
	switch code := errorCode(res); code {
	case stun.CodeBadRequest, stun.CodeForbidden, stun.CodeAllocMismatch, stun.CodeAddrFamilyNotSupported:
	default:
		t.Fatalf("reply with code %d to %v", code, req)
	}
	if err := fuzzKey.Check(res); err != nil {
		t.Fatalf("reply fails MESSAGE-INTEGRITY: %v", err)
	}
}

// checkRewrite checks a frame the guard rewrote: the same request, every
// LIFETIME at most the maximum, signed with the client's key.
func checkRewrite(t *testing.T, in, out []byte, maxSecs uint32) {
	t.Helper()
	req, res := &stun.Message{Raw: append([]byte(nil), in...)}, &stun.Message{Raw: append([]byte(nil), out...)}
	if err := req.Decode(); err != nil {
		t.Fatalf("rewrote a frame that does not decode: %v", err)
	}
	if err := res.Decode(); err != nil {
		t.Fatalf("rewrite does not decode: %v", err)
	}
	if res.Type != req.Type || res.TransactionID != req.TransactionID {
		t.Fatalf("rewrite changed the request: %v -> %v", req, res)
	}
	for _, a := range res.Attributes {
		if a.Type == stun.AttrLifetime && (len(a.Value) != 4 || binary.BigEndian.Uint32(a.Value) > maxSecs) {
			t.Fatalf("rewrite has LIFETIME %x", a.Value)
		}
	}
	if err := fuzzKey.Check(res); err != nil {
		t.Fatalf("rewrite fails MESSAGE-INTEGRITY: %v", err)
	}
	if req.Contains(stun.AttrFingerprint) {
		if err := stun.Fingerprint.Check(res); err != nil {
			t.Fatalf("rewrite fails FINGERPRINT: %v", err)
		}
	}
}

func FuzzFrameSize(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
		f.Add(s[:len(s)/2])
		f.Add(append(append([]byte(nil), s...), s...))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		size, complete := frameSize(b)
		if !complete {
			if size != 0 && size <= len(b) {
				t.Fatalf("incomplete, but the frame size %d fits in %d bytes", size, len(b))
			}
			return
		}
		if size <= 0 || size > len(b) {
			t.Fatalf("complete frame of size %d in %d bytes", size, len(b))
		}
		// The frame on its own is the same frame: the framing loop
		// consumes exactly what it inspected.
		if s2, ok := frameSize(b[:size]); !ok || s2 != size {
			t.Fatalf("frame of %d bytes alone: size %d, complete %v", size, s2, ok)
		}
	})
}

// chunkConn is a client connection that delivers data in chunks of the
// given sizes, then io.EOF.
type chunkConn struct {
	net.Conn
	data   []byte
	chunks []byte
}

func (c *chunkConn) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := len(c.data)
	if len(c.chunks) > 0 {
		n = min(n, int(c.chunks[0])+1)
		c.chunks = c.chunks[1:]
	}
	n = copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

func (c *chunkConn) Write(p []byte) (int, error)        { return len(p), nil }
func (c *chunkConn) Close() error                       { return nil }
func (c *chunkConn) RemoteAddr() net.Addr               { return &net.TCPAddr{IP: fuzzSrc.IP, Port: fuzzSrc.Port} }
func (c *chunkConn) SetReadDeadline(time.Time) error    { return nil }
func (c *chunkConn) SetDeadline(time.Time) error        { return nil }
func (c *chunkConn) SetWriteDeadline(t time.Time) error { return nil }

// FuzzGuardedConn feeds a byte stream, split at arbitrary points, through
// the TCP framing and guard: every Read must make progress until the
// stream ends, whatever the bytes.
func FuzzGuardedConn(f *testing.F) {
	seeds := fuzzSeeds(f)
	f.Add(bytes.Join(seeds, nil), []byte{0, 3, 200, 7})
	for _, s := range seeds {
		f.Add(s, []byte{1})
	}
	g := fuzzGuard()
	f.Fuzz(func(t *testing.T, data, chunks []byte) {
		l := &guardedListener{g: g, max: 1, open: new(atomic.Int64), conns: map[*guardedConn]struct{}{}}
		c := &guardedConn{Conn: &chunkConn{data: data, chunks: chunks}, l: l}
		l.open.Add(1)
		done := make(chan error, 1)
		go func() {
			p := make([]byte, 1600)
			for {
				n, err := c.Read(p)
				if n > len(p) {
					done <- errors.New("read more than the buffer")
					return
				}
				if err != nil {
					done <- nil
					return
				}
			}
		}()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("guardedConn.Read does not return at the end of the stream")
		}
		_ = c.Close()
	})
}
