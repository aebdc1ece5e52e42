// Package pionlog routes pion's leveled loggers into log/slog.
package pionlog

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/pion/logging"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/quartet-rtc/quartet/internal/logsample"
)

// Factory creates pion loggers that write to a slog.Logger. pion logs routine
// events (state changes, retries) at Info and expected teardown races
// (writes on closed sockets) at Error, so each is lowered one level to keep
// an operator's log about Quartet, not its libraries.
//
// pion also logs some packets from anyone one line each (a STUN request
// without USERNAME on the media port: 10,000 spoofed 28-byte requests wrote
// 10,000 lines, 1.2 MB), so every line is rate-limited by its format (see
// Limit).
type Factory struct {
	Log *slog.Logger
	// Limit, if set, is shared by every logger of the factory and counts
	// what it suppresses; without it each logger gets a limit of its own.
	Limit *Limit
}

// NewLogger implements logging.LoggerFactory.
func (f Factory) NewLogger(scope string) logging.LeveledLogger {
	limit := f.Limit
	if limit == nil {
		limit = NewLimit()
	}
	return logger{log: f.Log.With("pion", scope), scope: scope, limit: limit}
}

// Limit rate-limits pion's log lines: each message, by its format string,
// is written logsample.DefaultBurst times at once and then once every
// logsample.DefaultEvery, with the count of the lines left out. Being a
// prometheus.Collector, it exports that count as
// quartet_pion_log_suppressed_total{scope}.
type Limit struct {
	lines      *logsample.Sampler
	suppressed *prometheus.CounterVec
	now        func() time.Time // tests set a clock
}

// NewLimit returns a limit with the default rates.
func NewLimit() *Limit {
	return &Limit{
		lines: logsample.New(logsample.DefaultBurst, logsample.DefaultEvery),
		suppressed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "quartet_pion_log_suppressed_total",
			Help: "Log lines of pion's libraries left out by the log rate limit, by logger scope.",
		}, []string{"scope"}),
		now: time.Now,
	}
}

// Describe implements prometheus.Collector.
func (l *Limit) Describe(ch chan<- *prometheus.Desc) { l.suppressed.Describe(ch) }

// Collect implements prometheus.Collector.
func (l *Limit) Collect(ch chan<- prometheus.Metric) { l.suppressed.Collect(ch) }

type logger struct {
	log   *slog.Logger
	scope string
	limit *Limit
}

// write logs msg unless its kind (key) is over the limit. Only what the
// default level shows (pion's Warn and Error) is limited: debug lines are
// off unless an operator asks for them, and then every one is wanted.
func (l logger) write(level slog.Level, key string, msg func() string) {
	ctx := context.Background()
	if !l.log.Enabled(ctx, level) {
		return
	}
	if level < slog.LevelInfo {
		l.log.Log(ctx, level, msg())
		return
	}
	ok, suppressed := l.limit.lines.Allow(l.scope+"\x00"+key, l.limit.now())
	if !ok {
		l.limit.suppressed.WithLabelValues(l.scope).Inc()
		return
	}
	if suppressed > 0 {
		l.log.Log(ctx, level, msg(), "suppressed", suppressed)
		return
	}
	l.log.Log(ctx, level, msg())
}

func (l logger) emit(level slog.Level, msg string) {
	l.write(level, msg, func() string { return msg })
}

func (l logger) emitf(level slog.Level, format string, args ...any) {
	l.write(level, format, func() string { return fmt.Sprintf(format, args...) })
}

func (l logger) Trace(msg string)                  { l.emit(slog.LevelDebug-4, msg) }
func (l logger) Tracef(format string, args ...any) { l.emitf(slog.LevelDebug-4, format, args...) }
func (l logger) Debug(msg string)                  { l.emit(slog.LevelDebug-4, msg) }
func (l logger) Debugf(format string, args ...any) { l.emitf(slog.LevelDebug-4, format, args...) }
func (l logger) Info(msg string)                   { l.emit(slog.LevelDebug, msg) }
func (l logger) Infof(format string, args ...any)  { l.emitf(slog.LevelDebug, format, args...) }
func (l logger) Warn(msg string)                   { l.emit(slog.LevelInfo, msg) }
func (l logger) Warnf(format string, args ...any)  { l.emitf(slog.LevelInfo, format, args...) }
func (l logger) Error(msg string)                  { l.emit(slog.LevelWarn, msg) }
func (l logger) Errorf(format string, args ...any) { l.emitf(slog.LevelWarn, format, args...) }
