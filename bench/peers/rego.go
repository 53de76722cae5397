package peers

import (
	"context"
	"encoding/json"
	"math"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
)

// regoPolicy is the checkout policy in Rego: each rule adds a [rule,
// score] hit; a sanctioned country forces block.
const regoPolicy = `package checkout

sanctioned := {"KP", "IR", "SY", "CU"}
high_risk := {"NG", "RU", "VE"}
f := input.features
e := input.event

hits contains ["terminal_chargebacks", min([60, 20 * f.terminal_chargebacks_28d])] if {
	f.terminal_chargebacks_28d != null
	f.terminal_chargebacks_28d >= 1
}
hits contains ["card_velocity_1h", 40] if f.card_txn_count_1h >= 5
hits contains ["card_velocity_24h", 25] if f.card_txn_count_24h >= 15
hits contains ["account_velocity_1h", 25] if f.account_txn_count_1h >= 5
hits contains ["card_burst", 15] if {
	f.card_since_last_s != null
	f.card_since_last_s < 10
}
hits contains ["amount_over_limit", 50] if e.amount >= 5000
hits contains ["amount_above_account_average", 30] if {
	f.account_amount_avg_30d != null
	e.amount >= 100
	e.amount > 5 * f.account_amount_avg_30d
}
hits contains ["card_amount_24h", 25] if f.card_amount_sum_24h + e.amount > 10000
hits contains ["new_device", 15] if f.account_device_seen == false
hits contains ["shared_device", min([60, 15 * f.device_accounts_24h])] if {
	f.device_accounts_24h != null
	f.device_accounts_24h >= 3
}
hits contains ["many_cards", 30] if f.account_cards_24h >= 3
hits contains ["many_ips", 15] if f.account_ips_24h >= 4
hits contains ["cross_border", 20] if e.ip_country != e.card_country
hits contains ["high_risk_country", 25] if high_risk[e.ip_country]
hits contains ["failed_3ds", min([50, 15 * f.account_3ds_failed_24h])] if f.account_3ds_failed_24h >= 2
hits contains ["new_account_large_amount", 40] if {
	f.account_age_s < 600
	e.amount >= 500
}
hits contains ["profile_churn", 25] if f.account_profile_changes_7d >= 3
hits contains ["established_account", -20] if {
	f.account_age_s > 180 * 86400
	f.account_device_seen == true
}

default blocked := false

blocked if sanctioned[e.ip_country]
blocked if sanctioned[e.card_country]
blocked if f.card_charged_back == true

result := {"score": sum([s | some [_, s] in hits]), "blocked": blocked}
`

// Rego runs the policy as an OPA prepared query, with inputs converted to
// OPA's values ahead of time.
type Rego struct {
	query  rego.PreparedEvalQuery
	inputs []ast.Value
}

// NewRego prepares the query.
func NewRego(inputs []Input) (*Rego, error) {
	q, err := rego.New(rego.Query("data.checkout.result"), rego.Module("checkout.rego", regoPolicy)).PrepareForEval(context.Background())
	if err != nil {
		return nil, err
	}
	r := &Rego{query: q}
	for _, in := range inputs {
		v, err := ast.InterfaceToValue(map[string]any{"features": in.Features, "event": in.Event})
		if err != nil {
			return nil, err
		}
		r.inputs = append(r.inputs, v)
	}
	return r, nil
}

// Eval scores input i.
func (r *Rego) Eval(i int) Result {
	rs, err := r.query.Eval(context.Background(), rego.EvalParsedInput(r.inputs[i]))
	if err != nil || len(rs) == 0 {
		return Result{Outcome: "error"}
	}
	m := rs[0].Expressions[0].Value.(map[string]any)
	s, _ := m["score"].(json.Number).Float64()
	score := int64(math.Round(s))
	forced := ""
	if b, _ := m["blocked"].(bool); b {
		forced = "block"
	}
	return Result{Outcome: Outcome(score, forced), Score: score}
}
