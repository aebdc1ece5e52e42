package turn

import (
	"fmt"
	"net/netip"

	"github.com/quartet-rtc/quartet/internal/config"
)

// FromConfig resolves the turn section of cfg. media are the addresses of
// the co-located media server (none for a TURN-only node).
func FromConfig(cfg config.Config, media []netip.AddrPort) (Config, error) {
	t := cfg.TURN
	relay, err := netip.ParseAddr(cfg.TURNRelayIP())
	if err != nil {
		return Config{}, fmt.Errorf("turn.relay_ip: %w", err)
	}
	var relay6 netip.Addr
	if t.RelayIP6 != "" {
		if relay6, err = netip.ParseAddr(t.RelayIP6); err != nil {
			return Config{}, fmt.Errorf("turn.relay_ip6: %w", err)
		}
	}
	allow := make([]netip.Prefix, 0, len(t.AllowPeers))
	for _, s := range t.AllowPeers {
		p, err := config.ParsePrefix(s)
		if err != nil {
			return Config{}, fmt.Errorf("turn.allow_peers: %w", err)
		}
		allow = append(allow, p)
	}
	return Config{
		Host: t.Host, Port: t.Port, TLSPort: t.TLSPort, TLSCert: t.TLSCert, TLSKey: t.TLSKey, Realm: t.Realm,
		Credentials: NewCredentials(cfg),
		RelayIP:     relay, RelayIP6: relay6,
		RelayMinPort: t.RelayMinPort, RelayMaxPort: t.RelayMaxPort,
		AllowPeers: allow, MediaAddrs: media,
		MaxAllocations: t.MaxAllocations, MaxAllocationsPerUser: t.MaxAllocationsPerUser,
		AllocationLifetime: t.AllocationLifetime, MaxAllocationLifetime: t.MaxAllocationLifetime,
		MaxBitrate: t.MaxBitrate, MaxConnections: t.MaxConnections,
		UnauthRate: t.UnauthRate, UnauthBurst: t.UnauthBurst,
	}, nil
}

// NewCredentials returns the credential minter/checker cfg describes.
func NewCredentials(cfg config.Config) *Credentials {
	return &Credentials{Secret: cfg.TURNSecret(), TTL: cfg.TURN.CredentialTTL, Users: cfg.TURN.Users}
}

// ClientURIs is what clients are told for this server: turn.uris, or URIs
// derived from the address clients reach it at and the bound ports.
func ClientURIs(cfg config.Config, s *Server) []string {
	tlsPort := 0
	if a := s.TLSAddr(); a != nil {
		tlsPort = a.Port
	}
	return URIsFor(cfg, s.UDPAddr().Port, tlsPort)
}

// URIsFor is ClientURIs for a server listening on port and tlsPort.
func URIsFor(cfg config.Config, port, tlsPort int) []string {
	if len(cfg.TURN.URIs) > 0 {
		return cfg.TURN.URIs
	}
	host := cfg.TURN.Host
	if ip, err := netip.ParseAddr(host); err != nil || ip.IsUnspecified() {
		host = cfg.TURNRelayIP()
	}
	return OwnURIs(host, port, tlsPort)
}
