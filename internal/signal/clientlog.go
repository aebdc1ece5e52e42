package signal

import (
	"context"
	"log/slog"
	"time"

	"github.com/quartet-rtc/quartet/internal/logsample"
)

// newClientLogs is the sampler of the events a client can cause at will:
// errors, floods, oversized frames, refused upgrades. It is one per
// Handler, not per session, so that opening many connections does not
// multiply the lines; every kind keeps its own allowance, and the errors
// are all counted in quartet_signal_errors_total however few are logged.
func newClientLogs() *logsample.Sampler {
	return logsample.New(logsample.DefaultBurst, logsample.DefaultEvery)
}

// logClient logs an event of kind key that a client caused, sampled.
func (h *Handler) logClient(log *slog.Logger, level slog.Level, key, msg string, args ...any) {
	ok, suppressed := h.clientLogs.Allow(key, time.Now())
	if !ok {
		return
	}
	if suppressed > 0 {
		args = append(args, "suppressed", suppressed)
	}
	log.Log(context.Background(), level, msg, args...)
}

// logClient logs an event of kind key that the session's client caused,
// sampled.
func (s *session) logClient(level slog.Level, key, msg string, args ...any) {
	s.h.logClient(s.log, level, key, msg, args...)
}
