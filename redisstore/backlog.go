package redisstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/riskd/riskd/features"
)

// Defaults of Options.Backlog and Options.BacklogBytes.
const (
	DefaultBacklog      = 10_000
	DefaultBacklogBytes = 16 << 20
)

// backlogEvery is how often a backlog waiting for Redis looks whether
// it answers again.
const backlogEvery = 250 * time.Millisecond

// dropReportEvery spaces the errors that report dropped events: an
// outage drops thousands, one line each would drown the log.
const dropReportEvery = 10 * time.Second

// backlog holds events that could not be recorded within the record
// timeout (Redis unreachable), bounded in count and bytes, and records
// them in timestamp order once Redis answers, if still within the
// lateness allowance. What it cannot record is counted and reported.
type backlog struct {
	r        *Store
	max      int
	maxBytes int64
	wake     chan struct{}
	cancel   context.CancelFunc
	done     chan struct{}
	gauge    prometheus.Gauge
	dropped  *prometheus.CounterVec

	mu       sync.Mutex
	events   []pending
	ids      map[string]struct{} // of events: a retry of one (HTTP, Kafka) is kept once
	bytes    int64
	drops    map[string]int // since the last report, by reason
	lastDrop error
	reported time.Time
	closed   bool
}

type pending struct {
	obs  *features.Observation
	size int64
}

func newBacklog(r *Store, max int, maxBytes int64, reg prometheus.Registerer) *backlog {
	b := &backlog{r: r, max: max, maxBytes: maxBytes, wake: make(chan struct{}, 1), done: make(chan struct{}), drops: map[string]int{}, ids: map[string]struct{}{},
		gauge: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "riskd_redis_record_backlog",
			Help: "Events that could not be recorded in Redis within -record-timeout, waiting for Redis to answer again.",
		}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "riskd_redis_record_dropped_total",
			Help: "Events never recorded in Redis, by reason: full (the backlog was), late (past -max-lateness when Redis answered), error (Redis refused them), closed (riskd stopped first).",
		}, []string{"reason"}),
	}
	for _, reason := range []string{"full", "late", "error", "closed"} {
		b.dropped.WithLabelValues(reason)
	}
	if reg != nil {
		reg.MustRegister(b.gauge, b.dropped)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.cancel = cancel
	go b.run(ctx)
	return b
}

// size is what an event holds in the backlog: its id and the records it
// writes.
func size(obs *features.Observation) int64 {
	n := int64(len(obs.EventID)) + 64
	var buf []byte
	for ei := range obs.Entries {
		buf = []byte(appendRecord(buf[:0], obs, ei, 0))
		n += int64(len(buf) + len(obs.Entries[ei].Key))
	}
	return n
}

// add keeps obs (the store's own copy) for later, or drops it when the
// backlog is full.
func (b *backlog) add(obs *features.Observation, cause error) {
	p := pending{obs: obs, size: size(obs)}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		b.dropLocked("closed", fmt.Errorf("event %q: riskd stopped before Redis answered: %w", obs.EventID, cause))
		b.reportLocked(time.Now())
		return
	}
	if _, ok := b.ids[obs.EventID]; ok {
		return
	}
	if len(b.events) >= b.max || b.bytes+p.size > b.maxBytes {
		b.dropLocked("full", fmt.Errorf("event %q: %w", obs.EventID, cause))
		return
	}
	b.events = append(b.events, p)
	b.ids[obs.EventID] = struct{}{}
	b.bytes += p.size
	b.gauge.Set(float64(len(b.events)))
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// dropLocked counts an event never recorded, and reports the drops at
// most every dropReportEvery.
func (b *backlog) dropLocked(reason string, err error) {
	b.dropped.WithLabelValues(reason).Inc()
	b.drops[reason]++
	b.lastDrop = err
	if now := time.Now(); now.Sub(b.reported) >= dropReportEvery {
		b.reportLocked(now)
	}
}

func (b *backlog) reportLocked(now time.Time) {
	if len(b.drops) == 0 {
		return
	}
	b.reported = now
	b.r.fail(fmt.Errorf("redis: events never recorded in feature history (backlog of %d events, %d bytes at most): %v; the last: %w",
		b.max, b.maxBytes, b.drops, b.lastDrop))
	b.drops = map[string]int{}
}

// run records the backlog whenever Redis answers, until ctx ends.
func (b *backlog) run(ctx context.Context) {
	defer close(b.done)
	t := time.NewTicker(backlogEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-b.wake:
		case <-t.C:
		}
		b.mu.Lock()
		if now := time.Now(); len(b.drops) > 0 && now.Sub(b.reported) >= dropReportEvery {
			b.reportLocked(now)
		}
		n := len(b.events)
		b.mu.Unlock()
		if n > 0 && b.r.Ready(ctx) == nil {
			b.drain(ctx)
		}
	}
}

// drain records the events held, oldest first. An event that fails
// while Redis is away again goes back, with those after it.
func (b *backlog) drain(ctx context.Context) {
	b.mu.Lock()
	events := b.events
	b.events, b.bytes = nil, 0
	clear(b.ids)
	b.gauge.Set(0)
	b.mu.Unlock()
	slices.SortStableFunc(events, func(x, y pending) int { return cmp.Compare(x.obs.TS, y.obs.TS) })
	for i, p := range events {
		if late := b.r.now().UnixMilli() - b.r.lateness; p.obs.TS < late {
			b.mu.Lock()
			b.dropLocked("late", fmt.Errorf("event %q: %d ms past the lateness allowance when Redis answered", p.obs.EventID, late-p.obs.TS))
			b.mu.Unlock()
			continue
		}
		// A claim left by the first attempt is taken over after its
		// lease, with its generation: nothing is recorded twice.
		rctx, cancel := context.WithTimeout(ctx, claimLease+b.r.recordTimeout)
		err := b.r.observe(rctx, p.obs)
		cancel()
		if err == nil || errors.Is(err, errScoredElsewhere) || errors.Is(err, errRecordedLater) {
			continue // recorded, or being recorded (and kept here again if that fails)
		}
		if ctx.Err() != nil || b.r.Ready(ctx) != nil {
			// Redis is away again, or riskd stops: the rest waits.
			b.mu.Lock()
			b.events = append(events[i:], b.events...)
			b.bytes = 0
			for _, q := range b.events {
				b.bytes += q.size
				b.ids[q.obs.EventID] = struct{}{}
			}
			b.gauge.Set(float64(len(b.events)))
			b.mu.Unlock()
			return
		}
		b.mu.Lock()
		b.dropLocked("error", fmt.Errorf("event %q: %w", p.obs.EventID, err))
		b.mu.Unlock()
	}
}

// close stops recording; what is left is counted and reported.
func (b *backlog) close() {
	b.cancel()
	<-b.done
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	for _, p := range b.events {
		b.dropLocked("closed", fmt.Errorf("event %q: riskd stopped before Redis answered", p.obs.EventID))
	}
	b.events, b.bytes = nil, 0
	clear(b.ids)
	b.gauge.Set(0)
	b.reportLocked(time.Now())
}
