package stream_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/riskd/riskd/engine"
	"github.com/riskd/riskd/internal/enginetest"
	"github.com/riskd/riskd/internal/metrictest"
	"github.com/riskd/riskd/internal/poll"
	"github.com/riskd/riskd/stream"
)

// check runs one of c's dependency checks by name.
func check(t *testing.T, c *stream.Consumer, name string) error {
	t.Helper()
	for _, d := range c.Dependencies() {
		if d.Name == name {
			return d.Check(context.Background())
		}
	}
	t.Fatalf("no dependency %q", name)
	return nil
}

// startConsumer runs a consumer until the test ends.
func startConsumer(t *testing.T, opts stream.KafkaOptions) (c *stream.Consumer, stop func()) {
	t.Helper()
	c = stream.NewConsumer(engine.New(enginetest.Example(t), engine.Options{}), opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	stop = func() { cancel(); <-done }
	t.Cleanup(stop)
	return c, stop
}

// TestConsumerDependencies: "kafka" answers when the brokers do and know
// the events topic; "kafka_group" while this consumer is a member of its
// group, and no longer once it has left.
func TestConsumerDependencies(t *testing.T) {
	addrs := newBroker(t).ListenAddrs()
	c, stop := startConsumer(t, stream.KafkaOptions{Brokers: addrs, ClientID: "riskd-test-1"})
	if err := check(t, c, "kafka"); err != nil {
		t.Errorf("kafka: %v", err)
	}
	poll.Until(t, "the consumer to join its group", func() bool { return check(t, c, "kafka_group") == nil })
	stop() // leaves the group
	if err := check(t, c, "kafka_group"); err == nil || !strings.Contains(err.Error(), "riskd-test-1 is not a member of consumer group riskd (group Empty, 0 members)") {
		t.Errorf("kafka_group after leaving: %v", err)
	}

	wrongTopic, _ := startConsumer(t, stream.KafkaOptions{Brokers: addrs, Topic: "no.such.topic"})
	if err := check(t, wrongTopic, "kafka"); err == nil || !strings.Contains(err.Error(), "events topic no.such.topic") {
		t.Errorf("kafka with a topic the brokers do not have: %v", err)
	}
}

// TestConsumerUnreachableBrokers: with nothing listening where the brokers
// should be, both checks fail saying so, and the reader's retries, which
// FetchMessage never returns, are counted and logged.
func TestConsumerUnreachableBrokers(t *testing.T) {
	addr := closedAddr(t)
	reg := prometheus.NewRegistry()
	var logs syncBuffer
	c, _ := startConsumer(t, stream.KafkaOptions{Brokers: []string{addr}, Registerer: reg, Logger: newTextLogger(&logs)})
	for _, name := range []string{"kafka", "kafka_group"} {
		if err := check(t, c, name); err == nil || !strings.Contains(err.Error(), "connection refused") {
			t.Errorf("%s: %v", name, err)
		}
	}
	poll.Until(t, "the reader's errors to be counted", func() bool {
		return metrictest.Value(t, reg, "riskd_kafka_errors_total", map[string]string{"op": "reader"}) > 0
	})
	poll.Until(t, "the reader's errors to be logged", func() bool {
		return strings.Contains(logs.String(), "level=WARN") && strings.Contains(logs.String(), "lib=kafka-go")
	})
}

// syncBuffer is a log destination read while the watch writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newTextLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, nil))
}
