package config

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/quartet-rtc/quartet/internal/turn"
)

// MinTURNSecretLength is the shortest turn.secret accepted. Credentials are
// HMAC-SHA1 of the secret, so a short one can be brute-forced offline from
// one captured username and password.
const MinTURNSecretLength = 16

func (c Config) validateTURN() []error {
	t := c.TURN
	var errs []error
	// Other servers' credentials are minted with turn.secret, whether or
	// not this node runs TURN itself.
	if len(t.Servers) > 0 && t.Secret == "" && !c.DevMode() {
		errs = append(errs, errors.New("turn.secret: required when turn.servers are listed in production; it must be the secret those servers share"))
	}
	if !t.Enabled && c.Role != RoleTURN {
		return append(errs, validateTURNDirectory(t)...)
	}
	if !isIP(t.Host) {
		errs = append(errs, fmt.Errorf("turn.host: %q is not an IP address", t.Host))
	}
	errs = append(errs, portInRange("turn.port", t.Port)...)
	errs = append(errs, portInRange("turn.tls_port", t.TLSPort)...)
	if t.TLSPort != 0 && (t.TLSCert == "" || t.TLSKey == "") {
		errs = append(errs, errors.New("turn.tls_cert: turn.tls_cert and turn.tls_key are required when turn.tls_port is set"))
	}
	if t.TLSPort != 0 && t.TLSPort == t.Port {
		errs = append(errs, fmt.Errorf("turn.tls_port: %d is also turn.port (TCP); use another port", t.TLSPort))
	}
	if t.Realm == "" {
		errs = append(errs, errors.New("turn.realm: must not be empty"))
	}
	errs = append(errs, c.validateTURNSecret()...)
	errs = append(errs, positiveDuration("turn.credential_ttl", t.CredentialTTL)...)
	errs = append(errs, validateTURNUsers(t.Users)...)
	errs = append(errs, c.validateRelay()...)
	errs = append(errs, validateTURNLimits(t)...)
	errs = append(errs, validateTURNDirectory(t)...)
	return errs
}

func (c Config) validateTURNSecret() []error {
	t := c.TURN
	switch {
	case t.Secret == DevTURNSecret:
		return []error{errors.New("turn.secret: must not be the built-in dev secret")}
	case t.Secret != "" && len(t.Secret) < MinTURNSecretLength:
		return []error{fmt.Errorf("turn.secret: must be at least %d characters", MinTURNSecretLength)}
	case t.Secret != "":
		return nil
	case isIP(t.Host) && !isLoopback(t.Host):
		return []error{errors.New("turn.secret: required when turn.host is not a loopback address (without it the public dev secret signs credentials)")}
	}
	return nil
}

func validateTURNUsers(users map[string]string) []error {
	names := make([]string, 0, len(users))
	for name := range users {
		names = append(names, name)
	}
	sort.Strings(names)
	var errs []error
	for _, name := range names {
		switch {
		case name == "" || strings.Contains(name, ":"):
			// A colon would make the name look like a REST username.
			errs = append(errs, fmt.Errorf("turn.users: %q is not a valid user name (not empty, no colon)", name))
		case users[name] == "":
			errs = append(errs, fmt.Errorf("turn.users.%s: password must not be empty", name))
		}
	}
	return errs
}

func (c Config) validateRelay() []error {
	t := c.TURN
	var errs []error
	relay := c.TURNRelayIP()
	if ip, err := netip.ParseAddr(relay); err != nil || !ip.Is4() || ip.IsUnspecified() {
		if relay == "" {
			errs = append(errs, errors.New("turn.relay_ip: required when turn.host is 0.0.0.0 or IPv6 and media.public_ips has no IPv4 address"))
		} else {
			errs = append(errs, fmt.Errorf("turn.relay_ip: %q is not a specific IPv4 address", relay))
		}
	}
	if t.RelayIP6 != "" {
		if ip, err := netip.ParseAddr(t.RelayIP6); err != nil || !ip.Is6() || ip.Is4In6() || ip.IsUnspecified() {
			errs = append(errs, fmt.Errorf("turn.relay_ip6: %q is not a specific IPv6 address", t.RelayIP6))
		}
	}
	switch {
	case t.RelayMinPort == 0 && t.RelayMaxPort == 0:
	case t.RelayMinPort < 1024 || t.RelayMaxPort > 65535 || t.RelayMinPort > t.RelayMaxPort:
		errs = append(errs, fmt.Errorf("turn.relay_min_port: range %d-%d must lie within 1024-65535 with min <= max", t.RelayMinPort, t.RelayMaxPort))
	}
	for i, s := range t.AllowPeers {
		if _, err := turn.ParsePrefix(s); err != nil {
			errs = append(errs, fmt.Errorf("turn.allow_peers[%d]: %w", i, err))
		}
	}
	return errs
}

func validateTURNLimits(t turn.Config) []error {
	var errs []error
	errs = append(errs, positiveInt("turn.max_allocations", int64(t.MaxAllocations))...)
	errs = append(errs, positiveInt("turn.max_allocations_per_user", int64(t.MaxAllocationsPerUser))...)
	errs = append(errs, positiveDuration("turn.allocation_lifetime", t.AllocationLifetime)...)
	errs = append(errs, positiveDuration("turn.max_allocation_lifetime", t.MaxAllocationLifetime)...)
	if t.MaxAllocationLifetime > time.Hour {
		errs = append(errs, fmt.Errorf("turn.max_allocation_lifetime: %v is over the 1h maximum of RFC 8656", t.MaxAllocationLifetime))
	}
	if t.AllocationLifetime > t.MaxAllocationLifetime {
		errs = append(errs, fmt.Errorf("turn.allocation_lifetime: %v is longer than turn.max_allocation_lifetime %v", t.AllocationLifetime, t.MaxAllocationLifetime))
	}
	if t.MaxBitrate < 0 {
		errs = append(errs, fmt.Errorf("turn.max_bitrate: %d must be 0 (unlimited) or more", t.MaxBitrate))
	}
	errs = append(errs, positiveInt("turn.max_connections", int64(t.MaxConnections))...)
	if !(t.UnauthRate > 0) {
		errs = append(errs, fmt.Errorf("turn.unauth_rate: %v must be greater than 0", t.UnauthRate))
	}
	errs = append(errs, positiveInt("turn.unauth_burst", int64(t.UnauthBurst))...)
	return errs
}

func validateTURNDirectory(t turn.Config) []error {
	var errs []error
	for i, u := range t.URIs {
		if !IsICEURI(u) {
			errs = append(errs, fmt.Errorf("turn.uris[%d]: %q is not a stun:, turn: or turns: URI", i, u))
		}
	}
	for i, s := range t.Servers {
		region, uri, ok := strings.Cut(s, "=")
		if !ok || region == "" || !IsICEURI(uri) {
			errs = append(errs, fmt.Errorf("turn.servers[%d]: %q is not REGION=URI (e.g. eu=turn:turn-eu.example.com:3478)", i, s))
		}
	}
	for i, s := range t.RegionNetworks {
		cidr, region, ok := strings.Cut(s, "=")
		if _, err := turn.ParsePrefix(cidr); !ok || region == "" || err != nil {
			errs = append(errs, fmt.Errorf("turn.region_networks[%d]: %q is not CIDR=REGION (e.g. 203.0.113.0/24=eu)", i, s))
		}
	}
	if t.RegionHeader != "" && !httpguts.ValidHeaderFieldName(t.RegionHeader) {
		errs = append(errs, fmt.Errorf("turn.region_header: %q is not a header name", t.RegionHeader))
	}
	return errs
}

// IsICEURI reports whether s looks like a STUN or TURN URI (RFC 7064/7065).
func IsICEURI(s string) bool {
	for _, scheme := range []string{"stun:", "stuns:", "turn:", "turns:"} {
		if strings.HasPrefix(s, scheme) && len(s) > len(scheme) {
			return true
		}
	}
	return false
}

func portInRange(key string, port int) []error {
	if port < 0 || port > 65535 {
		return []error{fmt.Errorf("%s: %d is out of range 0-65535", key, port)}
	}
	return nil
}
