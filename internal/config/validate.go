package config

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/quartet-rtc/quartet/internal/auth"
)

// MinSecretLength is the shortest API secret accepted: HS256 tokens are only
// as strong as the secret, and 32 bytes matches the hash size.
const MinSecretLength = 32

// Validate checks every setting and returns all problems at once (joined),
// each naming the key as written in YAML.
func (c Config) Validate() error {
	var errs []error
	errs = append(errs, c.validateLog()...)
	errs = append(errs, c.validateHTTP()...)
	errs = append(errs, c.validateMedia()...)
	errs = append(errs, c.validateAuth()...)
	errs = append(errs, c.validateLimits()...)
	errs = append(errs, c.validateDevMode()...)
	errs = append(errs, c.validateTURN()...)
	return errors.Join(errs...)
}

func (c Config) validateLog() []error {
	var errs []error
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.Log.Level) {
		errs = append(errs, fmt.Errorf("log.level: %q is not one of debug, info, warn, error", c.Log.Level))
	}
	if !slices.Contains([]string{"text", "json"}, c.Log.Format) {
		errs = append(errs, fmt.Errorf("log.format: %q is not one of text, json", c.Log.Format))
	}
	return errs
}

func (c Config) validateHTTP() []error {
	var errs []error
	host, port, err := net.SplitHostPort(c.HTTP.Addr)
	if err != nil {
		errs = append(errs, fmt.Errorf("http.addr: %q is not HOST:PORT", c.HTTP.Addr))
	} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		errs = append(errs, fmt.Errorf("http.addr: port %q is not a number in range 0-65535", port))
	} else if host != "" && host != "localhost" && !isIP(host) {
		// A host name could resolve to anything; require what net.Listen binds to.
		errs = append(errs, fmt.Errorf("http.addr: host %q is not an IP address or localhost", host))
	}
	return errs
}

func (c Config) validateMedia() []error {
	var errs []error
	m := c.Media
	if !isIP(m.UDPHost) {
		errs = append(errs, fmt.Errorf("media.udp_host: %q is not an IP address", m.UDPHost))
	}
	if m.UDPPort < 0 || m.UDPPort > 65535 {
		errs = append(errs, fmt.Errorf("media.udp_port: %d is out of range 0-65535", m.UDPPort))
	}
	for _, ip := range m.PublicIPs {
		if !isIP(ip) {
			errs = append(errs, fmt.Errorf("media.public_ips: %q is not an IP address", ip))
		}
	}
	if m.LoopbackOnly && isIP(m.UDPHost) && !isLoopback(m.UDPHost) {
		errs = append(errs, fmt.Errorf("media.loopback_only: is true but media.udp_host %q is not a loopback address; set media.loopback_only: false to offer other candidates", m.UDPHost))
	}
	if m.LoopbackOnly && len(m.PublicIPs) > 0 {
		// Public IPs would never be offered, which is surely not what was meant.
		errs = append(errs, errors.New("media.public_ips: has no effect while media.loopback_only is true; set media.loopback_only: false"))
	}
	return errs
}

func (c Config) validateAuth() []error {
	var errs []error
	names := make([]string, 0, len(c.Auth.Keys))
	for name := range c.Auth.Keys {
		names = append(names, name)
	}
	sort.Strings(names) // stable error order
	for _, name := range names {
		secret := c.Auth.Keys[name]
		switch {
		case name == "":
			errs = append(errs, errors.New("auth.keys: key name must not be empty"))
		case secret == auth.DevAPISecret:
			errs = append(errs, fmt.Errorf("auth.keys.%s: must not use the built-in dev secret", name))
		case len(secret) < MinSecretLength:
			errs = append(errs, fmt.Errorf("auth.keys.%s: secret must be at least %d characters", name, MinSecretLength))
		}
	}
	errs = append(errs, positiveDuration("auth.token_ttl", c.Auth.TokenTTL)...)
	return errs
}

// validateLimits checks the numeric limits and timeouts, all of which must be
// positive: zero would mean "nothing allowed" or "time out at once".
func (c Config) validateLimits() []error {
	var errs []error
	errs = append(errs, positiveDuration("http.shutdown_timeout", c.HTTP.ShutdownTimeout)...)
	errs = append(errs, positiveInt("media.packet_cache", int64(c.Media.PacketCache))...)
	errs = append(errs, positiveInt("media.subscriber_queue", int64(c.Media.SubscriberQueue))...)
	s := c.Signal
	errs = append(errs, positiveInt("signal.max_message_bytes", s.MaxMessageBytes)...)
	if !(s.RatePerSecond > 0) || math.IsInf(s.RatePerSecond, 0) {
		errs = append(errs, fmt.Errorf("signal.rate_per_second: %v must be a finite number greater than 0", s.RatePerSecond))
	}
	errs = append(errs, positiveInt("signal.rate_burst", int64(s.RateBurst))...)
	errs = append(errs, positiveDuration("signal.join_timeout", s.JoinTimeout)...)
	errs = append(errs, positiveDuration("signal.ping_interval", s.PingInterval)...)
	errs = append(errs, positiveInt("signal.max_connections", int64(s.MaxConnections))...)
	errs = append(errs, positiveDuration("signal.write_timeout", s.WriteTimeout)...)
	errs = append(errs, positiveDuration("signal.resume_timeout", s.ResumeTimeout)...)
	errs = append(errs, validateOrigins(s.AllowedOrigins)...)
	errs = append(errs, positiveDuration("room.empty_timeout", c.Room.EmptyTimeout)...)
	errs = append(errs, positiveInt("room.max_participants", int64(c.Room.MaxParticipants))...)
	return errs
}

// validateDevMode refuses to expose the server beyond localhost without API
// keys: in dev mode anyone can mint tokens with the public dev secret.
func (c Config) validateDevMode() []error {
	// A TURN-only process serves no tokens: its HTTP listener has only
	// /healthz and /metrics, and TURN has its own secret check.
	if !c.DevMode() || c.Role == RoleTURN {
		return nil
	}
	var errs []error
	if host, _, err := net.SplitHostPort(c.HTTP.Addr); err == nil && !isLoopback(host) {
		errs = append(errs, errors.New("auth.keys: required when http.addr is not a loopback address (dev mode only listens on localhost)"))
	}
	if isIP(c.Media.UDPHost) && !isLoopback(c.Media.UDPHost) {
		errs = append(errs, errors.New("auth.keys: required when media.udp_host is not a loopback address (dev mode only listens on localhost)"))
	}
	return errs
}

func positiveInt(key string, n int64) []error {
	if n > 0 {
		return nil
	}
	return []error{fmt.Errorf("%s: %d must be greater than 0", key, n)}
}

func positiveDuration(key string, d time.Duration) []error {
	if d > 0 {
		return nil
	}
	return []error{fmt.Errorf("%s: %v must be greater than 0", key, d)}
}

func isIP(s string) bool {
	_, err := netip.ParseAddr(s)
	return err == nil
}

// isLoopback reports whether host (an IP or "localhost") is a loopback
// address. An empty host means all interfaces, so it is not.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// validateOrigins checks host patterns as the WebSocket library matches them
// (path.Match against the Origin's host).
func validateOrigins(patterns []string) []error {
	var errs []error
	for i, p := range patterns {
		_, err := path.Match(p, "")
		switch {
		case p == "" || err != nil:
			errs = append(errs, fmt.Errorf("signal.allowed_origins[%d]: %q is not a host pattern", i, p))
		case strings.Contains(p, "://"):
			errs = append(errs, fmt.Errorf("signal.allowed_origins[%d]: %q must be a host pattern without a scheme, e.g. app.example.com", i, p))
		}
	}
	return errs
}
