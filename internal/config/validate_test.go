package config

import (
	"math"
	"strings"
	"testing"

	"github.com/quartet-rtc/quartet/internal/auth"
)

// production returns a valid non-dev configuration listening publicly.
func production() Config {
	c := Default()
	c.HTTP.Addr = "0.0.0.0:8080"
	c.Media.UDPHost = "0.0.0.0"
	c.Media.LoopbackOnly = false
	c.Media.PublicIPs = []string{"203.0.113.7", "2001:db8::1"}
	c.Auth.Keys = map[string]string{"prod": goodSecret}
	return c
}

func TestValidateAccepts(t *testing.T) {
	tests := []struct {
		name   string
		base   func() Config
		change func(*Config)
	}{
		{"defaults", Default, func(*Config) {}},
		{"production", production, func(*Config) {}},
		{"dev on IPv6 loopback", Default, func(c *Config) { c.HTTP.Addr = "[::1]:8080"; c.Media.UDPHost = "::1" }},
		{"dev on localhost", Default, func(c *Config) { c.HTTP.Addr = "localhost:0" }},
		{"random ports", Default, func(c *Config) { c.HTTP.Addr = "127.0.0.1:0"; c.Media.UDPPort = 0 }},
		{"loopback_only off on loopback", Default, func(c *Config) { c.Media.LoopbackOnly = false }},
		{"keys on loopback", Default, func(c *Config) { c.Auth.Keys = map[string]string{"k": goodSecret} }},
		{"all log levels", Default, func(c *Config) { c.Log.Level = "warn" }},
		{"listen on all interfaces", production, func(c *Config) { c.HTTP.Addr = ":8080" }},
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

func TestValidateRejects(t *testing.T) {
	tests := []struct {
		name   string
		base   func() Config
		change func(*Config)
		want   string
	}{
		{"log level", Default, func(c *Config) { c.Log.Level = "verbose" }, `log.level: "verbose" is not one of debug, info, warn, error`},
		{"log format", Default, func(c *Config) { c.Log.Format = "xml" }, `log.format: "xml" is not one of text, json`},
		{"http addr no port", Default, func(c *Config) { c.HTTP.Addr = "127.0.0.1" }, `http.addr: "127.0.0.1" is not HOST:PORT`},
		{"http addr bad port", Default, func(c *Config) { c.HTTP.Addr = "127.0.0.1:http" }, `http.addr: port "http" is not a number`},
		{"http addr port range", Default, func(c *Config) { c.HTTP.Addr = "127.0.0.1:65536" }, `http.addr: port "65536"`},
		{"http addr host name", production, func(c *Config) { c.HTTP.Addr = "example.com:80" }, `http.addr: host "example.com" is not an IP address or localhost`},
		{"shutdown timeout", Default, func(c *Config) { c.HTTP.ShutdownTimeout = 0 }, "http.shutdown_timeout: 0s must be greater than 0"},
		{"udp host", Default, func(c *Config) { c.Media.UDPHost = "localhost" }, `media.udp_host: "localhost" is not an IP address`},
		{"udp port high", Default, func(c *Config) { c.Media.UDPPort = 70000 }, "media.udp_port: 70000 is out of range 0-65535"},
		{"udp port negative", Default, func(c *Config) { c.Media.UDPPort = -1 }, "media.udp_port: -1 is out of range 0-65535"},
		{"public ip", production, func(c *Config) { c.Media.PublicIPs = []string{"1.2.3"} }, `media.public_ips: "1.2.3" is not an IP address`},
		{"public ips with loopback_only", Default, func(c *Config) { c.Media.PublicIPs = []string{"1.2.3.4"} }, "media.public_ips: has no effect while media.loopback_only is true"},
		{"loopback_only with public udp_host", production, func(c *Config) { c.Media.PublicIPs = nil; c.Media.LoopbackOnly = true },
			`media.loopback_only: is true but media.udp_host "0.0.0.0" is not a loopback address; set media.loopback_only: false`},
		{"packet cache", Default, func(c *Config) { c.Media.PacketCache = 0 }, "media.packet_cache: 0 must be greater than 0"},
		{"subscriber queue", Default, func(c *Config) { c.Media.SubscriberQueue = -5 }, "media.subscriber_queue: -5 must be greater than 0"},
		{"empty key name", production, func(c *Config) { c.Auth.Keys[""] = goodSecret }, "auth.keys: key name must not be empty"},
		{"short secret", production, func(c *Config) { c.Auth.Keys["short"] = "abc" }, "auth.keys.short: secret must be at least 32 characters"},
		{"dev secret", production, func(c *Config) { c.Auth.Keys["k"] = auth.DevAPISecret }, "auth.keys.k: must not use the built-in dev secret"},
		{"token ttl", Default, func(c *Config) { c.Auth.TokenTTL = -1 }, "auth.token_ttl: -1ns must be greater than 0"},
		{"max message bytes", Default, func(c *Config) { c.Signal.MaxMessageBytes = 0 }, "signal.max_message_bytes: 0 must be greater than 0"},
		{"rate zero", Default, func(c *Config) { c.Signal.RatePerSecond = 0 }, "signal.rate_per_second: 0 must be a finite number greater than 0"},
		{"rate NaN", Default, func(c *Config) { c.Signal.RatePerSecond = math.NaN() }, "signal.rate_per_second: NaN"},
		{"rate Inf", Default, func(c *Config) { c.Signal.RatePerSecond = math.Inf(1) }, "signal.rate_per_second: +Inf"},
		{"rate burst", Default, func(c *Config) { c.Signal.RateBurst = 0 }, "signal.rate_burst: 0 must be greater than 0"},
		{"join timeout", Default, func(c *Config) { c.Signal.JoinTimeout = 0 }, "signal.join_timeout: 0s must be greater than 0"},
		{"ping interval", Default, func(c *Config) { c.Signal.PingInterval = 0 }, "signal.ping_interval: 0s must be greater than 0"},
		{"max connections", Default, func(c *Config) { c.Signal.MaxConnections = 0 }, "signal.max_connections: 0 must be greater than 0"},
		{"write timeout", Default, func(c *Config) { c.Signal.WriteTimeout = 0 }, "signal.write_timeout: 0s must be greater than 0"},
		{"empty timeout", Default, func(c *Config) { c.Room.EmptyTimeout = 0 }, "room.empty_timeout: 0s must be greater than 0"},
		{"max participants", Default, func(c *Config) { c.Room.MaxParticipants = 0 }, "room.max_participants: 0 must be greater than 0"},
		{"dev mode public http", Default, func(c *Config) { c.HTTP.Addr = "0.0.0.0:8080" },
			"auth.keys: required when http.addr is not a loopback address (dev mode only listens on localhost)"},
		{"dev mode all interfaces", Default, func(c *Config) { c.HTTP.Addr = ":8080" }, "auth.keys: required when http.addr is not a loopback address"},
		{"dev mode public udp", Default, func(c *Config) { c.Media.UDPHost = "192.168.1.2"; c.Media.LoopbackOnly = false },
			"auth.keys: required when media.udp_host is not a loopback address"},
		{"dev mode with empty keys map", production, func(c *Config) { c.Auth.Keys = map[string]string{} }, "auth.keys: required when http.addr"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.base()
			tt.change(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
			if strings.Contains(err.Error(), goodSecret) {
				t.Errorf("err %q leaks a secret", err)
			}
		})
	}
}

func TestValidateReportsAllProblems(t *testing.T) {
	c := Default()
	c.Log.Level = "loud"
	c.Media.UDPPort = 70000
	c.Room.MaxParticipants = 0
	err := c.Validate()
	if err == nil {
		t.Fatal("Validate succeeded")
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != 3 {
		t.Errorf("got %d problems, want 3:\n%v", len(lines), err)
	}
}

func TestLoadWrapsValidationErrors(t *testing.T) {
	_, err := Load("", []string{"QUARTET_HTTP_ADDR=0.0.0.0:80"})
	if err == nil || !strings.Contains(err.Error(), "invalid configuration: auth.keys: required") {
		t.Fatalf("err = %v", err)
	}
}

func TestAllowedOrigins(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		patterns []string
		want     string
	}{
		{[]string{"app.example.com", "*.example.com"}, ""},
		{[]string{"https://app.example.com"}, "without a scheme"},
		{[]string{""}, "is not a host pattern"},
		{[]string{"[bad"}, "is not a host pattern"},
	} {
		c := Default()
		c.Signal.AllowedOrigins = tt.patterns
		err := c.Validate()
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%v: %v, want %q", tt.patterns, err, tt.want)
		}
	}
}
