package server_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	pionturn "github.com/pion/turn/v5"

	"github.com/quartet-rtc/quartet/internal/auth"
	"github.com/quartet-rtc/quartet/internal/client"
	"github.com/quartet-rtc/quartet/internal/config"
)

const prodKey = "a-production-secret-of-at-least-32-bytes"

// TestJoinHandsOutWorkingTURNCredentials checks what a browser gets in
// joined.iceServers: Quartet's own STUN/TURN URIs on loopback (and nothing
// else), with a credential the TURN server accepts.
func TestJoinHandsOutWorkingTURNCredentials(t *testing.T) {
	t.Parallel()
	srv := startServer(t, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	c := srv.join(t, ctx, "r", "alice", newCounter(), true)
	defer c.Close()

	servers := c.Joined.ICEServers
	if len(servers) != 1 {
		t.Fatalf("iceServers = %+v, want one entry", servers)
	}
	port := srv.TURN().UDPAddr().Port
	want := []string{
		"stun:127.0.0.1:" + itoa(port),
		"turn:127.0.0.1:" + itoa(port) + "?transport=udp",
		"turn:127.0.0.1:" + itoa(port) + "?transport=tcp",
	}
	if strings.Join(servers[0].URLs, " ") != strings.Join(want, " ") {
		t.Fatalf("urls = %v, want %v", servers[0].URLs, want)
	}
	password, _ := servers[0].Credential.(string)
	if !strings.HasSuffix(servers[0].Username, ":alice") || password == "" {
		t.Fatalf("credential %q/%q is not a REST credential for alice", servers[0].Username, password)
	}
	allocate(t, srv.TURN().UDPAddr().String(), servers[0].Username, password)
}

// allocate gets a UDP relay from the TURN server at addr.
func allocate(t *testing.T, addr, username, password string) {
	t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	tc, err := pionturn.NewClient(&pionturn.ClientConfig{STUNServerAddr: addr, TURNServerAddr: addr,
		Conn: conn, Username: username, Password: password, Realm: "quartet"})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	if err := tc.Listen(); err != nil {
		t.Fatal(err)
	}
	relay, err := tc.Allocate()
	if err != nil {
		t.Fatalf("allocate with the joined credential: %v", err)
	}
	_ = relay.Close()
}

// TestRelayOnlyCallThroughBuiltInTURN forces both participants onto relay
// candidates with the default (deny-by-default) policy: media must still
// flow, through the one exception, the SFU's own address and port.
func TestRelayOnlyCallThroughBuiltInTURN(t *testing.T) {
	t.Parallel()
	srv := startServer(t, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cnt := newCounter()
	dial := func(identity string) *client.Client {
		opts := client.Options{URL: srv.WSURL(), Token: srv.Token(t, "relay", identity), Relay: true,
			OnTrack: func(tr *webrtcTrack, info roomTrack) { go cnt.consume(tr, info) }}
		c, err := client.Dial(ctx, opts)
		if err != nil {
			t.Fatalf("%s: join: %v", identity, err)
		}
		return c
	}
	pub := dial("pub")
	defer pub.Close()
	sub := dial("sub")
	defer sub.Close()
	sendCtx, stop := context.WithCancel(ctx)
	wait := publishSynth(t, sendCtx, pub, true, true)
	waitUntil(t, 20*time.Second, "relayed video and audio", func() bool {
		return cnt.get(pub.SID(), "video") > 30 && cnt.get(pub.SID(), "audio") > 30
	})
	stop()
	wait()
	// Publisher and subscriber connections of both participants relay.
	if n := srv.TURN().Allocations(); n < 2 {
		t.Fatalf("%d TURN allocations during a relay-only call, want at least 2", n)
	}
}

func TestTURNCredentialsEndpoint(t *testing.T) {
	t.Parallel()
	t.Run("dev mode answers anyone", func(t *testing.T) {
		srv := startServer(t, nil, nil)
		code, body := srv.api(t, "GET", "/api/turn-credentials?user=bob", "")
		if code != http.StatusOK {
			t.Fatalf("status %d: %s", code, body)
		}
		checkREST(t, body, config.DevTURNSecret, "bob")
	})
	t.Run("production needs a token", func(t *testing.T) {
		const secret = "turn-secret-for-this-test"
		srv := startServer(t, func(c *config.Config) {
			c.Auth.Keys = map[string]string{"prod": prodKey}
			c.TURN.Secret = secret
		}, nil)
		if code, _ := srv.api(t, "GET", "/api/turn-credentials?user=bob", ""); code != http.StatusUnauthorized {
			t.Fatalf("without a token: %d, want 401", code)
		}
		if code, _ := srv.api(t, "GET", "/api/turn-credentials", "not-a-token"); code != http.StatusUnauthorized {
			t.Fatalf("with a bad token: %d, want 401", code)
		}
		tok, err := auth.Mint("prod", prodKey, auth.TokenSpec{Identity: "carol", Room: "r", TTL: time.Hour}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		code, body := srv.api(t, "GET", "/api/turn-credentials?user=mallory", tok)
		if code != http.StatusOK {
			t.Fatalf("with a token: %d: %s", code, body)
		}
		checkREST(t, body, secret, "carol") // the token's identity, not ?user=
	})
}

// checkREST verifies a TURN REST credential the way coturn does.
func checkREST(t *testing.T, body, secret, user string) {
	t.Helper()
	var got struct {
		Username, Password string
		TTL                int64
		URIs               []string
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	expiry, u, _ := strings.Cut(got.Username, ":")
	if u != user {
		t.Fatalf("username %q is not for %q", got.Username, user)
	}
	if exp, err := strconv.ParseInt(expiry, 10, 64); err != nil || exp <= time.Now().Unix() {
		t.Fatalf("username %q does not start with a future expiry", got.Username)
	}
	mac := hmac.New(sha1.New, []byte(secret))
	mac.Write([]byte(got.Username))
	if want := base64.StdEncoding.EncodeToString(mac.Sum(nil)); got.Password != want {
		t.Fatalf("password %q, want base64(HMAC-SHA1(secret, username)) %q", got.Password, want)
	}
	if got.TTL != int64((12*time.Hour)/time.Second) || len(got.URIs) == 0 {
		t.Fatalf("ttl %d, uris %v", got.TTL, got.URIs)
	}
}

// TestICEServersByRegion lists the client's region first, from the
// configured header or the client's network.
func TestICEServersByRegion(t *testing.T) {
	t.Parallel()
	srv := startServer(t, func(c *config.Config) {
		c.TURN.Region = "local"
		c.TURN.Servers = []string{"eu=turn:turn-eu.example.com:3478", "us=turn:turn-us.example.com:3478",
			"eu=turns:turn-eu.example.com:443?transport=tcp"}
		c.TURN.RegionHeader = "X-Client-Region"
		c.TURN.RegionNetworks = []string{"127.0.0.0/8=us"}
	}, nil)
	first := func(header string) string {
		req, _ := http.NewRequest("GET", srv.URL()+"/api/turn-credentials", nil)
		if header != "" {
			req.Header.Set("X-Client-Region", header)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var got struct{ URIs []string }
		if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
			t.Fatal(err)
		}
		return strings.Join(got.URIs[:2], " ")
	}
	if got := first("eu"); got != "turn:turn-eu.example.com:3478 turns:turn-eu.example.com:443?transport=tcp" {
		t.Errorf("region eu by header: first URIs %q", got)
	}
	if got := first(""); got != "turn:turn-us.example.com:3478 stun:127.0.0.1:"+itoa(srv.TURN().UDPAddr().Port) {
		t.Errorf("region us by network 127.0.0.0/8: first URIs %q", got)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
