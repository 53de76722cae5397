package cases_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/riskd/riskd/cases"
)

func TestCollector(t *testing.T) {
	clk := newClock()
	s := cases.NewMemory(clk.opts())
	col := cases.NewCollector(s, clk.Now)
	want := func(open, age string) string {
		return "# HELP riskd_cases_oldest_open_age_seconds Age of the oldest open review case; 0 when none is open.\n# TYPE riskd_cases_oldest_open_age_seconds gauge\nriskd_cases_oldest_open_age_seconds " + age +
			"\n# HELP riskd_cases_open Review cases open (resolved ones are not counted).\n# TYPE riskd_cases_open gauge\nriskd_cases_open " + open + "\n"
	}
	if err := testutil.CollectAndCompare(col, strings.NewReader(want("0", "0")), "riskd_cases_open", "riskd_cases_oldest_open_age_seconds"); err != nil {
		t.Error(err)
	}
	s.Open(context.Background(), sample("c_1", clk.Now()))
	clk.Advance(90 * time.Second)
	s.Open(context.Background(), sample("c_2", clk.Now()))
	if err := testutil.CollectAndCompare(col, strings.NewReader(want("2", "90")), "riskd_cases_open", "riskd_cases_oldest_open_age_seconds"); err != nil {
		t.Error(err)
	}
}
