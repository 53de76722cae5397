package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/riskd/riskd/internal/kafkatest"
	"github.com/riskd/riskd/internal/poll"
	"github.com/riskd/riskd/internal/redistest"
)

// killPolicy scores each checkout with the card's count of earlier
// checkouts in the last hour, so a decision's score is that feature.
var killPolicy = map[string]string{
	"features.yaml": `features:
  - name: card_count_1h
    kind: count
    key: card_id
    window: 1h
`,
	"checkout.yaml": `name: checkout
version: "kill-1"
event_types: [checkout]
thresholds: {step_up: 1000000, block: 2000000}
rules:
  - id: card_count
    when: features.card_count_1h >= 0
    score: "features.card_count_1h"
    reason: "{{features.card_count_1h}} earlier checkouts of this card in the last hour"
`,
}

// killEvent is one produced event and the feature it must be scored with.
type killEvent struct {
	id, card string
	ts       int64
	want     int64 // card_count_1h: the card's events in (ts-1h, ts)
}

// killEvents makes n checkouts over a few cards in time order, 1.8s apart
// (2h for 4,000, so the hour window slides), ending 5 minutes ago: well
// inside the store's idempotency window, none in the future.
func killEvents(n int) []killEvent {
	rng := rand.New(rand.NewPCG(13, 5))
	const step = 1800
	base := time.Now().Add(-5*time.Minute).UnixMilli() - int64(n)*step
	evs := make([]killEvent, n)
	byCard := map[string][]int64{} // ts so far, ascending
	for i := range evs {
		card := fmt.Sprintf("card-%d", rng.IntN(7))
		ts := base + int64(i)*step
		prev := byCard[card]
		first := sort.Search(len(prev), func(j int) bool { return prev[j] > ts-time.Hour.Milliseconds() })
		evs[i] = killEvent{id: fmt.Sprintf("kill-%d", i), card: card, ts: ts, want: int64(len(prev) - first)}
		byCard[card] = append(prev, ts)
	}
	return evs
}

// riskdProcess is a riskd binary running for a test, its output in a file.
type riskdProcess struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed when the process has exited; then err is its exit
	err    error
	logs   string
}

func startRiskd(t *testing.T, bin, logs string, args ...string) *riskdProcess {
	t.Helper()
	f, err := os.OpenFile(logs, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	p := &riskdProcess{cmd: exec.Command(bin, args...), exited: make(chan struct{}), logs: logs}
	p.cmd.Stdout, p.cmd.Stderr = f, f
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f.Close() // the child has its own descriptor
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			p.cmd.Process.Kill()
			<-p.exited
		}
	})
	return p
}

func (p *riskdProcess) output() string {
	b, _ := os.ReadFile(p.logs)
	if len(b) > 8000 {
		b = append([]byte("…"), b[len(b)-8000:]...)
	}
	return string(b)
}

// committedTotal adds up the group's committed offsets of topic.
func committedTotal(t *testing.T, addr, group, topic string, partitions int) int64 {
	t.Helper()
	var n int64
	for _, o := range kafkatest.Committed(t, []string{addr}, group, topic, partitions) {
		n += max(0, o)
	}
	return n
}

// waitUntil polls cond every millisecond until it holds or timeout passes.
func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool, logs func() string) {
	t.Helper()
	pollUntil(t, time.Millisecond, timeout, what, cond, logs)
}

// pollUntil polls cond every interval until it holds or timeout passes.
func pollUntil(t *testing.T, every, timeout time.Duration, what string, cond func() bool, logs func() string) {
	t.Helper()
	poll.Wait{Every: every, For: timeout, Explain: func() string { return "riskd:\n" + logs() }}.Until(t, what, cond)
}

// TestKafkaKillNineExactFeatures kills riskd with SIGKILL while it works
// through a stream on Redis with the default settings, starts it again,
// and checks every event's decision against the exact feature computed
// from the stream: nothing the first process decided but did not commit
// is counted twice, nothing it had not recorded is missed, and a
// redelivered event gets its first answer again.
func TestKafkaKillNineExactFeatures(t *testing.T) {
	const (
		n          = 4000
		partitions = 3
	)
	redis := redistest.Start(t)
	broker, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, "risk.events", "risk.decisions", "risk.decisions.shadow", "risk.events.dlq"))
	if err != nil {
		t.Fatal(err)
	}
	defer broker.Close()
	addr := broker.ListenAddrs()[0]

	dir := t.TempDir()
	bin := riskdBinary(t)
	policy := filepath.Join(dir, "policy")
	if err := os.Mkdir(policy, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, text := range killPolicy {
		if err := os.WriteFile(filepath.Join(policy, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// Keyed by card: a card's events are one partition's, in time order.
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

	args := []string{"-listen", "127.0.0.1:0", "-kafka-brokers", addr, "-redis", redis.Addr(), "-rules", policy}
	logs := filepath.Join(dir, "riskd.log")
	first := startRiskd(t, bin, logs, args...)
	// Kill it, preferably caught between writing decisions and committing
	// their offsets (those are decided twice), else once half the events
	// are decided.
	var caught bool
	waitUntil(t, 60*time.Second, "the first decisions", func() bool {
		decided := kafkatest.TopicSize(t, []string{addr}, "risk.decisions", partitions)
		caught = decided > committedTotal(t, addr, "riskd", "risk.events", partitions)
		return caught || decided >= n/2
	}, first.output)
	first.cmd.Process.Signal(syscall.SIGKILL)
	<-first.exited
	atKill, committedAtKill := kafkatest.TopicSize(t, []string{addr}, "risk.decisions", partitions), committedTotal(t, addr, "riskd", "risk.events", partitions)
	if atKill >= n {
		t.Fatalf("riskd decided all %d events before the kill: nothing mid-stream was tested", atKill)
	}
	t.Logf("killed with %d decisions written and %d events committed (caught between write and commit: %v)", atKill, committedAtKill, caught)

	second := startRiskd(t, bin, logs, args...)
	// The killed member stays in the group until its session times out,
	// so the second one may wait for its partitions.
	waitUntil(t, 120*time.Second, "every event to be committed", func() bool {
		return committedTotal(t, addr, "riskd", "risk.events", partitions) == n
	}, second.output)
	total := kafkatest.TopicSize(t, []string{addr}, "risk.decisions", partitions)
	t.Logf("%d decisions for %d events: %d written twice (decided, not committed, redelivered)", total, n, total-n)

	scores, retries := map[string][]int64{}, 0
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{addr}, Topic: "risk.decisions", GroupID: "check", StartOffset: kafka.FirstOffset, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	ctx, cancel = context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i := int64(0); i < total; i++ {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			t.Fatalf("reading decisions: %d of %d: %v", i, total, err)
		}
		var d struct {
			EventID  string `json:"event_id"`
			Score    int64  `json:"score"`
			Degraded bool   `json:"degraded"`
			Retry    bool   `json:"retry"`
		}
		if err := json.Unmarshal(m.Value, &d); err != nil {
			t.Fatalf("decision %s: %v", m.Value, err)
		}
		if d.Degraded {
			t.Errorf("degraded decision written: %s", m.Value)
		}
		if d.Retry {
			retries++
		}
		scores[d.EventID] = append(scores[d.EventID], d.Score)
	}
	t.Logf("%d decisions answered from an earlier answer (retry)", retries)
	var wrong, changed int
	for _, e := range evs {
		got := scores[e.id]
		if len(got) == 0 {
			t.Errorf("%s: no decision", e.id)
			continue
		}
		if got[0] != e.want {
			if wrong++; wrong <= 10 {
				t.Errorf("%s (%s, ts %d): card_count_1h %d, want %d (decisions: %v)", e.id, e.card, e.ts, got[0], e.want, got)
			}
		}
		for _, s := range got[1:] {
			if s != got[0] {
				if changed++; changed <= 10 {
					t.Errorf("%s (%s, ts %d): redelivery changed the answer: card_count_1h %v", e.id, e.card, e.ts, got)
				}
				break
			}
		}
	}
	if wrong > 0 || changed > 0 {
		t.Errorf("%d events with a wrong count, %d whose redelivery changed the answer, of %d", wrong, changed, n)
	}

	second.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-second.exited:
		if second.err != nil {
			t.Fatalf("riskd exited with %v after SIGTERM\n%s", second.err, second.output())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("riskd still running 30s after SIGTERM\n%s", second.output())
	}
}
