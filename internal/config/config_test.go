package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

const goodSecret = "0123456789abcdef0123456789abcdef"

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "quartet.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestDefault(t *testing.T) {
	c := Default()
	tests := []struct {
		key       string
		got, want any
	}{
		{"log.level", c.Log.Level, "info"},
		{"log.format", c.Log.Format, "text"},
		{"http.addr", c.HTTP.Addr, "127.0.0.1:8080"},
		{"http.shutdown_timeout", c.HTTP.ShutdownTimeout, 5 * time.Second},
		{"media.udp_host", c.Media.UDPHost, "127.0.0.1"},
		{"media.udp_port", c.Media.UDPPort, 7882},
		{"media.public_ips", len(c.Media.PublicIPs), 0},
		{"media.loopback_only", c.Media.LoopbackOnly, true},
		{"media.packet_cache", c.Media.PacketCache, 512},
		{"media.subscriber_queue", c.Media.SubscriberQueue, 1024},
		{"auth.keys", len(c.Auth.Keys), 0},
		{"auth.token_ttl", c.Auth.TokenTTL, 6 * time.Hour},
		{"signal.max_message_bytes", c.Signal.MaxMessageBytes, int64(65536)},
		{"signal.rate_per_second", c.Signal.RatePerSecond, 50.0},
		{"signal.rate_burst", c.Signal.RateBurst, 200},
		{"signal.join_timeout", c.Signal.JoinTimeout, 10 * time.Second},
		{"signal.ping_interval", c.Signal.PingInterval, 15 * time.Second},
		{"signal.max_connections", c.Signal.MaxConnections, 10000},
		{"signal.write_timeout", c.Signal.WriteTimeout, 5 * time.Second},
		{"room.empty_timeout", c.Room.EmptyTimeout, 10 * time.Second},
		{"room.max_participants", c.Room.MaxParticipants, 100},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %v, want %v", tt.key, tt.got, tt.want)
		}
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Default().Validate() = %v", err)
	}
	if !c.DevMode() {
		t.Error("Default() is not in dev mode")
	}
}

func TestLoadWithoutFileOrEnv(t *testing.T) {
	c, err := Load("", []string{"PATH=/bin", "HOME=/root"})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c, Default()) {
		t.Errorf("Load = %+v, want defaults", c)
	}
}

func TestLoadFile(t *testing.T) {
	good := `
log:
  level: debug
  format: json
http:
  addr: 0.0.0.0:8443
  shutdown_timeout: 2s
media:
  udp_host: 0.0.0.0
  udp_port: 7000
  public_ips: [203.0.113.7]
  loopback_only: false
auth:
  keys:
    prod: ` + goodSecret + `
  token_ttl: 1h
room:
  empty_timeout: 1m
`
	c, err := Load(writeFile(t, good), nil)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := Default()
	want.Log = LogConfig{Level: "debug", Format: "json"}
	want.HTTP = HTTPConfig{Addr: "0.0.0.0:8443", ShutdownTimeout: 2 * time.Second}
	want.Media.UDPHost = "0.0.0.0"
	want.Media.UDPPort = 7000
	want.Media.PublicIPs = []string{"203.0.113.7"}
	want.Media.LoopbackOnly = false
	want.Auth = AuthConfig{Keys: map[string]string{"prod": goodSecret}, TokenTTL: time.Hour}
	want.Room.EmptyTimeout = time.Minute
	if !reflect.DeepEqual(c, want) {
		t.Errorf("Load =\n%+v\nwant\n%+v", c, want)
	}
}

func TestLoadFileErrors(t *testing.T) {
	tests := []struct {
		name    string
		content string
		want    []string
	}{
		{"unknown section", "log:\n  level: info\nhtp:\n  addr: x\n", []string{"quartet.yaml: line 3: field htp not found"}},
		{"unknown key", "http:\n  adr: 127.0.0.1:1\n", []string{"line 2: field adr not found"}},
		{"bad duration", "room:\n  empty_timeout: 10 parsecs\n", []string{"line 2:", "10 parsecs", "time.Duration"}},
		{"duration without unit", "room:\n  empty_timeout: 10\n", []string{"line 2:"}},
		{"wrong type", "media:\n  udp_port: lots\n", []string{"line 2:", "lots"}},
		{"syntax error", "log: [\n", []string{"quartet.yaml"}},
		{"two documents", "log:\n  level: info\n---\nlog:\n  level: debug\n", []string{"only one YAML document"}},
		{"valid YAML, invalid value", "media:\n  udp_port: 70000\n", []string{"media.udp_port: 70000 is out of range 0-65535"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(writeFile(t, tt.content), nil)
			if err == nil {
				t.Fatal("Load succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "config.") {
				t.Errorf("error %q mentions a Go type", err)
			}
		})
	}
}

func TestLoadEmptyFile(t *testing.T) {
	c, err := Load(writeFile(t, "# nothing set\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c, Default()) {
		t.Errorf("Load = %+v, want defaults", c)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"), nil)
	if err == nil || !strings.Contains(err.Error(), "nope.yaml") {
		t.Fatalf("err = %v, want it to name the file", err)
	}
}
