package cases

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Collector exports the open queue at each scrape: how many cases are
// open and how old the oldest is (the alert on an ageing queue reads it).
type Collector struct {
	store   Store
	now     func() time.Time
	timeout time.Duration
	open    *prometheus.Desc
	oldest  *prometheus.Desc
	up      *prometheus.Desc
}

// NewCollector returns a collector over store; now is the clock of ages
// (nil: time.Now). Register it with the server's registry.
func NewCollector(store Store, now func() time.Time) *Collector {
	if now == nil {
		now = time.Now
	}
	return &Collector{store: store, now: now, timeout: 2 * time.Second,
		open:   prometheus.NewDesc("riskd_cases_open", "Review cases open (resolved ones are not counted).", nil, nil),
		oldest: prometheus.NewDesc("riskd_cases_oldest_open_age_seconds", "Age of the oldest open review case; 0 when none is open.", nil, nil),
		up:     prometheus.NewDesc("riskd_case_store_up", "1 when the case store answered the last scrape, else 0.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.open
	ch <- c.oldest
	ch <- c.up
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	st, err := c.store.Stats(ctx)
	if err != nil {
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 1)
	ch <- prometheus.MustNewConstMetric(c.open, prometheus.GaugeValue, float64(st.Open))
	age := 0.0
	if !st.OldestOpen.IsZero() {
		age = max(0, c.now().Sub(st.OldestOpen).Seconds())
	}
	ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, age)
}
