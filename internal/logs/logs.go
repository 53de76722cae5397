// Package logs builds riskd's logger: log/slog as JSON or text at a level,
// repeated warnings and errors rate-limited, and the go-redis and kafka-go
// libraries' own loggers routed into it.
package logs

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
)

// Formats are the values of -log-format.
const (
	// FormatAuto writes text to a terminal and JSON anywhere else (a
	// container's log, a file, a pipe): people read the one, log
	// pipelines parse the other.
	FormatAuto = "auto"
	FormatJSON = "json"
	FormatText = "text"
)

// NewHandler returns a handler writing lines to w in format (FormatAuto,
// FormatJSON or FormatText) from level on.
func NewHandler(w io.Writer, format string, level slog.Leveler) (slog.Handler, error) {
	opts := &slog.HandlerOptions{Level: level}
	if format == FormatAuto {
		format = FormatJSON
		if isTerminal(w) {
			format = FormatText
		}
	}
	switch format {
	case FormatJSON:
		return slog.NewJSONHandler(w, opts), nil
	case FormatText:
		return slog.NewTextHandler(w, opts), nil
	}
	return nil, fmt.Errorf("log format %q: want %s, %s or %s", format, FormatAuto, FormatJSON, FormatText)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// Printf returns a printf-style function that writes each line a library
// prints as one record at level, with lib naming the library: kafka-go
// takes it as kafka.LoggerFunc.
func Printf(l *slog.Logger, level slog.Level, lib string) func(format string, args ...any) {
	return func(format string, args ...any) {
		libLine(context.Background(), l, level, lib, format, args)
	}
}

// GoRedis is go-redis's logger (redis.SetLogger): its lines are about
// connections failing, so they are warnings.
type GoRedis struct {
	Log *slog.Logger
}

// Printf implements go-redis's internal.Logging.
func (g GoRedis) Printf(ctx context.Context, format string, args ...any) {
	libLine(ctx, g.Log, slog.LevelWarn, "go-redis", format, args)
}

func libLine(ctx context.Context, l *slog.Logger, level slog.Level, lib, format string, args []any) {
	if !l.Enabled(ctx, level) {
		return // kafka-go's debug lines are many: do not format them for nothing
	}
	l.Log(ctx, level, strings.TrimSpace(fmt.Sprintf(format, args...)), "lib", lib)
}
