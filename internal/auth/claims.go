package auth

import (
	"encoding/json"
	"fmt"
	"unicode"
)

// MaxIdentityBytes bounds sub and name, as room names are bounded
// (signal's checkRoomName) and as the dev token endpoint bounds all three.
const MaxIdentityBytes = 128

// jsonKind is what a claim must be: the first byte of its JSON value
// tells. null is always allowed and means absent.
type jsonKind struct {
	first string // allowed first bytes
	desc  string // for the error
}

var (
	kindString  = jsonKind{`"`, "a string"}
	kindNumber  = jsonKind{"-0123456789", "a number"}
	kindBool    = jsonKind{"tf", "true or false"}
	kindObject  = jsonKind{"{", "an object"}
	kindStrings = jsonKind{`"[`, "a string or a list of strings"}
)

// claimKinds are the claims Quartet reads. encoding/json alone is not
// strict enough: it decodes "exp":"1893456000", a string holding a number,
// as a date.
var claimKinds = map[string]jsonKind{
	"iss": kindString, "sub": kindString, "jti": kindString, "name": kindString,
	"aud": kindStrings, "exp": kindNumber, "nbf": kindNumber, "iat": kindNumber,
	"grants": kindObject,
}

var grantKinds = map[string]jsonKind{
	"room": kindString, "canPublish": kindBool, "canSubscribe": kindBool, "admin": kindBool,
}

// claimTypeError says which claim has the wrong JSON type; it names the
// claim and the type wanted, never the value.
type claimTypeError struct{ claim, want string }

func (e *claimTypeError) Error() string { return e.claim + " must be " + e.want }

// UnmarshalJSON decodes a token payload, refusing claims of the wrong JSON
// type with an error that names the claim. Claims it does not know are
// ignored.
func (c *Claims) UnmarshalJSON(data []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return &claimTypeError{claim: "the payload", want: "a JSON object"}
	}
	if err := checkKinds(raw, claimKinds, ""); err != nil {
		return err
	}
	if g := raw["grants"]; len(g) > 0 && g[0] == '{' {
		var grants map[string]json.RawMessage
		if err := json.Unmarshal(g, &grants); err != nil {
			return err
		}
		if err := checkKinds(grants, grantKinds, "grants."); err != nil {
			return err
		}
	}
	type plain Claims // without this method
	return json.Unmarshal(data, (*plain)(c))
}

func checkKinds(raw map[string]json.RawMessage, kinds map[string]jsonKind, prefix string) error {
	for name, kind := range kinds {
		v, ok := raw[name]
		if !ok || len(v) == 0 || v[0] == 'n' { // absent or null
			continue
		}
		if !containsByte(kind.first, v[0]) {
			return &claimTypeError{claim: prefix + name, want: kind.desc}
		}
	}
	return nil
}

func containsByte(s string, b byte) bool {
	for i := range len(s) {
		if s[i] == b {
			return true
		}
	}
	return false
}

// checkIdentity applies the rules for sub and name. Errors say which rule
// was broken, never the value: it may be meant for someone else's screen.
func checkIdentity(c *Claims) error {
	switch {
	case c.Subject == "":
		return ErrNoIdentity
	case len(c.Subject) > MaxIdentityBytes:
		return fmt.Errorf("%w: sub is longer than %d bytes", ErrBadIdentity, MaxIdentityBytes)
	case !validIdentity(c.Subject):
		return fmt.Errorf("%w: sub must be printable characters without < or > "+
			"(no control, formatting or non-ASCII space characters)", ErrBadIdentity)
	case len(c.Name) > MaxIdentityBytes:
		return fmt.Errorf("%w: name is longer than %d bytes", ErrBadIdentity, MaxIdentityBytes)
	case !validName(c.Name):
		return fmt.Errorf("%w: name must not contain control characters, line or paragraph separators "+
			"or bidirectional overrides", ErrBadIdentity)
	}
	return nil
}

// validIdentity reports whether s may be an identity. Identities are ids
// that the operator's code chooses, so they can be strict: printable
// characters only (letters, marks, digits, punctuation, symbols, the ASCII
// space), and no < or >. The web app shows identities as text, but they
// also go to logs, admin API paths, TURN usernames and whatever tools an
// operator points at those; refusing markup there costs no real identity.
// (JSON decoding has already made s valid UTF-8.)
func validIdentity(s string) bool {
	for _, r := range s {
		if !unicode.IsPrint(r) || r == '<' || r == '>' {
			return false
		}
	}
	return true
}

// validName reports whether s may be a display name. Names are for people,
// so they may hold what people write: < and > (an app must show names as
// text, as ours does), and formatting characters such as the zero-width
// joiner of emoji sequences. Refused: what breaks a line or a log line
// (control characters, U+2028, U+2029) and what makes text display in
// another order than it is stored (bidirectional overrides and isolates).
func validName(s string) bool {
	for _, r := range s {
		switch {
		case unicode.IsControl(r), r == '\u2028', r == '\u2029',
			r >= '\u202a' && r <= '\u202e', r >= '\u2066' && r <= '\u2069':
			return false
		}
	}
	return true
}
