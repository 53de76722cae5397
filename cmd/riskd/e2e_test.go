package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// TestKafkaEndToEndWithKcat runs the riskd binary against a Kafka-protocol
// broker, produces events with kcat (librdkafka, an independent client),
// reads the decisions (and a challenger's shadow decisions) back with kcat,
// then stops riskd with SIGTERM.
func TestKafkaEndToEndWithKcat(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Fatalf("kcat is needed for this test (Debian: apt-get install kcat; ./test.sh installs it): %v", err)
	}
	broker, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "risk.events", "risk.decisions", "risk.decisions.shadow", "risk.events.dlq"))
	if err != nil {
		t.Fatal(err)
	}
	defer broker.Close()
	addr := broker.ListenAddrs()[0]

	bin := filepath.Join(t.TempDir(), "riskd")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	// The example policy plus a challenger live for half the accounts.
	rules := t.TempDir()
	yamls, _ := filepath.Glob("../../rules/example/*.yaml")
	for _, f := range yamls {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(rules, filepath.Base(f)), data, 0o644)
	}
	os.WriteFile(filepath.Join(rules, "next.yaml"), []byte(`name: checkout_next
shadow_of: checkout
traffic: 50%
split_key: account_id
thresholds: {step_up: 50, block: 90}
rules:
  - {id: big, when: event.amount > 40, score: 60}
`), 0o644)
	var logs bytes.Buffer
	riskd := exec.Command(bin, "-listen", "127.0.0.1:0", "-kafka-brokers", addr, "-rules", rules)
	riskd.Stdout, riskd.Stderr = &logs, &logs
	if err := riskd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- riskd.Wait() }()
	defer func() {
		if riskd.ProcessState == nil {
			riskd.Process.Kill()
		}
	}()

	const n = 50
	var events bytes.Buffer
	for i := range n {
		fmt.Fprintf(&events, `{"id":"k-%d","type":"checkout","ts":%d,"account_id":"acc-%d","card_id":"card-%d","amount":%d}`+"\n",
			i, 1780000000000+i*1000, i%7, i%3, 10+i)
	}
	events.WriteString("not json\n")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	produce := exec.CommandContext(ctx, kcat, "-P", "-b", addr, "-t", "risk.events")
	produce.Stdin = &events
	if out, err := produce.CombinedOutput(); err != nil {
		t.Fatalf("kcat -P: %v\n%s", err, out)
	}

	read := func(topic string, count int) []record {
		out, err := exec.CommandContext(ctx, kcat, "-C", "-b", addr, "-t", topic, "-o", "beginning", "-c", fmt.Sprint(count), "-f", "%k\t%h\t%s\n").Output()
		if err != nil {
			t.Fatalf("kcat -C %s: %v\nriskd:\n%s", topic, err, logs.String())
		}
		var recs []record
		sc := bufio.NewScanner(bytes.NewReader(out))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			r := record{line: sc.Text()}
			var rest string
			r.key, rest, _ = strings.Cut(r.line, "\t")
			r.headers, r.value, _ = strings.Cut(rest, "\t")
			recs = append(recs, r)
		}
		return recs
	}
	seen := map[string]bool{}
	for _, r := range read("risk.decisions", n) {
		key, headers, value, line := r.key, r.headers, r.value, r.line
		var d struct {
			EventID  string `json:"event_id"`
			Decision string `json:"decision"`
		}
		if err := json.Unmarshal([]byte(value), &d); err != nil || d.EventID != key || d.Decision == "" {
			t.Fatalf("decision %q: %v", line, err)
		}
		if !strings.Contains(headers, "ruleset=checkout") || !strings.Contains(headers, "version=") {
			t.Fatalf("decision headers %q", headers)
		}
		seen[key] = true
	}
	if len(seen) != n {
		t.Fatalf("%d events decided, want %d", len(seen), n)
	}
	// One shadow verdict per event: the challenger's, or the champion's
	// where the split made the challenger decide.
	shadows := map[string]int{}
	for _, r := range read("risk.decisions.shadow", n) {
		key, value, line := r.key, r.value, r.line
		var d struct {
			EventID     string `json:"event_id"`
			Ruleset     string `json:"ruleset"`
			Shadow      bool   `json:"shadow"`
			LiveRuleset string `json:"live_ruleset"`
		}
		if err := json.Unmarshal([]byte(value), &d); err != nil || d.EventID != key || !d.Shadow || d.Ruleset == d.LiveRuleset {
			t.Fatalf("shadow decision %q: %v", line, err)
		}
		shadows[d.Ruleset]++
	}
	if shadows["checkout"] == 0 || shadows["checkout_next"] == 0 {
		t.Fatalf("shadow verdicts by ruleset %v: want both sides of the split", shadows)
	}
	dead := read("risk.events.dlq", 1)[0].line
	if !strings.Contains(dead, "error=invalid JSON") || !strings.HasSuffix(dead, "\tnot json") {
		t.Fatalf("dead letter %q", dead)
	}

	// SIGTERM: riskd drains, commits and exits cleanly.
	riskd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("riskd exited with %v after SIGTERM\n%s", err, logs.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("riskd still running 30s after SIGTERM\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "shutting down") {
		t.Errorf("riskd logs:\n%s", logs.String())
	}
}

// record is one message as kcat -f '%k\t%h\t%s\n' prints it.
type record struct {
	line                string
	key, headers, value string
}
