// Package config loads Quartet's settings from built-in defaults, an optional
// YAML file and QUARTET_* environment variables, in that order, and validates
// the result. docs/configuration.md documents every setting.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/quartet-rtc/quartet/internal/room"
	"github.com/quartet-rtc/quartet/internal/sfu"
	"github.com/quartet-rtc/quartet/internal/signal"
	"github.com/quartet-rtc/quartet/internal/turn"
)

// Config is the whole server configuration. Each role owns the type of its
// own section (sfu.Config, signal.Config, room.Config, turn.Config),
// settings only; what a role needs at run time besides settings comes in
// its Deps, which the caller fills in (the turn secret and relay address in
// effect come from TURNSecret and TURNRelayIP). Every field has a yaml
// tag; the environment variable names are derived from those tags (see
// env.go).
type Config struct {
	Log    LogConfig     `yaml:"log"`
	HTTP   HTTPConfig    `yaml:"http"`
	Media  sfu.Config    `yaml:"media"`
	Auth   AuthConfig    `yaml:"auth"`
	Signal signal.Config `yaml:"signal"`
	Room   room.Config   `yaml:"room"`
	TURN   turn.Config   `yaml:"turn"`

	// Role is what the process runs: RoleAll for `quartet serve`, RoleTURN
	// for `quartet turn`. It is set by the command, not by configuration.
	Role Role `yaml:"-"`
}

// Role names the servers one process runs.
type Role string

// The roles a process can take.
const (
	RoleAll  Role = ""     // application, signaling, media and (if enabled) TURN
	RoleTURN Role = "turn" // STUN/TURN only, with /healthz and /metrics
)

// LogConfig controls the server log.
type LogConfig struct {
	Level  string `yaml:"level"`  // debug | info | warn | error
	Format string `yaml:"format"` // text | json
}

// HTTPConfig controls the HTTP listener (signaling WebSocket, API, dev pages).
type HTTPConfig struct {
	Addr            string        `yaml:"addr"`
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
}

// AuthConfig holds API keys. No keys means dev mode.
type AuthConfig struct {
	Keys     map[string]string `yaml:"keys"`      // API key name -> secret
	TokenTTL time.Duration     `yaml:"token_ttl"` // lifetime of tokens minted by the dev endpoint and CLI
}

// Default returns the built-in configuration: dev mode, listening on
// localhost only, so that running the binary without setup is safe.
func Default() Config {
	return Config{
		Log:  LogConfig{Level: "info", Format: "text"},
		HTTP: HTTPConfig{Addr: "127.0.0.1:8080", ShutdownTimeout: 5 * time.Second},
		Media: sfu.Config{
			UDPHost:         "127.0.0.1",
			UDPPort:         7882,
			LoopbackOnly:    true,
			PacketCache:     512,
			SubscriberQueue: 1024,
		},
		Auth: AuthConfig{TokenTTL: 6 * time.Hour},
		Signal: signal.Config{
			MaxMessageBytes: 65536,
			RatePerSecond:   50,
			RateBurst:       200,
			JoinTimeout:     10 * time.Second,
			PingInterval:    15 * time.Second,
			MaxConnections:  10000,
			WriteTimeout:    5 * time.Second,
			ResumeTimeout:   15 * time.Second,
		},
		Room: room.Config{EmptyTimeout: 10 * time.Second, MaxParticipants: 100},
		TURN: turn.Config{
			Enabled:               true,
			Host:                  "127.0.0.1",
			Port:                  3478,
			Realm:                 "quartet",
			CredentialTTL:         12 * time.Hour,
			MaxAllocations:        10000,
			MaxAllocationsPerUser: 20,
			AllocationLifetime:    10 * time.Minute,
			MaxAllocationLifetime: time.Hour,
			MaxBitrate:            50_000_000,
			MaxConnections:        10000,
			UnauthRate:            10,
			UnauthBurst:           50,
		},
	}
}

// DevMode reports whether no API keys are configured. The server then uses
// the built-in dev key and must only listen on loopback addresses.
func (c Config) DevMode() bool { return len(c.Auth.Keys) == 0 }

// Load builds the configuration: defaults, then the YAML file at path (if
// path is not empty), then QUARTET_* variables from env (in os.Environ
// form, "NAME=value"), then Validate.
func Load(path string, env []string) (Config, error) {
	return LoadWith(path, env, nil)
}

// LoadWith is Load with command-line flags: override runs after the file
// and environment and before validation, so a flag can correct either.
func LoadWith(path string, env []string, override func(*Config)) (Config, error) {
	cfg := Default()
	if path != "" {
		if err := loadFile(path, &cfg); err != nil {
			return Config{}, err
		}
	}
	if err := applyEnv(&cfg, env); err != nil {
		return Config{}, err
	}
	if override != nil {
		override(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, fmt.Errorf("invalid configuration: %w", err)
	}
	return cfg, nil
}

// loadFile decodes the YAML file at path over cfg. Unknown keys are errors
// so that a typo does not silently leave a default in place.
func loadFile(path string, cfg *Config) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("config file %s: %s", path, yamlMessage(err))
	}
	// A second document would be ignored silently, which hides mistakes.
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return fmt.Errorf("config file %s: only one YAML document is allowed", path)
	}
	return nil
}

// yamlMessage shortens yaml.v3 errors to "line N: problem", dropping the
// "yaml: unmarshal errors:" preamble and Go type names that mean nothing to
// someone editing the file.
func yamlMessage(err error) string {
	var typeErr *yaml.TypeError
	if !errors.As(err, &typeErr) {
		return strings.TrimPrefix(err.Error(), "yaml: ")
	}
	msgs := make([]string, 0, len(typeErr.Errors))
	for _, m := range typeErr.Errors {
		if i := strings.Index(m, " in type "); i >= 0 {
			m = m[:i]
		}
		msgs = append(msgs, m)
	}
	return strings.Join(msgs, "; ")
}

// TURNRelayIP is the IPv4 relay address told to clients: turn.relay_ip, or
// turn.host when that is a specific address, or the first IPv4 address of
// media.public_ips. Empty if none applies (Validate reports that). It reads
// two sections, so it lives here and callers pass it to the turn package
// (turn.Deps.RelayIP, turn.URIsFor).
func (c Config) TURNRelayIP() string {
	if c.TURN.RelayIP != "" {
		return c.TURN.RelayIP
	}
	if ip, err := netip.ParseAddr(c.TURN.Host); err == nil && !ip.IsUnspecified() && ip.Is4() {
		return c.TURN.Host
	}
	for _, s := range c.Media.PublicIPs {
		if ip, err := netip.ParseAddr(s); err == nil && ip.Is4() {
			return s
		}
	}
	return ""
}

// TURNSecret is the credential secret in effect: turn.secret, or in dev
// mode (no secret, loopback only) the public DevTURNSecret. Callers pass it
// to the turn package (turn.Deps.Secret, turn.NewCredentials).
func (c Config) TURNSecret() string {
	if c.TURN.Secret != "" {
		return c.TURN.Secret
	}
	return DevTURNSecret
}

// DevTURNSecret signs TURN credentials when turn.secret is not set. It is
// public, so Validate only allows it while TURN listens on loopback.
const DevTURNSecret = "quartet-dev-turn-secret-not-for-production"
