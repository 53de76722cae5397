package stream

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
)

// TestWriteEachDropsWhatNeverFits: with brokers taking at most 2 KiB, a
// batch holding one message over it is written one message at a time; the
// message refused in every form is dropped (once), the others written,
// and nothing is retried for its size.
func TestWriteEachDropsWhatNeverFits(t *testing.T) {
	broker, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "t"), kfake.BrokerConfigs(map[string]string{"message.max.bytes": "2048"}))
	if err != nil {
		t.Fatal(err)
	}
	defer broker.Close()
	w := &kafka.Writer{Addr: kafka.TCP(broker.ListenAddrs()...), Topic: "t", BatchTimeout: time.Millisecond, MaxAttempts: 1, RequiredAcks: kafka.RequireAll}
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	msgs := []kafka.Message{{Key: []byte("a"), Value: []byte("small")}, {Key: []byte("b"), Value: []byte(strings.Repeat("x", 4000))}, {Key: []byte("c"), Value: []byte("small")}}
	err = w.WriteMessages(ctx, msgs...)
	if !tooLarge(err) {
		t.Fatalf("the batch was not refused as too large: %v", err)
	}
	var dropped, replaced []string
	shrinks := 0
	ok := writeEach(ctx, w, msgs, func(m kafka.Message) (kafka.Message, bool) {
		shrinks++
		if shrinks > 1 {
			return m, false
		}
		m.Value = m.Value[:3000] // still too large
		return m, true
	}, func(m kafka.Message) { replaced = append(replaced, string(m.Key)) },
		func(m kafka.Message) { dropped = append(dropped, string(m.Key)) },
		func(err error) bool { t.Fatalf("retried: %v", err); return false })
	if !ok || strings.Join(dropped, ",") != "b" || len(replaced) != 0 || shrinks != 2 {
		t.Errorf("ok %v, dropped %v, replaced %v, %d shrinks", ok, dropped, replaced, shrinks)
	}
}
