package stream_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/riskd/riskd/engine"
	"github.com/riskd/riskd/features"
	"github.com/riskd/riskd/internal/enginetest"
	"github.com/riskd/riskd/internal/kafkatest"
	"github.com/riskd/riskd/internal/metrictest"
	"github.com/riskd/riskd/internal/poll"
	"github.com/riskd/riskd/memstore"
	"github.com/riskd/riskd/stream"
)

// failingStore fails the Observe calls fail picks, without recording
// anything, and hands the others to a memory store, after delay when set
// (a delay past the caller's deadline fails as a timeout does).
type failingStore struct {
	features.Store
	fail     func(*features.Observation) bool
	delay    time.Duration
	failures atomic.Int64
}

func newFailingStore(fail func(*features.Observation) bool) *failingStore {
	return &failingStore{Store: memstore.New(memstore.Options{}), fail: fail}
}

func (s *failingStore) Observe(ctx context.Context, obs *features.Observation) error {
	if s.fail != nil && s.fail(obs) {
		s.failures.Add(1)
		return fmt.Errorf("store unavailable (test)")
	}
	if s.delay > 0 {
		t := time.NewTimer(s.delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			s.failures.Add(1)
			return ctx.Err()
		}
	}
	return s.Store.Observe(ctx, obs)
}

type kafkaDecision struct {
	EventID  string `json:"event_id"`
	Degraded bool   `json:"degraded"`
}

// decisionsByID reads the whole decisions topic, which must hold exactly
// n messages, one per event id.
func decisionsByID(t *testing.T, addrs []string, n int) map[string]kafkaDecision {
	t.Helper()
	if got := kafkatest.TopicSize(t, addrs, decisionsTopic, 3); got != int64(n) {
		t.Fatalf("%d decisions written, want %d (one per event)", got, n)
	}
	out := map[string]kafkaDecision{}
	for _, m := range consume(t, addrs, decisionsTopic, n) {
		var d kafkaDecision
		if err := json.Unmarshal(m.Value, &d); err != nil {
			t.Fatalf("decision %s: %v", m.Value, err)
		}
		if _, dup := out[d.EventID]; dup {
			t.Fatalf("two decisions for %s", d.EventID)
		}
		out[d.EventID] = d
	}
	return out
}

// TestKafkaStoreFailureHoldsThePartition makes the store fail on the fifth
// event of a one-partition stream. By default the four events before it
// are decided and committed, nothing after it is, the lag and a gauge show
// the partition waiting; when the store comes back every event gets one
// decision, none degraded, and the history counts all of them. With
// Degraded, the old behaviour: the degraded decision is committed and
// that event is missing from the history.
func TestKafkaStoreFailureHoldsThePartition(t *testing.T) {
	tests := []struct {
		name     string
		degraded bool
	}{
		{name: "default waits for the store", degraded: false},
		{name: "degraded commits", degraded: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			broker, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, eventsTopic), kfake.SeedTopics(3, decisionsTopic, decisionsTopic+".shadow", dlqTopic))
			if err != nil {
				t.Fatal(err)
			}
			defer broker.Close()
			addrs := broker.ListenAddrs()
			var down atomic.Bool
			down.Store(true)
			store := newFailingStore(func(obs *features.Observation) bool { return obs.EventID == "s-4" && down.Load() })
			e := engine.New(enginetest.Example(t), engine.Options{Store: store})
			reg := prometheus.NewRegistry()
			defer runConsumerWith(t, e, stream.KafkaOptions{Brokers: addrs, BatchSize: 50, Registerer: reg, Degraded: tt.degraded})()
			const n = 10
			produce(t, addrs, cardEvents("s", n)...)
			offset := func() int64 { return kafkatest.Committed(t, addrs, "riskd", eventsTopic, 1)[0] }

			if !tt.degraded {
				// Two failures: the worker has written and committed what
				// came before s-4 and is retrying it.
				poll.Until(t, "the store to fail s-4 twice", func() bool { return store.failures.Load() >= 2 })
				poll.Until(t, "the lag to count s-4 and the 5 events after it", func() bool {
					return metrictest.Value(t, reg, "riskd_kafka_consumer_lag", map[string]string{"partition": "0"}) == n-4
				})
				if got := offset(); got != 4 {
					t.Fatalf("committed offset %d while s-4 (offset 4) fails, want 4", got)
				}
				if got := kafkatest.TopicSize(t, addrs, decisionsTopic, 3); got != 4 {
					t.Fatalf("%d decisions written while s-4 fails, want 4 (s-0..s-3)", got)
				}
				if got := metrictest.Value(t, reg, "riskd_kafka_partitions_waiting_on_store", nil); got != 1 {
					t.Fatalf("partitions waiting on the store: %v, want 1", got)
				}
				down.Store(false)
			}
			poll.Until(t, "every offset to be committed", func() bool { return offset() == n })

			decided := decisionsByID(t, addrs, n)
			for i := range n {
				id := fmt.Sprint("s-", i)
				d, ok := decided[id]
				if !ok {
					t.Fatalf("no decision for %s", id)
				}
				if want := tt.degraded && id == "s-4"; d.Degraded != want {
					t.Errorf("%s: degraded %v, want %v", id, d.Degraded, want)
				}
			}
			retries := metrictest.Value(t, reg, "riskd_kafka_store_retries_total", nil)
			failures := store.failures.Load()
			if tt.degraded && (retries != 0 || failures != 1) {
				t.Errorf("Degraded: %v retries, %d store failures; want 0 and 1", retries, failures)
			}
			if !tt.degraded && retries != float64(failures) {
				t.Errorf("%v retries for %d store failures: each failure is retried once", retries, failures)
			}
			if got := metrictest.Value(t, reg, "riskd_kafka_partitions_waiting_on_store", nil); got != 0 {
				t.Errorf("partitions waiting on the store after recovery: %v", got)
			}
			// The history: every event once, or all but the one the store
			// missed.
			want := n
			if tt.degraded {
				want = n - 1
			}
			d := enginetest.Score(t, e, fmt.Sprintf(`{"id":"final","type":"checkout","ts":%d,"account_id":"acc-x","card_id":"card-1","amount":10}`, 1780000000000+n*1000))
			if got := enginetest.Feature(d, "card_txn_count_24h"); got.Num != float64(want) {
				t.Fatalf("card_txn_count_24h = %v after %d events, want %d", got.Num, n, want)
			}
		})
	}
}

// TestKafkaStoreRecovers runs a three-partition stream through stores
// that misbehave: every event ends with exactly one decision, none
// degraded, and the history counts each event once.
func TestKafkaStoreRecovers(t *testing.T) {
	tests := []struct {
		name string
		n    int
		// engineTimeout is the engine's (HTTP) store budget.
		engineTimeout time.Duration
		store         func() *failingStore
		wantRetries   func(failures int64) bool
	}{
		{
			// Spread over the partitions and mid-batch: r-0, r-50, … r-250.
			name: "every 50th event fails its first two calls",
			n:    300,
			store: func() *failingStore {
				var mu sync.Mutex
				calls := map[string]int{}
				return newFailingStore(func(obs *features.Observation) bool {
					var i int
					if _, err := fmt.Sscanf(obs.EventID, "r-%d", &i); err != nil || i%50 != 0 {
						return false
					}
					mu.Lock()
					defer mu.Unlock()
					id := strings.Clone(obs.EventID) // obs.EventID aliases the engine's buffer
					calls[id]++
					return calls[id] <= 2
				})
			},
			wantRetries: func(failures int64) bool { return failures == 12 },
		},
		{
			// The Kafka budget (default 1s) replaces the engine's 1ms.
			name:          "store slower than the HTTP budget",
			n:             60,
			engineTimeout: time.Millisecond,
			store: func() *failingStore {
				s := newFailingStore(nil)
				s.delay = 3 * time.Millisecond
				return s
			},
			wantRetries: func(failures int64) bool { return failures == 0 },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			broker := newBroker(t)
			addrs := broker.ListenAddrs()
			store := tt.store()
			e := engine.New(enginetest.Example(t), engine.Options{Store: store, StoreTimeout: tt.engineTimeout})
			reg := prometheus.NewRegistry()
			defer runConsumerWith(t, e, stream.KafkaOptions{Brokers: addrs, BatchSize: 20, Registerer: reg})()
			produce(t, addrs, cardEvents("r", tt.n)...)
			poll.Until(t, "every offset to be committed", func() bool {
				var sum int64
				for _, o := range kafkatest.Committed(t, addrs, "riskd", eventsTopic, 3) {
					sum += max(0, o)
				}
				return sum == int64(tt.n)
			})
			for id, d := range decisionsByID(t, addrs, tt.n) {
				if d.Degraded {
					t.Errorf("%s: degraded decision committed", id)
				}
			}
			failures := store.failures.Load()
			if retries := metrictest.Value(t, reg, "riskd_kafka_store_retries_total", nil); retries != float64(failures) || !tt.wantRetries(failures) {
				t.Errorf("%v retries for %d store failures", retries, failures)
			}
			d := enginetest.ScoreWith(t, e, fmt.Sprintf(`{"id":"final","type":"checkout","ts":%d,"account_id":"acc-x","card_id":"card-1","amount":10}`, 1780000000000+tt.n*1000), engine.ScoreOptions{Explain: true, StoreTimeout: time.Second})
			if got := enginetest.Feature(d, "card_txn_count_24h"); got.Num != float64(tt.n) {
				t.Fatalf("card_txn_count_24h = %v after %d events, want %d (each once)", got.Num, tt.n, tt.n)
			}
		})
	}
}
