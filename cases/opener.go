package cases

import (
	"context"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
)

// Opener opens cases off the scoring path: a transport hands it a case
// after the answer is sent, and one goroutine (Run) writes it to the
// store, as the audit writer does with decisions. A full queue drops the
// case and counts it rather than hold up an answer.
type Opener struct {
	store   Store
	queue   chan *Case
	log     *slog.Logger
	opened  prometheus.Counter
	retried prometheus.Counter
	failed  *prometheus.CounterVec
}

// OpenerOptions configure an Opener.
type OpenerOptions struct {
	// Queue bounds the cases waiting to be written. Default 10,000.
	Queue int
	// Registerer receives the opener's metrics; nil registers nothing.
	Registerer prometheus.Registerer
	Logger     *slog.Logger
}

// NewOpener returns an opener writing to store; Run writes.
func NewOpener(store Store, opts OpenerOptions) *Opener {
	if opts.Queue <= 0 {
		opts.Queue = 10_000
	}
	o := &Opener{store: store, queue: make(chan *Case, opts.Queue), log: opts.Logger}
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	o.opened = prometheus.NewCounter(prometheus.CounterOpts{Name: "riskd_cases_opened_total", Help: "Review cases opened (a retried event's case counts once)."})
	o.retried = prometheus.NewCounter(prometheus.CounterOpts{Name: "riskd_cases_reopened_total", Help: "Review decisions whose case was already open or resolved (retries, redeliveries, other instances)."})
	o.failed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "riskd_cases_open_failures_total", Help: "Review cases not opened, by reason: queue_full (the store fell behind), store (it failed), shutdown.",
	}, []string{"reason"})
	for _, r := range []string{"queue_full", "store", "shutdown"} {
		o.failed.WithLabelValues(r)
	}
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(o.opened, o.retried, o.failed)
	}
	return o
}

// Open queues c. It never blocks.
func (o *Opener) Open(c *Case) {
	select {
	case o.queue <- c:
	default:
		o.failed.WithLabelValues("queue_full").Inc()
		o.log.Error("review case dropped: the case store falls behind", "case", c.ID, "event_id", c.EventID)
	}
}

// Run writes queued cases until ctx ends.
func (o *Opener) Run(ctx context.Context) {
	for {
		select {
		case c := <-o.queue:
			o.write(ctx, c)
		case <-ctx.Done():
			return
		}
	}
}

// Drain writes the cases still queued once Run has returned, until ctx
// ends; those left then are counted and logged.
func (o *Opener) Drain(ctx context.Context) {
	for {
		select {
		case c := <-o.queue:
			if ctx.Err() != nil {
				n := 1 + len(o.queue)
				o.failed.WithLabelValues("shutdown").Add(float64(n))
				o.log.Error("review cases not opened at shutdown", "count", n)
				return
			}
			o.write(ctx, c)
		default:
			return
		}
	}
}

func (o *Opener) write(ctx context.Context, c *Case) {
	ok, err := o.store.Open(ctx, c)
	switch {
	case err != nil:
		o.failed.WithLabelValues("store").Inc()
		o.log.Error("review case not opened", "case", c.ID, "event_id", c.EventID, "err", err)
	case ok:
		o.opened.Inc()
	default:
		o.retried.Inc()
	}
}
