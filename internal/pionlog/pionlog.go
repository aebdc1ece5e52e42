// Package pionlog routes pion's leveled loggers into log/slog.
package pionlog

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/pion/logging"
)

// Factory creates pion loggers that write to a slog.Logger. pion logs routine
// events (state changes, retries) at Info and expected teardown races
// (writes on closed sockets) at Error, so each is lowered one level to keep
// an operator's log about Quartet, not its libraries.
type Factory struct{ Log *slog.Logger }

// NewLogger implements logging.LoggerFactory.
func (f Factory) NewLogger(scope string) logging.LeveledLogger {
	return logger{log: f.Log.With("pion", scope)}
}

type logger struct{ log *slog.Logger }

func (l logger) emit(level slog.Level, msg string) {
	l.log.Log(context.Background(), level, msg)
}

func (l logger) emitf(level slog.Level, format string, args ...any) {
	if l.log.Enabled(context.Background(), level) {
		l.log.Log(context.Background(), level, fmt.Sprintf(format, args...))
	}
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
