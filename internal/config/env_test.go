package config

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestEnvOverrides(t *testing.T) {
	tests := []struct {
		name string
		env  string
		get  func(Config) any
		want any
	}{
		{"string", "QUARTET_HTTP_ADDR=127.0.0.1:9000", func(c Config) any { return c.HTTP.Addr }, "127.0.0.1:9000"},
		{"int", "QUARTET_MEDIA_UDP_PORT=9999", func(c Config) any { return c.Media.UDPPort }, 9999},
		{"int64", "QUARTET_SIGNAL_MAX_MESSAGE_BYTES=1024", func(c Config) any { return c.Signal.MaxMessageBytes }, int64(1024)},
		{"float", "QUARTET_SIGNAL_RATE_PER_SECOND=2.5", func(c Config) any { return c.Signal.RatePerSecond }, 2.5},
		{"bool", "QUARTET_MEDIA_LOOPBACK_ONLY=false", func(c Config) any { return c.Media.LoopbackOnly }, false},
		{"duration", "QUARTET_ROOM_EMPTY_TIMEOUT=30s", func(c Config) any { return c.Room.EmptyTimeout }, 30 * time.Second},
		{"list", "QUARTET_MEDIA_PUBLIC_IPS=1.2.3.4, 5.6.7.8,", func(c Config) any { return c.Media.PublicIPs }, []string{"1.2.3.4", "5.6.7.8"}},
		{"empty list", "QUARTET_MEDIA_PUBLIC_IPS=", func(c Config) any { return c.Media.PublicIPs }, []string{}},
		{"map", "QUARTET_AUTH_KEYS=key1:secret1,key2:sec:ret2", func(c Config) any { return c.Auth.Keys },
			map[string]string{"key1": "secret1", "key2": "sec:ret2"}},
		{"empty map", "QUARTET_AUTH_KEYS=", func(c Config) any { return c.Auth.Keys }, map[string]string{}},
		{"config file variable ignored", "QUARTET_CONFIG=/etc/quartet.yaml", func(c Config) any { return c.HTTP.Addr }, "127.0.0.1:8080"},
		{"other variables ignored", "QUARTETX=1", func(c Config) any { return c.HTTP.Addr }, "127.0.0.1:8080"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			if err := applyEnv(&c, []string{tt.env}); err != nil {
				t.Fatalf("applyEnv: %v", err)
			}
			if got := tt.get(c); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %#v, want %#v", got, tt.want)
			}
		})
	}
}

func TestEnvErrors(t *testing.T) {
	tests := []struct {
		env     string
		want    string
		notWant string
	}{
		{"QUARTET_HTTP_ADRR=x", "QUARTET_HTTP_ADRR: unknown environment variable", ""},
		{"QUARTET_MEDIA=x", "QUARTET_MEDIA: unknown environment variable", ""},
		{"QUARTET_MEDIA_UDP_PORT=abc", `QUARTET_MEDIA_UDP_PORT: "abc" is not an integer`, ""},
		{"QUARTET_MEDIA_UDP_PORT=99999999999999999999", `QUARTET_MEDIA_UDP_PORT: "99999999999999999999" is not an integer`, ""},
		{"QUARTET_SIGNAL_RATE_PER_SECOND=fast", `QUARTET_SIGNAL_RATE_PER_SECOND: "fast" is not a number`, ""},
		{"QUARTET_MEDIA_LOOPBACK_ONLY=nope", `QUARTET_MEDIA_LOOPBACK_ONLY: "nope" is not a boolean`, ""},
		{"QUARTET_ROOM_EMPTY_TIMEOUT=30", `QUARTET_ROOM_EMPTY_TIMEOUT: "30" is not a duration`, ""},
		{"QUARTET_AUTH_KEYS=key1:" + goodSecret + ",oops", "QUARTET_AUTH_KEYS: entry 2 is not NAME:VALUE", goodSecret},
		{"QUARTET_AUTH_KEYS=:" + goodSecret, "QUARTET_AUTH_KEYS: entry 1 is not NAME:VALUE", goodSecret},
		{"QUARTET_AUTH_KEYS=a:" + goodSecret + ",a:x", `QUARTET_AUTH_KEYS: entry 2 repeats name "a"`, goodSecret},
	}
	for _, tt := range tests {
		t.Run(tt.env, func(t *testing.T) {
			c := Default()
			err := applyEnv(&c, []string{tt.env})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
			if tt.notWant != "" && strings.Contains(err.Error(), tt.notWant) {
				t.Errorf("err %q leaks %q", err, tt.notWant)
			}
		})
	}
}

func TestEnvReportsAllErrors(t *testing.T) {
	c := Default()
	err := applyEnv(&c, []string{"QUARTET_A=1", "QUARTET_MEDIA_UDP_PORT=x"})
	if err == nil || !strings.Contains(err.Error(), "QUARTET_A") || !strings.Contains(err.Error(), "QUARTET_MEDIA_UDP_PORT") {
		t.Fatalf("err = %v, want both variables named", err)
	}
}

// TestEveryFieldHasEnv makes sure the reflection covers each field and that
// every field type can be parsed from a string.
func TestEveryFieldHasEnv(t *testing.T) {
	names := EnvNames()
	fields := 0
	sections := reflect.TypeFor[Config]()
	for i := range sections.NumField() {
		if sections.Field(i).Type.Kind() != reflect.Struct {
			continue // Role: set by the command, not configuration
		}
		fields += sections.Field(i).Type.NumField()
	}
	if len(names) != fields {
		t.Errorf("got %d env names, want %d (one per field): %v", len(names), fields, names)
	}
	for _, want := range []string{"QUARTET_HTTP_ADDR", "QUARTET_MEDIA_UDP_PORT", "QUARTET_SIGNAL_RATE_PER_SECOND",
		"QUARTET_ROOM_EMPTY_TIMEOUT", "QUARTET_MEDIA_PUBLIC_IPS", "QUARTET_AUTH_KEYS", "QUARTET_MEDIA_LOOPBACK_ONLY"} {
		if !contains(names, want) {
			t.Errorf("missing %s", want)
		}
	}
	var c Config
	for name, field := range envFields(&c) {
		if err := setField(field, ""); err != nil && strings.Contains(err.Error(), "cannot be set") {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestPrecedence(t *testing.T) {
	path := writeFile(t, "http:\n  addr: 127.0.0.1:1000\nroom:\n  max_participants: 5\n  empty_timeout: 1m\n")
	env := []string{"QUARTET_HTTP_ADDR=127.0.0.1:2000", "QUARTET_ROOM_MAX_PARTICIPANTS=7"}
	c, err := Load(path, env)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		key       string
		got, want any
	}{
		{"env over file", c.HTTP.Addr, "127.0.0.1:2000"},
		{"env over file (int)", c.Room.MaxParticipants, 7},
		{"file over default", c.Room.EmptyTimeout, time.Minute},
		{"default kept", c.Media.UDPPort, 7882},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.key, tt.got, tt.want)
		}
	}
}

func TestEnvReplacesFileKeys(t *testing.T) {
	other := strings.Repeat("z", 32)
	path := writeFile(t, "auth:\n  keys:\n    filekey: "+goodSecret+"\n")
	c, err := Load(path, []string{"QUARTET_AUTH_KEYS=envkey:" + other})
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"envkey": other}; !reflect.DeepEqual(c.Auth.Keys, want) {
		t.Errorf("keys = %v, want %v", c.Auth.Keys, want)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
