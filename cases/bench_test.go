package cases_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/riskd/riskd/cases"
	"github.com/riskd/riskd/internal/redistest"
)

// BenchmarkQueue answers queue pages over 100,000 open cases: the console
// must answer one in under 100 ms. Each query is one sub-benchmark:
// unfiltered by age and by score, a filter that matches one case in
// five, a combination that matches none, and a deep page.
func BenchmarkQueue(b *testing.B) {
	const n = 100_000
	queries := []struct {
		name string
		q    cases.Query
	}{
		{"age", cases.Query{}},
		{"score", cases.Query{Order: cases.ByScore}},
		{"rule", cases.Query{Rule: "rule_3", Order: cases.ByScore}},
		{"none_match", cases.Query{Ruleset: "checkout", Rule: "rule_3", Decision: "nothing"}},
		{"page_100", cases.Query{Ruleset: "payout", Offset: 99 * 50}},
	}
	for _, st := range []struct {
		name string
		new  func(b *testing.B, opts cases.Options) cases.Store
	}{
		{"memory", func(b *testing.B, opts cases.Options) cases.Store { return cases.NewMemory(opts) }},
		{"bolt", func(b *testing.B, opts cases.Options) cases.Store {
			s, err := cases.OpenBolt(filepath.Join(b.TempDir(), "cases.db"), opts)
			if err != nil {
				b.Fatal(err)
			}
			cases.SetNoSync(s, true)
			b.Cleanup(func() { s.Close() })
			return s
		}},
		{"redis", func(b *testing.B, opts cases.Options) cases.Store {
			srv := redistest.Start(b)
			s, err := cases.NewRedis(cases.RedisOptions{Options: opts, Addrs: []string{srv.Addr()}})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { s.Close() })
			return s
		}},
	} {
		b.Run(st.name, func(b *testing.B) {
			clk := newClock()
			opts := clk.opts()
			opts.Retention = 365 * 24 * time.Hour
			s := st.new(b, opts)
			fill(b, s, clk, n)
			for _, q := range queries {
				b.Run(q.name, func(b *testing.B) {
					for b.Loop() {
						if _, err := s.Queue(context.Background(), q.q); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		})
	}
}

// fill opens n cases like queueCases', from 8 goroutines.
func fill(b *testing.B, s cases.Store, clk *clock, n int) {
	b.Helper()
	start := clk.Now()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 8 {
				c := sample(fmt.Sprintf("c_%06d", i), start.Add(time.Duration(i)*time.Second))
				c.Ruleset = []string{"checkout", "payout"}[i%2]
				c.Score = int64(i*37) % 100
				c.Decision = []string{"review", "review", "block"}[i%3]
				c.Reasons = []cases.Reason{{Rule: fmt.Sprintf("rule_%d", i%5), Score: c.Score}, {Rule: "velocity"}}
				if _, err := s.Open(context.Background(), c); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	clk.Advance(time.Duration(n) * time.Second)
	if st, err := s.Stats(context.Background()); err != nil || st.Open != n {
		b.Fatalf("stats %+v, %v; want %d open", st, err, n)
	}
}
