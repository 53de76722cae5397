package handbook_test

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"testing"
	"testing/fstest"

	"github.com/riskd/riskd/engine"
	"github.com/riskd/riskd/rules"
)

// baseLine makes checkout.yaml model-first, so the policy without it is
// the file without that line: its rules alone, no model evaluated.
const baseLine = "base: {model: fraud, scale: 1000}\n"

// handbookPolicy loads this directory as riskd would serve it or, without
// withModel, the same policy minus its base: then nothing reads
// model.fraud and the model is never evaluated.
func handbookPolicy(tb testing.TB, withModel bool) *rules.Policy {
	tb.Helper()
	fsys := fstest.MapFS{}
	for _, name := range []string{"features.yaml", "models.yaml", "fraud.json", "checkout.yaml"} {
		data, err := os.ReadFile(name)
		if err != nil {
			tb.Fatal(err)
		}
		fsys[name] = &fstest.MapFile{Data: data}
	}
	if !withModel {
		data := fsys["checkout.yaml"].Data
		if bytes.Count(data, []byte(baseLine)) != 1 || bytes.Contains(data, []byte("model.")) {
			tb.Fatalf("checkout.yaml: %q is not the one use of the model", baseLine)
		}
		fsys["checkout.yaml"].Data = bytes.Replace(data, []byte(baseLine), nil, 1)
	}
	p, err := rules.Load(fsys, "handbook")
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// handbookEvent writes event n of a stream shaped like the handbook's:
// 5,000 customers and 10,000 terminals, a checkout every 9 s (the data
// set's rate), and a chargeback instead every 100th event, so the
// customer and terminal windows hold what they hold on the real data.
func handbookEvent(buf []byte, n int) []byte {
	ts := 1522540800000 + int64(n)*9000
	customer, terminal := n%4990, (n*37)%10000
	if n%100 == 99 {
		return fmt.Appendf(buf[:0], `{"id":"cb-%d","type":"chargeback","ts":%d,"customer_id":"c-%d","terminal_id":"t-%d","amount":80}`,
			n, ts, customer, terminal)
	}
	return fmt.Appendf(buf[:0], `{"id":"tx-%d","type":"checkout","ts":%d,"customer_id":"c-%d","terminal_id":"t-%d","amount":%d.%02d}`,
		n, ts, customer, terminal, 5+(n*7919)%150, n%100)
}

// BenchmarkScoreModel is Score of a handbook checkout on the memory store
// after 40 days of history, with the policy's fraud model as its base and
// without: the difference is what the model costs per event, its derived
// inputs and the features only it reads included.
func BenchmarkScoreModel(b *testing.B) {
	for _, withModel := range []bool{false, true} {
		b.Run(fmt.Sprintf("model=%v", withModel), func(b *testing.B) {
			e := engine.New(handbookPolicy(b, withModel), engine.Options{})
			var d engine.Decision
			var buf []byte
			n := 0
			score := func() {
				buf = handbookEvent(buf, n)
				n++
				if err := e.Score(context.Background(), buf, engine.ScoreOptions{}, &d); err != nil {
					b.Fatal(err)
				}
			}
			warm := 40 * 86400 / 9 // 40 days of history
			if testing.Short() {
				warm = 1000 // CI's run of every benchmark once: does it run
			}
			for n < warm {
				score()
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				score()
			}
		})
	}
}

// BenchmarkPredictHandbook is the shipped model's own share of that
// difference: its trees on one checkout's 27 inputs (two missing); the
// rest is reading the features only the model reads and computing its
// derived inputs.
func BenchmarkPredictHandbook(b *testing.B) {
	m := handbookPolicy(b, true).Models.Model("fraud")
	x := []float64{57.16, 48.2, 2, 51.9, 14, 53.3, 61, 6, 33, 0, 0, 1, 1, math.NaN(), 0, 0, 55.1, 80.2, 0, 1, math.NaN(),
		1.07, 1.04, 1.1, 1.5, 0, 0}
	if len(x) != len(m.Inputs) {
		b.Fatalf("%d inputs, the model reads %d", len(x), len(m.Inputs))
	}
	b.ReportAllocs()
	for b.Loop() {
		m.Predict(x)
	}
}
