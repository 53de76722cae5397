package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/riskd/riskd/internal/kafkatest"
	"github.com/riskd/riskd/internal/redistest"
)

// httpAnswer is one answer of the HTTP load of the failover test.
type httpAnswer struct {
	at, done time.Time // sent, answered
	status   int
	degraded bool
	err      error
}

// TestSentinelFailoverUnderLoad kills the Redis master under HTTP and
// Kafka load: riskd follows the replica the Sentinel promotes; HTTP is
// answered throughout, degraded only until riskd reaches the new master;
// every Kafka event is decided, none degraded, none twice with different
// answers.
func TestSentinelFailoverUnderLoad(t *testing.T) {
	const (
		n          = 3000
		partitions = 3
	)
	sen := redistest.StartSentinel(t, 1)
	broker, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, "risk.events", "risk.decisions", "risk.decisions.shadow", "risk.events.dlq"))
	if err != nil {
		t.Fatal(err)
	}
	defer broker.Close()
	addr := broker.ListenAddrs()[0]
	dir := t.TempDir()
	policy := filepath.Join(dir, "policy")
	os.Mkdir(policy, 0o755)
	for name, text := range killPolicy {
		if err := os.WriteFile(filepath.Join(policy, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	evs := killEvents(n)
	msgs := make([]kafka.Message, n)
	for i, e := range evs {
		msgs[i] = kafka.Message{Key: []byte(e.card), Value: fmt.Appendf(nil,
			`{"id":%q,"type":"checkout","ts":%d,"card_id":%q,"amount":10}`, e.id, e.ts, e.card)}
	}
	w := &kafka.Writer{Addr: kafka.TCP(addr), Topic: "risk.events", Balancer: &kafka.Hash{}, BatchSize: 500, BatchTimeout: time.Millisecond, RequiredAcks: kafka.RequireAll}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	err = w.WriteMessages(ctx, msgs...)
	cancel()
	w.Close()
	if err != nil {
		t.Fatal(err)
	}

	// A low Kafka concurrency keeps the stream going through the failover
	// instead of finishing before it. A store budget far above a healthy
	// call keeps a busy machine's stalls from degrading HTTP answers: only
	// the failover may.
	p := startRiskd(t, riskdBinary(t), filepath.Join(dir, "riskd.log"), "-listen", "127.0.0.1:0", "-kafka-brokers", addr,
		"-redis", strings.Join(sen.SentinelAddrs(), ","), "-redis-sentinel-master", sen.MasterName, "-rules", policy,
		"-kafka-concurrency", "4", "-store-timeout", "1s")
	public, _ := serving(t, p)

	// HTTP load: checkouts of cards of their own, one at a time, until
	// stopped.
	var mu sync.Mutex
	var answers []httpAnswer
	stop := make(chan struct{})
	var load sync.WaitGroup
	load.Add(1)
	go func() {
		defer load.Done()
		client := &http.Client{Timeout: 5 * time.Second}
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			body := fmt.Sprintf(`{"id":"http-%d","type":"checkout","card_id":"http-card-%d","amount":10}`, i, i%5)
			a := httpAnswer{at: time.Now()}
			resp, err := client.Post(public+"/v1/score", "application/json", strings.NewReader(body))
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				a.status, a.degraded = resp.StatusCode, bytes.Contains(b, []byte(`"degraded":true`))
			}
			a.err, a.done = err, time.Now()
			mu.Lock()
			answers = append(answers, a)
			mu.Unlock()
			time.Sleep(2 * time.Millisecond)
		}
	}()
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		load.Wait()
	}()

	waitUntil(t, 60*time.Second, "a third of the stream decided", func() bool {
		return committedTotal(t, addr, "riskd", "risk.events", partitions) >= n/3
	}, p.output)
	killedAt := time.Now()
	newMaster := sen.Failover(t)
	t.Logf("master killed; the sentinel promoted %s after %v", newMaster, time.Since(killedAt).Round(time.Millisecond))
	pollUntil(t, 10*time.Millisecond, 120*time.Second, "every event to be committed", func() bool {
		return committedTotal(t, addr, "riskd", "risk.events", partitions) == n
	}, p.output)
	// Some answers from the new master before stopping the load.
	pollUntil(t, 10*time.Millisecond, 30*time.Second, "HTTP answers without degradation after the failover", func() bool {
		mu.Lock()
		defer mu.Unlock()
		clean := 0
		for _, a := range answers {
			if a.at.After(killedAt) && a.err == nil && !a.degraded {
				clean++
			}
		}
		return clean >= 50
	}, p.output)
	close(stop)
	load.Wait()

	// HTTP: every request answered 200; after the first clean answer to
	// a request sent after the kill, none degraded.
	var before, during, after, degradedAfter int
	recovered := false
	for _, a := range answers {
		switch {
		case a.err != nil || a.status != http.StatusOK:
			t.Errorf("HTTP answer at %v: status %d, %v", a.at.Sub(killedAt), a.status, a.err)
		case a.done.Before(killedAt) && a.degraded:
			t.Errorf("HTTP answer at %v, before the kill: degraded", a.done.Sub(killedAt))
		case a.done.Before(killedAt):
			before++
		case a.at.Before(killedAt):
			// In flight at the kill: its round trip may have been
			// answered just before it, so a clean answer here says
			// nothing about having reached the new master.
			if a.degraded {
				during++
			} else {
				before++
			}
		case !recovered && a.degraded:
			during++
		case !recovered:
			recovered = true
			after++
		case a.degraded:
			degradedAfter++
		default:
			after++
		}
	}
	t.Logf("HTTP: %d answers before the kill, %d degraded during the failover, %d after", before, during, after)
	if degradedAfter > 0 {
		t.Errorf("%d degraded HTTP answers after riskd had reached the new master", degradedAfter)
	}

	// Kafka: every event decided, none degraded, redeliveries answered as
	// the first time.
	total := kafkatest.TopicSize(t, []string{addr}, "risk.decisions", partitions)
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{addr}, Topic: "risk.decisions", GroupID: "check", StartOffset: kafka.FirstOffset, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	ctx, cancel = context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	scores := map[string][]int64{}
	for i := int64(0); i < total; i++ {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			t.Fatalf("reading decisions: %d of %d: %v", i, total, err)
		}
		var d struct {
			EventID  string `json:"event_id"`
			Score    int64  `json:"score"`
			Degraded bool   `json:"degraded"`
		}
		if err := json.Unmarshal(m.Value, &d); err != nil {
			t.Fatalf("decision %s: %v", m.Value, err)
		}
		// HTTP's decisions are in the topic too (the audit stream).
		if !strings.HasPrefix(d.EventID, "kill-") {
			continue
		}
		if d.Degraded {
			t.Errorf("degraded decision written: %s", m.Value)
		}
		scores[d.EventID] = append(scores[d.EventID], d.Score)
	}
	var wrong, changed int
	for _, e := range evs {
		got := scores[e.id]
		switch {
		case len(got) == 0:
			t.Errorf("%s: no decision", e.id)
		case got[0] != e.want:
			wrong++
		}
		for _, s := range got[1:] {
			if s != got[0] {
				changed++
				t.Errorf("%s: redelivery changed the answer: card_count_1h %v", e.id, got)
				break
			}
		}
	}
	// Redis replicates asynchronously: what the old master acknowledged
	// in its last moments and had not passed on is lost with it, and the
	// events after it count one fewer. That is Redis's contract, not
	// riskd's to hide, so it is reported, not failed.
	t.Logf("%d decisions for %d events; %d with a count other than the exact one (writes the old master had not replicated)", total, n, wrong)

	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		if p.err != nil {
			t.Fatalf("riskd exited with %v after SIGTERM\n%s", p.err, p.output())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("riskd still running 30s after SIGTERM\n%s", p.output())
	}
}
