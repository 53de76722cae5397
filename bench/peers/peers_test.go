package peers

import (
	"testing"
)

type evaluator interface{ Eval(i int) Result }

func engines(tb testing.TB, inputs []Input) map[string]evaluator {
	tb.Helper()
	e, err := NewExpr(inputs)
	if err != nil {
		tb.Fatal(err)
	}
	c, err := NewCEL(inputs)
	if err != nil {
		tb.Fatal(err)
	}
	r, err := NewRego(inputs)
	if err != nil {
		tb.Fatal(err)
	}
	return map[string]evaluator{"go": NewNative(inputs), "expr": e, "cel": c, "rego": r}
}

// TestAllEnginesAgree: before any timing, the four engines return the same
// decision and score on 100,000 generated events.
func TestAllEnginesAgree(t *testing.T) {
	inputs := Generate(100000, 1)
	es := engines(t, inputs)
	outcomes := map[string]int{}
	for i := range inputs {
		want := es["go"].Eval(i)
		outcomes[want.Outcome]++
		for name, e := range es {
			if got := e.Eval(i); got != want {
				t.Fatalf("event %d %v: %s says %v, go says %v", i, inputs[i], name, got, want)
			}
		}
	}
	// The data must exercise every outcome, or agreement proves little.
	for _, o := range []string{"pass", "step_up", "block"} {
		if outcomes[o] < 1000 {
			t.Errorf("only %d %s decisions in 100,000: %v", outcomes[o], o, outcomes)
		}
	}
	t.Logf("outcomes: %v", outcomes)
}

// BenchmarkPeers times each engine on the same events, in one run:
//
//	cd bench/peers && go test -run XXX -bench . -benchmem
func BenchmarkPeers(b *testing.B) {
	inputs := Generate(10000, 2)
	es := engines(b, inputs)
	for _, name := range []string{"go", "expr", "cel", "rego"} {
		e := es[name]
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				e.Eval(i % len(inputs))
				i++
			}
		})
	}
}
