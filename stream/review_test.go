package stream_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/segmentio/kafka-go"

	"github.com/riskd/riskd/engine"
	"github.com/riskd/riskd/rules"
	"github.com/riskd/riskd/stream"
)

// TestKafkaReview: a review decision on the Kafka path reaches
// KafkaOptions.Review with its event (riskd opens the case); an outcome
// goes to the decisions topic through the audit stream, source review.
func TestKafkaReview(t *testing.T) {
	p, err := rules.Load(fstest.MapFS{
		"features.yaml": {Data: []byte("features:\n  - {name: card_count_1h, kind: count, key: card_id, window: 1h}\n")},
		"checkout.yaml": {Data: []byte("name: checkout\nevent_types: [checkout]\nthresholds: {step_up: 30, review: 60, block: 90}\nrules:\n  - {id: big, when: event.amount > 500, score: 60}\n")},
	}, "p")
	if err != nil {
		t.Fatal(err)
	}
	broker := newBroker(t)
	addrs := broker.ListenAddrs()
	var mu sync.Mutex
	reviewed := map[string]string{}
	stop := runConsumerWith(t, engine.New(p, engine.Options{}), stream.KafkaOptions{Brokers: addrs, BatchSize: 10, Review: func(d *engine.Decision, event []byte) {
		mu.Lock()
		defer mu.Unlock()
		reviewed[strings.Clone(d.CaseID)] = string(event) // d's strings alias its reused buffer
	}})
	defer stop()
	var msgs []kafka.Message
	for i := range 10 {
		msgs = append(msgs, kafka.Message{Key: []byte("k"), Value: fmt.Appendf(nil, `{"id":"r-%d","type":"checkout","ts":%d,"card_id":"c","amount":%d}`, i, 1780000000000+i, 100+100*i)})
	}
	produce(t, addrs, msgs...)
	consume(t, addrs, decisionsTopic, 10)
	mu.Lock()
	if len(reviewed) != 5 || reviewed[string(engine.AppendCaseID(nil, "r-9"))] != string(msgs[9].Value) {
		t.Errorf("reviewed %v, want r-5..r-9", reviewed)
	}
	mu.Unlock()

	audit := stream.NewAuditStream(stream.AuditOptions{Brokers: addrs})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { audit.Run(ctx); close(done) }()
	if err := audit.Outcome([]byte("r-9"), []byte(`{"source":"review","event_id":"r-9","label":"fraud"}`), "review"); err != nil {
		t.Fatal(err)
	}
	consumeUntil(t, addrs, decisionsTopic, func(m kafka.Message) bool {
		return string(m.Key) == "r-9" && header(m, "source") == "review"
	})
	cancel()
	<-done
}
