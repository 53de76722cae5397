package engine_test

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"testing"

	"github.com/riskd/riskd/engine"
	"github.com/riskd/riskd/internal/apitest"
	"github.com/riskd/riskd/rules"
	"github.com/riskd/riskd/rules/example"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

func examplePolicy(t testing.TB) *rules.Policy {
	t.Helper()
	p, err := rules.Load(example.FS, "rules/example")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

var elapsedRE = regexp.MustCompile(`"elapsed_us":\d+`)

// TestExamplePolicyGolden scores a scenario that exercises every rule of
// the example policy and compares the explained decisions with the golden
// file (go test ./engine -run Golden -update rewrites it).
func TestExamplePolicyGolden(t *testing.T) {
	in, err := os.ReadFile(filepath.Join("testdata", "example_events.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	e := engine.New(examplePolicy(t), engine.Options{})
	var out bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(in))
	for sc.Scan() {
		var d engine.Decision
		if err := e.Score(context.Background(), sc.Bytes(), engine.ScoreOptions{Explain: true}, &d); err != nil {
			t.Fatalf("%s: %v", sc.Text(), err)
		}
		var sum int64
		for _, r := range d.Reasons {
			sum += r.Score
		}
		if sum != d.Score {
			t.Errorf("event %s: reasons add up to %d, score is %d", d.EventID, sum, d.Score)
		}
		// The format HTTP answers and the decisions topic carries.
		apitest.CheckSchema(t, "Decision", d.AppendJSON(nil))
		out.Write(elapsedRE.ReplaceAll(d.AppendJSON(nil), []byte(`"elapsed_us":0`)))
		out.WriteByte('\n')
	}
	golden := filepath.Join("testdata", "example_decisions.golden.jsonl")
	if *update {
		if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./engine -run Golden -update)", err)
	}
	if !bytes.Equal(out.Bytes(), want) {
		gotLines, wantLines := bytes.Split(out.Bytes(), []byte("\n")), bytes.Split(want, []byte("\n"))
		for i := range max(len(gotLines), len(wantLines)) {
			var g, w []byte
			if i < len(gotLines) {
				g = gotLines[i]
			}
			if i < len(wantLines) {
				w = wantLines[i]
			}
			if !bytes.Equal(g, w) {
				t.Errorf("decision %d differs:\n got: %s\nwant: %s", i+1, g, w)
			}
		}
	}
}

// TestConcurrentScoring scores one card from several goroutines at once:
// every event is counted once, and retries racing with first deliveries
// are not counted again.
func TestConcurrentScoring(t *testing.T) {
	e := engine.New(examplePolicy(t), engine.Options{})
	const workers, each = 4, 100
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var d engine.Decision
			for i := range each {
				id := fmt.Sprintf("w%d-%d", w, i)
				body := fmt.Sprintf(`{"id":%q,"type":"checkout","ts":%d,"card_id":"card-1","account_id":"acc-%d","amount":10}`, id, 1780000000000+i, w)
				for range 2 { // and its retry
					if err := e.Score(context.Background(), []byte(body), engine.ScoreOptions{}, &d); err != nil {
						t.Error(err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	var d engine.Decision
	err := e.Score(context.Background(), []byte(`{"id":"last","type":"checkout","ts":1780000060000,"card_id":"card-1","amount":10}`), engine.ScoreOptions{Explain: true}, &d)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range d.Features {
		if f.Name == "card_txn_count_1h" && f.Value.Num != workers*each {
			t.Fatalf("card_txn_count_1h = %v after %d events and their retries, want %d", f.Value.Num, workers*each, workers*each)
		}
	}
}

// TestCompositeKeysDoNotCollide: account "acc\x1fdevX" with device
// "tail" and account "acc" with device "devX\x1ftail" are two pairs.
func TestCompositeKeysDoNotCollide(t *testing.T) {
	e := engine.New(examplePolicy(t), engine.Options{})
	var d engine.Decision
	for i, ev := range []string{
		`{"id":"1","type":"checkout","ts":1780000000000,"account_id":"acc\u001fdevX","device_id":"tail","amount":1}`,
		`{"id":"2","type":"checkout","ts":1780000001000,"account_id":"acc","device_id":"devX\u001ftail","amount":1}`,
		`{"id":"3","type":"checkout","ts":1780000002000,"account_id":"acc\u001e\u001fdevX","device_id":"tail","amount":1}`,
	} {
		if err := e.Score(context.Background(), []byte(ev), engine.ScoreOptions{Explain: true}, &d); err != nil {
			t.Fatal(err)
		}
		for _, f := range d.Features {
			if f.Name == "account_device_seen" && (!f.Value.Valid || f.Value.Bool) {
				t.Errorf("event %d: account_device_seen %+v, want false: a different pair", i+1, f.Value)
			}
		}
	}
}
