package engine_test

import (
	"encoding/json"
	"regexp"
	"testing"
	"testing/fstest"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/riskd/riskd/engine"
	"github.com/riskd/riskd/internal/enginetest"
	"github.com/riskd/riskd/internal/metrictest"
	"github.com/riskd/riskd/rules"
)

func reviewPolicy(t testing.TB) *rules.Policy {
	t.Helper()
	p, err := rules.Load(fstest.MapFS{
		"features.yaml": {Data: []byte("features:\n  - {name: card_count_1h, kind: count, key: card_id, window: 1h}\n")},
		"checkout.yaml": {Data: []byte(`name: checkout
version: "r1"
event_types: [checkout]
thresholds: {step_up: 30, review: 60, block: 90}
rules:
  - id: velocity
    when: features.card_count_1h >= 1
    score: 60
    reason: "card used {{features.card_count_1h}} times"
  - id: gift_card
    when: event.item == "gift_card"
    action: review
  - id: huge
    when: event.amount > 10000
    score: 100
`)},
	}, "p")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestReviewDecision: a review by threshold and by a rule's action carries
// a case id derived from the event id (a retry names the same case), and
// the features its case will hold; block outranks review.
func TestReviewDecision(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := engine.New(reviewPolicy(t), engine.Options{Registerer: reg})
	caseID := regexp.MustCompile(`^c_[a-z2-7]{24}$`)
	for _, tt := range []struct {
		name, body, want string
		features         int
	}{
		{"pass", `{"id":"e1","type":"checkout","ts":1780000000000,"card_id":"c1","amount":5}`, "pass", 0},
		{"by threshold", `{"id":"e2","type":"checkout","ts":1780000001000,"card_id":"c1","amount":5}`, "review", 1},
		{"by action", `{"id":"e3","type":"checkout","ts":1780000002000,"card_id":"c2","item":"gift_card"}`, "review", 1},
		{"block outranks review", `{"id":"e4","type":"checkout","ts":1780000003000,"card_id":"c3","item":"gift_card","amount":20000}`, "block", 0},
		{"retry: same case", `{"id":"e2","type":"checkout","ts":1780000001000,"card_id":"c1","amount":5}`, "review", 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := enginetest.ScoreWith(t, e, tt.body, engine.ScoreOptions{})
			if d.Outcome.String() != tt.want {
				t.Fatalf("decision %s (score %d), want %s", d.Outcome, d.Score, tt.want)
			}
			var answer map[string]any
			if err := json.Unmarshal(d.AppendJSON(nil), &answer); err != nil {
				t.Fatal(err)
			}
			if answer["decision"] != tt.want {
				t.Errorf("answer decision %v, want %s", answer["decision"], tt.want)
			}
			id, _ := answer["case_id"].(string)
			switch {
			case tt.want == "review" && !caseID.MatchString(id):
				t.Errorf("case_id %q, want c_ and 24 base32 characters", id)
			case tt.want != "review" && id != "":
				t.Errorf("a %s decision has case_id %q", tt.want, id)
			case id != "" && id != string(engine.AppendCaseID(nil, d.EventID)):
				t.Errorf("case_id %q is not the event id's", id)
			}
			if _, ok := answer["features"]; ok {
				t.Error("the answer lists features without explain")
			}
			if len(d.Features) != tt.features {
				t.Errorf("decision holds %d features, want %d", len(d.Features), tt.features)
			}
		})
	}
	if got := metrictest.Value(t, reg, "riskd_decisions_total", map[string]string{"ruleset": "checkout", "outcome": "review"}); got != 3 {
		t.Errorf("riskd_decisions_total{outcome=review} = %v, want 3", got)
	}
	if a, b := string(engine.AppendCaseID(nil, "e2")), string(engine.AppendCaseID(nil, "e3")); a == b {
		t.Errorf("two events, one case id %s", a)
	}
}
