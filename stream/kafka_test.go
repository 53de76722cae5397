package stream_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/riskd/riskd/engine"
	"github.com/riskd/riskd/features"
	"github.com/riskd/riskd/internal/enginetest"
	"github.com/riskd/riskd/internal/poll"
	"github.com/riskd/riskd/memstore"
	"github.com/riskd/riskd/stream"
)

const (
	eventsTopic    = "risk.events"
	decisionsTopic = "risk.decisions"
	dlqTopic       = "risk.events.dlq"
)

func newBroker(t *testing.T, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	opts = append([]kfake.Opt{kfake.NumBrokers(1), kfake.SeedTopics(3, eventsTopic, decisionsTopic, decisionsTopic+".shadow", dlqTopic)}, opts...)
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func produce(t *testing.T, addrs []string, msgs ...kafka.Message) {
	t.Helper()
	w := &kafka.Writer{Addr: kafka.TCP(addrs...), Topic: eventsTopic, Balancer: &kafka.Hash{}, BatchTimeout: time.Millisecond, RequiredAcks: kafka.RequireAll}
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
}

func cardEvents(prefix string, n int) []kafka.Message {
	var out []kafka.Message
	for i := range n {
		id := fmt.Sprintf("%s-%d", prefix, i)
		// One account per partition key, so order per key is checkable.
		out = append(out, kafka.Message{Key: []byte(fmt.Sprint("acc-", i%5)), Value: fmt.Appendf(nil,
			`{"id":%q,"type":"checkout","ts":%d,"account_id":"acc-%d","card_id":"card-1","amount":10}`, id, 1780000000000+i*1000, i%5)})
	}
	return out
}

// consume reads topic from the start until want messages or the deadline.
func consume(t *testing.T, addrs []string, topic string, want int) []kafka.Message {
	t.Helper()
	var out []kafka.Message
	consumeUntil(t, addrs, topic, func(m kafka.Message) bool {
		out = append(out, m)
		return len(out) >= want
	})
	return out
}

// consumeUntil reads topic from the start until done says so.
func consumeUntil(t *testing.T, addrs []string, topic string, done func(kafka.Message) bool) {
	t.Helper()
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: addrs, Topic: topic, GroupID: fmt.Sprintf("check-%d", time.Now().UnixNano()), StartOffset: kafka.FirstOffset, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for n := 1; ; n++ {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			t.Fatalf("reading %s: stopped after %d messages: %v", topic, n-1, err)
		}
		if done(m) {
			return
		}
	}
}

func runConsumer(t *testing.T, e *engine.Engine, addrs []string) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c := stream.NewConsumer(e, stream.KafkaOptions{Brokers: addrs, BatchSize: 50})
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	return func() {
		cancel()
		<-done
	}
}

func TestKafkaHappyPath(t *testing.T) {
	broker := newBroker(t)
	addrs := broker.ListenAddrs()
	e := engine.New(enginetest.Example(t), engine.Options{})
	stop := runConsumer(t, e, addrs)
	defer stop()
	const n = 200
	produce(t, addrs, cardEvents("h", n)...)
	got := consume(t, addrs, decisionsTopic, n)
	seen := map[string]bool{}
	for _, m := range got {
		var d struct {
			EventID  string `json:"event_id"`
			Decision string `json:"decision"`
			Ruleset  string `json:"ruleset"`
		}
		if err := json.Unmarshal(m.Value, &d); err != nil {
			t.Fatalf("decision %s: %v", m.Value, err)
		}
		if string(m.Key) != d.EventID || d.Ruleset != "checkout" {
			t.Fatalf("decision keyed %q: %s", m.Key, m.Value)
		}
		var headers []string
		for _, h := range m.Headers {
			headers = append(headers, h.Key+"="+string(h.Value))
		}
		if strings.Join(headers, ",") != "ruleset=checkout,version=2026-11-25.1,source=kafka" {
			t.Fatalf("headers %v", headers)
		}
		seen[d.EventID] = true
	}
	if len(seen) != n {
		t.Fatalf("%d distinct events decided, want %d", len(seen), n)
	}
}

func runConsumerWith(t *testing.T, e *engine.Engine, opts stream.KafkaOptions) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c := stream.NewConsumer(e, opts)
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	return func() {
		cancel()
		<-done
	}
}

func header(m kafka.Message, key string) string {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

func TestKafkaDeadLetters(t *testing.T) {
	broker := newBroker(t)
	addrs := broker.ListenAddrs()
	e := engine.New(enginetest.Example(t), engine.Options{MaxEventBytes: 512})
	defer runConsumer(t, e, addrs)()
	bad := []string{
		`{"id":"x","type":"checkout",`,
		`{"type":"checkout"}`,
		`{"id":"big","type":"checkout","pad":"` + strings.Repeat("x", 600) + `"}`,
		`{"id":"str","type":"checkout","card_id":"c","amount":"950"}`,
	}
	var msgs []kafka.Message
	for i := range 30 {
		msgs = append(msgs, cardEvents(fmt.Sprint("d", i), 1)...)
		if i%8 == 0 {
			msgs = append(msgs, kafka.Message{Key: []byte("k"), Value: []byte(bad[i/8])})
		}
	}
	produce(t, addrs, msgs...)
	consume(t, addrs, decisionsTopic, 30)
	dead := consume(t, addrs, dlqTopic, 4)
	wantErr := map[string]string{
		bad[0]: "invalid JSON: cannot parse JSON",
		bad[1]: `missing required field "id"`,
		bad[2]: "over the limit of 512 bytes",
		bad[3]: `field "amount": want number, got string "950"`,
	}
	for _, m := range dead {
		want, ok := wantErr[string(m.Value)]
		if !ok {
			t.Fatalf("unexpected dead letter %q", m.Value)
		}
		if !strings.Contains(header(m, "error"), want) || header(m, "source_topic") != eventsTopic ||
			header(m, "source_partition") == "" || header(m, "source_offset") == "" {
			t.Errorf("dead letter %q headers %v", m.Value, m.Headers)
		}
	}
}

// TestKafkaCrashMidStream cancels a consumer with no time to drain while
// it works, then starts another in the same group: every event gets a
// decision and the card's history counts each event once.
func TestKafkaCrashMidStream(t *testing.T) {
	broker := newBroker(t)
	addrs := broker.ListenAddrs()
	// A store that takes a millisecond keeps the consumer busy long enough
	// to be caught in the middle.
	e := engine.New(enginetest.Example(t), engine.Options{Store: slowStore{memstore.New(memstore.Options{})}})
	const n = 3000
	produce(t, addrs, cardEvents("c", n)...)
	reg := prometheus.NewRegistry()
	crash := runConsumerWith(t, e, stream.KafkaOptions{Brokers: addrs, BatchSize: 20, ShutdownTimeout: time.Nanosecond, Registerer: reg})
	consume(t, addrs, decisionsTopic, 100) // it is working
	crash()
	if got := decidedCount(reg); got >= n {
		t.Fatalf("the first consumer decided all %v events before the crash: nothing mid-stream was tested", got)
	}
	defer runConsumerWith(t, e, stream.KafkaOptions{Brokers: addrs, BatchSize: 20})()
	decided, total := map[string]bool{}, 0
	consumeUntil(t, addrs, decisionsTopic, func(m kafka.Message) bool {
		decided[string(m.Key)] = true
		total++
		return len(decided) == n
	})
	t.Logf("%d decisions for %d events: %d written twice (decided, not committed, redelivered)", total, n, total-n)
	d := enginetest.Score(t, e, fmt.Sprintf(`{"id":"final","type":"checkout","ts":%d,"account_id":"acc-x","card_id":"card-1","amount":10}`, 1780000000000+n*1000))
	if got := enginetest.Feature(d, "card_txn_count_24h"); got.Num != n {
		t.Fatalf("card_txn_count_24h = %v after %d events and a crash, want %d (each counted once)", got.Num, n, n)
	}
}

// decidedCount reads riskd_kafka_messages_total{result="decided"}.
func decidedCount(reg *prometheus.Registry) float64 {
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() == "riskd_kafka_messages_total" {
			for _, m := range mf.GetMetric() {
				if m.GetLabel()[0].GetValue() == "decided" {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

type slowStore struct{ features.Store }

func (s slowStore) Observe(ctx context.Context, obs *features.Observation) error {
	time.Sleep(time.Millisecond)
	return s.Store.Observe(ctx, obs)
}

// TestKafkaTwoConsumersShareThePartitions runs two consumers in one group
// on one store: both take partitions, every event is decided once counted.
func TestKafkaTwoConsumersShareThePartitions(t *testing.T) {
	broker := newBroker(t)
	addrs := broker.ListenAddrs()
	p := enginetest.Example(t)
	store := memstore.New(memstore.Options{})
	regs := []*prometheus.Registry{prometheus.NewRegistry(), prometheus.NewRegistry()}
	for _, reg := range regs {
		e := engine.New(p, engine.Options{Store: store})
		defer runConsumerWith(t, e, stream.KafkaOptions{Brokers: addrs, BatchSize: 10, Registerer: reg})()
	}
	decided := decidedCount
	deadline := time.Now().Add(30 * time.Second)
	total := 0
	for round := 0; decided(regs[0]) == 0 || decided(regs[1]) == 0; round++ {
		if time.Now().After(deadline) {
			t.Fatalf("after %d events, decided: %v and %v: one consumer got no partition", total, decided(regs[0]), decided(regs[1]))
		}
		produce(t, addrs, cardEvents(fmt.Sprint("two", round), 30)...)
		total += 30
		consume(t, addrs, decisionsTopic, total)
	}
}

// TestKafkaBrokerRestart takes the broker away and brings a new one up on
// the same address: the consumer retries with backoff meanwhile and
// resumes by itself.
func TestKafkaBrokerRestart(t *testing.T) {
	broker := newBroker(t)
	addrs := broker.ListenAddrs()
	port := addrs[0][strings.LastIndex(addrs[0], ":")+1:]
	reg := prometheus.NewRegistry()
	e := engine.New(enginetest.Example(t), engine.Options{})
	defer runConsumerWith(t, e, stream.KafkaOptions{Brokers: addrs, BatchSize: 10, Registerer: reg})()
	produce(t, addrs, cardEvents("before", 20)...)
	consume(t, addrs, decisionsTopic, 20)

	broker.Close()
	p, _ := strconv.Atoi(port)
	var again *kfake.Cluster
	var err error
	poll.Wait{Every: 50 * time.Millisecond, Explain: func() string { return err.Error() }}.Until(t, fmt.Sprintf("the broker to restart on port %d", p), func() bool {
		again, err = kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(p), kfake.SeedTopics(3, eventsTopic, decisionsTopic, decisionsTopic+".shadow", dlqTopic))
		return err == nil
	})
	defer again.Close()
	produce(t, addrs, cardEvents("after", 20)...)
	for _, m := range consume(t, addrs, decisionsTopic, 20) {
		if !strings.HasPrefix(string(m.Key), "after-") {
			t.Fatalf("decision %s on the new broker", m.Key)
		}
	}
}

// TestKafkaOversizedDeadLetterDoesNotHoldThePartition: a refused event
// whose copy is over the brokers' message limit is dead-lettered cut
// down (its headers say so), and the events after it are decided.
func TestKafkaOversizedDeadLetterDoesNotHoldThePartition(t *testing.T) {
	broker := newBroker(t, kfake.BrokerConfigs(map[string]string{"message.max.bytes": "2048"}))
	addrs := broker.ListenAddrs()
	e := engine.New(enginetest.Example(t), engine.Options{MaxEventBytes: 512})
	defer runConsumer(t, e, addrs)()
	big := `{"id":"big","type":"checkout","pad":"` + strings.Repeat("x", 1850) + `"}`
	// One partition, the big one first; produced apart, as the brokers
	// limit a batch too.
	produce(t, addrs, kafka.Message{Key: []byte("acc-0"), Value: []byte(big)})
	after := cardEvents("after", 10)
	for i := range after {
		after[i].Key = []byte("acc-0")
	}
	produce(t, addrs, after...)
	consume(t, addrs, decisionsTopic, 10)
	dead := consume(t, addrs, dlqTopic, 1)[0]
	if len(dead.Value) != 1<<10 || header(dead, "truncated") != "true" || header(dead, "original_bytes") != strconv.Itoa(len(big)) ||
		!strings.Contains(header(dead, "error"), "over the limit of 512 bytes") {
		t.Errorf("dead letter of %d bytes, headers %v", len(dead.Value), dead.Headers)
	}
}
