package config

import (
	"strings"
	"testing"
	"time"
)

// productionTURN is production() with a public TURN server.
func productionTURN() Config {
	c := production()
	c.TURN.Host = "0.0.0.0"
	c.TURN.Secret = "a-turn-secret-0123456789"
	return c
}

func TestValidateTURNAccepts(t *testing.T) {
	tests := []struct {
		name   string
		base   func() Config
		change func(*Config)
	}{
		{"dev defaults", Default, func(*Config) {}},
		{"public TURN", productionTURN, func(*Config) {}},
		{"TLS", productionTURN, func(c *Config) { c.TURN.TLSPort = 443; c.TURN.TLSCert = "c.pem"; c.TURN.TLSKey = "k.pem" }},
		{"relay range and IPv6", productionTURN, func(c *Config) {
			c.TURN.RelayMinPort, c.TURN.RelayMaxPort, c.TURN.RelayIP6 = 49152, 65535, "2001:db8::7"
		}},
		{"allow list", Default, func(c *Config) { c.TURN.AllowPeers = []string{"127.0.0.0/8", "10.1.2.3", "::1/128"} }},
		{"directory", Default, func(c *Config) {
			c.TURN.Servers = []string{"eu=turns:turn-eu.example.com:443?transport=tcp"}
			c.TURN.RegionNetworks = []string{"2001:db8::/32=eu"}
			c.TURN.RegionHeader = "CloudFront-Viewer-Country"
		}},
		{"TURN off skips its settings", production, func(c *Config) { c.TURN.Enabled = false; c.TURN.Port = -1 }},
		{"TURN-only node", Default, func(c *Config) {
			c.Role = RoleTURN
			c.HTTP.Addr = "0.0.0.0:9090"
			c.TURN.Host = "0.0.0.0"
			c.TURN.RelayIP = "198.51.100.4"
			c.TURN.Secret = "a-turn-secret-0123456789"
		}},
		{"static users", Default, func(c *Config) { c.TURN.Users = map[string]string{"device": "pw"} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.base()
			tt.change(&c)
			if err := c.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
		})
	}
}

func TestValidateTURNRejects(t *testing.T) {
	tests := []struct {
		name   string
		base   func() Config
		change func(*Config)
		want   string
	}{
		{"public without secret", productionTURN, func(c *Config) { c.TURN.Secret = "" }, "turn.secret: required when turn.host is not a loopback address"},
		{"dev secret", productionTURN, func(c *Config) { c.TURN.Secret = DevTURNSecret }, "turn.secret: must not be the built-in dev secret"},
		{"short secret", Default, func(c *Config) { c.TURN.Secret = "short" }, "turn.secret: must be at least 16 characters"},
		{"other servers without secret", production, func(c *Config) {
			c.TURN.Enabled = false
			c.TURN.Servers = []string{"eu=turn:turn-eu.example.com"}
		}, "turn.secret: required when turn.servers are listed"},
		{"TURN on loopback, other servers without secret", production, func(c *Config) {
			c.TURN.Servers = []string{"eu=turn:turn-eu.example.com"}
		}, "turn.secret: required when turn.servers are listed"},
		{"lifetime over an hour", Default, func(c *Config) { c.TURN.MaxAllocationLifetime = 24 * time.Hour }, "turn.max_allocation_lifetime: 24h0m0s is over the 1h maximum"},
		{"region header with a parenthesis", Default, func(c *Config) { c.TURN.RegionHeader = "X(Region" }, "turn.region_header"},
		{"host", Default, func(c *Config) { c.TURN.Host = "turn.example.com" }, `turn.host: "turn.example.com" is not an IP address`},
		{"port", Default, func(c *Config) { c.TURN.Port = 70000 }, "turn.port: 70000 is out of range"},
		{"TLS without cert", Default, func(c *Config) { c.TURN.TLSPort = 5349 }, "turn.tls_cert: turn.tls_cert and turn.tls_key are required"},
		{"TLS on the TCP port", Default, func(c *Config) {
			c.TURN.TLSPort, c.TURN.TLSCert, c.TURN.TLSKey = 3478, "c", "k"
		}, "turn.tls_port: 3478 is also turn.port"},
		{"realm", Default, func(c *Config) { c.TURN.Realm = "" }, "turn.realm: must not be empty"},
		{"ttl", Default, func(c *Config) { c.TURN.CredentialTTL = 0 }, "turn.credential_ttl: 0s must be greater than 0"},
		{"user with colon", Default, func(c *Config) { c.TURN.Users = map[string]string{"1:x": "pw"} }, `turn.users: "1:x" is not a valid user name`},
		{"user without password", Default, func(c *Config) { c.TURN.Users = map[string]string{"x": ""} }, "turn.users.x: password must not be empty"},
		{"no relay address", productionTURN, func(c *Config) { c.Media.PublicIPs = []string{"2001:db8::1"} }, "turn.relay_ip: required when turn.host is 0.0.0.0"},
		{"IPv6 relay_ip", Default, func(c *Config) { c.TURN.RelayIP = "::1" }, `turn.relay_ip: "::1" is not a specific IPv4 address`},
		{"mapped relay_ip6", Default, func(c *Config) { c.TURN.RelayIP6 = "::ffff:1.2.3.4" }, "turn.relay_ip6"},
		{"port range", Default, func(c *Config) { c.TURN.RelayMinPort, c.TURN.RelayMaxPort = 60000, 50000 }, "turn.relay_min_port: range 60000-50000"},
		{"low port range", Default, func(c *Config) { c.TURN.RelayMinPort, c.TURN.RelayMaxPort = 80, 90 }, "turn.relay_min_port"},
		{"allow list", Default, func(c *Config) { c.TURN.AllowPeers = []string{"127.0.0.0/33"} }, "turn.allow_peers[0]"},
		{"max allocations", Default, func(c *Config) { c.TURN.MaxAllocations = 0 }, "turn.max_allocations: 0 must be greater than 0"},
		{"lifetimes", Default, func(c *Config) { c.TURN.AllocationLifetime = 2 * c.TURN.MaxAllocationLifetime }, "turn.allocation_lifetime:"},
		{"bitrate", Default, func(c *Config) { c.TURN.MaxBitrate = -1 }, "turn.max_bitrate: -1 must be 0 (unlimited) or more"},
		{"unauth rate", Default, func(c *Config) { c.TURN.UnauthRate = 0 }, "turn.unauth_rate: 0 must be greater than 0"},
		{"uri", Default, func(c *Config) { c.TURN.URIs = []string{"http://x"} }, `turn.uris[0]: "http://x" is not a stun:, turn: or turns: URI`},
		{"server without region", Default, func(c *Config) { c.TURN.Servers = []string{"turn:x.example.com"} }, "turn.servers[0]"},
		{"region network", Default, func(c *Config) { c.TURN.RegionNetworks = []string{"eu=10.0.0.0/8"} }, "turn.region_networks[0]"},
		{"region header", Default, func(c *Config) { c.TURN.RegionHeader = "X Region" }, "turn.region_header"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.base()
			tt.change(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "a-turn-secret-0123456789") {
				t.Errorf("err %q leaks the TURN secret", err)
			}
		})
	}
}
