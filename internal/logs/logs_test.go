package logs

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"
)

// clock is a Limiter's time, moved by the test.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

// newTest returns a limited JSON logger writing into buf, on a clock the
// test moves.
func newTest(buf *bytes.Buffer) (*slog.Logger, *Limiter, *clock) {
	c := &clock{t: time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)}
	lim := Limit(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}), 10*time.Second)
	lim.state.now = c.now
	return slog.New(lim), lim, c
}

// lines reads buf's JSON lines as "LEVEL msg [suppressed=N]".
func lines(t *testing.T, buf *bytes.Buffer) []string {
	t.Helper()
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if l == "" {
			continue
		}
		var rec struct {
			Level      string `json:"level"`
			Msg        string `json:"msg"`
			Suppressed *int   `json:"suppressed"`
		}
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		s := rec.Level + " " + rec.Msg
		if rec.Suppressed != nil {
			s += " suppressed=" + strconv.Itoa(*rec.Suppressed)
		}
		out = append(out, s)
	}
	return out
}

func TestLimiter(t *testing.T) {
	type step struct {
		advance time.Duration
		level   slog.Level
		msg     string
		n       int // times logged
	}
	tests := []struct {
		name  string
		steps []step
		flush bool
		want  []string
	}{
		{name: "a repeated error is written once per interval, then with its count",
			steps: []step{{0, slog.LevelError, "redis down", 5}, {9 * time.Second, slog.LevelError, "redis down", 1}, {time.Second, slog.LevelError, "redis down", 1}},
			want:  []string{"ERROR redis down", "ERROR redis down suppressed=5"}},
		{name: "distinct messages are limited apart",
			steps: []step{{0, slog.LevelWarn, "kafka fetch failed", 3}, {0, slog.LevelWarn, "kafka write failed", 3}},
			want:  []string{"WARN kafka fetch failed", "WARN kafka write failed"}},
		{name: "the same message at another level is another line",
			steps: []step{{0, slog.LevelWarn, "x", 2}, {0, slog.LevelError, "x", 2}},
			want:  []string{"WARN x", "ERROR x"}},
		{name: "info and debug are never limited",
			steps: []step{{0, slog.LevelInfo, "policy reloaded", 3}, {0, slog.LevelDebug, "kafka-go", 2}},
			want:  []string{"INFO policy reloaded", "INFO policy reloaded", "INFO policy reloaded", "DEBUG kafka-go", "DEBUG kafka-go"}},
		{name: "a line after a quiet interval has nothing suppressed",
			steps: []step{{0, slog.LevelError, "redis down", 1}, {time.Minute, slog.LevelError, "redis down", 1}},
			want:  []string{"ERROR redis down", "ERROR redis down"}},
		{name: "flush reports what is held back",
			steps: []step{{0, slog.LevelError, "redis down", 4}, {0, slog.LevelWarn, "once", 1}},
			flush: true,
			want:  []string{"ERROR redis down", "WARN once", "ERROR redis down suppressed=3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			log, lim, c := newTest(&buf)
			for _, s := range tt.steps {
				c.t = c.t.Add(s.advance)
				for range s.n {
					log.Log(context.Background(), s.level, s.msg)
				}
			}
			if tt.flush {
				lim.Flush(context.Background())
				lim.Flush(context.Background()) // nothing left: writes nothing
			}
			if got := lines(t, &buf); strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

// TestLimiterSharedAcrossDerivedLoggers: a logger made With attributes
// is limited together with its parent, and keeps its attributes.
func TestLimiterSharedAcrossDerivedLoggers(t *testing.T) {
	var buf bytes.Buffer
	log, _, _ := newTest(&buf)
	log.Error("redis down")
	log.With("component", "kafka").Error("redis down")
	log.With("component", "kafka").Error("broker down")
	out := buf.String()
	if n := strings.Count(out, "redis down"); n != 1 {
		t.Errorf("%d lines of a repeated error, want 1:\n%s", n, out)
	}
	if !strings.Contains(out, `"component":"kafka","msg"`) && !strings.Contains(out, `"msg":"broker down","component":"kafka"`) {
		t.Errorf("derived logger lost its attributes:\n%s", out)
	}
}

// TestLimiterBound: past maxTracked distinct lines, new ones go through
// unlimited rather than being held back or remembered.
func TestLimiterBound(t *testing.T) {
	var buf bytes.Buffer
	log, lim, _ := newTest(&buf)
	for i := range maxTracked + 10 {
		log.Warn("line " + strconv.Itoa(i))
	}
	log.Warn("line " + strconv.Itoa(maxTracked+5))
	if n := len(lim.state.lines); n != maxTracked {
		t.Errorf("%d lines remembered, want %d", n, maxTracked)
	}
	if n := strings.Count(buf.String(), "\n"); n != maxTracked+11 {
		t.Errorf("%d lines written, want %d", n, maxTracked+11)
	}
}

func TestNewHandler(t *testing.T) {
	tests := []struct {
		format  string
		want    string // a substring of the line
		wantErr string
	}{
		{format: FormatJSON, want: `"msg":"hello","k":"v"`},
		{format: FormatText, want: `msg=hello k=v`},
		{format: FormatAuto, want: `"msg":"hello","k":"v"`}, // a buffer is not a terminal
		{format: "logfmt", wantErr: `log format "logfmt": want auto, json or text`},
	}
	for _, tt := range tests {
		t.Run(tt.format, func(t *testing.T) {
			var buf bytes.Buffer
			h, err := NewHandler(&buf, tt.format, slog.LevelInfo)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			log := slog.New(h)
			log.Debug("below the level")
			log.Info("hello", "k", "v")
			if out := buf.String(); !strings.Contains(out, tt.want) || strings.Contains(out, "below the level") {
				t.Errorf("got %q, want a line with %q and no debug line", out, tt.want)
			}
		})
	}
}

// TestLibraryLoggers: the libraries' printf lines become records at the
// level chosen for them, trimmed, naming the library; a level that is
// off skips them.
func TestLibraryLoggers(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	GoRedis{Log: log}.Printf(context.Background(), "redis: connection pool: failed to dial after %d attempts: %v", 5, "connection refused")
	Printf(log, slog.LevelWarn, "kafka-go")("Failed to join group %s: %v\n", "riskd", "EOF")
	Printf(log, slog.LevelDebug, "kafka-go")("committed offsets for group %s", "riskd")
	want := []string{
		`"level":"WARN","msg":"redis: connection pool: failed to dial after 5 attempts: connection refused","lib":"go-redis"}`,
		`"level":"WARN","msg":"Failed to join group riskd: EOF","lib":"kafka-go"}`,
	}
	got := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(got) != len(want) {
		t.Fatalf("got %d lines, want %d:\n%s", len(got), len(want), buf.String())
	}
	for i := range want {
		if !strings.HasSuffix(got[i], want[i]) {
			t.Errorf("line %d: %s\nwant it to end in %s", i, got[i], want[i])
		}
	}
}
