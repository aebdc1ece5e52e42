package httpd

import (
	"net/http"
	"strings"

	"github.com/quartet-rtc/quartet/internal/auth"
)

// TURNCredentials mints a TURN credential for user calling from r, with
// the URIs to use it at: the JSON body of /api/turn-credentials.
type TURNCredentials func(user string, r *http.Request) any

// turnCredentials serves GET /api/turn-credentials: a fresh TURN REST
// credential and the URIs to use it with, for apps that build their own
// RTCPeerConnection. It needs a valid access token (its identity is the
// credential's user); in dev mode anyone may ask, naming a user with ?user=.
func turnCredentials(mint TURNCredentials, verifier *auth.Verifier, dev bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		user := "anonymous"
		token, hasToken := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		switch {
		case hasToken && token != "":
			claims, err := verifier.Verify(token, now())
			if err != nil {
				writeError(w, http.StatusUnauthorized, "unauthorized", err.Error())
				return
			}
			user = claims.Identity()
		case !dev:
			writeError(w, http.StatusUnauthorized, "unauthorized", "send an access token as Authorization: Bearer TOKEN")
			return
		case r.URL.Query().Get("user") != "":
			user = r.URL.Query().Get("user")
		}
		if len(user) > 128 {
			writeError(w, http.StatusBadRequest, "bad_request", "user must be at most 128 bytes")
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		writeJSON(w, http.StatusOK, mint(user, r))
	}
}
