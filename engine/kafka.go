package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
)

// KafkaOptions configure stream scoring. Zero values take the defaults in
// the comments.
type KafkaOptions struct {
	Brokers        []string
	Topic          string // events; default "risk.events"
	Group          string // consumer group; default "riskd"
	DecisionsTopic string // default "risk.decisions"
	DLQTopic       string // dead letters; default "risk.events.dlq"
	// ShadowTopic receives the shadow verdicts (challengers, and champions
	// where a split let a challenger decide); default DecisionsTopic+".shadow".
	ShadowTopic string
	// BatchSize is how many events of one partition are scored before
	// their decisions are written and their offsets committed together.
	// Default 500.
	BatchSize int
	// ShutdownTimeout bounds the drain after Run's context is cancelled:
	// in-flight batches are finished, written and committed within it, or
	// left uncommitted for redelivery. Default 10s.
	ShutdownTimeout time.Duration
	// Registerer receives the consumer's metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// Logger reports broker trouble; nil discards.
	Logger *slog.Logger
}

// backoffMax caps the wait between retries of a failing broker.
const backoffMax = 5 * time.Second

func (o *KafkaOptions) defaults() {
	if o.Topic == "" {
		o.Topic = "risk.events"
	}
	if o.Group == "" {
		o.Group = "riskd"
	}
	if o.DecisionsTopic == "" {
		o.DecisionsTopic = "risk.decisions"
	}
	if o.DLQTopic == "" {
		o.DLQTopic = "risk.events.dlq"
	}
	if o.ShadowTopic == "" {
		o.ShadowTopic = o.DecisionsTopic + ".shadow"
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 500
	}
	if o.ShutdownTimeout <= 0 {
		o.ShutdownTimeout = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Consumer scores the events topic in a consumer group, at least once:
// a partition's offset is committed only after the decisions (or dead
// letters) of that message and of every earlier one of the partition have
// been acknowledged by the brokers. Redelivery after a crash or rebalance
// is harmless: the store does not count an event id twice and answers it
// with the same features, so the decision is the same.
type Consumer struct {
	engine    *Engine
	opts      KafkaOptions
	reader    *kafka.Reader
	decisions *kafka.Writer
	dlq       *kafka.Writer
	shadow    *kafka.Writer
	metrics   *kafkaMetrics
}

type kafkaMetrics struct {
	messages *prometheus.CounterVec
	shadow   prometheus.Counter
	errors   *prometheus.CounterVec
	commit   prometheus.Histogram
	lag      *prometheus.GaugeVec
}

// NewConsumer prepares a consumer; Run starts it.
func NewConsumer(e *Engine, opts KafkaOptions) *Consumer {
	opts.defaults()
	c := &Consumer{engine: e, opts: opts}
	c.reader = kafka.NewReader(kafka.ReaderConfig{
		Brokers: opts.Brokers,
		GroupID: opts.Group,
		Topic:   opts.Topic,
		// Offsets are committed by the partition workers once decisions
		// are written, never by a timer.
		CommitInterval: 0,
		StartOffset:    kafka.FirstOffset,
		MaxWait:        250 * time.Millisecond,
		MaxBytes:       16 << 20,
		QueueCapacity:  opts.BatchSize,
		ReadBackoffMax: backoffMax,
		ErrorLogger:    kafka.LoggerFunc(func(f string, a ...any) { opts.Logger.Debug("kafka reader: " + fmt.Sprintf(f, a...)) }),
	})
	writer := func(topic string) *kafka.Writer {
		return &kafka.Writer{
			Addr:                   kafka.TCP(opts.Brokers...),
			Topic:                  topic,
			Balancer:               &kafka.Hash{}, // by event id
			RequiredAcks:           kafka.RequireAll,
			BatchSize:              opts.BatchSize,
			BatchTimeout:           time.Millisecond, // a worker hands over whole batches: do not wait for more
			AllowAutoTopicCreation: true,
			MaxAttempts:            1, // the worker retries with backoff, and counts it
		}
	}
	c.decisions, c.dlq, c.shadow = writer(opts.DecisionsTopic), writer(opts.DLQTopic), writer(opts.ShadowTopic)
	c.metrics = &kafkaMetrics{
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "riskd_kafka_messages_total", Help: "Events consumed from Kafka, by result: decided or dead_lettered.",
		}, []string{"result"}),
		shadow: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "riskd_kafka_shadow_decisions_total", Help: "Shadow verdicts written to the shadow decisions topic.",
		}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "riskd_kafka_errors_total", Help: "Kafka operations that failed and were retried, by operation: fetch, write, commit.",
		}, []string{"op"}),
		commit: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "riskd_kafka_commit_duration_seconds", Help: "Time to commit one batch's offsets.", Buckets: latencyBuckets,
		}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "riskd_kafka_consumer_lag", Help: "Messages of the partition after the last one decided, as of its fetch.",
		}, []string{"partition"}),
	}
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(c.metrics.messages, c.metrics.shadow, c.metrics.errors, c.metrics.commit, c.metrics.lag)
	}
	return c
}

// Run consumes until ctx is cancelled, then stops fetching, finishes the
// batches in flight, writes, commits and closes, within ShutdownTimeout.
// Broker trouble is retried, never returned.
func (c *Consumer) Run(ctx context.Context) {
	// drain outlives ctx by the shutdown timeout: workers use it to finish
	// what they hold after fetching stopped.
	drain, cancelDrain := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelDrain()
	stopTimer := context.AfterFunc(ctx, func() {
		time.AfterFunc(c.opts.ShutdownTimeout, cancelDrain)
	})
	defer stopTimer()

	var wg sync.WaitGroup
	workers := map[int]chan kafka.Message{}
	defer func() {
		// Stop order: no more messages to workers, workers finish and
		// commit, then the writers and the reader close.
		for _, ch := range workers {
			close(ch)
		}
		wg.Wait()
		c.decisions.Close()
		c.dlq.Close()
		c.shadow.Close()
		c.reader.Close()
	}()
	backoff := newBackoff(backoffMax)
	for {
		m, err := c.reader.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			c.metrics.errors.WithLabelValues("fetch").Inc()
			c.opts.Logger.Warn("kafka fetch failed; retrying", "err", err)
			if !backoff.wait(ctx) {
				return
			}
			continue
		}
		backoff.reset()
		ch, ok := workers[m.Partition]
		if !ok {
			ch = make(chan kafka.Message, c.opts.BatchSize)
			workers[m.Partition] = ch
			wg.Add(1)
			go func() {
				defer wg.Done()
				c.partition(drain, ch)
			}()
		}
		select {
		case ch <- m:
		case <-ctx.Done():
			// The worker is full and may itself have given up past the
			// shutdown deadline: what it did not take stays uncommitted.
			return
		}
	}
}

// partition scores one partition's messages in order, in batches.
func (c *Consumer) partition(ctx context.Context, in <-chan kafka.Message) {
	batch := make([]kafka.Message, 0, c.opts.BatchSize)
	var out, dead, shadow []kafka.Message
	var d Decision
	for m := range in {
		batch = append(batch[:0], m)
	fill: // take what is already waiting, up to a batch, without waiting
		for len(batch) < c.opts.BatchSize {
			select {
			case m, ok := <-in:
				if !ok {
					break fill
				}
				batch = append(batch, m)
			default:
				break fill
			}
		}
		out, dead, shadow = out[:0], dead[:0], shadow[:0]
		for _, m := range batch {
			if err := c.engine.Score(ctx, m.Value, ScoreOptions{}, &d); err != nil {
				dead = append(dead, deadLetter(m, err))
				continue
			}
			out = append(out, kafka.Message{
				Key:   []byte(d.EventID),
				Value: d.AppendJSON(nil),
				Headers: []kafka.Header{
					{Key: "ruleset", Value: []byte(d.Ruleset)},
					{Key: "version", Value: []byte(d.Version)},
				},
			})
			for i, v := range d.Shadows {
				shadow = append(shadow, kafka.Message{
					Key:   []byte(d.EventID),
					Value: d.AppendShadowJSON(nil, i),
					Headers: []kafka.Header{
						{Key: "ruleset", Value: []byte(v.Ruleset)},
						{Key: "version", Value: []byte(v.Version)},
						{Key: "live_ruleset", Value: []byte(d.Ruleset)},
					},
				})
			}
		}
		if !c.write(ctx, c.decisions, out) || !c.write(ctx, c.shadow, shadow) || !c.write(ctx, c.dlq, dead) {
			return // shutting down past the deadline: leave it uncommitted
		}
		c.metrics.messages.WithLabelValues("decided").Add(float64(len(out)))
		c.metrics.messages.WithLabelValues("dead_lettered").Add(float64(len(dead)))
		c.metrics.shadow.Add(float64(len(shadow)))
		last := batch[len(batch)-1]
		c.commit(ctx, last)
		c.metrics.lag.WithLabelValues(strconv.Itoa(last.Partition)).Set(float64(max(0, last.HighWaterMark-last.Offset-1)))
	}
}

func deadLetter(m kafka.Message, err error) kafka.Message {
	return kafka.Message{
		Key:   m.Key,
		Value: m.Value,
		Headers: []kafka.Header{
			{Key: "error", Value: []byte(err.Error())},
			{Key: "source_topic", Value: []byte(m.Topic)},
			{Key: "source_partition", Value: []byte(strconv.Itoa(m.Partition))},
			{Key: "source_offset", Value: []byte(strconv.FormatInt(m.Offset, 10))},
		},
	}
}

// write retries until the brokers acknowledge msgs or ctx ends (false).
func (c *Consumer) write(ctx context.Context, w *kafka.Writer, msgs []kafka.Message) bool {
	if len(msgs) == 0 {
		return true
	}
	backoff := newBackoff(backoffMax)
	for {
		err := w.WriteMessages(ctx, msgs...)
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		c.metrics.errors.WithLabelValues("write").Inc()
		c.opts.Logger.Warn("kafka write failed; retrying", "topic", w.Topic, "err", err)
		if !backoff.wait(ctx) {
			return false
		}
	}
}

// commit commits up to and including m. A commit refused after a
// rebalance gives the partition to another consumer, which is told to
// start again from the last commit: the redelivered events score the same.
func (c *Consumer) commit(ctx context.Context, m kafka.Message) {
	backoff := newBackoff(backoffMax)
	for attempt := 1; ; attempt++ {
		start := time.Now()
		err := c.reader.CommitMessages(ctx, m)
		if err == nil {
			c.metrics.commit.Observe(time.Since(start).Seconds())
			return
		}
		c.metrics.errors.WithLabelValues("commit").Inc()
		if ctx.Err() != nil || attempt == 5 || errors.Is(err, kafka.RebalanceInProgress) {
			c.opts.Logger.Warn("kafka commit failed; the batch will be redelivered", "partition", m.Partition, "offset", m.Offset, "err", err)
			return
		}
		if !backoff.wait(ctx) {
			return
		}
	}
}

// backoff doubles from 50ms to max between attempts.
type backoff struct {
	next, max time.Duration
}

func newBackoff(max time.Duration) *backoff { return &backoff{next: 50 * time.Millisecond, max: max} }

func (b *backoff) reset() { b.next = 50 * time.Millisecond }

// wait sleeps the next interval; false if ctx ended first.
func (b *backoff) wait(ctx context.Context) bool {
	t := time.NewTimer(b.next)
	defer t.Stop()
	b.next = min(2*b.next, b.max)
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
