package turn

import (
	"crypto/hmac"
	"crypto/md5"  //nolint:gosec // RFC 5389 long-term key
	"crypto/sha1" //nolint:gosec // TURN REST scheme
	"encoding/base64"
	"encoding/hex"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pion/stun/v4"
	pionturn "github.com/pion/turn/v5"
)

var credNow = time.Unix(1_699_990_000, 0)

func fixedCreds() *Credentials {
	return &Credentials{Secret: "north", TTL: 10 * time.Minute, Now: func() time.Time { return credNow }}
}

// TestCredentialsCoturnVector checks the REST password against an
// independent computation and a fixed value, so that a credential minted
// by Quartet works on coturn (use-auth-secret) and the other way round.
func TestCredentialsCoturnVector(t *testing.T) {
	t.Parallel()
	const username = "1700000000:alice"
	mac := hmac.New(sha1.New, []byte("north"))
	mac.Write([]byte(username))
	want := base64.StdEncoding.EncodeToString(mac.Sum(nil))
	if want != "Cd/49soE35ICqcJF/bCTn8Z4OyE=" {
		t.Fatalf("independent HMAC-SHA1 = %q", want)
	}
	if got := restPassword("north", username); got != want {
		t.Fatalf("restPassword = %q, want %q", got, want)
	}

	user, key, ok := fixedCreds().Key(username, "quartet")
	if !ok || user != "alice" {
		t.Fatalf("Key(%q) = %q, ok %v; want alice, true", username, user, ok)
	}
	sum := md5.Sum([]byte(username + ":quartet:" + want)) //nolint:gosec
	if hex.EncodeToString(key) != hex.EncodeToString(sum[:]) || hex.EncodeToString(key) != "a50519ba7a71056ed4902e7e703e36a6" {
		t.Fatalf("long-term key = %x, want MD5(username:realm:password) = %x", key, sum)
	}
}

func TestCredentialsMintKeyRoundTrip(t *testing.T) {
	t.Parallel()
	c := fixedCreds()
	cred := c.Mint("bob")
	if cred.TTL != 600 {
		t.Errorf("TTL = %d, want 600", cred.TTL)
	}
	if want := strconv.FormatInt(credNow.Add(10*time.Minute).Unix(), 10) + ":bob"; cred.Username != want {
		t.Errorf("username = %q, want %q", cred.Username, want)
	}
	user, key, ok := c.Key(cred.Username, "quartet")
	if !ok || user != "bob" {
		t.Fatalf("Key(minted) = %q, %v", user, ok)
	}
	// The key is what a client derives from the minted password.
	clientKey := stun.NewLongTermIntegrity(cred.Username, "quartet", cred.Password)
	if hex.EncodeToString(key) != hex.EncodeToString(clientKey) {
		t.Fatalf("server key %x differs from the client's %x", key, []byte(clientKey))
	}
	// Another server with the same secret accepts it; one with another
	// secret derives a different key.
	other := &Credentials{Secret: "north", Now: c.Now}
	if _, k, ok := other.Key(cred.Username, "quartet"); !ok || hex.EncodeToString(k) != hex.EncodeToString(key) {
		t.Error("a second server sharing the secret derives another key")
	}
	wrong := &Credentials{Secret: "south", Now: c.Now}
	if _, k, ok := wrong.Key(cred.Username, "quartet"); ok && hex.EncodeToString(k) == hex.EncodeToString(key) {
		t.Error("a server with another secret derives the same key")
	}
}

func TestCredentialsMintWithoutUser(t *testing.T) {
	t.Parallel()
	c := fixedCreds()
	cred := c.Mint("")
	if strings.Contains(cred.Username, ":") {
		t.Fatalf("username %q has a user part", cred.Username)
	}
	user, _, ok := c.Key(cred.Username, "quartet")
	if !ok || user != cred.Username {
		t.Fatalf("Key(%q) = %q, %v; want the username itself as user ID", cred.Username, user, ok)
	}
}

func TestCredentialsRefused(t *testing.T) {
	t.Parallel()
	c := fixedCreds()
	c.Users = map[string]string{"static": "pw"}
	expired := strconv.FormatInt(credNow.Add(-time.Second).Unix(), 10) + ":alice"
	for _, tc := range []struct{ name, username string }{
		{"expired", expired},
		{"not a number", "soon:alice"},
		{"empty", ""},
		{"only a colon", ":alice"},
		{"unknown static user", "nobody"},
		{"negative expiry", "-1:alice"},
		{"overflowing expiry", "99999999999999999999:alice"},
	} {
		if _, _, ok := c.Key(tc.username, "quartet"); ok {
			t.Errorf("%s: Key(%q) accepted", tc.name, tc.username)
		}
	}
	noSecret := &Credentials{TTL: time.Hour}
	if _, _, ok := noSecret.Key(fixedCreds().Mint("alice").Username, "quartet"); ok {
		t.Error("REST credentials accepted without a secret")
	}
}

func TestCredentialsStaticUsers(t *testing.T) {
	t.Parallel()
	c := &Credentials{Users: map[string]string{"carol": "s3cret"}}
	user, key, ok := c.Key("carol", "quartet")
	if !ok || user != "carol" {
		t.Fatalf("Key(carol) = %q, %v", user, ok)
	}
	if want := stun.NewLongTermIntegrity("carol", "quartet", "s3cret"); hex.EncodeToString(key) != hex.EncodeToString(want) {
		t.Fatalf("static key %x, want %x", key, []byte(want))
	}
}

// Through the server: what a client sees.

func TestExpiredCredentialsRefused(t *testing.T) {
	t.Parallel()
	s := startTURN(t, nil)
	expired := (&Credentials{Secret: testSecret, TTL: -time.Minute}).Mint("alice")
	c := newClient(t, udpSocket(t), s.UDPAddr().String(), "", func(cfg *pionturn.ClientConfig) {
		cfg.Username, cfg.Password = expired.Username, expired.Password
	})
	_, err := c.Allocate()
	if code := turnCode(err); code != int(stun.CodeUnauthorized) {
		t.Fatalf("allocate with expired credentials: %v (code %d), want 401", err, code)
	}
}

func TestServerClockDecidesExpiry(t *testing.T) {
	t.Parallel()
	// Valid by the wall clock, expired by the server's clock.
	s, _ := startTURNDeps(t, nil, func(d *Deps) {
		d.Now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	})
	c := newClient(t, udpSocket(t), s.UDPAddr().String(), "alice", nil)
	_, err := c.Allocate()
	if code := turnCode(err); code != int(stun.CodeUnauthorized) {
		t.Fatalf("allocate with credentials expired by the server clock: %v (code %d), want 401", err, code)
	}
}

func TestWrongPasswordRefused(t *testing.T) {
	t.Parallel()
	s := startTURN(t, nil)
	cred := testCreds().Mint("alice")
	c := newClient(t, udpSocket(t), s.UDPAddr().String(), "", func(cfg *pionturn.ClientConfig) {
		cfg.Username, cfg.Password = cred.Username, cred.Password+"x"
	})
	_, err := c.Allocate()
	if code := turnCode(err); code != int(stun.CodeUnauthorized) {
		t.Fatalf("allocate with a wrong password: %v (code %d), want 401", err, code)
	}
	if n := s.Allocations(); n != 0 {
		t.Fatalf("%d allocations after a refused one", n)
	}
}

func TestStaticUserAllocates(t *testing.T) {
	t.Parallel()
	s := startTURN(t, func(c *Config) {
		allowLoopback(c)
		c.Users = map[string]string{"carol": "s3cret"}
	})
	c := newClient(t, udpSocket(t), s.UDPAddr().String(), "", func(cfg *pionturn.ClientConfig) {
		cfg.Username, cfg.Password = "carol", "s3cret"
	})
	relay := allocate(t, c)
	peer := echoPeer(t)
	if got := roundTrips(t, relay, peer.LocalAddr(), 5); got != 5 {
		t.Fatalf("%d of 5 packets came back for a static user", got)
	}

	bad := newClient(t, udpSocket(t), s.UDPAddr().String(), "", func(cfg *pionturn.ClientConfig) {
		cfg.Username, cfg.Password = "carol", "wrong"
	})
	if _, err := bad.Allocate(); turnCode(err) != int(stun.CodeUnauthorized) {
		t.Fatalf("static user with a wrong password: %v, want 401", err)
	}
}
