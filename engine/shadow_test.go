package engine_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/riskd/riskd/engine"
	"github.com/riskd/riskd/internal/enginetest"
	"github.com/riskd/riskd/internal/metrictest"
	"github.com/riskd/riskd/rules"
)

func scoreOne(t *testing.T, e *engine.Engine, body string, opts engine.ScoreOptions) engine.Decision {
	t.Helper()
	var d engine.Decision
	if err := e.Score(context.Background(), []byte(body), opts, &d); err != nil {
		t.Fatal(err)
	}
	return d
}

func verdicts(d engine.Decision) map[string]string {
	m := map[string]string{}
	for _, v := range d.Shadows {
		m[v.Ruleset] = fmt.Sprintf("%s/%d", v.Outcome, v.Score)
	}
	return m
}

// TestShadowSharesFeaturesAndIsNotReturned: challengers see the features
// the live ruleset saw, the event is recorded once, and their verdicts are
// counted but never answered.
func TestShadowSharesFeaturesAndIsNotReturned(t *testing.T) {
	reg := prometheus.NewRegistry()
	// No account_id: the split challenger never decides, it only shadows.
	e := engine.New(enginetest.Challengers(t, "50%"), engine.Options{Registerer: reg})
	var d engine.Decision
	for i := 1; i <= 3; i++ {
		d = scoreOne(t, e, fmt.Sprintf(`{"id":"e%d","type":"checkout","ts":%d,"card_id":"c1","amount":60}`, i, 1780000000000+i*1000), engine.ScoreOptions{})
	}
	if d.Ruleset != "checkout" || d.Outcome != rules.StepUp || d.Score != 60 || d.Reasons[0].Text != "card used 2 times" {
		t.Fatalf("live decision %+v", d.Verdict)
	}
	// Two earlier events, counted once each although three rulesets ran.
	want := map[string]string{"strict": "block/105", "split": "pass/1"}
	if got := verdicts(d); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("shadows %v, want %v", got, want)
	}
	if got := d.Shadows[1].Reasons[1].Text; d.Shadows[1].Ruleset != "strict" || got != "spent 120" {
		t.Fatalf("strict's reasons %+v", d.Shadows[1].Reasons)
	}
	if out := string(d.AppendJSON(nil)); strings.Contains(out, "strict") {
		t.Fatalf("a shadow verdict leaked into the answer: %s", out)
	}
	decision := func(name, ruleset, outcome string) float64 {
		return metrictest.Value(t, reg, name, map[string]string{"ruleset": ruleset, "outcome": outcome})
	}
	agreement := func(challenger, co, o string) float64 {
		return metrictest.Value(t, reg, "riskd_challenger_agreement_total", map[string]string{"champion": "checkout", "challenger": challenger, "champion_outcome": co, "challenger_outcome": o})
	}
	for _, c := range []struct {
		name string
		got  float64
		want float64
	}{
		{"live checkout step_up", decision("riskd_decisions_total", "checkout", "step_up"), 1},
		{"live strict", decision("riskd_decisions_total", "strict", "block"), 0},
		{"shadow strict block", decision("riskd_shadow_decisions_total", "strict", "block"), 1},
		{"shadow strict pass", decision("riskd_shadow_decisions_total", "strict", "pass"), 2},
		{"agree pass/pass", agreement("strict", "pass", "pass"), 2},
		{"disagree step_up/block", agreement("strict", "step_up", "block"), 1},
		{"split pass/pass", agreement("split", "pass", "pass"), 2},
	} {
		if got := c.got; got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
	d = scoreOne(t, e, `{"id":"e9","type":"checkout","ts":1780000009000,"card_id":"c1","amount":1}`, engine.ScoreOptions{Explain: true})
	var explained struct {
		Shadow []struct {
			Ruleset  string `json:"ruleset"`
			Decision string `json:"decision"`
		} `json:"shadow"`
	}
	if err := json.Unmarshal(d.AppendJSON(nil), &explained); err != nil || len(explained.Shadow) != 2 || explained.Shadow[1].Decision != "block" {
		t.Fatalf("explain shows shadows %+v (%v): %s", explained, err, d.AppendJSON(nil))
	}
}

// TestSplitIsStableByKey: the split challenger decides for its share of
// account ids, the same ones in every instance; events without the key
// stay with the champion; the champion's verdict is kept as a shadow.
func TestSplitIsStableByKey(t *testing.T) {
	a := engine.New(enginetest.Challengers(t, "20%"), engine.Options{})
	b := engine.New(enginetest.Challengers(t, "20%"), engine.Options{})
	const n = 20000
	challenged := 0
	for i := 0; i < n; i++ {
		ev := fmt.Sprintf(`{"id":"e%d","type":"checkout","ts":1780000000000,"card_id":"c%d","account_id":"acc-%d","amount":5}`, i, i, i)
		da := scoreOne(t, a, ev, engine.ScoreOptions{})
		db := scoreOne(t, b, ev, engine.ScoreOptions{})
		if da.Ruleset != db.Ruleset {
			t.Fatalf("acc-%d: %s on one instance, %s on the other", i, da.Ruleset, db.Ruleset)
		}
		if want := rules.SplitBucket("account_id", fmt.Sprintf("acc-%d", i)) < 200000; (da.Ruleset == "split") != want {
			t.Fatalf("acc-%d decided by %s; its bucket says split=%v", i, da.Ruleset, want)
		}
		if da.Ruleset == "split" {
			challenged++
			if got := verdicts(da); got["checkout"] != "pass/0" || got["strict"] != "pass/0" || len(got) != 2 {
				t.Fatalf("split event's shadows %v, want the champion and strict", got)
			}
		} else if got := verdicts(da); got["split"] != "pass/1" || len(got) != 2 {
			t.Fatalf("champion event's shadows %v", got)
		}
	}
	// 20% of 20,000 has a standard deviation of ~57 keys.
	if challenged < 3700 || challenged > 4300 {
		t.Fatalf("split challenger decided %d of %d events, want about 20%%", challenged, n)
	}
	d := scoreOne(t, a, `{"id":"nokey","type":"checkout","ts":1780000000000,"card_id":"c"}`, engine.ScoreOptions{})
	if d.Ruleset != "checkout" {
		t.Fatalf("event without the split key decided by %s", d.Ruleset)
	}
	all := engine.New(enginetest.Challengers(t, "100%"), engine.Options{})
	if d := scoreOne(t, all, `{"id":"x","type":"checkout","ts":1780000000000,"account_id":"a"}`, engine.ScoreOptions{}); d.Ruleset != "split" || d.Version != "x1" {
		t.Fatalf("100%% split: decided by %s %s", d.Ruleset, d.Version)
	}
}
