package turn

import (
	"net"
	"net/netip"
)

// Policy decides which peers a relay may reach. TURN turns the server into
// a proxy, so by default it refuses every address that would let a client
// reach the server's own network: loopback, private, link-local (cloud
// metadata at 169.254.169.254), multicast and the like, however encoded.
//
// Two checks exist because pion asks for permission by IP only:
// PermitIP answers CreatePermission, ChannelBind and Connect; PermitAddr is
// applied to every packet and connection on the relay socket, where the
// port is known. The co-located media server is the one exception to the
// deny list, and only at its exact address and port.
type Policy struct {
	allow  []netip.Prefix
	sfu    map[netip.AddrPort]bool
	sfuIPs map[netip.Addr]bool
	own    map[netip.AddrPort]bool
}

// NewPolicy builds a policy. allow opens ranges of the deny list (for
// tests, or a deployment that relays to its own private network); sfu are
// the media server's addresses; own are the TURN listeners' addresses,
// which a relay may never send to.
func NewPolicy(allow []netip.Prefix, sfu, own []netip.AddrPort) *Policy {
	p := &Policy{allow: allow, sfu: map[netip.AddrPort]bool{}, sfuIPs: map[netip.Addr]bool{},
		own: map[netip.AddrPort]bool{}}
	for _, ap := range expand(sfu) {
		p.sfu[ap] = true
		p.sfuIPs[ap.Addr()] = true
	}
	for _, ap := range expand(own) {
		p.own[ap] = true
	}
	return p
}

// PermitIP reports whether some port of ip may be relayed to, which is
// what a permission (per IP, RFC 8656 section 9) grants.
func (p *Policy) PermitIP(ip netip.Addr) bool {
	ip = ip.Unmap()
	return p.allowed(ip) || !denied(ip) || p.sfuIPs[ip]
}

// PermitAddr reports whether the relay may exchange packets with ap.
func (p *Policy) PermitAddr(ap netip.AddrPort) bool {
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	switch {
	case p.own[ap]:
		return false
	case p.sfu[ap]:
		return true
	}
	return p.allowed(ap.Addr()) || !denied(ap.Addr())
}

// PermitStream is PermitAddr for TCP peers (RFC 6062). The media server
// receives on UDP only, so its exception does not apply.
func (p *Policy) PermitStream(ap netip.AddrPort) bool {
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	return !p.own[ap] && (p.allowed(ap.Addr()) || !denied(ap.Addr()))
}

func (p *Policy) allowed(ip netip.Addr) bool {
	for _, pre := range p.allow {
		if pre.Contains(ip) {
			return true
		}
	}
	return false
}

// expand replaces unspecified addresses (a listener on 0.0.0.0 or ::) by
// every local interface address with the same port, since a peer could
// name any of them. "::" is dual-stack, so it stands for IPv4 ones too.
func expand(addrs []netip.AddrPort) []netip.AddrPort {
	var out []netip.AddrPort
	for _, ap := range addrs {
		ip := ap.Addr().Unmap()
		if !ip.IsUnspecified() {
			out = append(out, netip.AddrPortFrom(ip, ap.Port()))
			continue
		}
		for _, local := range localAddrs() {
			if local.Is4() || ip.Is6() {
				out = append(out, netip.AddrPortFrom(local, ap.Port()))
			}
		}
	}
	return out
}

func localAddrs() []netip.Addr {
	ifAddrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var out []netip.Addr
	for _, a := range ifAddrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok {
				out = append(out, ip.Unmap())
			}
		}
	}
	return out
}

// deniedPrefixes are special-purpose ranges (RFC 6890 and successors) that
// are no public peer's address.
var deniedPrefixes = mustPrefixes(
	"0.0.0.0/8",       // "this network", incl. 0.0.0.0 which Linux treats as localhost
	"10.0.0.0/8",      // private
	"100.64.0.0/10",   // carrier-grade NAT
	"127.0.0.0/8",     // loopback
	"169.254.0.0/16",  // link-local, cloud metadata services
	"172.16.0.0/12",   // private
	"192.0.0.0/24",    // IETF protocol assignments
	"192.0.2.0/24",    // documentation
	"192.88.99.0/24",  // 6to4 relay anycast
	"192.168.0.0/16",  // private
	"198.18.0.0/15",   // benchmarking
	"198.51.100.0/24", // documentation
	"203.0.113.0/24",  // documentation
	"224.0.0.0/4",     // multicast
	"240.0.0.0/4",     // reserved, broadcast
	"::/128",          // unspecified
	"::1/128",         // loopback
	"::/96",           // IPv4-compatible (deprecated), would reach IPv4 hosts
	"64:ff9b:1::/48",  // local-use NAT64
	"100::/64",        // discard
	"2001::/23",       // IETF protocol assignments (Teredo, ORCHID, ...)
	"2001:db8::/32",   // documentation
	"fc00::/7",        // unique local
	"fe80::/10",       // link-local
	"fec0::/10",       // site-local (deprecated)
	"ff00::/8",        // multicast
)

// denied reports whether ip is in the built-in deny list, looking through
// IPv6 forms that carry an IPv4 address to where they lead.
func denied(ip netip.Addr) bool {
	ip = ip.Unmap()
	if v4, ok := embeddedIPv4(ip); ok && denied(v4) {
		return true
	}
	for _, p := range deniedPrefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// embeddedIPv4 returns the IPv4 address that NAT64 (64:ff9b::/96) or 6to4
// (2002::/16) would forward to.
func embeddedIPv4(ip netip.Addr) (netip.Addr, bool) {
	if !ip.Is6() {
		return netip.Addr{}, false
	}
	b := ip.As16()
	switch {
	case nat64.Contains(ip):
		return netip.AddrFrom4([4]byte(b[12:16])), true
	case sixToFour.Contains(ip):
		return netip.AddrFrom4([4]byte(b[2:6])), true
	}
	return netip.Addr{}, false
}

var (
	nat64     = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour = netip.MustParsePrefix("2002::/16")
)

func mustPrefixes(s ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(s))
	for i, p := range s {
		out[i] = netip.MustParsePrefix(p)
	}
	return out
}
