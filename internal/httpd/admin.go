package httpd

import (
	"log/slog"
	"net/http"
	"strings"

	"github.com/quartet-rtc/quartet/internal/auth"
	"github.com/quartet-rtc/quartet/internal/room"
)

// admin serves the admin REST API; every call needs a token with the admin
// grant, sent as "Authorization: Bearer TOKEN".
type admin struct {
	rooms    Rooms
	verifier *auth.Verifier
	log      *slog.Logger
}

func (a *admin) auth(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || token == "" {
			writeError(w, http.StatusUnauthorized, "unauthorized", "send an admin token as Authorization: Bearer TOKEN")
			return
		}
		claims, err := a.verifier.Verify(token, now())
		if err != nil {
			writeError(w, http.StatusUnauthorized, "unauthorized", err.Error())
			return
		}
		if !claims.Grants.Admin {
			writeError(w, http.StatusForbidden, "forbidden", "the token has no admin grant")
			return
		}
		a.log.Info("admin request", "method", r.Method, "path", r.URL.Path, "identity", claims.Identity())
		next(w, r)
	}
}

func (a *admin) listRooms(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"rooms": a.rooms.List()})
}

func (a *admin) listParticipants(w http.ResponseWriter, r *http.Request) {
	info, participants, ok := a.rooms.Describe(r.PathValue("room"))
	if !ok {
		writeError(w, http.StatusNotFound, "not_found", "no such room")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"room": info, "participants": participants})
}

func (a *admin) closeRoom(w http.ResponseWriter, r *http.Request) {
	if !a.rooms.CloseRoom(r.PathValue("room"), room.ReasonRoomClosed) {
		writeError(w, http.StatusNotFound, "not_found", "no such room")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *admin) removeParticipant(w http.ResponseWriter, r *http.Request) {
	if !a.rooms.Remove(r.PathValue("room"), r.PathValue("identity")) {
		writeError(w, http.StatusNotFound, "not_found", "no such participant in that room")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
