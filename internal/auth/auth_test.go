package auth

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const (
	testKey    = "key1"
	testSecret = "0123456789abcdef0123456789abcdef"
	otherKey   = "key2"
	otherSec   = "fedcba9876543210fedcba9876543210"
)

var testNow = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func testVerifier() *Verifier {
	return NewVerifier(Keys{testKey: testSecret, otherKey: otherSec})
}

// sign builds a token by hand so tests can produce tokens Mint never would.
func sign(t *testing.T, method jwt.SigningMethod, key any, header map[string]any, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	for k, v := range header {
		if v == nil {
			delete(tok.Header, k)
			continue
		}
		tok.Header[k] = v
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	return s
}

// baseClaims are valid claims for testNow; tests override single fields.
func baseClaims(over jwt.MapClaims) jwt.MapClaims {
	c := jwt.MapClaims{
		"iss": testKey,
		"sub": "alice",
		"iat": testNow.Unix(),
		"nbf": testNow.Unix(),
		"exp": testNow.Add(time.Hour).Unix(),
	}
	for k, v := range over {
		if v == nil {
			delete(c, k)
			continue
		}
		c[k] = v
	}
	return c
}

func hs256(t *testing.T, header map[string]any, over jwt.MapClaims) string {
	if header == nil {
		header = map[string]any{"kid": testKey}
	}
	return sign(t, jwt.SigningMethodHS256, []byte(testSecret), header, baseClaims(over))
}

func TestMintVerifyRoundTrip(t *testing.T) {
	spec := TokenSpec{
		Identity: "alice", Name: "Alice", Room: "r1",
		CanPublish: true, CanSubscribe: false, Admin: true, TTL: time.Hour,
	}
	tok, err := Mint(testKey, testSecret, spec, testNow)
	if err != nil {
		t.Fatalf("Mint: %v", err)
	}
	c, err := testVerifier().Verify(tok, testNow.Add(time.Minute))
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"identity", c.Identity(), "alice"},
		{"name", c.Name, "Alice"},
		{"room", c.Grants.Room, "r1"},
		{"canPublish", c.CanPublish(), true},
		{"canSubscribe", c.CanSubscribe(), false},
		{"admin", c.Grants.Admin, true},
		{"issuer", c.Issuer, testKey},
		{"expires", c.ExpiresAt.Unix(), testNow.Add(time.Hour).Unix()},
		{"notBefore", c.NotBefore.Unix(), testNow.Unix()},
	}
	for _, ck := range checks {
		if ck.got != ck.want {
			t.Errorf("%s = %v, want %v", ck.name, ck.got, ck.want)
		}
	}
	parsed, _, err := jwt.NewParser().ParseUnverified(tok, jwt.MapClaims{})
	if err != nil {
		t.Fatal(err)
	}
	if parsed.Header["kid"] != testKey || parsed.Header["alg"] != "HS256" {
		t.Errorf("header = %v, want kid %q and alg HS256", parsed.Header, testKey)
	}
}

func TestMintErrors(t *testing.T) {
	good := TokenSpec{Identity: "a", TTL: time.Minute}
	noIdentity := good
	noIdentity.Identity = ""
	zeroTTL := good
	zeroTTL.TTL = 0
	negTTL := good
	negTTL.TTL = -time.Second
	tests := []struct {
		name, key, secret string
		spec              TokenSpec
	}{
		{"empty key", "", testSecret, good},
		{"empty secret", testKey, "", good},
		{"empty identity", testKey, testSecret, noIdentity},
		{"zero TTL", testKey, testSecret, zeroTTL},
		{"negative TTL", testKey, testSecret, negTTL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tok, err := Mint(tt.key, tt.secret, tt.spec, testNow); err == nil {
				t.Fatalf("Mint succeeded with %q", tok)
			}
		})
	}
}

func TestDefaultGrants(t *testing.T) {
	f := false
	tests := []struct {
		name             string
		grants           any
		wantPub, wantSub bool
		wantAdmin        bool
		wantRoom         string
	}{
		{"no grants claim", nil, true, true, false, ""},
		{"empty grants", map[string]any{}, true, true, false, ""},
		{"room only", map[string]any{"room": "r"}, true, true, false, "r"},
		{"explicit false", map[string]any{"canPublish": f, "canSubscribe": f}, false, false, false, ""},
		{"admin", map[string]any{"admin": true}, true, true, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			over := jwt.MapClaims{}
			if tt.grants != nil {
				over["grants"] = tt.grants
			}
			c, err := testVerifier().Verify(hs256(t, nil, over), testNow)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if c.CanPublish() != tt.wantPub || c.CanSubscribe() != tt.wantSub ||
				c.Grants.Admin != tt.wantAdmin || c.Grants.Room != tt.wantRoom {
				t.Errorf("got publish=%v subscribe=%v admin=%v room=%q", c.CanPublish(), c.CanSubscribe(), c.Grants.Admin, c.Grants.Room)
			}
		})
	}
}

func TestKeySelection(t *testing.T) {
	tests := []struct {
		name    string
		header  map[string]any
		iss     any
		secret  string
		wantErr error
	}{
		{"kid and iss agree", map[string]any{"kid": testKey}, testKey, testSecret, nil},
		{"kid only", map[string]any{"kid": otherKey}, nil, otherSec, nil},
		{"iss only", map[string]any{"kid": nil}, otherKey, otherSec, nil},
		{"kid wins over missing iss", map[string]any{"kid": testKey}, nil, testSecret, nil},
		{"kid and iss disagree", map[string]any{"kid": testKey}, otherKey, testSecret, ErrMalformed},
		{"kid unknown", map[string]any{"kid": "nope"}, nil, testSecret, ErrUnknownKey},
		{"iss unknown", map[string]any{"kid": nil}, "nope", testSecret, ErrUnknownKey},
		{"neither kid nor iss", map[string]any{"kid": nil}, nil, testSecret, ErrUnknownKey},
		{"kid not a string", map[string]any{"kid": 42}, nil, testSecret, ErrMalformed},
		{"kid empty", map[string]any{"kid": ""}, nil, testSecret, ErrMalformed},
		{"kid selects other key's secret", map[string]any{"kid": otherKey}, nil, testSecret, ErrBadSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := sign(t, jwt.SigningMethodHS256, []byte(tt.secret), tt.header, baseClaims(jwt.MapClaims{"iss": tt.iss}))
			_, err := testVerifier().Verify(tok, testNow)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestVerifyErrors(t *testing.T) {
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	valid := hs256(t, nil, nil)
	parts := strings.Split(valid, ".")
	tests := []struct {
		name    string
		token   string
		now     time.Time
		wantErr error
	}{
		{"empty", "", testNow, ErrMalformed},
		{"garbage", "not a token", testNow, ErrMalformed},
		{"two segments", parts[0] + "." + parts[1], testNow, ErrMalformed},
		{"bad base64", parts[0] + ".!!!." + parts[2], testNow, ErrMalformed},
		{"too long", valid + strings.Repeat("A", MaxTokenBytes), testNow, ErrMalformed},
		{"exp not a number", hs256(t, nil, jwt.MapClaims{"exp": "tomorrow"}), testNow, ErrMalformed},
		{"grants wrong type", hs256(t, nil, jwt.MapClaims{"grants": "all"}), testNow, ErrMalformed},
		{"no exp", hs256(t, nil, jwt.MapClaims{"exp": nil}), testNow, ErrMalformed},
		{"wrong secret", sign(t, jwt.SigningMethodHS256, []byte(otherSec), map[string]any{"kid": testKey}, baseClaims(nil)), testNow, ErrBadSignature},
		{"tampered payload", parts[0] + "." + hs256Payload(t, jwt.MapClaims{"sub": "mallory"}) + "." + parts[2], testNow, ErrBadSignature},
		{"stripped signature", parts[0] + "." + parts[1] + ".", testNow, ErrBadSignature},
		{"alg none", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, map[string]any{"kid": testKey}, baseClaims(nil)), testNow, ErrBadSignature},
		{"alg HS512 with right secret", sign(t, jwt.SigningMethodHS512, []byte(testSecret), map[string]any{"kid": testKey}, baseClaims(nil)), testNow, ErrBadSignature},
		{"alg EdDSA", sign(t, jwt.SigningMethodEdDSA, edKey, map[string]any{"kid": testKey}, baseClaims(nil)), testNow, ErrBadSignature},
		{"alg RS256 header on HMAC signature", withAlg(t, valid, "RS256"), testNow, ErrBadSignature},
		{"alg unknown", withAlg(t, valid, "XX999"), testNow, ErrBadSignature},
		{"alg missing", withAlg(t, valid, ""), testNow, ErrBadSignature},
		{"expired", valid, testNow.Add(time.Hour + ClockSkew + time.Second), ErrExpired},
		{"nbf in future", hs256(t, nil, jwt.MapClaims{"nbf": testNow.Add(time.Minute).Unix()}), testNow, ErrNotYetValid},
		{"iat in future", hs256(t, nil, jwt.MapClaims{"iat": testNow.Add(time.Minute).Unix()}), testNow, ErrNotYetValid},
		{"no sub", hs256(t, nil, jwt.MapClaims{"sub": nil}), testNow, ErrNoIdentity},
		{"empty sub", hs256(t, nil, jwt.MapClaims{"sub": ""}), testNow, ErrNoIdentity},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := testVerifier().Verify(tt.token, tt.now)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if c != nil {
				t.Errorf("claims = %+v, want nil on error", c)
			}
			assertSafe(t, err, tt.token)
		})
	}
}

func TestClockSkewTolerated(t *testing.T) {
	skew := ClockSkew - time.Second
	tests := []struct {
		name  string
		token string
		now   time.Time
	}{
		{"just expired", hs256(t, nil, nil), testNow.Add(time.Hour + skew)},
		{"nbf slightly ahead", hs256(t, nil, jwt.MapClaims{"nbf": testNow.Add(skew).Unix()}), testNow},
		{"iat slightly ahead", hs256(t, nil, jwt.MapClaims{"iat": testNow.Add(skew).Unix()}), testNow},
		{"no nbf or iat", hs256(t, nil, jwt.MapClaims{"nbf": nil, "iat": nil}), testNow},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := testVerifier().Verify(tt.token, tt.now); err != nil {
				t.Fatalf("Verify: %v", err)
			}
		})
	}
}

func TestVerifierWithoutKeys(t *testing.T) {
	if _, err := NewVerifier(nil).Verify(hs256(t, nil, nil), testNow); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("err = %v, want %v", err, ErrUnknownKey)
	}
}

func TestVerifierCopiesKeys(t *testing.T) {
	keys := Keys{testKey: testSecret}
	v := NewVerifier(keys)
	delete(keys, testKey)
	if _, err := v.Verify(hs256(t, nil, nil), testNow); err != nil {
		t.Fatalf("Verify after caller changed its map: %v", err)
	}
}

// hs256Payload returns only the encoded claims segment of a token.
func hs256Payload(t *testing.T, over jwt.MapClaims) string {
	return strings.Split(hs256(t, nil, over), ".")[1]
}

// withAlg replaces the header of token with one whose alg is alg (none at
// all if alg is empty), keeping the original payload and HMAC signature.
func withAlg(t *testing.T, token, alg string) string {
	t.Helper()
	header := map[string]any{"typ": "JWT", "kid": testKey}
	if alg != "" {
		header["alg"] = alg
	}
	raw, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(token, ".")
	return base64.RawURLEncoding.EncodeToString(raw) + "." + parts[1] + "." + parts[2]
}

// assertSafe checks that an error shown to a client leaks neither the token
// nor any secret.
func assertSafe(t *testing.T, err error, token string) {
	t.Helper()
	msg := err.Error()
	for _, secret := range []string{testSecret, otherSec} {
		if strings.Contains(msg, secret) {
			t.Errorf("error %q contains a secret", msg)
		}
	}
	if token != "" && len(token) > 3 && strings.Contains(msg, token) {
		t.Errorf("error %q contains the token", msg)
	}
	for _, part := range strings.Split(token, ".") {
		if len(part) > 8 && strings.Contains(msg, part) {
			t.Errorf("error %q contains part of the token", msg)
		}
	}
}

func FuzzVerify(f *testing.F) {
	valid, err := Mint(testKey, testSecret, TokenSpec{Identity: "alice", TTL: time.Hour}, testNow)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	f.Add("")
	f.Add("a.b.c")
	f.Add("eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIn0.")
	f.Add(valid[:len(valid)-1])
	f.Add(strings.Repeat(".", 100))
	v := testVerifier()
	sentinels := []error{ErrMalformed, ErrUnknownKey, ErrBadSignature, ErrExpired, ErrNotYetValid, ErrNoIdentity, ErrBadIdentity}
	f.Fuzz(func(t *testing.T, token string) {
		c, err := v.Verify(token, testNow)
		if err == nil {
			if c == nil || c.Identity() == "" {
				t.Fatalf("accepted token %q without identity", token)
			}
			return
		}
		for _, s := range sentinels {
			if errors.Is(err, s) {
				return
			}
		}
		t.Fatalf("error %v wraps none of the package errors", err)
	})
}
