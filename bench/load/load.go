// Package load drives a system at a fixed rate (open loop) and measures
// latency from each request's intended start, so a stall shows as latency
// instead of silently lowering the rate. The HTTP generator and the Kafka
// benchmark share it.
package load

import (
	"context"
	"slices"
	"sync"
	"time"
)

// Schedule calls fire(i, intended) for i = 0..total-1 at rate per second,
// each at its intended time or as soon after as the caller's goroutine
// allows. fire must hand work off rather than do it: a slow fire delays
// later calls, and that delay counts against them.
func Schedule(ctx context.Context, rate, total int, fire func(i int, intended time.Time)) {
	interval := time.Second / time.Duration(rate)
	start := time.Now()
	for i := range total {
		t := start.Add(time.Duration(i) * interval)
		if d := time.Until(t); d > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(d):
			}
		}
		fire(i, t)
	}
}

// Recorder collects latencies from any goroutine.
type Recorder struct {
	mu  sync.Mutex
	lat []time.Duration
}

// Add records one latency.
func (r *Recorder) Add(d time.Duration) {
	r.mu.Lock()
	r.lat = append(r.lat, d)
	r.mu.Unlock()
}

// Count is how many latencies were recorded.
func (r *Recorder) Count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.lat)
}

// Quantile returns the q-quantile (0..1) of what was recorded, 0 if none.
func (r *Recorder) Quantile(q float64) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.lat) == 0 {
		return 0
	}
	slices.Sort(r.lat)
	return r.lat[min(len(r.lat)-1, int(q*float64(len(r.lat))))]
}
