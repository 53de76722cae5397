package engine_test

import (
	"fmt"
	"testing"
	"testing/fstest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/riskd/riskd/engine"
	"github.com/riskd/riskd/features"
	"github.com/riskd/riskd/internal/metrictest"
	"github.com/riskd/riskd/internal/redistest"
	"github.com/riskd/riskd/redisstore"
	"github.com/riskd/riskd/rules"
)

const whereFeaturesYAML = `features:
  - name: card_declined_1h
    kind: count
    key: card_id
    window: 1h
    event_types: [payment]
    where: event.status == "declined"
  - name: card_big_1h
    kind: count
    key: card_id
    window: 1h
    event_types: [payment]
    where: event.amount > 500
  - name: card_payments_1h
    kind: count
    key: card_id
    window: 1h
    event_types: [payment]
`

const whereRuleset = `name: payment
event_types: [payment]
thresholds: {step_up: 50, block: 90}
rules:
  - id: declines
    when: features.card_declined_1h >= 2 && features.card_big_1h >= 0 && features.card_payments_1h >= 0
    score: 60
`

// TestWhereRecordsOnlyMatchingEvents: a filtered feature counts the events
// its condition holds for; one whose condition fails at run time is not
// recorded and is counted; reading is unaffected. Memory and Redis agree.
func TestWhereRecordsOnlyMatchingEvents(t *testing.T) {
	p, err := rules.Load(fstest.MapFS{
		"features.yaml": {Data: []byte(whereFeaturesYAML)},
		"payment.yaml":  {Data: []byte(whereRuleset)},
	}, "p")
	if err != nil {
		t.Fatal(err)
	}
	srv := redistest.Start(t)
	stores := map[string]func(t *testing.T) features.Store{
		"memory": func(*testing.T) features.Store { return nil },
		"redis": func(t *testing.T) features.Store {
			r, err := redisstore.New(t.Context(), redisstore.Options{Addrs: []string{srv.Addr()}, Prefix: "where:"})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { r.Close() })
			return r
		},
	}
	for name, newStore := range stores {
		t.Run(name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			e := engine.New(p, engine.Options{Store: newStore(t), Registerer: reg, StoreTimeout: time.Second})
			pay := func(id string, sec int, rest string) engine.Decision {
				return score(t, e, fmt.Sprintf(`{"id":%q,"type":"payment","ts":%d,"card_id":"c1"%s}`, id, 1780000000000+sec*1000, rest))
			}
			pay("p1", 0, `,"status":"declined","amount":100`)
			pay("p2", 1, `,"status":"approved","amount":600`)
			pay("p3", 2, `,"status":"declined"`) // no amount: card_big_1h's where fails
			pay("p4", 3, `,"status":"approved","amount":10`)
			d := pay("p5", 4, `,"amount":10`)
			for f, want := range map[string]float64{"card_declined_1h": 2, "card_big_1h": 1, "card_payments_1h": 4} {
				if got := feature(d, f); !got.Valid || got.Num != want {
					t.Errorf("%s = %+v, want %v", f, got, want)
				}
			}
			if len(d.Reasons) != 1 || d.Reasons[0].Rule != "declines" {
				t.Errorf("reasons %+v, want declines", d.Reasons)
			}
			if got := metrictest.Value(t, reg, "riskd_feature_where_errors_total", map[string]string{"feature": "card_big_1h"}); got != 1 {
				t.Errorf("where errors of card_big_1h: %v, want 1", got)
			}
			if got := metrictest.Value(t, reg, "riskd_feature_where_errors_total", map[string]string{"feature": "card_declined_1h"}); got != 0 {
				t.Errorf("where errors of card_declined_1h: %v, want 0 (nil == \"declined\" is false, not an error)", got)
			}
		})
	}
}
