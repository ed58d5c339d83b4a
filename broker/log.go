package broker

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/nats-io/nats-server/v2/server"
)

var _ server.Logger = (*natsLogger)(nil)

// natsLogger adapts nats-server's printf-style Logger to slog. nats-server's
// own text goes into the "nats" attribute, so the message stays a fixed
// lowercase phrase that log queries can match.
//
// Trace output is dropped on purpose: nats-server traces whole protocol
// lines, message bodies included, and nothing that may carry PHI (even
// sealed) belongs in logs.
type natsLogger struct {
	log *slog.Logger
	// fatal is called with nats-server's text when it reports a fatal
	// error. nats-server's own logger exits the process there; the broker
	// instead fails Start.
	fatal func(string)
}

func (l *natsLogger) emit(level slog.Level, format string, v []any) {
	ctx := context.Background()
	if !l.log.Enabled(ctx, level) {
		return
	}
	l.log.LogAttrs(ctx, level, "nats server log",
		slog.String("component", "nats-server"),
		slog.String("nats", fmt.Sprintf(format, v...)))
}

// Noticef logs at Debug: nats-server's notices are its start-up banner and
// lifecycle chatter, which the broker's own "broker started" and "broker
// stopped" events already cover at Info.
func (l *natsLogger) Noticef(format string, v ...any) { l.emit(slog.LevelDebug, format, v) }

// Warnf logs at Warn.
func (l *natsLogger) Warnf(format string, v ...any) { l.emit(slog.LevelWarn, format, v) }

// Errorf logs at Error.
func (l *natsLogger) Errorf(format string, v ...any) { l.emit(slog.LevelError, format, v) }

// Debugf logs at Debug.
func (l *natsLogger) Debugf(format string, v ...any) { l.emit(slog.LevelDebug, format, v) }

// Tracef drops the entry; see [natsLogger].
func (l *natsLogger) Tracef(string, ...any) {}

// Fatalf logs at Error and reports the failure to the broker instead of
// exiting.
func (l *natsLogger) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	l.log.LogAttrs(context.Background(), slog.LevelError, "nats server fatal error",
		slog.String("component", "nats-server"), slog.String("nats", msg))
	if l.fatal != nil {
		l.fatal(msg)
	}
}
