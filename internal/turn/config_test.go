package turn

import (
	"slices"
	"strings"
	"testing"
)

func TestParsePrefixUnmapsIPv4(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"127.0.0.1":           "127.0.0.1/32",
		"::ffff:127.0.0.1":    "127.0.0.1/32",
		"::ffff:10.0.0.0/104": "10.0.0.0/8",
		"10.1.2.3/8":          "10.0.0.0/8",
		"2001:db8::1":         "2001:db8::1/128",
	} {
		p, err := ParsePrefix(in)
		if err != nil || p.String() != want {
			t.Errorf("ParsePrefix(%q) = %v, %v; want %s", in, p, err, want)
		}
	}
}

// TestResolveNamesTheSetting: settings that cannot be parsed fail Start
// with the key at fault (config.Validate normally catches them first).
func TestResolveNamesTheSetting(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		mutate func(*Config, *Deps)
		want   string
	}{
		{"no relay address", func(_ *Config, d *Deps) { d.RelayIP = "" }, "turn.relay_ip:"},
		{"bad IPv6 relay", func(c *Config, _ *Deps) { c.RelayIP6 = "nope" }, "turn.relay_ip6:"},
		{"bad allow list", func(c *Config, _ *Deps) { c.AllowPeers = []string{"10.0.0.0/33"} }, "turn.allow_peers:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg, deps := Config{Host: "127.0.0.1"}, Deps{Secret: testSecret, RelayIP: "127.0.0.1"}
			tc.mutate(&cfg, &deps)
			if _, err := resolve(cfg, deps); err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("resolve: %v, want an error starting %q", err, tc.want)
			}
		})
	}
}

// TestResolveTakesDeps: the secret, relay address and media addresses in
// effect come from Deps, not from the settings of the same name.
func TestResolveTakesDeps(t *testing.T) {
	t.Parallel()
	cfg := Config{Host: "0.0.0.0", Secret: "", RelayIP: "", Users: map[string]string{"carol": "pw"}}
	r, err := resolve(cfg, Deps{Secret: testSecret, RelayIP: "198.51.100.4"})
	if err != nil {
		t.Fatal(err)
	}
	if r.RelayIP.String() != "198.51.100.4" || r.Credentials.Secret != testSecret || r.Credentials.Users["carol"] != "pw" {
		t.Fatalf("resolved relay %v, secret %q, users %v", r.RelayIP, r.Credentials.Secret, r.Credentials.Users)
	}
}

func TestURIsFor(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cfg  Config
		want []string
	}{
		{"configured", Config{Host: "0.0.0.0", URIs: []string{"turn:turn.example.com"}}, []string{"turn:turn.example.com"}},
		{"specific host", Config{Host: "192.0.2.1"}, OwnURIs("192.0.2.1", 3478, 443)},
		{"unspecified host uses the relay address", Config{Host: "0.0.0.0"}, OwnURIs("198.51.100.4", 3478, 443)},
	} {
		if got := URIsFor(tc.cfg, "198.51.100.4", 3478, 443); !slices.Equal(got, tc.want) {
			t.Errorf("%s: URIsFor = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestClientURIsUseBoundPorts: with port 0 the URIs name the port bound.
func TestClientURIsUseBoundPorts(t *testing.T) {
	t.Parallel()
	s := startTURN(t, nil)
	if got, want := s.ClientURIs(), OwnURIs("127.0.0.1", s.UDPAddr().Port, 0); !slices.Equal(got, want) {
		t.Fatalf("ClientURIs = %v, want %v", got, want)
	}
}
