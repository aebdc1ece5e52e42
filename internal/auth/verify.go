package auth

import (
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Verifier checks access tokens against a fixed set of API keys. It is safe
// for concurrent use: the keys are copied and never modified.
type Verifier struct {
	keys Keys
}

// NewVerifier returns a Verifier that accepts tokens signed by any of keys.
func NewVerifier(keys Keys) *Verifier {
	return &Verifier{keys: maps.Clone(keys)}
}

// Verify parses token, checks its signature and validity at now, and returns
// its claims. Errors wrap exactly one of the Err* values of this package and
// carry no token contents, so they can be sent to the client as they are.
func (v *Verifier) Verify(token string, now time.Time) (*Claims, error) {
	if len(token) > MaxTokenBytes {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrMalformed, MaxTokenBytes)
	}
	parser := jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithTimeFunc(func() time.Time { return now }),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(ClockSkew),
	)
	// keyFor's errors are already safe and specific; remember them so they
	// need not be dug out of jwt's wrapping.
	var keyErr error
	keyFunc := func(t *jwt.Token) (any, error) {
		key, err := v.keyFor(t)
		keyErr = err
		return key, err
	}
	claims := &Claims{}
	if _, err := parser.ParseWithClaims(token, claims, keyFunc); err != nil {
		if keyErr != nil {
			return nil, keyErr
		}
		return nil, classify(err)
	}
	if err := checkIdentity(claims); err != nil {
		return nil, err
	}
	return claims, nil
}

// keyFor picks the secret by the kid header, falling back to iss for tokens
// minted by libraries that do not set kid. jwt calls it only after checking
// that alg is HS256, so returning an HMAC secret here cannot be confused with
// a public key.
func (v *Verifier) keyFor(token *jwt.Token) (any, error) {
	name, err := keyName(token)
	if err != nil {
		return nil, err
	}
	secret, ok := v.keys[name]
	if !ok || secret == "" {
		return nil, ErrUnknownKey
	}
	return []byte(secret), nil
}

// keyName returns the API key a token claims to be signed with.
func keyName(token *jwt.Token) (string, error) {
	// Claims has already been decoded into our struct, so iss is a string
	// and GetIssuer cannot fail.
	iss, _ := token.Claims.GetIssuer()
	raw, hasKid := token.Header["kid"]
	if !hasKid {
		if iss == "" {
			return "", fmt.Errorf("%w: neither kid nor iss names an API key", ErrUnknownKey)
		}
		return iss, nil
	}
	kid, ok := raw.(string)
	if !ok || kid == "" {
		return "", fmt.Errorf("%w: kid is not a non-empty string", ErrMalformed)
	}
	// iss is documented as the API key; a token naming two different keys
	// would let logs and the signature disagree about who issued it.
	if iss != "" && iss != kid {
		return "", fmt.Errorf("%w: kid and iss name different API keys", ErrMalformed)
	}
	return kid, nil
}

// classify maps a jwt error to one of this package's errors. The jwt error
// itself is dropped on purpose: its text may quote parts of the token.
func classify(err error) error {
	var typeErr *claimTypeError
	switch {
	case errors.As(err, &typeErr): // ours: names the claim, not its value
		return fmt.Errorf("%w: %w", ErrMalformed, typeErr)
	case errors.Is(err, jwt.ErrTokenMalformed):
		return ErrMalformed
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		// A disallowed or unknown alg (none, RS256, ...) lands here too.
		return fmt.Errorf("%w (only HS256 signed with a configured API key is accepted)", ErrBadSignature)
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return fmt.Errorf("%w: exp is required", ErrMalformed)
	case errors.Is(err, jwt.ErrTokenExpired):
		return ErrExpired
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return ErrNotYetValid
	default:
		return ErrMalformed
	}
}
