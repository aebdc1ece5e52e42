package turn

import (
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // the TURN REST scheme (and coturn) define HMAC-SHA1
	"encoding/base64"
	"strconv"
	"strings"
	"time"

	pionturn "github.com/pion/turn/v5"
)

// Credentials mints and checks TURN credentials. Minted ones follow the
// TURN REST scheme that coturn implements as use-auth-secret: the username
// is "EXPIRY:USER" (EXPIRY in Unix seconds) and the password is
// base64(HMAC-SHA1(secret, username)). Nothing is stored, so every server
// sharing the secret accepts them, Quartet or coturn. Static users are the
// classic long-term credentials.
type Credentials struct {
	Secret string
	TTL    time.Duration
	Users  map[string]string
	Now    func() time.Time // default time.Now
}

// Credential is what a client needs to use the TURN servers.
type Credential struct {
	Username string `json:"username"`
	Password string `json:"password"`
	TTL      int64  `json:"ttl"` // seconds
}

// Mint returns a credential for user valid for c.TTL.
func (c *Credentials) Mint(user string) Credential {
	username := strconv.FormatInt(c.now().Add(c.TTL).Unix(), 10)
	if user != "" {
		username += ":" + user
	}
	return Credential{Username: username, Password: restPassword(c.Secret, username),
		TTL: int64(c.TTL / time.Second)}
}

// Key returns the long-term key (RFC 5389 section 15.4) for username in
// realm, and the user ID quotas are counted by. ok is false for unknown
// users and expired or malformed REST usernames.
func (c *Credentials) Key(username, realm string) (userID string, key []byte, ok bool) {
	if password, found := c.Users[username]; found {
		return username, pionturn.GenerateAuthKey(username, realm, password), true
	}
	expiry, user, _ := strings.Cut(username, ":")
	t, err := strconv.ParseInt(expiry, 10, 64)
	if err != nil || t < c.now().Unix() || c.Secret == "" {
		return "", nil, false
	}
	if user == "" {
		user = username
	}
	return user, pionturn.GenerateAuthKey(username, realm, restPassword(c.Secret, username)), true
}

func restPassword(secret, username string) string {
	mac := hmac.New(sha1.New, []byte(secret))
	mac.Write([]byte(username))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

func (c *Credentials) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}
