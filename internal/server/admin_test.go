package server_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/quartet-rtc/quartet/internal/config"

	"github.com/quartet-rtc/quartet/internal/auth"
	"github.com/quartet-rtc/quartet/internal/client"
)

func (s *testServer) adminToken(t *testing.T, admin bool) string {
	t.Helper()
	tok, err := auth.Mint(auth.DevAPIKey, auth.DevAPISecret, auth.TokenSpec{Identity: "ops", Admin: admin, TTL: time.Hour}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (s *testServer) api(t *testing.T, method, path, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, s.URL()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestAdminAPI(t *testing.T) {
	t.Parallel()
	srv := startServer(t, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	alice := srv.join(t, ctx, "adminroom", "alice", newCounter(), true)
	defer alice.Close()
	bob := srv.join(t, ctx, "adminroom", "bob", newCounter(), true)
	defer bob.Close()
	admin := srv.adminToken(t, true)

	if code, _ := srv.api(t, "GET", "/api/rooms", ""); code != http.StatusUnauthorized {
		t.Fatalf("no token: %d, want 401", code)
	}
	if code, _ := srv.api(t, "GET", "/api/rooms", srv.adminToken(t, false)); code != http.StatusForbidden {
		t.Fatalf("non-admin token: %d, want 403", code)
	}
	code, body := srv.api(t, "GET", "/api/rooms", admin)
	var rooms struct {
		Rooms []struct {
			Name         string
			Participants int
		}
	}
	if err := json.Unmarshal([]byte(body), &rooms); err != nil || code != 200 {
		t.Fatalf("list rooms: %d %s", code, body)
	}
	if len(rooms.Rooms) != 1 || rooms.Rooms[0].Name != "adminroom" || rooms.Rooms[0].Participants != 2 {
		t.Fatalf("rooms = %+v", rooms.Rooms)
	}
	code, body = srv.api(t, "GET", "/api/rooms/adminroom/participants", admin)
	if code != 200 || !strings.Contains(body, `"identity":"alice"`) || !strings.Contains(body, `"identity":"bob"`) {
		t.Fatalf("participants: %d %s", code, body)
	}
	if code, _ := srv.api(t, "GET", "/api/rooms/nope/participants", admin); code != http.StatusNotFound {
		t.Fatalf("missing room: %d, want 404", code)
	}

	if code, body := srv.api(t, "DELETE", "/api/rooms/adminroom/participants/bob", admin); code != http.StatusNoContent {
		t.Fatalf("remove bob: %d %s", code, body)
	}
	if _, err := bob.WaitFor(ctx, func(m client.Message) bool {
		return m.Type == "leave" && strings.Contains(string(m.Raw), `"reason":"removed"`)
	}); err != nil {
		t.Fatalf("bob was not told he was removed: %v", err)
	}
	if _, err := alice.WaitFor(ctx, func(m client.Message) bool { return m.Type == "participant_left" }); err != nil {
		t.Fatal(err)
	}

	if code, _ := srv.api(t, "DELETE", "/api/rooms/adminroom", admin); code != http.StatusNoContent {
		t.Fatalf("close room: %d", code)
	}
	if _, err := alice.WaitFor(ctx, func(m client.Message) bool {
		return m.Type == "leave" && strings.Contains(string(m.Raw), `"reason":"room_closed"`)
	}); err != nil {
		t.Fatalf("alice was not told the room closed: %v", err)
	}
}

func TestHealthMetricsAndPages(t *testing.T) {
	t.Parallel()
	srv := startServer(t, nil, nil)
	for path, want := range map[string]string{
		"/healthz":        `"ok"`,
		"/metrics":        "quartet_forwarded_packets_total",
		"/":               "<html",
		"/r/demo":         "<html",
		"/sdk/quartet.js": "export",
	} {
		code, body := srv.api(t, "GET", path, "")
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("GET %s: %d, body lacks %q", path, code, want)
		}
	}
	code, body := srv.api(t, "GET", "/api/dev/token?room=r&identity=i", "")
	if code != 200 || !strings.Contains(body, `"token"`) {
		t.Fatalf("dev token: %d %s", code, body)
	}
	if code, _ := srv.api(t, "GET", "/api/dev/token?room=r", ""); code != http.StatusBadRequest {
		t.Fatalf("dev token without identity: %d", code)
	}
}

func TestNoDevTokensInProduction(t *testing.T) {
	t.Parallel()
	srv := startServer(t, func(c *config.Config) {
		c.Auth.Keys = map[string]string{"prod": "a-production-secret-of-at-least-32-bytes"}
	}, nil)
	if code, _ := srv.api(t, "GET", "/api/dev/token?room=r&identity=i", ""); code != http.StatusNotFound {
		t.Fatalf("dev token endpoint in production: %d, want 404", code)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r := srv.dialRaw(t, ctx)
	r.write(ctx, 1, `{"type":"join","protocol":1,"token":"`+srv.Token(t, "r", "dev-user")+`"}`)
	r.expect(ctx, "error", "unauthorized")
}

func TestShutdownTellsParticipants(t *testing.T) {
	t.Parallel()
	srv := startServer(t, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	alice := srv.join(t, ctx, "bye", "alice", newCounter(), true)
	defer alice.Close()
	srv.Stop()
	if _, err := alice.WaitFor(ctx, func(m client.Message) bool {
		return m.Type == "leave" && strings.Contains(string(m.Raw), `"reason":"server_shutdown"`)
	}); err != nil {
		t.Fatalf("not told about the shutdown: %v", err)
	}
}

func TestDevModeAnswersOnlyLoopbackHosts(t *testing.T) {
	t.Parallel()
	srv := startServer(t, nil, nil)
	for host, want := range map[string]int{
		"attacker.example:8080": http.StatusMisdirectedRequest,
		"localhost:8080":        http.StatusOK,
		"127.0.0.1:8080":        http.StatusOK,
		"[::1]:8080":            http.StatusOK,
	} {
		req, err := http.NewRequest("GET", srv.URL()+"/api/dev/token?room=r&identity=i", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("Host %s: %d, want %d", host, resp.StatusCode, want)
		}
	}
}
