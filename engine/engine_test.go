package engine_test

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/riskd/riskd/engine"
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
