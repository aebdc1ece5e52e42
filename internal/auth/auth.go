// Package auth mints and verifies Quartet access tokens.
//
// An access token is a JWT signed with HS256 using the secret of one API key.
// The header's kid and the iss claim both name the API key, sub is the
// participant identity and the grants claim says what the participant may do.
package auth

import (
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// DevAPIKey and DevAPISecret are the built-in key used in dev mode (no keys
// configured). The secret is public, so tokens signed with it prove nothing;
// the server only uses it while listening on localhost.
const (
	DevAPIKey    = "devkey"
	DevAPISecret = "quartet-dev-secret-not-for-production"
)

// MaxTokenBytes caps the token length Verify accepts, so that a hostile client
// cannot make the server base64- and JSON-decode arbitrarily large input.
const MaxTokenBytes = 8 << 10

// ClockSkew is how far the clocks of the token minter and this server may
// disagree. jwt applies it to exp, nbf and iat alike.
const ClockSkew = 30 * time.Second

// Verification errors. Their messages are safe to show to clients: Verify
// never wraps them with token contents or secrets.
var (
	ErrMalformed    = errors.New("token is malformed")
	ErrUnknownKey   = errors.New("token is signed with an unknown API key")
	ErrBadSignature = errors.New("token signature is invalid")
	ErrExpired      = errors.New("token has expired")
	ErrNotYetValid  = errors.New("token is not valid yet")
	ErrNoIdentity   = errors.New("token has no identity (sub)")
	ErrBadIdentity  = errors.New("token identity is not acceptable")
)

// Keys maps API key names to their secrets.
type Keys map[string]string

// Grants says what the token holder may do. Permissions are pointers so that
// an absent field means "allowed", which keeps hand-written tokens short.
type Grants struct {
	Room         string `json:"room,omitempty"`
	CanPublish   *bool  `json:"canPublish,omitempty"`   // nil means true
	CanSubscribe *bool  `json:"canSubscribe,omitempty"` // nil means true
	Admin        bool   `json:"admin,omitempty"`
}

// Claims is the payload of an access token.
type Claims struct {
	Name   string `json:"name,omitempty"`
	Grants Grants `json:"grants"`
	jwt.RegisteredClaims
}

// Identity is the participant identity, carried in the sub claim.
func (c *Claims) Identity() string { return c.Subject }

// CanPublish reports whether the holder may publish tracks.
func (c *Claims) CanPublish() bool {
	return c.Grants.CanPublish == nil || *c.Grants.CanPublish
}

// CanSubscribe reports whether the holder may receive other participants' tracks.
func (c *Claims) CanSubscribe() bool {
	return c.Grants.CanSubscribe == nil || *c.Grants.CanSubscribe
}

// TokenSpec describes a token to mint.
type TokenSpec struct {
	Identity     string
	Name         string
	Room         string
	CanPublish   bool
	CanSubscribe bool
	Admin        bool
	TTL          time.Duration
}

// Mint returns a signed HS256 token for spec, valid from now until now+TTL.
func Mint(apiKey, secret string, spec TokenSpec, now time.Time) (string, error) {
	switch {
	case apiKey == "":
		return "", errors.New("mint token: API key is empty")
	case secret == "":
		return "", errors.New("mint token: API secret is empty")
	case spec.Identity == "":
		return "", errors.New("mint token: identity is empty")
	case spec.TTL <= 0:
		return "", fmt.Errorf("mint token: TTL must be positive, got %v", spec.TTL)
	}
	canPublish, canSubscribe := spec.CanPublish, spec.CanSubscribe
	claims := Claims{
		Name: spec.Name,
		Grants: Grants{
			Room:         spec.Room,
			CanPublish:   &canPublish,
			CanSubscribe: &canSubscribe,
			Admin:        spec.Admin,
		},
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    apiKey,
			Subject:   spec.Identity,
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(spec.TTL)),
		},
	}
	token := jwt.NewWithClaims(jwt.SigningMethodHS256, &claims)
	token.Header["kid"] = apiKey
	signed, err := token.SignedString([]byte(secret))
	if err != nil {
		return "", fmt.Errorf("mint token: sign: %w", err)
	}
	return signed, nil
}
