package turn

import (
	"bytes"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/stun/v4"
)

// TestGuardInspect checks the guard's verdict on each kind of frame.
func TestGuardInspect(t *testing.T) {
	t.Parallel()
	auth := func(method stun.Method, key stun.MessageIntegrity, attrs ...stun.Setter) []byte {
		s := append([]stun.Setter{stun.NewType(method, stun.ClassRequest)}, attrs...)
		s = append(s, stun.NewUsername(fuzzCred.Username), stun.NewRealm("quartet"), stun.NewNonce("n"), key, stun.Fingerprint)
		return build(t, s...).Raw
	}
	wrongKey := stun.NewLongTermIntegrity(fuzzCred.Username, "quartet", "wrong")
	refused := peerAddress(netip.MustParseAddrPort("127.0.0.1:5000"))
	mapped := peerAddress(netip.MustParseAddrPort("[::ffff:10.1.2.3]:5000"))
	public := peerAddress(netip.MustParseAddrPort("8.8.8.8:5000"))
	for _, tc := range []struct {
		name      string
		b         []byte
		want      verdict
		rewritten bool
		lifetime  uint32 // in the rewrite
	}{
		{"unauthenticated Allocate", build(t, stun.NewType(stun.MethodAllocate, stun.ClassRequest), requestedTransport(17)).Raw, pass, false, 0},
		{"Allocate within the cap", auth(stun.MethodAllocate, fuzzKey, requestedTransport(17), lifetime(60)), pass, false, 0},
		{"Allocate above the cap", auth(stun.MethodAllocate, fuzzKey, requestedTransport(17), lifetime(3000)), pass, true, 60},
		{"Refresh above the cap", auth(stun.MethodRefresh, fuzzKey, lifetime(0xffffffff)), pass, true, 60},
		{"Refresh delete", auth(stun.MethodRefresh, fuzzKey, lifetime(0)), pass, false, 0},
		{"Allocate above the cap, wrong key", auth(stun.MethodAllocate, wrongKey, requestedTransport(17), lifetime(3000)), pass, false, 0},
		{"ChannelBind to a refused peer", auth(stun.MethodChannelBind, fuzzKey, channelNumber(0x4000), refused), replied, false, 0},
		{"ChannelBind to a mapped private peer", auth(stun.MethodChannelBind, fuzzKey, channelNumber(0x4000), mapped), replied, false, 0},
		{"ChannelBind to a public peer", auth(stun.MethodChannelBind, fuzzKey, channelNumber(0x4000), public), pass, false, 0},
		{"ChannelBind to a refused peer, wrong key", auth(stun.MethodChannelBind, wrongKey, channelNumber(0x4000), refused), pass, false, 0},
		{"ChannelBind without peer", auth(stun.MethodChannelBind, fuzzKey, channelNumber(0x4000)), pass, false, 0},
		{"CreatePermission (pion's permission handler decides)", auth(stun.MethodCreatePermission, fuzzKey, refused), pass, false, 0},
		{"Send indication", build(t, stun.NewType(stun.MethodSend, stun.ClassIndication), refused).Raw, pass, false, 0},
		{"ChannelData", channelData(0x4000, []byte("x")), pass, false, 0},
		{"short", []byte{1, 2, 3}, pass, false, 0},
		{"malformed request", func() []byte {
			b := build(t, stun.BindingRequest, stun.NewSoftware("x")).Raw
			b[23] = 0xff // attribute length beyond the message
			return b
		}(), drop, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := fuzzGuard()
			var replies [][]byte
			out, v := g.inspect(tc.b, fuzzSrc, func(r []byte) { replies = append(replies, r) })
			if v != tc.want {
				t.Fatalf("verdict %d, want %d", v, tc.want)
			}
			switch {
			case v == replied:
				res := &stun.Message{Raw: replies[0]}
				if err := res.Decode(); err != nil || errorCode(res) != stun.CodeForbidden {
					t.Fatalf("reply %v (%v), want 403", res, err)
				}
				if err := fuzzKey.Check(res); err != nil {
					t.Fatalf("403 not signed with the client's key: %v", err)
				}
			case tc.rewritten:
				if bytes.Equal(out, tc.b) {
					t.Fatal("not rewritten")
				}
				checkRewrite(t, tc.b, out, uint32(fuzzMaxLifetime/time.Second))
				m := &stun.Message{Raw: out}
				_ = m.Decode()
				if got := lifetimeOf(t, m); got != tc.lifetime {
					t.Fatalf("rewritten LIFETIME %d, want %d", got, tc.lifetime)
				}
			case v == pass:
				if !bytes.Equal(out, tc.b) {
					t.Fatal("frame changed")
				}
			}
		})
	}
}

// TestGuardRefuses checks the requests the guard answers itself, and the
// order of its checks.
func TestGuardRefuses(t *testing.T) {
	t.Parallel()
	auth := func(method stun.Method, attrs ...stun.Setter) []byte {
		s := append([]stun.Setter{stun.NewType(method, stun.ClassRequest)}, attrs...)
		s = append(s, stun.NewUsername(fuzzCred.Username), stun.NewRealm("quartet"), stun.NewNonce("n"), fuzzKey, stun.Fingerprint)
		return build(t, s...).Raw
	}
	refused := peerAddress(netip.MustParseAddrPort("127.0.0.1:5000"))
	public := peerAddress(netip.MustParseAddrPort("8.8.8.8:5000"))
	for _, tc := range []struct {
		name string
		src  net.Addr
		b    []byte
		code stun.ErrorCode // 0: passed to pion
	}{
		{"ChannelBind 0x3FFF", fuzzSrc, auth(stun.MethodChannelBind, channelNumber(0x3fff), public), stun.CodeBadRequest},
		{"ChannelBind 0x4000", fuzzSrc, auth(stun.MethodChannelBind, channelNumber(0x4000), public), 0},
		{"ChannelBind 0x4FFF", fuzzSrc, auth(stun.MethodChannelBind, channelNumber(0x4fff), public), 0},
		{"ChannelBind 0x5000 (RFC 5766 range, bound by coturn's client)", fuzzSrc, auth(stun.MethodChannelBind, channelNumber(0x5000), public), 0},
		{"ChannelBind 0x8000", fuzzSrc, auth(stun.MethodChannelBind, channelNumber(0x8000), public), stun.CodeBadRequest},
		{"ChannelBind 0xFFFF", fuzzSrc, auth(stun.MethodChannelBind, channelNumber(0xffff), public), stun.CodeBadRequest},
		{"ChannelBind, bad channel before refused peer", fuzzSrc, auth(stun.MethodChannelBind, channelNumber(0x3fff), refused), stun.CodeBadRequest},
		{"ChannelBind, short CHANNEL-NUMBER (pion's 400)", fuzzSrc, auth(stun.MethodChannelBind,
			stun.RawAttribute{Type: stun.AttrChannelNumber, Value: []byte{0x3f, 0xff}}, public), 0},
		{"Refresh without allocation", fuzzNoAlloc, auth(stun.MethodRefresh), stun.CodeAllocMismatch},
		{"Refresh delete without allocation", fuzzNoAlloc, auth(stun.MethodRefresh, lifetime(0)), stun.CodeAllocMismatch},
		{"CreatePermission without allocation", fuzzNoAlloc, auth(stun.MethodCreatePermission, public), stun.CodeAllocMismatch},
		{"ChannelBind without allocation, before its own checks", fuzzNoAlloc,
			auth(stun.MethodChannelBind, channelNumber(0x3fff), refused), stun.CodeAllocMismatch},
		{"Connect without allocation", fuzzNoAlloc, auth(stun.MethodConnect, public), stun.CodeAllocMismatch},
		{"Allocate without allocation", fuzzNoAlloc, auth(stun.MethodAllocate, requestedTransport(17)), 0},
		{"ConnectionBind without allocation", fuzzNoAlloc, auth(stun.MethodConnectionBind,
			stun.RawAttribute{Type: stun.AttrConnectionID, Value: []byte{0, 0, 0, 1}}), 0},
		{"Refresh without allocation, unauthenticated (pion's 401)", fuzzNoAlloc,
			build(t, stun.NewType(stun.MethodRefresh, stun.ClassRequest)).Raw, 0},
		{"Refresh with allocation", fuzzSrc, auth(stun.MethodRefresh), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var replies [][]byte
			out, v := fuzzGuard().inspect(tc.b, tc.src, func(r []byte) { replies = append(replies, r) })
			if tc.code == 0 {
				if v != pass || !bytes.Equal(out, tc.b) || len(replies) != 0 {
					t.Fatalf("verdict %d with %d replies, want the frame passed unchanged", v, len(replies))
				}
				return
			}
			if v != replied || len(replies) != 1 {
				t.Fatalf("verdict %d with %d replies, want one reply", v, len(replies))
			}
			checkReply(t, tc.b, replies[0])
			res := &stun.Message{Raw: replies[0]}
			_ = res.Decode()
			if code := errorCode(res); code != tc.code {
				t.Fatalf("code %d, want %d", code, tc.code)
			}
		})
	}
}

// TestAllocTable: a deletion reported after the next creation for the same
// client leaves the newer allocation known.
func TestAllocTable(t *testing.T) {
	t.Parallel()
	a := newAllocTable()
	udp := &net.UDPAddr{IP: net.ParseIP("::ffff:192.0.2.1"), Port: 5000}
	same := &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 5000}
	if a.has(udp) {
		t.Fatal("empty table has a client")
	}
	a.created(udp)
	if !a.has(same) {
		t.Fatal("the same client, its address written another way, is unknown")
	}
	a.created(udp) // the next allocation, reported before the old one's deletion
	a.deleted(udp)
	if !a.has(udp) {
		t.Fatal("a late deletion hid the newer allocation")
	}
	a.deleted(udp)
	a.deleted(udp) // pion reports no deletion twice, but one must not go negative
	if a.has(udp) || len(a.count) != 0 {
		t.Fatalf("table after all deletions: %v", a.count)
	}
}

func TestSourceLimiter(t *testing.T) {
	t.Parallel()
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	s := newSourceLimiter(0.001, 3, 10)
	for i := range 3 {
		if !s.allow(a) {
			t.Fatalf("request %d of a burst of 3 refused", i+1)
		}
	}
	if s.allow(a) {
		t.Fatal("fourth request of a burst of 3 allowed")
	}
	if !s.allow(b) {
		t.Fatal("another source refused")
	}
}

func TestSourceLimiterTableFull(t *testing.T) {
	t.Parallel()
	s := newSourceLimiter(0.001, 2, 2)
	ip := func(i byte) netip.Addr { return netip.AddrFrom4([4]byte{192, 0, 2, i}) }
	s.allow(ip(1))
	s.allow(ip(2))
	// Both sources hold state (a spent token): a third is refused, fail
	// closed, and the table does not grow.
	if s.allow(ip(3)) {
		t.Fatal("a new source was answered with the table full of active sources")
	}
	if len(s.sources) != 2 {
		t.Fatalf("table has %d sources, limit 2", len(s.sources))
	}
	// Sources whose bucket has refilled are forgotten to make room.
	s = newSourceLimiter(1e9, 2, 2)
	s.allow(ip(1))
	s.allow(ip(2))
	if !s.allow(ip(3)) {
		t.Fatal("a new source was refused although the others hold no state")
	}
	if len(s.sources) > 2 {
		t.Fatalf("table has %d sources, limit 2", len(s.sources))
	}
}

func TestFrameSize(t *testing.T) {
	t.Parallel()
	stunMsg := build(t, stun.BindingRequest, stun.NewSoftware("quartet")).Raw
	for _, tc := range []struct {
		name     string
		b        []byte
		size     int
		complete bool
	}{
		{"empty", nil, 0, false},
		{"3 bytes", []byte{0x40, 0, 0}, 0, false},
		{"STUN", stunMsg, len(stunMsg), true},
		{"STUN and more", append(append([]byte(nil), stunMsg...), 0x40, 0), len(stunMsg), true},
		{"STUN header only", stunMsg[:20], len(stunMsg), false},
		{"STUN, first 19 bytes", stunMsg[:19], 0, false},
		{"ChannelData padded", channelData(0x4000, []byte("abcde")), 12, true},
		{"ChannelData, padding missing", channelData(0x4000, []byte("abcde"))[:9], 12, false},
		{"ChannelData empty", []byte{0x40, 0, 0, 0}, 4, true},
		{"ChannelData max", []byte{0x7f, 0xff, 0xff, 0xff}, 4 + 0x10000, false},
		{"garbage", []byte{0xff, 0xff, 0xff, 0xff, 0xff}, 5, true},
		{"not STUN after 20 bytes", make([]byte, 20), 20, true},
	} {
		size, complete := frameSize(tc.b)
		if size != tc.size || complete != tc.complete {
			t.Errorf("%s: frameSize = %d, %v; want %d, %v", tc.name, size, complete, tc.size, tc.complete)
		}
	}
}

// TestAddrPort covers the address conversion the policy sees.
func TestAddrPort(t *testing.T) {
	t.Parallel()
	if got := addrPort(&net.UDPAddr{IP: net.ParseIP("::ffff:127.0.0.1"), Port: 1}); got.Addr().Unmap() != netip.MustParseAddr("127.0.0.1") {
		t.Errorf("UDP mapped: %v", got)
	}
	if got := addrPort(&net.TCPAddr{IP: net.IPv6loopback, Port: 2}); got != netip.MustParseAddrPort("[::1]:2") {
		t.Errorf("TCP: %v", got)
	}
	if got := addrPort(&net.UnixAddr{Name: "x"}); got.IsValid() {
		t.Errorf("unix: %v", got)
	}
}
