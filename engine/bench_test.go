package engine_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/riskd/riskd/engine"
	"github.com/riskd/riskd/internal/enginetest"
	"github.com/riskd/riskd/rules"
)

// BenchmarkScoreShadow is Score with 0, 1 and 2 shadow challengers of
// checkout (copies of its 21 rules) evaluated before Score returns, as
// on the Kafka path: what each challenger costs.
func BenchmarkScoreShadow(b *testing.B) {
	for _, n := range []int{0, 1, 2} {
		b.Run("challengers="+strconv.Itoa(n), func(b *testing.B) { benchScore(b, enginetest.ExampleWithChallengers(b, n)) })
	}
}

// BenchmarkScore is the whole in-process Score of a checkout on the memory
// store: parse, 15 features (one store call), 21 rules, decision.
func BenchmarkScore(b *testing.B) { benchScore(b, examplePolicy(b)) }

// benchScore times Score on policy p after warming the store with 100,000
// events, so entities have history.
func benchScore(b *testing.B, p *rules.Policy) {
	e := engine.New(p, engine.Options{})
	g := enginetest.NewEvents(0)
	var d engine.Decision
	// The stores fill to a steady state first; -short (CI's run of every
	// benchmark once) only checks that the benchmark runs.
	warm := 100000
	if testing.Short() {
		warm = 1000
	}
	for range warm {
		if err := e.Score(context.Background(), g.Next(), engine.ScoreOptions{}, &d); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := e.Score(context.Background(), g.Next(), engine.ScoreOptions{}, &d); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkScoreParallel scores from every core at once.
func BenchmarkScoreParallel(b *testing.B) {
	e := engine.New(examplePolicy(b), engine.Options{})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		g := enginetest.NewEvents(int(time.Now().UnixNano() % 1e9)) // distinct ids per goroutine
		var d engine.Decision
		for pb.Next() {
			if err := e.Score(context.Background(), g.Next(), engine.ScoreOptions{}, &d); err != nil {
				b.Fatal(err)
			}
		}
	})
}
