package engine_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/riskd/riskd/engine"
)

func TestReadyzNamesFailingDependencies(t *testing.T) {
	ok := func(context.Context) error { return nil }
	down := func(msg string) func(context.Context) error {
		return func(context.Context) error { return errors.New(msg) }
	}
	tests := []struct {
		name string
		deps []engine.Dependency
		code int
		want string
	}{
		{name: "no dependencies", code: 200, want: `{"ready":true,"dependencies":[]}`},
		{name: "all answer", deps: []engine.Dependency{{Name: "redis", Check: ok}, {Name: "kafka", Check: ok}},
			code: 200, want: `{"ready":true,"dependencies":[{"name":"redis","ok":true},{"name":"kafka","ok":true}]}`},
		{name: "one fails", deps: []engine.Dependency{{Name: "redis", Check: down("dial tcp 127.0.0.1:1: connect: connection refused")}, {Name: "kafka", Check: ok}},
			code: 503, want: `{"ready":false,"error":"not ready: redis: dial tcp 127.0.0.1:1: connect: connection refused","dependencies":[{"name":"redis","ok":false,"error":"dial tcp 127.0.0.1:1: connect: connection refused"},{"name":"kafka","ok":true}]}`},
		{name: "two fail", deps: []engine.Dependency{{Name: "kafka", Check: down("brokers away")}, {Name: "kafka_group", Check: down("not a member")}},
			code: 503, want: `{"ready":false,"error":"not ready: kafka: brokers away; kafka_group: not a member","dependencies":[{"name":"kafka","ok":false,"error":"brokers away"},{"name":"kafka_group","ok":false,"error":"not a member"}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := engine.New(examplePolicy(t), engine.Options{})
			srv := httptest.NewServer(engine.NewHandler(e, engine.HandlerOptions{Readiness: engine.NewReadiness(engine.ReadinessOptions{Dependencies: tt.deps})}))
			defer srv.Close()
			resp, err := http.Get(srv.URL + "/readyz")
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.code || strings.TrimSpace(string(b)) != tt.want {
				t.Errorf("%d %s\nwant %d %s", resp.StatusCode, b, tt.code, tt.want)
			}
		})
	}
}

// TestReadinessChecksAtOnce: a slow check does not hold the others up,
// and the round is bounded by the timeout.
func TestReadinessChecksAtOnce(t *testing.T) {
	var started sync.WaitGroup
	started.Add(2)
	both := make(chan struct{})
	go func() { started.Wait(); close(both) }()
	// Each check waits until the other has started: run one after the
	// other, they would both time out.
	check := func(ctx context.Context) error {
		started.Done()
		select {
		case <-both:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	r := engine.NewReadiness(engine.ReadinessOptions{Timeout: time.Minute, Dependencies: []engine.Dependency{{Name: "a", Check: check}, {Name: "b", Check: check}}})
	for _, s := range r.Check(context.Background()) {
		if !s.OK {
			t.Errorf("%s: %s", s.Name, s.Error)
		}
	}
	hung := engine.NewReadiness(engine.ReadinessOptions{Timeout: time.Millisecond, Dependencies: []engine.Dependency{{Name: "hung", Check: func(ctx context.Context) error {
		<-ctx.Done()
		return ctx.Err()
	}}}})
	if s := hung.Check(context.Background()); s[0].OK || s[0].Error != "context deadline exceeded" {
		t.Errorf("a hung check: %+v", s)
	}
}

// syncBuffer is a log destination read while the watch writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestReadinessWatch: a dependency failing once is not worth a line (a
// consumer joins its group at every start); failing twice in a row is an
// error, once, and its recovery is logged; riskd_dependency_up follows
// every check.
func TestReadinessWatch(t *testing.T) {
	// The dependency's checks fail as scripted, then succeed.
	script := []bool{false, true, false, false, false, true}
	var calls atomic.Int32
	check := func(context.Context) error {
		if i := int(calls.Add(1)) - 1; i < len(script) && !script[i] {
			return errors.New("connection refused")
		}
		return nil
	}
	reg := prometheus.NewRegistry()
	var logs syncBuffer
	r := engine.NewReadiness(engine.ReadinessOptions{Dependencies: []engine.Dependency{{Name: "redis", Check: check}}, Registerer: reg,
		Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Watch(ctx, time.Millisecond); close(done) }()
	waitFor(t, "the scripted checks", func() bool { return calls.Load() > int32(len(script)) })
	cancel()
	<-done
	var got []string
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var rec struct{ Level, Msg, Dependency, Err string }
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		got = append(got, rec.Level+" "+rec.Msg+" "+rec.Dependency+" "+rec.Err)
	}
	want := []string{
		"ERROR redis failing: riskd is not ready redis connection refused",
		"INFO redis ready again redis ",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("logs:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if got := metric(t, reg, "riskd_dependency_up", map[string]string{"dependency": "redis"}); got != 1 {
		t.Errorf("riskd_dependency_up %v after recovering, want 1", got)
	}
}

func newTextLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, nil))
}
