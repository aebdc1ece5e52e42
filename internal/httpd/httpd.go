// Package httpd is the application server: the embedded web app, the REST
// API, the signaling endpoint's route, health and metrics.
package httpd

import (
	"encoding/json"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/quartet-rtc/quartet/internal/auth"
	"github.com/quartet-rtc/quartet/internal/room"
)

// Rooms is what the admin API asks of the rooms; *room.Manager implements it.
type Rooms interface {
	List() []room.Info
	Describe(name string) (room.Info, []room.ParticipantInfo, bool)
	CloseRoom(name, reason string) bool
	Remove(roomName, identity string) bool
}

var _ Rooms = (*room.Manager)(nil)

// Deps are what the application server serves.
type Deps struct {
	Log      *slog.Logger
	Rooms    Rooms
	Verifier *auth.Verifier
	Signal   http.Handler // the native signaling WebSocket
	Metrics  http.Handler // Prometheus exposition
	Web      fs.FS        // the browser app (index.html, room.html, app/, sdk/)
	// DevToken mints tokens for the web app in dev mode; nil in production,
	// where the operator's own backend mints tokens. When set, the server
	// also only answers requests addressed to a loopback host.
	DevToken func(roomName, identity, name string) (string, error)
	// TURN serves /api/turn-credentials; nil when the deployment has no
	// TURN servers.
	TURN TURNCredentials
}

// New returns the application server's handler.
func New(d Deps) http.Handler {
	mux := http.NewServeMux()
	files := http.FileServerFS(d.Web)
	mux.Handle("GET /app/", files)
	mux.Handle("GET /sdk/", files)
	mux.HandleFunc("GET /{$}", servePage(d.Web, "index.html"))
	mux.HandleFunc("GET /r/{room}", servePage(d.Web, "room.html"))
	mux.Handle("GET /ws", d.Signal)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.Handle("GET /metrics", d.Metrics)
	a := &admin{rooms: d.Rooms, verifier: d.Verifier, log: d.Log}
	mux.HandleFunc("GET /api/rooms", a.auth(a.listRooms))
	mux.HandleFunc("GET /api/rooms/{room}/participants", a.auth(a.listParticipants))
	mux.HandleFunc("DELETE /api/rooms/{room}", a.auth(a.closeRoom))
	mux.HandleFunc("DELETE /api/rooms/{room}/participants/{identity}", a.auth(a.removeParticipant))
	if d.TURN != nil {
		mux.HandleFunc("GET /api/turn-credentials", turnCredentials(d.TURN, d.Verifier, d.DevToken != nil))
	}
	if d.DevToken != nil {
		mux.HandleFunc("GET /api/dev/token", devToken(d.DevToken))
		return securityHeaders(loopbackHostOnly(mux))
	}
	return securityHeaders(mux)
}

// loopbackHostOnly refuses requests whose Host is not a loopback name. A dev
// server mints tokens for anyone who asks, so a web page must not reach it
// through a DNS name rebound to 127.0.0.1.
func loopbackHostOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, err := net.SplitHostPort(r.Host)
		if err != nil {
			host = r.Host
		}
		ip := net.ParseIP(strings.Trim(host, "[]"))
		if host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			writeError(w, http.StatusMisdirectedRequest, "dev_mode",
				"a dev-mode server answers only requests to localhost or a loopback address")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// servePage serves one HTML page of the web app.
func servePage(web fs.FS, name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		data, err := fs.ReadFile(web, name)
		if err != nil {
			http.Error(w, "page not found", http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		_, _ = w.Write(data)
	}
}

// securityHeaders keeps the app to its own origin: no framing, no foreign
// scripts, no sniffing. Camera and microphone stay allowed for the app.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; "+
			"img-src 'self' data: blob:; media-src 'self' blob: mediastream:; connect-src 'self'; "+
			"frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Permissions-Policy", "camera=(self), microphone=(self), display-capture=(self)")
		next.ServeHTTP(w, r)
	})
}

// devToken serves GET /api/dev/token?room=R&identity=I&name=N in dev mode.
func devToken(mint func(roomName, identity, name string) (string, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		roomName, identity, name := q.Get("room"), q.Get("identity"), q.Get("name")
		if roomName == "" || identity == "" || len(roomName) > 128 || len(identity) > 128 || len(name) > 128 {
			writeError(w, http.StatusBadRequest, "bad_request", "room and identity are required, at most 128 bytes each")
			return
		}
		token, err := mint(roomName, identity, name)
		if err != nil {
			writeError(w, http.StatusInternalServerError, "internal", "could not mint a token")
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		writeJSON(w, http.StatusOK, map[string]string{"token": token})
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

type apiError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func writeError(w http.ResponseWriter, status int, code, message string) {
	writeJSON(w, status, map[string]apiError{"error": {Code: code, Message: message}})
}

// now is the clock for token checks.
func now() time.Time { return time.Now() }
