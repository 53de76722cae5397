package peers

import (
	"fmt"
	"math"

	"cel.dev/cel-go/cel"
)

// celRules is the checkout policy in CEL, rule for rule.
var celRules = []struct {
	id, when, score, action string
}{
	{"sanctioned_country", `event.ip_country in ["KP", "IR", "SY", "CU"] || event.card_country in ["KP", "IR", "SY", "CU"]`, "0.0", "block"},
	{"card_charged_back", `features.card_charged_back == true`, "0.0", "block"},
	{"terminal_chargebacks", `(features.terminal_chargebacks_28d != null ? features.terminal_chargebacks_28d : 0.0) >= 1.0`, `20.0 * features.terminal_chargebacks_28d < 60.0 ? 20.0 * features.terminal_chargebacks_28d : 60.0`, ""},
	{"card_velocity_1h", `features.card_txn_count_1h >= 5.0`, "40.0", ""},
	{"card_velocity_24h", `features.card_txn_count_24h >= 15.0`, "25.0", ""},
	{"account_velocity_1h", `features.account_txn_count_1h >= 5.0`, "25.0", ""},
	{"card_burst", `features.card_since_last_s != null && features.card_since_last_s < 10.0`, "15.0", ""},
	{"amount_over_limit", `event.amount >= 5000.0`, "50.0", ""},
	{"amount_above_account_average", `features.account_amount_avg_30d != null && event.amount >= 100.0 && event.amount > 5.0 * features.account_amount_avg_30d`, "30.0", ""},
	{"card_amount_24h", `features.card_amount_sum_24h + event.amount > 10000.0`, "25.0", ""},
	{"new_device", `features.account_device_seen == false`, "15.0", ""},
	{"shared_device", `(features.device_accounts_24h != null ? features.device_accounts_24h : 0.0) >= 3.0`, `15.0 * features.device_accounts_24h < 60.0 ? 15.0 * features.device_accounts_24h : 60.0`, ""},
	{"many_cards", `features.account_cards_24h >= 3.0`, "30.0", ""},
	{"many_ips", `features.account_ips_24h >= 4.0`, "15.0", ""},
	{"cross_border", `event.ip_country != event.card_country`, "20.0", ""},
	{"high_risk_country", `event.ip_country in ["NG", "RU", "VE"]`, "25.0", ""},
	{"failed_3ds", `features.account_3ds_failed_24h >= 2.0`, `15.0 * features.account_3ds_failed_24h < 50.0 ? 15.0 * features.account_3ds_failed_24h : 50.0`, ""},
	{"new_account_large_amount", `features.account_age_s < 600.0 && event.amount >= 500.0`, "40.0", ""},
	{"profile_churn", `features.account_profile_changes_7d >= 3.0`, "25.0", ""},
	{"established_account", `features.account_age_s > 180.0 * 86400.0 && features.account_device_seen == true`, "-20.0", ""},
}

type celRule struct {
	when, score cel.Program
	action      string
}

// CEL runs the policy with cel-go: one compiled program per condition and
// per score, activations prepared per input.
type CEL struct {
	rules []celRule
	acts  []map[string]any
}

// NewCEL compiles the rules.
func NewCEL(inputs []Input) (*CEL, error) {
	env, err := cel.NewEnv(
		cel.Variable("features", cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable("event", cel.MapType(cel.StringType, cel.DynType)),
	)
	if err != nil {
		return nil, err
	}
	compile := func(src string) (cel.Program, error) {
		ast, iss := env.Compile(src)
		if iss.Err() != nil {
			return nil, fmt.Errorf("%s: %w", src, iss.Err())
		}
		return env.Program(ast, cel.EvalOptions(cel.OptOptimize))
	}
	c := &CEL{}
	for _, r := range celRules {
		w, err := compile(r.when)
		if err != nil {
			return nil, err
		}
		s, err := compile(r.score)
		if err != nil {
			return nil, err
		}
		c.rules = append(c.rules, celRule{when: w, score: s, action: r.action})
	}
	for _, in := range inputs {
		c.acts = append(c.acts, map[string]any{"features": in.Features, "event": in.Event})
	}
	return c, nil
}

// Eval scores input i.
func (c *CEL) Eval(i int) Result {
	act := c.acts[i]
	var score int64
	forced := ""
	for _, r := range c.rules {
		out, _, err := r.when.Eval(act)
		if err != nil || out.Value() != true {
			continue
		}
		s, _, err := r.score.Eval(act)
		if err != nil {
			continue
		}
		score += int64(math.Round(s.Value().(float64)))
		if r.action == "block" {
			forced = "block"
		}
	}
	return Result{Outcome: Outcome(score, forced), Score: score}
}
