package readiness_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/riskd/riskd/internal/metrictest"
	"github.com/riskd/riskd/internal/poll"
	"github.com/riskd/riskd/readiness"
)

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
	r := readiness.New(readiness.Options{Timeout: time.Minute, Dependencies: []readiness.Dependency{{Name: "a", Check: check}, {Name: "b", Check: check}}})
	for _, s := range r.Check(context.Background()) {
		if !s.OK {
			t.Errorf("%s: %s", s.Name, s.Error)
		}
	}
	hung := readiness.New(readiness.Options{Timeout: time.Millisecond, Dependencies: []readiness.Dependency{{Name: "hung", Check: func(ctx context.Context) error {
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
	r := readiness.New(readiness.Options{Dependencies: []readiness.Dependency{{Name: "redis", Check: check}}, Registerer: reg,
		Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Watch(ctx, time.Millisecond); close(done) }()
	poll.Until(t, "the scripted checks", func() bool { return calls.Load() > int32(len(script)) })
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
	if got := metrictest.Value(t, reg, "riskd_dependency_up", map[string]string{"dependency": "redis"}); got != 1 {
		t.Errorf("riskd_dependency_up %v after recovering, want 1", got)
	}
}
