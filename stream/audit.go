package stream

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/riskd/riskd/engine"
	"github.com/riskd/riskd/internal/kafkaconn"
	"github.com/riskd/riskd/internal/logs"
)

// AuditOptions configure an AuditStream. Zero values take the defaults in
// the comments.
type AuditOptions struct {
	Brokers []string
	// Conn says how to connect to the brokers, as the consumer's;
	// default: plain TCP, no SASL.
	Conn *kafkaconn.Conn
	// Topic is where decisions go; default "risk.decisions", the topic the
	// Kafka path writes its decisions to, so one topic holds them all.
	Topic string
	// Buffer is how many decisions wait for the brokers at most; past it
	// new ones are dropped (and counted). Default 10,000: at 5,000
	// decisions a second, two seconds of brokers not answering.
	Buffer int
	// BatchSize is the most decisions one write carries. Default 500.
	BatchSize int
	// ShutdownTimeout bounds writing what is buffered once Run's context
	// ends. Default 10s.
	ShutdownTimeout time.Duration
	// Registerer receives the stream's metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// Logger reports write failures and drops; nil discards.
	Logger *slog.Logger
}

// dropReportEvery is how often drops are logged at most, with their count
// since the last report (the metric counts each).
const dropReportEvery = 10 * time.Second

// AuditStream writes the decisions answered over HTTP to the decisions
// topic, each with the header source: http, so that the topic holds every
// decision of every path and its retention is the audit period.
//
// The answer never waits for it: Record hands a copy of the decision to a
// buffer and returns; one goroutine (Run) owns the buffer's other end and
// writes what it holds in batches. When the brokers fall behind, the
// buffer fills and Record drops what does not fit, counted in
// riskd_audit_records_total{result="dropped"} and logged.
type AuditStream struct {
	opts    AuditOptions
	queue   chan kafka.Message
	writer  *kafka.Writer
	dropped atomic.Int64 // since the last report

	written    prometheus.Counter
	dropCount  prometheus.Counter
	replaced   prometheus.Counter
	tooLarge   prometheus.Counter
	writeError prometheus.Counter
}

// NewAuditStream prepares a stream; Run starts it.
func NewAuditStream(opts AuditOptions) *AuditStream {
	if opts.Topic == "" {
		opts.Topic = "risk.decisions"
	}
	if opts.Buffer <= 0 {
		opts.Buffer = 10000
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 500
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Conn == nil {
		opts.Conn = kafkaconn.Plain()
	}
	a := &AuditStream{opts: opts, queue: make(chan kafka.Message, opts.Buffer)}
	a.writer = &kafka.Writer{
		Addr:                   kafka.TCP(opts.Brokers...),
		Transport:              opts.Conn.Transport(""),
		Topic:                  opts.Topic,
		Balancer:               &kafka.Hash{}, // by event id, as the Kafka path's decisions
		RequiredAcks:           kafka.RequireAll,
		BatchSize:              opts.BatchSize,
		BatchTimeout:           time.Millisecond, // Run hands over whole batches: do not wait for more
		AllowAutoTopicCreation: true,
		MaxAttempts:            1, // Run retries with backoff, and counts it
		Logger:                 kafka.LoggerFunc(logs.Printf(opts.Logger, slog.LevelDebug, "kafka-go")),
		ErrorLogger:            kafka.LoggerFunc(logs.Printf(opts.Logger, slog.LevelWarn, "kafka-go")),
	}
	records := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "riskd_audit_records_total", Help: "HTTP decisions for the audit stream (the decisions topic), by result: written; dropped because the buffer was full; replaced (written as its id and the error: over the brokers' message size limit); too_large (dropped: even that was refused).",
	}, []string{"result"})
	a.written, a.dropCount = records.WithLabelValues("written"), records.WithLabelValues("dropped")
	a.replaced, a.tooLarge = records.WithLabelValues("replaced"), records.WithLabelValues("too_large")
	a.writeError = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "riskd_audit_write_errors_total", Help: "Writes of the audit stream to the decisions topic that failed and were retried.",
	})
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(records, a.writeError, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "riskd_audit_buffered_records", Help: "HTTP decisions waiting to be written to the decisions topic.",
		}, func() float64 { return float64(len(a.queue)) }))
	}
	return a
}

// Record queues d, answered as json, for the decisions topic; it never
// waits: when the buffer is full, d is dropped and counted.
func (a *AuditStream) Record(d *engine.Decision, json []byte) {
	// One copy holds the key and value: d's strings alias its buffers,
	// which the next request reuses.
	buf := make([]byte, 0, len(d.EventID)+len(json))
	buf = append(append(buf, d.EventID...), json...)
	m := kafka.Message{
		Key:   buf[:len(d.EventID):len(d.EventID)],
		Value: buf[len(d.EventID):],
		Headers: []kafka.Header{
			{Key: "ruleset", Value: []byte(d.Ruleset)},
			{Key: "version", Value: []byte(d.Version)},
			{Key: "source", Value: sourceHTTP},
		},
	}
	select {
	case a.queue <- m:
	default:
		a.dropCount.Inc()
		a.dropped.Add(1)
	}
}

var sourceHTTP = []byte("http")

// ErrAuditFull is Outcome's answer when the buffer is full.
var ErrAuditFull = errors.New("the decisions topic's buffer is full (the brokers fall behind)")

// Outcome queues an outcome record (a case resolution or a label) for the
// decisions topic under key, the event id, with the header source: its
// source ("review" for the console's). It never waits.
func (a *AuditStream) Outcome(key, record []byte, source string) error {
	m := kafka.Message{Key: bytes.Clone(key), Value: bytes.Clone(record), Headers: []kafka.Header{{Key: "source", Value: []byte(source)}}}
	select {
	case a.queue <- m:
		return nil
	default:
		a.dropCount.Inc()
		a.dropped.Add(1)
		return ErrAuditFull
	}
}

// Run writes what Record queues until ctx ends, then writes what is left
// within ShutdownTimeout and closes the writer. Call it once; stop
// recording (shut the HTTP servers down) before ending ctx, so nothing is
// queued after the last write.
func (a *AuditStream) Run(ctx context.Context) {
	defer a.writer.Close()
	lastReport := time.Now()
	batch := a.loop(ctx, &lastReport)
	drain, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.opts.ShutdownTimeout)
	defer cancel()
	for {
		if len(batch) == 0 {
			if batch = a.take(batch); len(batch) == 0 {
				break
			}
		}
		if !a.write(drain, batch, &lastReport) {
			lost := len(batch) + len(a.queue)
			a.dropCount.Add(float64(lost))
			a.dropped.Add(int64(lost))
			break
		}
		batch = batch[:0]
	}
	a.reportDrops(&lastReport, true)
}

// loop writes batches until ctx ends, and returns a batch it could not
// write before then.
func (a *AuditStream) loop(ctx context.Context, lastReport *time.Time) []kafka.Message {
	batch := make([]kafka.Message, 0, a.opts.BatchSize)
	for {
		select {
		case <-ctx.Done():
			return batch[:0]
		case m := <-a.queue:
			batch = a.take(append(batch[:0], m))
			if !a.write(ctx, batch, lastReport) {
				return batch
			}
		}
	}
}

// take appends to batch what is queued, up to a batch, without waiting:
// while a write is in flight decisions gather, so batches grow with the
// load and a quiet stream writes each decision at once.
func (a *AuditStream) take(batch []kafka.Message) []kafka.Message {
	for len(batch) < a.opts.BatchSize {
		select {
		case m := <-a.queue:
			batch = append(batch, m)
		default:
			return batch
		}
	}
	return batch
}

// write retries until the brokers acknowledge batch (true) or ctx ends.
// A batch refused as too large is written one decision at a time, and a
// decision refused alone is replaced by its id and the error, or dropped
// (see writeEach): one oversized decision must not hold the stream.
func (a *AuditStream) write(ctx context.Context, batch []kafka.Message, lastReport *time.Time) bool {
	backoff := newBackoff(backoffMax)
	retry := func(err error) bool {
		a.writeError.Inc()
		a.opts.Logger.Warn("audit stream: writing decisions to Kafka failed; retrying", "topic", a.opts.Topic, "decisions", len(batch), "err", err)
		return backoff.wait(ctx)
	}
	for {
		err := a.writer.WriteMessages(ctx, batch...)
		a.reportDrops(lastReport, false)
		switch {
		case err == nil:
			a.written.Add(float64(len(batch)))
			return true
		case ctx.Err() != nil:
			return false
		case tooLarge(err):
			a.writeError.Inc()
			written := len(batch)
			ok := writeEach(ctx, a.writer, batch, minimalDecision("decision"), func(m kafka.Message) {
				a.replaced.Inc()
				a.opts.Logger.Warn("audit stream: a decision over the brokers' size limit was replaced by its id and the error", "topic", a.opts.Topic, "event_id", string(m.Key))
			}, func(m kafka.Message) {
				written--
				a.tooLarge.Inc()
				a.opts.Logger.Error("audit stream: a decision over the brokers' size limit was dropped: even its id and the error were refused", "topic", a.opts.Topic, "event_id", string(m.Key), "bytes", recordSize(m))
			}, retry)
			if ok {
				a.written.Add(float64(written))
			}
			return ok
		case !retry(err):
			return false
		}
	}
}

// reportDrops logs the decisions dropped since the last report, at most
// every dropReportEvery unless final.
func (a *AuditStream) reportDrops(last *time.Time, final bool) {
	if !final && time.Since(*last) < dropReportEvery {
		return
	}
	if n := a.dropped.Swap(0); n > 0 {
		a.opts.Logger.Warn("audit stream behind: HTTP decisions dropped, not written to the decisions topic", "dropped", n, "buffer", a.opts.Buffer, "topic", a.opts.Topic)
		*last = time.Now()
	}
}
