package turn

import (
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Config is the STUN/TURN server's configuration (the turn section of the
// configuration file; see docs/configuration.md): settings only, as
// written. Start resolves it with its Deps.
type Config struct {
	Enabled bool   `yaml:"enabled"`  // run STUN/TURN inside `quartet serve`
	Host    string `yaml:"host"`     // IP the UDP, TCP and TLS listeners bind to
	Port    int    `yaml:"port"`     // STUN/TURN over UDP and TCP
	TLSPort int    `yaml:"tls_port"` // TURN over TLS; 0 = off
	TLSCert string `yaml:"tls_cert"` // PEM certificate chain file for TLS
	TLSKey  string `yaml:"tls_key"`  // PEM private key file for TLS
	Realm   string `yaml:"realm"`

	// Secret is the shared secret of the TURN REST credential scheme
	// (coturn's static-auth-secret); every server of a deployment has it.
	// Empty means the dev secret; the caller passes the secret in effect
	// as Deps.Secret.
	Secret        string            `yaml:"secret"`
	CredentialTTL time.Duration     `yaml:"credential_ttl"` // lifetime of minted credentials
	Users         map[string]string `yaml:"users"`          // static long-term users: name -> password

	RelayIP      string   `yaml:"relay_ip"`       // IPv4 relay address told to clients; empty = turn.host or media.public_ips (see Deps.RelayIP)
	RelayIP6     string   `yaml:"relay_ip6"`      // IPv6 relay address (bound directly); empty = no IPv6 relays
	RelayMinPort int      `yaml:"relay_min_port"` // relay port range; 0 and 0 = any free port
	RelayMaxPort int      `yaml:"relay_max_port"`
	AllowPeers   []string `yaml:"allow_peers"` // CIDRs opened despite the built-in deny list

	MaxAllocations        int           `yaml:"max_allocations"`
	MaxAllocationsPerUser int           `yaml:"max_allocations_per_user"`
	AllocationLifetime    time.Duration `yaml:"allocation_lifetime"`     // granted when a client asks for none
	MaxAllocationLifetime time.Duration `yaml:"max_allocation_lifetime"` // longest lifetime granted
	MaxBitrate            int64         `yaml:"max_bitrate"`             // bits/s per allocation and direction
	MaxConnections        int           `yaml:"max_connections"`         // TCP and TLS client connections
	UnauthRate            float64       `yaml:"unauth_rate"`             // UDP answers per second to one unauthenticated source
	UnauthBurst           int           `yaml:"unauth_burst"`

	URIs           []string `yaml:"uris"`            // this server's URIs as clients see them; empty = derived
	Region         string   `yaml:"region"`          // region of this server's URIs
	Servers        []string `yaml:"servers"`         // other TURN servers, "REGION=URI"
	RegionHeader   string   `yaml:"region_header"`   // request header holding the client's region
	RegionNetworks []string `yaml:"region_networks"` // client networks, "CIDR=REGION"
}

// Deps are what the STUN/TURN server works with besides its settings.
// Secret and RelayIP depend on other parts of the configuration (the dev
// secret, media.public_ips), so the caller works them out and this package
// reads no section but its own.
type Deps struct {
	Log *slog.Logger
	// Metrics gets the TURN counters; required.
	Metrics prometheus.Registerer
	// Secret is the REST credential secret in effect: turn.secret, or the
	// dev secret when that is empty. Empty refuses every REST username.
	Secret string
	// RelayIP is the IPv4 relay address in effect: turn.relay_ip, or
	// turn.host when that is a specific address, or the first IPv4 address
	// of media.public_ips.
	RelayIP string
	// MediaAddrs are the co-located media server's addresses, which a relay
	// may always reach; none for a TURN-only node.
	MediaAddrs []netip.AddrPort
	// Now, if set, is the clock credentials are checked by (tests).
	Now func() time.Time
}

// resolved is a Config with its Deps folded in, as the listeners, guards
// and relays use it: addresses parsed, the credential checker built. It is
// not exported because only Start makes one; Config stays as written.
type resolved struct {
	Host    string // listen IP
	Port    int    // UDP and TCP; 0 = a free port, the same for both
	TLSPort int    // 0 = no TLS listener
	TLSCert string
	TLSKey  string
	Realm   string

	Credentials *Credentials

	RelayIP      netip.Addr // IPv4 relay address told to clients; relay sockets bind Host
	RelayIP6     netip.Addr // invalid = no IPv6 relays
	RelayMinPort int
	RelayMaxPort int
	AllowPeers   []netip.Prefix
	MediaAddrs   []netip.AddrPort // the co-located media server, always reachable

	MaxAllocations        int
	MaxAllocationsPerUser int
	AllocationLifetime    time.Duration
	MaxAllocationLifetime time.Duration
	MaxBitrate            int64
	MaxConnections        int
	UnauthRate            float64
	UnauthBurst           int
}

// resolve parses cfg and combines it with deps.
func resolve(cfg Config, deps Deps) (resolved, error) {
	relay, err := netip.ParseAddr(deps.RelayIP)
	if err != nil {
		return resolved{}, fmt.Errorf("turn.relay_ip: %w", err)
	}
	var relay6 netip.Addr
	if cfg.RelayIP6 != "" {
		if relay6, err = netip.ParseAddr(cfg.RelayIP6); err != nil {
			return resolved{}, fmt.Errorf("turn.relay_ip6: %w", err)
		}
	}
	allow := make([]netip.Prefix, 0, len(cfg.AllowPeers))
	for _, s := range cfg.AllowPeers {
		p, err := ParsePrefix(s)
		if err != nil {
			return resolved{}, fmt.Errorf("turn.allow_peers: %w", err)
		}
		allow = append(allow, p)
	}
	creds := NewCredentials(cfg, deps.Secret)
	creds.Now = deps.Now
	return resolved{
		Host: cfg.Host, Port: cfg.Port, TLSPort: cfg.TLSPort, TLSCert: cfg.TLSCert, TLSKey: cfg.TLSKey, Realm: cfg.Realm,
		Credentials: creds,
		RelayIP:     relay, RelayIP6: relay6,
		RelayMinPort: cfg.RelayMinPort, RelayMaxPort: cfg.RelayMaxPort,
		AllowPeers: allow, MediaAddrs: deps.MediaAddrs,
		MaxAllocations: cfg.MaxAllocations, MaxAllocationsPerUser: cfg.MaxAllocationsPerUser,
		AllocationLifetime: cfg.AllocationLifetime, MaxAllocationLifetime: cfg.MaxAllocationLifetime,
		MaxBitrate: cfg.MaxBitrate, MaxConnections: cfg.MaxConnections,
		UnauthRate: cfg.UnauthRate, UnauthBurst: cfg.UnauthBurst,
	}, nil
}

// NewCredentials returns the credential minter/checker of cfg, signing
// with secret (the secret in effect, as Deps.Secret).
func NewCredentials(cfg Config, secret string) *Credentials {
	return &Credentials{Secret: secret, TTL: cfg.CredentialTTL, Users: cfg.Users}
}

// URIsFor is what clients are told for a server of cfg listening on port
// and tlsPort: turn.uris, or URIs derived from the address clients reach
// it at, turn.host or, when that is unspecified, relayIP (as
// Deps.RelayIP).
func URIsFor(cfg Config, relayIP string, port, tlsPort int) []string {
	if len(cfg.URIs) > 0 {
		return cfg.URIs
	}
	host := cfg.Host
	if ip, err := netip.ParseAddr(host); err != nil || ip.IsUnspecified() {
		host = relayIP
	}
	return OwnURIs(host, port, tlsPort)
}

// ParsePrefix parses a CIDR or a single address (taken as a /32 or /128).
// IPv4-mapped IPv6 is unmapped so that it matches the IPv4 range.
func ParsePrefix(s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		ip, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not a CIDR or IP address", s)
		}
		ip = ip.Unmap()
		return netip.PrefixFrom(ip, ip.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not a CIDR or IP address", s)
	}
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p.Masked(), nil
}
