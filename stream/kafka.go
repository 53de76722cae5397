// Package stream scores events from Kafka and writes decisions to it:
// the consumer (decisions, shadow verdicts and dead letters, at least
// once) and the audit stream of the decisions answered over HTTP.
package stream

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/riskd/riskd/engine"
	"github.com/riskd/riskd/internal/kafkaconn"
	"github.com/riskd/riskd/internal/logs"
	"github.com/riskd/riskd/readiness"
)

// KafkaOptions configure stream scoring. Zero values take the defaults in
// the comments.
type KafkaOptions struct {
	Brokers []string
	// Conn says how to connect to the brokers: TLS, SASL. Default:
	// plain TCP, no SASL.
	Conn           *kafkaconn.Conn
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
	// StoreTimeout is the feature store budget of one event on Kafka, in
	// place of the engine's (which is sized for a synchronous caller, a few
	// milliseconds). Default 1s: far above a healthy store call, so a busy
	// store is waited for rather than retried, yet short enough that a hung
	// call is abandoned and retried within a second. Negative: the engine's
	// own budget applies (for a store that never waits, such as the memory
	// store, this saves a timer per event).
	StoreTimeout time.Duration
	// Concurrency bounds the events the consumer scores at once, across
	// its partitions; within a partition, events of different message
	// keys are scored concurrently, each key's in offset order. A store
	// on the network (Redis) is bound by latency and needs many in
	// flight; the need is the store's, so the bound is the consumer's and
	// does not grow with the partitions a rebalance assigns. Default
	// DefaultKafkaConcurrency. While Kafka has a backlog, HTTP requests
	// to the same store queue behind up to this many events.
	Concurrency int
	// Degraded commits degraded decisions (features missing because the
	// store failed or ran out of budget), as HTTP answers them. Default
	// false: such an event is scored again with backoff until the store
	// answers, and its partition waits meanwhile; the events before it are
	// written and committed, nothing after it is. A degraded decision is
	// one whose event may never have been recorded, so committing it loses
	// history that later events' features should count.
	Degraded bool
	// ClientID names this consumer to the brokers, and so in its group:
	// the readiness check looks for it among the group's members.
	// Default "riskd-<hostname>-<random>", unique per process.
	ClientID string
	// Registerer receives the consumer's metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// Logger reports broker trouble; nil discards.
	Logger *slog.Logger
	// Review receives every review decision with its event, once decided
	// (both alias buffers reused after: it copies what it keeps); riskd
	// opens the case. Nil: none.
	Review func(d *engine.Decision, event []byte)
}

// backoffMax caps the wait between retries of a failing broker or store.
const backoffMax = 5 * time.Second

// DefaultKafkaStoreTimeout is KafkaOptions.StoreTimeout's default.
const DefaultKafkaStoreTimeout = time.Second

// DefaultKafkaConcurrency is KafkaOptions.Concurrency's default: the
// Redis store's batcher holds 4 batches of 64 events in flight, and this
// keeps them full. bench/kafka on Redis (6 partitions, two cores,
// 2026-11-29): 64 scored 9,500 events/s, 128 10,100, 256 10,700-10,900,
// 512 10,900, its events only waiting longer in the batcher's queue.
const DefaultKafkaConcurrency = 256

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
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultKafkaConcurrency
	}
	if o.ShutdownTimeout <= 0 {
		o.ShutdownTimeout = 10 * time.Second
	}
	if o.StoreTimeout == 0 {
		o.StoreTimeout = DefaultKafkaStoreTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Conn == nil {
		o.Conn = kafkaconn.Plain()
	}
	if o.ClientID == "" {
		host, _ := os.Hostname()
		var b [4]byte
		rand.Read(b[:])
		o.ClientID = "riskd-" + host + "-" + hex.EncodeToString(b[:])
	}
}

// Consumer scores the events topic in a consumer group, at least once:
// a partition's offset is committed only after the decisions (or dead
// letters) of that message and of every earlier one of the partition have
// been acknowledged by the brokers. Redelivery after a crash or rebalance
// is harmless: the store does not count an event id twice and answers it
// with the same features, so the decision is the same.
//
// A partition's events are scored concurrently across message keys (see
// KafkaOptions.Concurrency) and in offset order within a key: producers
// key by account, and events of different keys have no more order between
// them than events of different partitions. Their decisions are written,
// and offsets committed, in offset order.
//
// Unless KafkaOptions.Degraded is set, it never commits an event the
// store did not answer: such an event is scored again with backoff and its
// partition waits for it (see KafkaOptions.Degraded).
type Consumer struct {
	engine *engine.Engine
	opts   KafkaOptions
	score  engine.ScoreOptions
	reader *kafka.Reader
	// client asks the brokers about the group for the readiness checks,
	// over transport's connections.
	client    *kafka.Client
	transport *kafka.Transport
	decisions *kafka.Writer
	dlq       *kafka.Writer
	shadow    *kafka.Writer
	metrics   *kafkaMetrics
	// slots holds a token per goroutine scoring (KafkaOptions.Concurrency).
	slots chan struct{}
	// keySeed hashes message keys into chains.
	keySeed maphash.Seed
	// decisionPool holds the scoring goroutines' reusable Decisions.
	decisionPool sync.Pool
}

type kafkaMetrics struct {
	messages     *prometheus.CounterVec
	shadow       prometheus.Counter
	errors       *prometheus.CounterVec
	commit       prometheus.Histogram
	lag          *prometheus.GaugeVec
	storeRetries prometheus.Counter
	storeWaiting prometheus.Gauge
	oversized    *prometheus.CounterVec
}

// NewConsumer prepares a consumer; Run starts it.
func NewConsumer(e *engine.Engine, opts KafkaOptions) *Consumer {
	opts.defaults()
	c := &Consumer{engine: e, opts: opts, slots: make(chan struct{}, opts.Concurrency), keySeed: maphash.MakeSeed()}
	readerError := logs.Printf(opts.Logger, slog.LevelWarn, "kafka-go")
	c.decisionPool.New = func() any { return new(engine.Decision) }
	if opts.StoreTimeout > 0 {
		c.score.StoreTimeout = opts.StoreTimeout
	}
	c.metrics = &kafkaMetrics{
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "riskd_kafka_messages_total", Help: "Events consumed from Kafka, by result: decided or dead_lettered.",
		}, []string{"result"}),
		shadow: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "riskd_kafka_shadow_decisions_total", Help: "Shadow verdicts written to the shadow decisions topic.",
		}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "riskd_kafka_errors_total", Help: "Kafka operations that failed and were retried, by operation: fetch, write, commit, and reader (the consumer group client could not reach the brokers, join the group or fetch).",
		}, []string{"op"}),
		commit: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "riskd_kafka_commit_duration_seconds", Help: "Time to commit one batch's offsets.", Buckets: engine.LatencyBuckets,
		}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "riskd_kafka_consumer_lag", Help: "Messages of the partition after the last one decided, as of its latest fetch.",
		}, []string{"partition"}),
		storeRetries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "riskd_kafka_store_retries_total", Help: "Events scored again because the feature store failed or ran out of budget; their partition waited instead of committing a degraded decision.",
		}),
		storeWaiting: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "riskd_kafka_partitions_waiting_on_store", Help: "Partitions holding at an event the feature store has not answered yet: nothing after it is decided or committed meanwhile.",
		}),
		oversized: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "riskd_kafka_oversized_messages_total", Help: "Messages the brokers refused as over their size limit, by topic and result: replaced (by a smaller form: a dead letter cut, a decision by its id and the error) or dropped (even that was refused).",
		}, []string{"topic", "result"}),
	}
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
		Dialer:         opts.Conn.Dialer(opts.ClientID),
		// The reader retries a broker it cannot reach, or a group it
		// cannot join, by itself: FetchMessage only waits. What it
		// reports here is all there is to see of it, so it is a warning
		// and a counted error.
		ErrorLogger: kafka.LoggerFunc(func(f string, a ...any) {
			c.metrics.errors.WithLabelValues("reader").Inc()
			readerError(f, a...)
		}),
		Logger: kafka.LoggerFunc(logs.Printf(opts.Logger, slog.LevelDebug, "kafka-go")),
	})
	// The client and the writers share the transport's connections.
	c.transport = opts.Conn.Transport(opts.ClientID)
	c.client = &kafka.Client{Addr: kafka.TCP(opts.Brokers...), Transport: c.transport}
	writer := func(topic string) *kafka.Writer {
		return &kafka.Writer{
			Addr:                   kafka.TCP(opts.Brokers...),
			Transport:              c.transport,
			Topic:                  topic,
			Balancer:               &kafka.Hash{}, // by event id
			RequiredAcks:           kafka.RequireAll,
			BatchSize:              opts.BatchSize,
			BatchTimeout:           time.Millisecond, // a worker hands over whole batches: do not wait for more
			AllowAutoTopicCreation: true,
			MaxAttempts:            1, // the worker retries with backoff, and counts it
			Logger:                 kafka.LoggerFunc(logs.Printf(opts.Logger, slog.LevelDebug, "kafka-go")),
			ErrorLogger:            kafka.LoggerFunc(logs.Printf(opts.Logger, slog.LevelWarn, "kafka-go")),
		}
	}
	c.decisions, c.dlq, c.shadow = writer(opts.DecisionsTopic), writer(opts.DLQTopic), writer(opts.ShadowTopic)
	// Every operation's series exists from the start, at 0: an alert on
	// its rate needs one to compare with.
	for _, op := range []string{"fetch", "write", "commit", "reader"} {
		c.metrics.errors.WithLabelValues(op)
	}
	for _, topic := range []string{opts.DecisionsTopic, opts.ShadowTopic, opts.DLQTopic} {
		for _, result := range []string{"replaced", "dropped"} {
			c.metrics.oversized.WithLabelValues(topic, result)
		}
	}
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(c.metrics.messages, c.metrics.shadow, c.metrics.errors, c.metrics.commit, c.metrics.lag, c.metrics.storeRetries, c.metrics.storeWaiting, c.metrics.oversized)
	}
	return c
}

// Dependencies are what the consumer needs, for the readiness checks:
// "kafka", the brokers answer and know the events topic; "kafka_group",
// this consumer is a member of its group (it has joined, and not been
// dropped for missing heartbeats). A consumer outside its group fetches
// nothing while every call succeeds, so only asking the group tells.
func (c *Consumer) Dependencies() []readiness.Dependency {
	return []readiness.Dependency{
		{Name: "kafka", Check: c.checkBrokers},
		{Name: "kafka_group", Check: c.checkGroup},
	}
}

func (c *Consumer) checkBrokers(ctx context.Context) error {
	md, err := c.client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{c.opts.Topic}})
	if err != nil {
		return fmt.Errorf("brokers %s (%s): %w", strings.Join(c.opts.Brokers, ","), c.opts.Conn, err)
	}
	for _, t := range md.Topics {
		if t.Error != nil {
			return fmt.Errorf("events topic %s: %w", t.Name, t.Error)
		}
	}
	return nil
}

func (c *Consumer) checkGroup(ctx context.Context) error {
	resp, err := c.client.DescribeGroups(ctx, &kafka.DescribeGroupsRequest{GroupIDs: []string{c.opts.Group}})
	if err != nil {
		return fmt.Errorf("describing consumer group %s: %w", c.opts.Group, err)
	}
	// One group was asked about: the answer has it, or nothing.
	if len(resp.Groups) == 0 {
		return fmt.Errorf("consumer group %s: not described by the brokers", c.opts.Group)
	}
	g := resp.Groups[0]
	if g.Error != nil {
		return fmt.Errorf("describing consumer group %s: %w", c.opts.Group, g.Error)
	}
	for _, m := range g.Members {
		if m.ClientID == c.opts.ClientID {
			return nil
		}
	}
	return fmt.Errorf("%s is not a member of consumer group %s (group %s, %d members)", c.opts.ClientID, c.opts.Group, g.GroupState, len(g.Members))
}

// worker is one partition's scoring goroutine, fed in offset order.
type worker struct {
	in chan kafka.Message
	// highWater is the partition's high-water mark as of its latest fetch:
	// it keeps the lag gauge growing while the worker waits on the store.
	highWater atomic.Int64
	lag       prometheus.Gauge
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
	workers := map[int]*worker{}
	defer func() {
		// Stop order: no more messages to workers, workers finish and
		// commit, then the writers and the reader close.
		for _, w := range workers {
			close(w.in)
		}
		wg.Wait()
		c.decisions.Close()
		c.dlq.Close()
		c.shadow.Close()
		c.reader.Close()
		c.transport.CloseIdleConnections()
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
		w, ok := workers[m.Partition]
		if !ok {
			w = &worker{in: make(chan kafka.Message, c.opts.BatchSize), lag: c.metrics.lag.WithLabelValues(strconv.Itoa(m.Partition))}
			workers[m.Partition] = w
			wg.Add(1)
			go func() {
				defer wg.Done()
				c.partition(ctx, drain, w)
			}()
		}
		w.highWater.Store(m.HighWaterMark)
		select {
		case w.in <- m:
		case <-ctx.Done():
			// The worker is full and may itself have given up past the
			// shutdown deadline: what it did not take stays uncommitted.
			return
		}
	}
}

// pending is what a worker has decided and not yet written and committed.
type pending struct {
	out, dead, shadow []kafka.Message
	first, last       *kafka.Message // the earliest and latest messages decided
}

func (p *pending) reset() {
	p.out, p.dead, p.shadow, p.first, p.last = p.out[:0], p.dead[:0], p.shadow[:0], nil, nil
}

// add appends m's decision and shadow verdicts, or its dead letter.
func (p *pending) add(m *kafka.Message, o *outcome) {
	if o.err != nil {
		p.dead = append(p.dead, deadLetter(*m, o.err, deadLetterMaxBytes))
	} else {
		p.out = append(p.out, o.out)
		p.shadow = append(p.shadow, o.shadow...)
	}
	if p.first == nil {
		p.first = m
	}
	p.last = m
}

// batch is one partition's batch in flight: its messages in offset order,
// what scoring each came to, and the chains that keep each message key's
// events in order while different keys are scored concurrently.
type batch struct {
	msgs     []kafka.Message
	outcomes []outcome
	// heads are the chains' first messages, in offset order; next links a
	// chain to its key's next message (-1: none).
	heads, next []int32
	claimed     atomic.Int32     // heads taken by scoring goroutines
	tail        map[uint64]int32 // key hash -> its chain's last message, while chaining
}

// outcome is what scoring one message came to.
type outcome struct {
	state  outcomeState
	err    error           // the event is refused: a dead letter
	out    kafka.Message   // else its decision
	shadow []kafka.Message // and shadow verdicts
	id     string          // a degraded event's id, for the retry's log
}

type outcomeState uint8

const (
	unscored outcomeState = iota
	decided               // err or out is what to write
	degraded              // the store did not answer: nothing from here on is written until it does
)

// partition scores one partition's messages in batches and writes and
// commits each batch's decisions in offset order. It scores and writes
// under drain, which outlives run by the shutdown timeout; it stops
// waiting on a failing store as soon as run ends.
func (c *Consumer) partition(run, drain context.Context, w *worker) {
	b := &batch{msgs: make([]kafka.Message, 0, c.opts.BatchSize), tail: map[uint64]int32{}}
	var p pending
	var d engine.Decision // the retries'
	for m := range w.in {
		b.msgs = append(b.msgs[:0], m)
	fill: // take what is already waiting, up to a batch, without waiting
		for len(b.msgs) < c.opts.BatchSize {
			select {
			case m, ok := <-w.in:
				if !ok {
					break fill
				}
				b.msgs = append(b.msgs, m)
			default:
				break fill
			}
		}
		if !c.decide(run, drain, w, b, &p, &d) {
			return // shutting down past the deadline: leave it uncommitted
		}
	}
}

// decide scores b, then writes and commits its decisions in offset order;
// false if shutdown interrupted it. Unless KafkaOptions.Degraded, a
// degraded event holds the partition: what came before it is written and
// committed, it is scored again until the store answers, and only then
// does the rest follow.
func (c *Consumer) decide(run, drain context.Context, w *worker, b *batch, p *pending, d *engine.Decision) bool {
	n := len(b.msgs)
	b.outcomes = slices.Grow(b.outcomes[:0], n)[:n]
	clear(b.outcomes)
	c.scoreChains(drain, b, 0)
	p.reset()
	for i := range b.msgs {
		m, o := &b.msgs[i], &b.outcomes[i]
		if o.state == unscored { // drain ended while scoring
			c.scoreOne(drain, m, d, o)
		}
		if o.state == degraded {
			// The event may not be in the history: commit what came
			// before it, then hold the partition until the store
			// answers it.
			if !c.flush(drain, w, p) || !c.retry(run, drain, w, m, d, o) {
				return false
			}
			// Its key's later events waited for it; other events the
			// store failed are tried again now it answers.
			c.scoreChains(drain, b, i+1)
		}
		p.add(m, o)
	}
	return c.flush(drain, w, p)
}

// scoreChains scores b's messages from index from on that are not
// decided: one chain per message key, each scored in offset order by one
// goroutine and cut at a degraded event (what follows on that key waits
// for its retry), different chains concurrently. A goroutine holds one of
// the consumer's slots while it scores and is done before scoreChains
// returns; once ctx ends, what is left stays unscored.
func (c *Consumer) scoreChains(ctx context.Context, b *batch, from int) {
	c.chain(b, from)
	b.claimed.Store(0)
	var wg sync.WaitGroup
	for b.claimed.Load() < int32(len(b.heads)) {
		select {
		case c.slots <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return
		}
		wg.Go(func() {
			defer func() { <-c.slots }()
			d := c.decisionPool.Get().(*engine.Decision)
			defer c.decisionPool.Put(d)
			c.scoreClaimed(ctx, b, d)
		})
	}
	wg.Wait()
}

// scoreClaimed claims b's chains one at a time and scores each, in order,
// until none is left or ctx ends.
func (c *Consumer) scoreClaimed(ctx context.Context, b *batch, d *engine.Decision) {
	heads := int32(len(b.heads))
	for h := b.claimed.Add(1) - 1; h < heads; h = b.claimed.Add(1) - 1 {
		for i := b.heads[h]; i >= 0 && ctx.Err() == nil; i = b.next[i] {
			o := &b.outcomes[i]
			if o.state == degraded {
				c.metrics.storeRetries.Inc()
			}
			if c.scoreOne(ctx, &b.msgs[i], d, o); o.state == degraded {
				break
			}
		}
	}
}

// chain links b's messages from index from on that are not decided into
// one chain per message key, in offset order. Keys are told apart by
// hash: two keys that collide share a chain, which orders more than it
// must, never less. A message without a key is a chain of its own: its
// producer did not ask for an order (unkeyed messages are spread over the
// partitions anyway), and serialising them would score an unkeyed stream
// one event at a time.
func (c *Consumer) chain(b *batch, from int) {
	n := len(b.msgs)
	b.next = slices.Grow(b.next[:0], n)[:n]
	b.heads = b.heads[:0]
	clear(b.tail)
	for i := from; i < n; i++ {
		if b.outcomes[i].state == decided {
			continue
		}
		b.next[i] = -1
		key := b.msgs[i].Key
		if len(key) == 0 {
			b.heads = append(b.heads, int32(i))
			continue
		}
		h := maphash.Bytes(c.keySeed, key)
		if t, ok := b.tail[h]; ok {
			b.next[t] = int32(i)
		} else {
			b.heads = append(b.heads, int32(i))
		}
		b.tail[h] = int32(i)
	}
}

// scoreOne scores m into o, with d as scratch.
func (c *Consumer) scoreOne(ctx context.Context, m *kafka.Message, d *engine.Decision, o *outcome) {
	err := c.engine.Score(ctx, m.Value, c.score, d)
	switch {
	case err != nil:
		*o = outcome{state: decided, err: err}
	case d.Degraded && !c.opts.Degraded:
		*o = outcome{state: degraded, id: strings.Clone(d.EventID)} // d.EventID aliases d's buffer, which the next Score reuses
	default:
		*o = outcome{state: decided, out: decisionMessage(d), shadow: shadowMessages(d)}
		if d.CaseID != "" && c.opts.Review != nil {
			c.opts.Review(d, m.Value)
		}
	}
}

// decisionMessage is d as written to the decisions topic.
func decisionMessage(d *engine.Decision) kafka.Message {
	return kafka.Message{
		Key:   []byte(d.EventID),
		Value: d.AppendJSON(nil),
		Headers: []kafka.Header{
			{Key: "ruleset", Value: []byte(d.Ruleset)},
			{Key: "version", Value: []byte(d.Version)},
			{Key: "source", Value: sourceKafka},
		},
	}
}

var sourceKafka = []byte("kafka")

// shadowMessages are d's shadow verdicts as written to the shadow topic.
func shadowMessages(d *engine.Decision) []kafka.Message {
	if len(d.Shadows) == 0 {
		return nil
	}
	out := make([]kafka.Message, len(d.Shadows))
	for i, v := range d.Shadows {
		out[i] = kafka.Message{
			Key:   []byte(d.EventID),
			Value: d.AppendShadowJSON(nil, i),
			Headers: []kafka.Header{
				{Key: "ruleset", Value: []byte(v.Ruleset)},
				{Key: "version", Value: []byte(v.Version)},
				{Key: "live_ruleset", Value: []byte(d.Ruleset)},
			},
		}
	}
	return out
}

// flush writes what p holds, commits up to p.last and empties p; false if
// ctx ended before the brokers acknowledged the writes.
func (c *Consumer) flush(ctx context.Context, w *worker, p *pending) bool {
	if p.last == nil {
		return true
	}
	// Until written, nothing from the batch's first message on is
	// decided: the lag says so while a write is retried.
	w.lag.Set(float64(max(0, w.highWater.Load()-p.first.Offset)))
	if !c.write(ctx, c.decisions, p.out) || !c.write(ctx, c.shadow, p.shadow) || !c.write(ctx, c.dlq, p.dead) {
		return false
	}
	c.metrics.messages.WithLabelValues("decided").Add(float64(len(p.out)))
	c.metrics.messages.WithLabelValues("dead_lettered").Add(float64(len(p.dead)))
	c.metrics.shadow.Add(float64(len(p.shadow)))
	c.commit(ctx, *p.last)
	w.lag.Set(float64(max(0, w.highWater.Load()-p.last.Offset-1)))
	p.reset()
	return true
}

// retry scores m again, with backoff, until the store answers it (o is
// then decided) or run ends (false). The store records an event id once
// and answers a retried id with its first answer's features, so scoring
// again is safe whether or not the failed call reached it. The policy
// reloaded meanwhile may refuse the event: o is then a dead letter.
func (c *Consumer) retry(run, drain context.Context, w *worker, m *kafka.Message, d *engine.Decision, o *outcome) bool {
	c.metrics.storeWaiting.Inc()
	defer c.metrics.storeWaiting.Dec()
	backoff := newBackoff(backoffMax)
	for attempt := 1; ; attempt++ {
		// Nothing from m on is decided: the lag counts m itself.
		w.lag.Set(float64(max(0, w.highWater.Load()-m.Offset)))
		c.opts.Logger.Warn("feature store failed or ran out of budget; the partition waits and scores the event again",
			"partition", m.Partition, "offset", m.Offset, "event_id", o.id, "attempt", attempt, "retry_in", backoff.next)
		if !backoff.wait(run) {
			return false
		}
		c.metrics.storeRetries.Inc()
		if c.scoreOne(drain, m, d, o); o.state == decided {
			return true
		}
		if run.Err() != nil {
			return false
		}
	}
}

// deadLetterMaxBytes is the most of a refused event a dead letter keeps.
// An event is refused for being over -max-event-bytes among other
// things, and a copy whole could be over the brokers' own message limit:
// a dead letter that cannot be written would hold its partition for good.
const deadLetterMaxBytes = 64 << 10

// deadLetter is m refused for err: its value (cut to max bytes, said in
// the "truncated" header) with headers naming the error and the source.
func deadLetter(m kafka.Message, err error, max int) kafka.Message {
	value := m.Value
	headers := []kafka.Header{
		{Key: "error", Value: cutBytes([]byte(err.Error()), maxHeaderBytes)},
		{Key: "source_topic", Value: []byte(m.Topic)},
		{Key: "source_partition", Value: []byte(strconv.Itoa(m.Partition))},
		{Key: "source_offset", Value: []byte(strconv.FormatInt(m.Offset, 10))},
		{Key: "original_bytes", Value: []byte(strconv.Itoa(len(m.Value)))},
	}
	if len(value) > max {
		value = value[:max]
		headers = append(headers, kafka.Header{Key: "truncated", Value: []byte("true")})
	}
	return kafka.Message{Key: m.Key, Value: value, Headers: headers}
}

// tooLarge reports whether a write failed for a message over the
// brokers' size limit.
func tooLarge(err error) bool {
	if errors.Is(err, kafka.MessageSizeTooLarge) {
		return true
	}
	var we kafka.WriteErrors
	if errors.As(err, &we) {
		for _, e := range we {
			if errors.Is(e, kafka.MessageSizeTooLarge) {
				return true
			}
		}
	}
	return false
}

// write retries until the brokers acknowledge msgs or ctx ends (false).
// Messages the brokers refuse as too large are written one by one, shrunk
// or dropped (see writeEach): the partition moves on.
func (c *Consumer) write(ctx context.Context, w *kafka.Writer, msgs []kafka.Message) bool {
	if len(msgs) == 0 {
		return true
	}
	backoff := newBackoff(backoffMax)
	retry := func(err error) bool {
		c.metrics.errors.WithLabelValues("write").Inc()
		c.opts.Logger.Warn("kafka write failed; retrying", "topic", w.Topic, "err", err)
		return backoff.wait(ctx)
	}
	for {
		err := w.WriteMessages(ctx, msgs...)
		switch {
		case err == nil:
			return true
		case ctx.Err() != nil:
			return false
		case tooLarge(err):
			c.metrics.errors.WithLabelValues("write").Inc()
			smaller := minimalDecision("decision")
			switch w {
			case c.dlq:
				smaller = shrinkDeadLetter
			case c.shadow:
				smaller = minimalDecision("shadow verdict")
			}
			return writeEach(ctx, w, msgs, smaller, func(m kafka.Message) {
				c.metrics.oversized.WithLabelValues(w.Topic, "replaced").Inc()
				c.opts.Logger.Warn("kafka: a message over the brokers' size limit was replaced by a smaller form", "topic", w.Topic, "key", string(cutBytes(m.Key, maxShrunkKeyBytes)))
			}, func(m kafka.Message) {
				c.metrics.oversized.WithLabelValues(w.Topic, "dropped").Inc()
				c.opts.Logger.Error("kafka: a message over the brokers' size limit was dropped: even its smallest form was refused", "topic", w.Topic, "key", string(cutBytes(m.Key, maxShrunkKeyBytes)), "bytes", recordSize(m))
			}, retry)
		case !retry(err):
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
