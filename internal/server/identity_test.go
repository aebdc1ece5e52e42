package server_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"

	"github.com/quartet-rtc/quartet/internal/auth"
	"github.com/quartet-rtc/quartet/internal/testserver"
)

// devToken signs claims with the dev key, as a careless minter might.
func devToken(t *testing.T, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
	tok.Header["kid"] = auth.DevAPIKey
	s, err := tok.SignedString([]byte(auth.DevAPISecret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Identities that could break a log line or a page, and claims of the
// wrong type, are refused at join with a message that says what is wrong.
func TestJoinRefusesBadIdentities(t *testing.T) {
	t.Parallel()
	srv := startServer(t, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	mint := func(identity, name string) string {
		return testserver.MintToken(t, auth.TokenSpec{Identity: identity, Name: name, Room: "r", TTL: time.Hour})
	}
	now := time.Now().Unix()
	tests := []struct{ name, token, want string }{
		{"sub of 5000 characters", mint(strings.Repeat("a", 5000), ""), "sub is longer than 128 bytes"},
		{"sub with NUL", mint("a\x00b", ""), "sub must be printable"},
		{"sub with newline", mint("alice\nlevel=ERROR msg=forged", ""), "sub must be printable"},
		{"sub with markup", mint("<script>alert(1)</script>", ""), "without < or >"},
		{"name with newline", mint("eve", "Eve\nAdmin"), "name must not contain control characters"},
		{"exp as a string", devToken(t, jwt.MapClaims{"sub": "a", "grants": map[string]any{"room": "r"},
			"exp": strings.Repeat("9", 10)}), "exp must be a number"},
		{"canPublish as a string", devToken(t, jwt.MapClaims{"sub": "a", "exp": now + 60,
			"grants": map[string]any{"room": "r", "canPublish": "yes"}}), "grants.canPublish must be true or false"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := srv.dialRaw(t, ctx)
			r.write(ctx, websocket.MessageText, `{"type":"join","protocol":1,"token":"`+tt.token+`"}`)
			m := r.expect(ctx, "error", "unauthorized")
			msg := m["message"].(string)
			if !strings.Contains(msg, tt.want) {
				t.Errorf("message %q does not say %q", msg, tt.want)
			}
			if strings.Contains(msg, "eyJ") || strings.Contains(msg, "script") || strings.Contains(msg, "\n") {
				t.Errorf("message %q echoes the token", msg)
			}
			r.expectClosed(ctx, websocket.StatusNormalClosure)
		})
	}
	if n := len(srv.Rooms().List()); n != 0 {
		t.Fatalf("%d rooms exist; no one should have joined", n)
	}
}
