package engine_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/riskd/riskd/engine"
	"github.com/riskd/riskd/httpapi"
	"github.com/riskd/riskd/rules"
)

// TestRuleErrorsAreLoud: a rule failing at run time on more than a small
// share of a minute's evaluations is logged once for that minute, with an
// example, and shown in /v1/rulesets; one failing rarely is shown but not
// logged.
func TestRuleErrorsAreLoud(t *testing.T) {
	p, err := rules.Load(fstest.MapFS{
		"features.yaml": {Data: []byte("features:\n  - {name: n, kind: count, key: card_id, window: 1h}\n")},
		"checkout.yaml": {Data: []byte(`name: checkout
event_types: [checkout]
thresholds: {step_up: 50, block: 90}
rules:
  - {id: big, when: event.amount > 100, score: 60}
  - {id: odd, when: "event.n == 1 ? event.code > 1 : false", score: 1}
`)},
	}, "p")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	var logs bytes.Buffer
	e := engine.New(p, engine.Options{Now: func() time.Time { return now }, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	var d engine.Decision
	score := func(body string) {
		t.Helper()
		if err := e.Score(context.Background(), []byte(body), engine.ScoreOptions{}, &d); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 200 {
		amount := `120`
		if i%4 == 0 {
			amount = `"950"` // an evasion: the amount as a string
		}
		n := 0
		if i == 7 {
			n = 1 // the one event on which odd fails: 0.5%
		}
		score(fmt.Sprintf(`{"id":"e%d","type":"checkout","amount":%s,"n":%d,"code":"x"}`, i, amount, n))
	}
	if logs.Len() != 0 {
		t.Fatalf("logged within the minute: %s", logs.String())
	}
	now = now.Add(time.Minute)
	score(`{"id":"next","type":"checkout","amount":1}`)
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], `msg="rule fails at run time and does not fire" ruleset=checkout rule=big errors=50 evaluations=200`) ||
		!strings.Contains(lines[0], `example_event_id=e0`) || !strings.Contains(lines[0], `example_error="invalid operation: string > int`) {
		t.Errorf("log:\n%s", logs.String())
	}

	srv := httptest.NewServer(httpapi.NewHandler(e, httpapi.HandlerOptions{}))
	defer srv.Close()
	var out struct {
		Rulesets []struct {
			RuleErrors []engine.RuleErrors `json:"rule_errors"`
		} `json:"rulesets"`
	}
	resp, err := http.Get(srv.URL + "/v1/rulesets")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	got := out.Rulesets[0].RuleErrors
	if len(got) != 2 || got[0].Rule != "big" || got[0].Errors != 50 || got[0].Evaluations != 200 || got[0].EventID != "e0" || got[0].Minute != "2026-11-29T10:00:00Z" ||
		got[1].Rule != "odd" || got[1].Errors != 1 || got[1].EventID != "e7" {
		t.Errorf("rule_errors: %+v", got)
	}
	total := e.RuleErrors()
	if len(total) != 2 || total[0].Ruleset != "checkout" || total[0].Errors != 50 || total[0].Evaluations != 201 {
		t.Errorf("RuleErrors: %+v", total)
	}
}
