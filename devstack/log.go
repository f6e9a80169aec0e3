package devstack

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"go.temporal.io/server/common/log"
	"go.temporal.io/server/common/log/tag"
)

// parseLevel maps Config.LogLevel to a slog level; "" means warn because
// the embedded server is very chatty at info.
func parseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "":
		return slog.LevelWarn, nil
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("unknown log level %q (want debug, info, warn or error)", s)
}

// levelMuted is above every real level: it silences the server once it is
// stopped, when its lingering pollers only report that it went away.
const levelMuted = slog.Level(1 << 10)

// minLevelHandler drops records below min before they reach the wrapped
// handler, so the server can be quieter than the rest of the program.
type minLevelHandler struct {
	slog.Handler
	min slog.Leveler
}

func (h minLevelHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min.Level() && h.Handler.Enabled(ctx, l)
}

func (h minLevelHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return minLevelHandler{Handler: h.Handler.WithAttrs(attrs), min: h.min}
}

func (h minLevelHandler) WithGroup(name string) slog.Handler {
	return minLevelHandler{Handler: h.Handler.WithGroup(name), min: h.min}
}

// serverLogger adapts a *slog.Logger to the Temporal server's log.Logger.
//
// It deliberately does not implement log.WithLogger: the server calls
// log.With for every workflow and shard, and the server's own lazy wrapper
// only renders those tags when a line is actually written.
type serverLogger struct {
	sl *slog.Logger
}

var (
	_ log.Logger      = serverLogger{}
	_ log.SLogWrapper = serverLogger{}
)

func newServerLogger(base *slog.Logger, min slog.Leveler) serverLogger {
	h := minLevelHandler{Handler: base.Handler(), min: min}
	return serverLogger{sl: slog.New(h).With("component", "temporal")}
}

func (l serverLogger) Debug(msg string, tags ...tag.Tag) { l.log(slog.LevelDebug, msg, tags) }
func (l serverLogger) Info(msg string, tags ...tag.Tag)  { l.log(slog.LevelInfo, msg, tags) }
func (l serverLogger) Warn(msg string, tags ...tag.Tag)  { l.log(slog.LevelWarn, msg, tags) }
func (l serverLogger) Error(msg string, tags ...tag.Tag) { l.log(slog.LevelError, msg, tags) }

// DPanic only panics in development builds of the server; treat it as an error.
func (l serverLogger) DPanic(msg string, tags ...tag.Tag) { l.log(slog.LevelError, msg, tags) }

// Panic must not return: callers rely on it to stop execution.
func (l serverLogger) Panic(msg string, tags ...tag.Tag) {
	l.log(slog.LevelError, msg, tags)
	panic(msg)
}

// Fatal must not return either (e.g. a failed listen is followed by use of
// the nil listener), but exiting the host process from a library is worse:
// panic instead, and Start turns a panic during startup into an error.
func (l serverLogger) Fatal(msg string, tags ...tag.Tag) {
	l.log(slog.LevelError, msg, tags)
	panic(fmt.Sprintf("temporal server: %s%s", msg, errorSuffix(tags)))
}

// SLog lets log.NewSlogLogger hand the server's slog users the same handler.
func (l serverLogger) SLog() *slog.Logger { return l.sl }

func (l serverLogger) log(level slog.Level, msg string, tags []tag.Tag) {
	ctx := context.Background()
	// Check first: rendering tags is the expensive part.
	if !l.sl.Enabled(ctx, level) {
		return
	}
	attrs := make([]slog.Attr, len(tags))
	for i, t := range tags {
		attrs[i] = slog.Any(t.Key(), t.Value())
	}
	l.sl.LogAttrs(ctx, level, msg, attrs...)
}

// errorSuffix renders the error tag, if any, so a panic message says why.
func errorSuffix(tags []tag.Tag) string {
	for _, t := range tags {
		if t.Key() == "error" {
			return fmt.Sprintf(": %v", t.Value())
		}
	}
	return ""
}
