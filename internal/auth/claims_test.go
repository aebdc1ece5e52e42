package auth

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// Identities and names are checked once the token is otherwise valid.
func TestVerifyChecksIdentityAndName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		over    jwt.MapClaims
		wantErr error  // nil: accepted
		wantMsg string // what the error must say
	}{
		{"plain", jwt.MapClaims{"sub": "alice", "name": "Alice"}, nil, ""},
		{"email and unicode", jwt.MapClaims{"sub": "jörg.müller+1@example.com", "name": "Jörg Müller 🎸"}, nil, ""},
		{"id of 128 bytes", jwt.MapClaims{"sub": strings.Repeat("a", 128)}, nil, ""},
		{"name with markup characters is text", jwt.MapClaims{"name": "Bob <3 & co"}, nil, ""},
		{"name with emoji joiner", jwt.MapClaims{"name": "👩\u200d💻 Ada"}, nil, ""},
		{"no name", jwt.MapClaims{"name": nil}, nil, ""},
		{"sub of 129 bytes", jwt.MapClaims{"sub": strings.Repeat("a", 129)}, ErrBadIdentity, "sub is longer than 128 bytes"},
		{"sub of 5000 characters", jwt.MapClaims{"sub": strings.Repeat("a", 5000)}, ErrBadIdentity, "sub is longer than 128 bytes"},
		{"sub with NUL", jwt.MapClaims{"sub": "ali\x00ce"}, ErrBadIdentity, "sub must be printable"},
		{"sub with newline", jwt.MapClaims{"sub": "alice\nlevel=ERROR"}, ErrBadIdentity, "sub must be printable"},
		{"sub with tab", jwt.MapClaims{"sub": "a\tb"}, ErrBadIdentity, "sub must be printable"},
		{"sub with markup", jwt.MapClaims{"sub": "<script>alert(1)</script>"}, ErrBadIdentity, "without < or >"},
		{"sub with bidi override", jwt.MapClaims{"sub": "admin\u202e"}, ErrBadIdentity, "sub must be printable"},
		{"sub with zero-width space", jwt.MapClaims{"sub": "ad\u200bmin"}, ErrBadIdentity, "sub must be printable"},
		{"name of 129 bytes", jwt.MapClaims{"name": strings.Repeat("n", 129)}, ErrBadIdentity, "name is longer than 128 bytes"},
		{"name with newline", jwt.MapClaims{"name": "Eve\nAdmin"}, ErrBadIdentity, "name must not contain"},
		{"name with NUL", jwt.MapClaims{"name": "Eve\x00"}, ErrBadIdentity, "name must not contain"},
		{"name with line separator", jwt.MapClaims{"name": "Eve\u2028Admin"}, ErrBadIdentity, "name must not contain"},
		{"name with bidi override", jwt.MapClaims{"name": "\u202eevE"}, ErrBadIdentity, "name must not contain"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tok := hs256(t, nil, tt.over)
			c, err := testVerifier().Verify(tok, testNow)
			checkVerifyResult(t, tok, c, err, tt.wantErr, tt.wantMsg)
		})
	}
}

// Claims of the wrong JSON type are refused, naming the claim; encoding/json
// alone would take "exp":"1893456000", a string holding a number.
func TestVerifyRefusesClaimsOfTheWrongType(t *testing.T) {
	t.Parallel()
	exp := testNow.Unix() + 3600
	tests := []struct {
		name    string
		over    jwt.MapClaims
		wantErr error
		wantMsg string
	}{
		{"exp as float", jwt.MapClaims{"exp": float64(exp) + 0.5}, nil, ""},
		{"audience string", jwt.MapClaims{"aud": "quartet"}, nil, ""},
		{"audience list", jwt.MapClaims{"aud": []string{"a", "b"}}, nil, ""},
		{"grants null", jwt.MapClaims{"grants": nil}, nil, ""},
		{"unknown claims are ignored", jwt.MapClaims{"x-app": map[string]any{"k": 1}}, nil, ""},
		{"exp as string", jwt.MapClaims{"exp": "1893456000"}, ErrMalformed, "exp must be a number"},
		{"exp as word", jwt.MapClaims{"exp": "tomorrow"}, ErrMalformed, "exp must be a number"},
		{"exp as bool", jwt.MapClaims{"exp": true}, ErrMalformed, "exp must be a number"},
		{"nbf as string", jwt.MapClaims{"nbf": "0"}, ErrMalformed, "nbf must be a number"},
		{"iat as object", jwt.MapClaims{"iat": map[string]any{}}, ErrMalformed, "iat must be a number"},
		{"sub as number", jwt.MapClaims{"sub": 42}, ErrMalformed, "sub must be a string"},
		{"sub as list", jwt.MapClaims{"sub": []string{"alice"}}, ErrMalformed, "sub must be a string"},
		{"name as number", jwt.MapClaims{"name": 7}, ErrMalformed, "name must be a string"},
		{"iss as number", jwt.MapClaims{"iss": 1}, ErrMalformed, "iss must be a string"},
		{"aud as number", jwt.MapClaims{"aud": 1}, ErrMalformed, "aud must be a string or a list of strings"},
		{"grants as string", jwt.MapClaims{"grants": "all"}, ErrMalformed, "grants must be an object"},
		{"grants as list", jwt.MapClaims{"grants": []string{"admin"}}, ErrMalformed, "grants must be an object"},
		{"room as number", jwt.MapClaims{"grants": map[string]any{"room": 1}}, ErrMalformed, "grants.room must be a string"},
		{"canPublish as string", jwt.MapClaims{"grants": map[string]any{"canPublish": "yes"}}, ErrMalformed, "grants.canPublish must be true or false"},
		{"canSubscribe as number", jwt.MapClaims{"grants": map[string]any{"canSubscribe": 1}}, ErrMalformed, "grants.canSubscribe must be true or false"},
		{"admin as string", jwt.MapClaims{"grants": map[string]any{"admin": "true"}}, ErrMalformed, "grants.admin must be true or false"},
		{"payload not an object", nil, ErrMalformed, "the payload must be a JSON object"}, // see below
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tok := hs256(t, nil, tt.over)
			if tt.over == nil {
				tok = signRaw(t, `["sub","alice"]`)
			}
			c, err := testVerifier().Verify(tok, testNow)
			checkVerifyResult(t, tok, c, err, tt.wantErr, tt.wantMsg)
		})
	}
}

func checkVerifyResult(t *testing.T, tok string, c *Claims, err, wantErr error, wantMsg string) {
	t.Helper()
	if wantErr == nil {
		if err != nil {
			t.Fatalf("Verify: %v", err)
		}
		return
	}
	if !errors.Is(err, wantErr) {
		t.Fatalf("err = %v, want %v", err, wantErr)
	}
	if c != nil {
		t.Errorf("claims = %+v, want nil on error", c)
	}
	if !strings.Contains(err.Error(), wantMsg) {
		t.Errorf("err = %q, want it to say %q", err, wantMsg)
	}
	assertSafe(t, err, tok)
	if strings.Contains(err.Error(), "<script>") || strings.Contains(err.Error(), "\n") {
		t.Errorf("err = %q echoes the claim", err)
	}
}

// signRaw signs payload, a JSON text, as the claims of an HS256 token.
func signRaw(t *testing.T, payload string) string {
	t.Helper()
	m := jwt.SigningMethodHS256
	header := `{"alg":"HS256","kid":"` + testKey + `","typ":"JWT"}`
	enc := base64.RawURLEncoding.EncodeToString
	unsigned := enc([]byte(header)) + "." + enc([]byte(payload))
	sig, err := m.Sign(unsigned, []byte(testSecret))
	if err != nil {
		t.Fatal(err)
	}
	return unsigned + "." + enc(sig)
}
