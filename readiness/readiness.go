// Package readiness checks what riskd needs to serve: the feature store,
// the Kafka brokers and consumer group. GET /readyz (httpapi) asks it on
// demand; Watch asks it periodically, logging and exporting the answers.
// It is a package of its own because both transports use it: httpapi
// serves it and stream contributes its dependencies, and neither should
// link the other.
package readiness

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Dependency is something riskd needs to serve, as /readyz checks it.
type Dependency struct {
	// Name is what /readyz, the logs and riskd_dependency_up call it:
	// "redis", "kafka", "kafka_group".
	Name string
	// Check returns nil when the dependency serves, else why not; it
	// returns by ctx's deadline.
	Check func(ctx context.Context) error
}

// Options configure a Checker. Zero values are safe.
type Options struct {
	Dependencies []Dependency
	// Timeout bounds one round of checks. Default 2s.
	Timeout time.Duration
	// Registerer receives riskd_dependency_up; nil registers nothing.
	Registerer prometheus.Registerer
	// Logger reports a dependency that fails or recovers; nil discards.
	Logger *slog.Logger
}

// Checker checks riskd's dependencies: on demand for /readyz, and
// periodically in Watch, which logs a dependency that starts failing or
// recovers and exports riskd_dependency_up.
type Checker struct {
	opts Options
	up   *prometheus.GaugeVec
}

// Status is a dependency as last checked.
type Status struct {
	Name  string `json:"name"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

// New returns a Checker of opts.Dependencies.
func New(opts Options) *Checker {
	if opts.Timeout <= 0 {
		opts.Timeout = 2 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	r := &Checker{opts: opts, up: prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "riskd_dependency_up", Help: "1 if the dependency answered riskd's last check, else 0 (and /readyz answers 503 naming it).",
	}, []string{"dependency"})}
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(r.up)
	}
	return r
}

// Check runs every dependency's check at once and returns their states,
// in the order they were given.
func (r *Checker) Check(ctx context.Context) []Status {
	ctx, cancel := context.WithTimeout(ctx, r.opts.Timeout)
	defer cancel()
	out := make([]Status, len(r.opts.Dependencies))
	var wg sync.WaitGroup
	for i, d := range r.opts.Dependencies {
		wg.Go(func() {
			out[i] = Status{Name: d.Name, OK: true}
			if err := d.Check(ctx); err != nil {
				out[i].OK, out[i].Error = false, err.Error()
			}
		})
	}
	wg.Wait()
	return out
}

// failAfter is how many checks in a row a dependency fails before Watch
// logs it: joining a consumer group takes a few seconds at every start,
// which is not worth an error line.
const failAfter = 2

// Watch checks the dependencies every interval until ctx ends: it sets
// riskd_dependency_up after every round, logs an error when a dependency
// has failed failAfter checks in a row, and logs again when it recovers.
func (r *Checker) Watch(ctx context.Context, every time.Duration) {
	failed := make([]int, len(r.opts.Dependencies)) // checks failed in a row
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		for i, s := range r.Check(ctx) {
			if ctx.Err() != nil {
				return // a check cut short by the shutdown says nothing
			}
			if s.OK {
				r.up.WithLabelValues(s.Name).Set(1)
				if failed[i] >= failAfter {
					r.opts.Logger.Info(s.Name+" ready again", "dependency", s.Name)
				}
				failed[i] = 0
				continue
			}
			r.up.WithLabelValues(s.Name).Set(0)
			// The name is in the message: a rate-limited handler tells
			// lines apart by message, and each dependency's is news.
			if failed[i]++; failed[i] == failAfter {
				r.opts.Logger.Error(s.Name+" failing: riskd is not ready", "dependency", s.Name, "err", s.Error)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Summary sums up the failing dependencies of states: "" when none is.
func Summary(states []Status) string {
	var b strings.Builder
	for _, s := range states {
		if s.OK {
			continue
		}
		if b.Len() > 0 {
			b.WriteString("; ")
		}
		b.WriteString(s.Name + ": " + s.Error)
	}
	return b.String()
}
