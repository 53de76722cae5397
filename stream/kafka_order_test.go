package stream_test

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/riskd/riskd/engine"
	"github.com/riskd/riskd/features"
	"github.com/riskd/riskd/internal/kafkatest"
	"github.com/riskd/riskd/internal/metrictest"
	"github.com/riskd/riskd/internal/poll"
	"github.com/riskd/riskd/memstore"
	"github.com/riskd/riskd/rules"
	"github.com/riskd/riskd/stream"
)

// countPolicy scores each checkout with its account's count of earlier
// checkouts in the hour: a decision's score is the number of its key's
// events scored before it, so it shows the order they were scored in.
func countPolicy(t *testing.T) *rules.Policy {
	t.Helper()
	p, err := rules.Load(fstest.MapFS{
		"features.yaml": {Data: []byte(`features:
  - {name: account_count_1h, kind: count, key: account_id, window: 1h}
`)},
		"checkout.yaml": {Data: []byte(`name: checkout
version: "order-1"
event_types: [checkout]
thresholds: {step_up: 1000000, block: 2000000}
rules:
  - id: account_count
    when: features.account_count_1h >= 0
    score: "features.account_count_1h"
`)},
	}, "p")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// orderEvent is one produced event and the score it must be decided
// with: its position among its key's events.
type orderEvent struct {
	id, key string
	want    int64
}

// orderEvents makes n checkouts, one a second, over keys accounts in a
// random order (the message key is the account); every unkeyed-th event
// (0: none) has no message key and an account of its own.
func orderEvents(n, keys, unkeyed int) ([]orderEvent, []kafka.Message) {
	rng := rand.New(rand.NewPCG(7, 11))
	seen := map[string]int64{}
	evs := make([]orderEvent, n)
	msgs := make([]kafka.Message, n)
	for i := range evs {
		id := fmt.Sprint("o-", i)
		account, key := fmt.Sprint("acc-", rng.IntN(keys)), ""
		if unkeyed > 0 && i%unkeyed == 0 {
			account = "solo-" + id
		} else {
			key = account
		}
		evs[i] = orderEvent{id: id, key: account, want: seen[account]}
		seen[account]++
		msgs[i] = kafka.Message{Value: fmt.Appendf(nil,
			`{"id":%q,"type":"checkout","ts":%d,"account_id":%q,"card_id":"card-1","amount":10}`, id, 1780000000000+i*1000, account)}
		if key != "" {
			msgs[i].Key = []byte(key)
		}
	}
	return evs, msgs
}

// jitterStore hands Observe to a memory store after a delay of 0 to
// 300µs picked by the event id, so events scored at once finish in
// another order than they started, and records how many calls were in
// flight at most.
type jitterStore struct {
	features.Store
	inFlight, peak atomic.Int64
}

func (s *jitterStore) Observe(ctx context.Context, obs *features.Observation) error {
	n := s.inFlight.Add(1)
	defer s.inFlight.Add(-1)
	for p := s.peak.Load(); n > p && !s.peak.CompareAndSwap(p, n); p = s.peak.Load() {
	}
	h := fnv.New32a()
	h.Write([]byte(obs.EventID))
	t := time.NewTimer(time.Duration(h.Sum32()%4) * 100 * time.Microsecond)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		return ctx.Err()
	}
	return s.Store.Observe(ctx, obs)
}

type scoredDecision struct {
	EventID  string `json:"event_id"`
	Score    int64  `json:"score"`
	Degraded bool   `json:"degraded"`
}

// checkKeyOrder reads the n decisions and checks each was scored after
// every earlier event of its key and before every later one.
func checkKeyOrder(t *testing.T, addrs []string, evs []orderEvent) {
	t.Helper()
	if got := kafkatest.TopicSize(t, addrs, decisionsTopic, 3); got != int64(len(evs)) {
		t.Fatalf("%d decisions written, want %d (one per event)", got, len(evs))
	}
	got := map[string]scoredDecision{}
	for _, m := range consume(t, addrs, decisionsTopic, len(evs)) {
		var d scoredDecision
		if err := json.Unmarshal(m.Value, &d); err != nil {
			t.Fatalf("decision %s: %v", m.Value, err)
		}
		if _, dup := got[d.EventID]; dup {
			t.Fatalf("two decisions for %s", d.EventID)
		}
		got[d.EventID] = d
	}
	wrong := 0
	for _, e := range evs {
		d, ok := got[e.id]
		switch {
		case !ok:
			t.Errorf("%s: no decision", e.id)
		case d.Degraded:
			t.Errorf("%s: degraded decision written", e.id)
		case d.Score != e.want:
			if wrong++; wrong <= 10 {
				t.Errorf("%s (key %s): scored after %d of its key's events, want %d", e.id, e.key, d.Score, e.want)
			}
		}
	}
	if wrong > 0 {
		t.Errorf("%d of %d events scored out of their key's order", wrong, len(evs))
	}
}

// onePartition starts a broker whose events topic has a single partition,
// so whatever is scored concurrently is scored within one partition.
func onePartition(t *testing.T) []string {
	t.Helper()
	broker, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, eventsTopic), kfake.SeedTopics(3, decisionsTopic, decisionsTopic+".shadow", dlqTopic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(broker.Close)
	return broker.ListenAddrs()
}

// TestKafkaKeysScoredConcurrentlyInOrder runs one partition of events
// over 40 keys, interleaved, through a store whose calls take a varying
// time: events of different keys are scored at once, and each event's
// count shows it was scored after all its key's earlier events and before
// its later ones. Unkeyed events are scored too.
func TestKafkaKeysScoredConcurrentlyInOrder(t *testing.T) {
	addrs := onePartition(t)
	store := &jitterStore{Store: memstore.New(memstore.Options{})}
	e := engine.New(countPolicy(t), engine.Options{Store: store})
	defer runConsumerWith(t, e, stream.KafkaOptions{Brokers: addrs, BatchSize: 100})()
	const n = 2000
	evs, msgs := orderEvents(n, 40, 50)
	produce(t, addrs, msgs...)
	poll.Until(t, "every offset to be committed", func() bool { return kafkatest.Committed(t, addrs, "riskd", eventsTopic, 1)[0] == n })
	checkKeyOrder(t, addrs, evs)
	if peak := store.peak.Load(); peak < 2 {
		t.Fatalf("at most %d store call in flight: the partition's events were not scored concurrently", peak)
	}
	t.Logf("up to %d store calls in flight on one partition", store.peak.Load())
}

// TestKafkaStoreFailureKeepsKeyOrder fails the store on one event of a
// partition whose keys are scored concurrently, and on a few after it
// for their first two calls. While the one is held, exactly the events
// before it are written and committed, and no later event of its key has
// reached the store; once it is answered every event is decided once, in
// its key's order, and each failed call was retried once.
func TestKafkaStoreFailureKeepsKeyOrder(t *testing.T) {
	addrs := onePartition(t)
	const (
		n    = 600
		held = 250 // offset of the event the store fails until told
	)
	evs, msgs := orderEvents(n, 20, 0)
	heldKey := evs[held].key
	// After it, the first events of three other keys fail their first
	// two calls, and so does the next event of the first of those keys:
	// failures of several keys, and two of one key, in a batch.
	flaky := map[string]int{}
	var keys []string
	for _, e := range evs[held+1:] {
		switch {
		case e.key == heldKey:
		case len(keys) < 3 && !slices.Contains(keys, e.key):
			keys = append(keys, e.key)
			flaky[e.id] = 0
		case len(keys) == 3 && e.key == keys[0]:
			flaky[e.id] = 0
		}
		if len(flaky) == 4 {
			break
		}
	}
	var down atomic.Bool
	down.Store(true)
	var mu sync.Mutex
	observed := map[string]bool{}
	heldFailures := 0
	store := newFailingStore(func(obs *features.Observation) bool {
		id := strings.Clone(obs.EventID) // obs.EventID aliases the engine's buffer
		mu.Lock()
		defer mu.Unlock()
		observed[id] = true
		if id == evs[held].id && down.Load() {
			heldFailures++
			return true
		}
		if calls, ok := flaky[id]; ok && calls < 2 {
			flaky[id]++
			return true
		}
		return false
	})
	e := engine.New(countPolicy(t), engine.Options{Store: store})
	reg := prometheus.NewRegistry()
	defer runConsumerWith(t, e, stream.KafkaOptions{Brokers: addrs, BatchSize: 100, Registerer: reg})()
	produce(t, addrs, msgs...)

	// Its second failure is a retry: what came before it is written.
	poll.Until(t, "the store to fail the held event twice", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return heldFailures >= 2
	})
	if got := kafkatest.Committed(t, addrs, "riskd", eventsTopic, 1)[0]; got != held {
		t.Fatalf("committed offset %d while offset %d fails, want %d", got, held, held)
	}
	written := map[string]bool{}
	for _, m := range consume(t, addrs, decisionsTopic, held) {
		written[string(m.Key)] = true
	}
	if got := kafkatest.TopicSize(t, addrs, decisionsTopic, 3); got != held || len(written) != held {
		t.Fatalf("%d decisions (%d events) written while offset %d fails, want %d", got, len(written), held, held)
	}
	for _, e := range evs[:held] {
		if !written[e.id] {
			t.Fatalf("%s (before the held event) has no decision", e.id)
		}
	}
	mu.Lock()
	for _, e := range evs[held+1:] {
		if e.key == heldKey && observed[e.id] {
			t.Errorf("%s reached the store while %s, earlier on key %s, was held", e.id, evs[held].id, heldKey)
		}
	}
	mu.Unlock()
	if got := metrictest.Value(t, reg, "riskd_kafka_partitions_waiting_on_store", nil); got != 1 {
		t.Fatalf("partitions waiting on the store: %v, want 1", got)
	}

	down.Store(false)
	poll.Until(t, "every offset to be committed", func() bool { return kafkatest.Committed(t, addrs, "riskd", eventsTopic, 1)[0] == n })
	checkKeyOrder(t, addrs, evs)
	if retries, failures := metrictest.Value(t, reg, "riskd_kafka_store_retries_total", nil), store.failures.Load(); retries != float64(failures) {
		t.Errorf("%v retries for %d store failures: each failure is retried once", retries, failures)
	}
}
