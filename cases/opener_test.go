package cases_test

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/riskd/riskd/cases"
)

func TestOpener(t *testing.T) {
	clk := newClock()
	store := cases.NewMemory(clk.opts())
	reg := prometheus.NewRegistry()
	o := cases.NewOpener(store, cases.OpenerOptions{Queue: 2, Registerer: reg})
	o.Open(sample("c_1", clk.Now()))
	o.Open(sample("c_1", clk.Now())) // a retry: one case
	o.Open(sample("c_2", clk.Now())) // past the queue: dropped
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	o.Run(ctx) // returns at once
	o.Drain(context.Background())
	if st, _ := store.Stats(context.Background()); st.Open != 1 {
		t.Errorf("%d open, want 1", st.Open)
	}
	for name, want := range map[string]float64{"riskd_cases_opened_total": 1, "riskd_cases_reopened_total": 1} {
		if got := counter(t, reg, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if n, _ := testutil.GatherAndCount(reg, "riskd_cases_open_failures_total"); n != 3 {
		t.Errorf("%d failure series, want 3 (every reason shows)", n)
	}
	o.Open(sample("c_3", clk.Now()))
	done, stop := context.WithCancel(context.Background())
	stop()
	o.Drain(done)
	if st, _ := store.Stats(context.Background()); st.Open != 1 {
		t.Errorf("a drain out of time opened a case: %d open", st.Open)
	}
}

// counter reads an unlabelled counter of reg.
func counter(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.Metric[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no %s", name)
	return 0
}
