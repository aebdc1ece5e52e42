package turn

import (
	"net/netip"
	"testing"
)

func TestPolicyDefaultDenyList(t *testing.T) {
	t.Parallel()
	p := NewPolicy(nil, nil, nil)
	for _, tc := range []struct {
		ip   string
		want bool
		why  string
	}{
		{"127.0.0.1", false, "loopback"},
		{"127.255.255.254", false, "loopback /8"},
		{"::ffff:127.0.0.1", false, "IPv4-mapped loopback (coturn CVE-2026-27624)"},
		{"::ffff:10.0.0.1", false, "IPv4-mapped private"},
		{"::ffff:169.254.169.254", false, "IPv4-mapped metadata"},
		{"0.0.0.0", false, "unspecified, which Linux treats as localhost"},
		{"0.1.2.3", false, "this network"},
		{"::", false, "IPv6 unspecified"},
		{"::1", false, "IPv6 loopback"},
		{"::127.0.0.1", false, "IPv4-compatible loopback"},
		{"10.0.0.1", false, "private"},
		{"10.255.255.255", false, "private"},
		{"172.16.0.1", false, "private"},
		{"172.31.255.254", false, "private"},
		{"192.168.1.1", false, "private"},
		{"100.64.0.1", false, "carrier-grade NAT"},
		{"100.127.255.254", false, "carrier-grade NAT"},
		{"169.254.169.254", false, "cloud metadata"},
		{"192.0.0.1", false, "IETF protocol assignments"},
		{"192.0.2.1", false, "documentation"},
		{"198.18.0.1", false, "benchmarking"},
		{"224.0.0.1", false, "multicast"},
		{"239.255.255.250", false, "multicast (SSDP)"},
		{"240.0.0.1", false, "reserved"},
		{"255.255.255.255", false, "broadcast"},
		{"fc00::1", false, "unique local"},
		{"fd12:3456::1", false, "unique local"},
		{"fe80::1", false, "link-local"},
		{"fec0::1", false, "site-local"},
		{"ff02::1", false, "multicast"},
		{"ff05::1:3", false, "multicast"},
		{"64:ff9b::7f00:1", false, "NAT64 to 127.0.0.1"},
		{"64:ff9b::a9fe:a9fe", false, "NAT64 to 169.254.169.254"},
		{"64:ff9b:1::1", false, "local-use NAT64"},
		{"2002:7f00:1::", false, "6to4 to 127.0.0.1"},
		{"2002:c0a8:101::1", false, "6to4 to 192.168.1.1"},
		{"2001::1", false, "Teredo"},
		{"2001:db8::1", false, "documentation"},
		{"100::1", false, "discard"},

		{"8.8.8.8", true, "public IPv4"},
		{"1.1.1.1", true, "public IPv4"},
		{"172.32.0.1", true, "just above 172.16.0.0/12"},
		{"100.128.0.1", true, "just above 100.64.0.0/10"},
		{"::ffff:8.8.8.8", true, "IPv4-mapped public"},
		{"2001:4860::8888", true, "public IPv6"},
		{"2606:4700:4700::1111", true, "public IPv6"},
		{"64:ff9b::808:808", true, "NAT64 to a public address"},
		{"2002:808:808::1", true, "6to4 to a public address"},
	} {
		ip := netip.MustParseAddr(tc.ip)
		if got := p.PermitIP(ip); got != tc.want {
			t.Errorf("PermitIP(%s) = %v, want %v (%s)", tc.ip, got, tc.want, tc.why)
		}
		ap := netip.AddrPortFrom(ip, 5000)
		if got := p.PermitAddr(ap); got != tc.want {
			t.Errorf("PermitAddr(%s) = %v, want %v (%s)", ap, got, tc.want, tc.why)
		}
	}
}

func TestPolicyAllowList(t *testing.T) {
	t.Parallel()
	p := NewPolicy([]netip.Prefix{loopback4}, nil, nil)
	for _, tc := range []struct {
		ip   string
		want bool
	}{
		{"127.0.0.1", true},
		{"127.1.2.3", true},
		{"::ffff:127.0.0.1", true}, // the same address in its mapped form
		{"10.0.0.1", false},        // the rest of the deny list stays
		{"169.254.169.254", false},
		{"::1", false}, // IPv6 loopback is not in 127.0.0.0/8
		{"8.8.8.8", true},
	} {
		ip := netip.MustParseAddr(tc.ip)
		if got := p.PermitIP(ip); got != tc.want {
			t.Errorf("PermitIP(%s) = %v, want %v", tc.ip, got, tc.want)
		}
		if got := p.PermitAddr(netip.AddrPortFrom(ip, 9)); got != tc.want {
			t.Errorf("PermitAddr(%s:9) = %v, want %v", tc.ip, got, tc.want)
		}
	}
}

func TestPolicyMediaServerException(t *testing.T) {
	t.Parallel()
	media := netip.MustParseAddrPort("127.0.0.1:7882")
	p := NewPolicy(nil, []netip.AddrPort{media}, nil)
	for _, tc := range []struct {
		addr string
		want bool
	}{
		{"127.0.0.1:7882", true},
		{"[::ffff:127.0.0.1]:7882", true},
		{"127.0.0.1:7883", false}, // another port of the same host
		{"127.0.0.1:22", false},
		{"127.0.0.2:7882", false}, // another host, same port
		{"10.0.0.1:7882", false},
		{"8.8.8.8:7882", true},
	} {
		ap := netip.MustParseAddrPort(tc.addr)
		if got := p.PermitAddr(ap); got != tc.want {
			t.Errorf("PermitAddr(%s) = %v, want %v", tc.addr, got, tc.want)
		}
	}
	// A permission is per IP, so the media server's IP is permitted; the
	// relay socket then admits only its exact port.
	if !p.PermitIP(media.Addr()) {
		t.Error("PermitIP(media server IP) = false; CreatePermission to the media server would fail")
	}
	if !p.PermitIP(netip.MustParseAddr("::ffff:127.0.0.1")) {
		t.Error("PermitIP(mapped media server IP) = false")
	}
	if p.PermitIP(netip.MustParseAddr("127.0.0.2")) {
		t.Error("PermitIP(127.0.0.2) = true; only the media server's IP is excepted")
	}
}

func TestPolicyOwnListenersAlwaysRefused(t *testing.T) {
	t.Parallel()
	own := []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:3478"), netip.MustParseAddrPort("[::1]:5349")}
	p := NewPolicy([]netip.Prefix{loopback4, netip.MustParsePrefix("::1/128")}, own, own)
	for _, tc := range []struct {
		addr string
		want bool
	}{
		{"127.0.0.1:3478", false}, // allow-listed and a "media" address, still refused
		{"[::ffff:127.0.0.1]:3478", false},
		{"[::1]:5349", false},
		{"127.0.0.1:3479", true},
		{"[::1]:5350", true},
	} {
		ap := netip.MustParseAddrPort(tc.addr)
		if got := p.PermitAddr(ap); got != tc.want {
			t.Errorf("PermitAddr(%s) = %v, want %v", tc.addr, got, tc.want)
		}
	}
}

// TestPolicyOwnUnspecifiedListener: a listener on 0.0.0.0 is reachable on
// every local address, loopback included.
func TestPolicyOwnUnspecifiedListener(t *testing.T) {
	t.Parallel()
	p := NewPolicy([]netip.Prefix{loopback4}, nil, []netip.AddrPort{netip.MustParseAddrPort("0.0.0.0:3478")})
	if p.PermitAddr(netip.MustParseAddrPort("127.0.0.1:3478")) {
		t.Error("PermitAddr(127.0.0.1:3478) = true for a listener on 0.0.0.0:3478")
	}
	if !p.PermitAddr(netip.MustParseAddrPort("127.0.0.1:3479")) {
		t.Error("PermitAddr(127.0.0.1:3479) = false; only the listener's port is refused")
	}
}

func TestDeniedPrefixesParse(t *testing.T) {
	t.Parallel()
	for _, p := range deniedPrefixes {
		if p != p.Masked() {
			t.Errorf("deny-list prefix %v has host bits set", p)
		}
	}
}
