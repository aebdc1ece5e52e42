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
