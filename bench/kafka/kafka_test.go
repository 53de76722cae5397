// Package kafka measures stream scoring end to end: events produced to a
// Kafka-protocol broker (kfake, in process), riskd's consumer scoring them,
// decisions read back.
//
//	go test ./bench/kafka -run XXX -bench . -benchtime 50000x
package kafka

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/riskd/riskd/bench/load"
	"github.com/riskd/riskd/engine"
	"github.com/riskd/riskd/features"
	"github.com/riskd/riskd/internal/redistest"
	"github.com/riskd/riskd/memstore"
	"github.com/riskd/riskd/redisstore"
	"github.com/riskd/riskd/rules"
	"github.com/riskd/riskd/rules/example/exampletest"
	"github.com/riskd/riskd/stream"
)

func BenchmarkKafkaMemory(b *testing.B) {
	run(b, memstore.New(memstore.Options{}), 0)
}

// BenchmarkKafkaMemoryShadow is BenchmarkKafkaMemory with one shadow
// challenger of checkout: its evaluation and the shadow topic's writes.
func BenchmarkKafkaMemoryShadow(b *testing.B) {
	run(b, memstore.New(memstore.Options{}), 1)
}

func BenchmarkKafkaRedis(b *testing.B) {
	srv := redistest.Start(b)
	r, err := redisstore.New(context.Background(), redisstore.Options{Addrs: []string{srv.Addr()}})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	run(b, r, 0)
}

// pipeline starts a broker with six-partition topics and riskd's consumer
// on the example policy (plus challengers shadow challengers of checkout)
// over store; both stop when the benchmark ends.
func pipeline(b *testing.B, store features.Store, challengers int) []string {
	b.Helper()
	broker, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(6, "risk.events", "risk.decisions", "risk.decisions.shadow", "risk.events.dlq"))
	if err != nil {
		b.Fatal(err)
	}
	p, err := rules.Load(exampletest.WithChallengers(challengers), "rules/example")
	if err != nil {
		broker.Close()
		b.Fatal(err)
	}
	e := engine.New(p, engine.Options{Store: store, StoreTimeout: time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	consumer := stream.NewConsumer(e, stream.KafkaOptions{Brokers: broker.ListenAddrs()})
	done := make(chan struct{})
	go func() { consumer.Run(ctx); close(done) }()
	b.Cleanup(func() {
		cancel()
		<-done
		broker.Close()
	})
	return broker.ListenAddrs()
}

// run produces b.N checkouts over 6 partitions while the consumer runs and
// reports events/s from the first send to the last decision, and the
// latency from each event's acknowledged send to its decision being read.
func run(b *testing.B, store features.Store, challengers int) {
	addrs := pipeline(b, store, challengers)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	n := b.N
	sent := make([]time.Time, n)
	// Event times from now on: a Redis store reads events long past its
	// clock the slow way (see features.Redis).
	base := time.Now().UnixMilli()
	var mu sync.Mutex
	reader := kafka.NewReader(kafka.ReaderConfig{Brokers: addrs, GroupID: "bench-reader", Topic: "risk.decisions", StartOffset: kafka.FirstOffset, MaxWait: 10 * time.Millisecond})
	defer reader.Close()

	b.ResetTimer()
	start := time.Now()
	go func() {
		w := &kafka.Writer{Addr: kafka.TCP(addrs...), Topic: "risk.events", Balancer: &kafka.Hash{}, BatchSize: 1000, BatchTimeout: 2 * time.Millisecond}
		defer w.Close()
		const chunk = 1000
		for lo := 0; lo < n; lo += chunk {
			hi := min(n, lo+chunk)
			msgs := make([]kafka.Message, 0, hi-lo)
			for i := lo; i < hi; i++ {
				msgs = append(msgs, kafka.Message{Key: fmt.Appendf(nil, "acc-%d", i%20000), Value: fmt.Appendf(nil,
					`{"id":"b-%d","type":"checkout","ts":%d,"account_id":"acc-%d","card_id":"card-%d","device_id":"dev-%d","ip":"10.0.%d.%d","amount":%d.5,"ip_country":"FR","card_country":"FR"}`,
					i, base+int64(i)*50, i%20000, i%25000, i%15000, i%200, i%250, 5+i%500)})
			}
			if err := w.WriteMessages(ctx, msgs...); err != nil {
				b.Error(err)
				return
			}
			now := time.Now()
			mu.Lock()
			for i := lo; i < hi; i++ {
				sent[i] = now
			}
			mu.Unlock()
		}
	}()
	lat := make([]time.Duration, 0, n)
	for len(lat) < n {
		m, err := reader.FetchMessage(ctx)
		if err != nil {
			b.Fatal(err)
		}
		var i int
		fmt.Sscanf(string(m.Key), "b-%d", &i)
		mu.Lock()
		s := sent[i]
		mu.Unlock()
		if !s.IsZero() {
			lat = append(lat, time.Since(s))
		} else {
			lat = append(lat, 0) // decided before the producer saw its ack
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(n)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

// BenchmarkKafkaOpenLoop produces at fixed rates for 5 seconds each with
// the HTTP generator's open-loop schedule and measures each event from its
// intended send time to its decision being read:
//
//	go test ./bench/kafka -run XXX -bench OpenLoop -benchtime 1x
func BenchmarkKafkaOpenLoop(b *testing.B) {
	for _, rate := range []int{10000, 30000, 50000} {
		b.Run(fmt.Sprintf("memory/rate=%d", rate), func(b *testing.B) {
			openLoop(b, memstore.New(memstore.Options{}), rate)
		})
	}
	srv := redistest.Start(b)
	for _, rate := range []int{1000, 3000} {
		b.Run(fmt.Sprintf("redis/rate=%d", rate), func(b *testing.B) {
			r, err := redisstore.New(context.Background(), redisstore.Options{Addrs: []string{srv.Addr()}, Prefix: fmt.Sprintf("ol%d:", rate)})
			if err != nil {
				b.Fatal(err)
			}
			defer r.Close()
			openLoop(b, r, rate)
		})
	}
}

func openLoop(b *testing.B, store features.Store, rate int) {
	addrs := pipeline(b, store, 0)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	const seconds = 5
	total := rate * seconds
	base := time.Now().UnixMilli()
	intended := make([]time.Time, total)
	var mu sync.Mutex
	rec := &load.Recorder{}
	reader := kafka.NewReader(kafka.ReaderConfig{Brokers: addrs, GroupID: "ol-reader", Topic: "risk.decisions", StartOffset: kafka.FirstOffset, MaxWait: 10 * time.Millisecond})
	defer reader.Close()
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		for rec.Count() < total {
			m, err := reader.FetchMessage(ctx)
			if err != nil {
				return
			}
			var i int
			fmt.Sscanf(string(m.Key), "o-%d", &i)
			mu.Lock()
			t := intended[i]
			mu.Unlock()
			rec.Add(time.Since(t))
		}
	}()
	w := &kafka.Writer{Addr: kafka.TCP(addrs...), Topic: "risk.events", Balancer: &kafka.Hash{}, BatchSize: 1000, BatchTimeout: time.Millisecond, Async: true}
	defer w.Close()
	b.ResetTimer()
	start := time.Now()
	load.Schedule(ctx, rate, total, func(i int, t time.Time) {
		mu.Lock()
		intended[i] = t
		mu.Unlock()
		w.WriteMessages(ctx, kafka.Message{Key: fmt.Appendf(nil, "acc-%d", i%20000), Value: fmt.Appendf(nil,
			`{"id":"o-%d","type":"checkout","ts":%d,"account_id":"acc-%d","card_id":"card-%d","device_id":"dev-%d","ip":"10.0.%d.%d","amount":%d.5,"ip_country":"FR","card_country":"FR"}`,
			i, base+int64(i)*50, i%20000, i%25000, i%15000, i%200, i%250, 5+i%500)})
	})
	select {
	case <-readDone:
	case <-time.After(60 * time.Second):
		b.Logf("only %d of %d decisions within a minute", rec.Count(), total)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(rec.Count())/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(rec.Quantile(0.5).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(rec.Quantile(0.99).Microseconds())/1000, "p99-ms")
}
