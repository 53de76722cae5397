// Package peers evaluates the example checkout policy's rules with four
// engines on the same precomputed feature values: riskd's (expr), CEL,
// OPA's Rego and hand-written Go, the floor. It is a module of its own so
// riskd's go.mod stays lean.
package peers

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
)

// Input is one event and its features, as the engine would have them after
// the store call. nil is an absent feature.
type Input struct {
	Features map[string]any
	Event    map[string]any
}

// Result is what every engine must agree on.
type Result struct {
	Outcome string // pass, step_up, block
	Score   int64
}

func (r Result) String() string { return fmt.Sprintf("%s/%d", r.Outcome, r.Score) }

// Outcome applies the checkout thresholds (step_up 50, block 90) and a
// forced action.
func Outcome(score int64, forced string) string {
	o := "pass"
	switch {
	case score >= 90:
		o = "block"
	case score >= 50:
		o = "step_up"
	}
	if forced == "block" || (forced == "step_up" && o == "pass") {
		o = forced
	}
	return o
}

// Generate makes n inputs with the spread of a real checkout stream: most
// quiet, some velocity, some new accounts and devices, a few sanctioned
// countries, absent features where the store has no history.
func Generate(n int, seed uint64) []Input {
	rng := rand.New(rand.NewPCG(seed, 7))
	countries := []string{"FR", "FR", "FR", "FR", "FR", "FR", "DE", "DE", "DE", "DE", "GB", "GB", "GB", "US", "US", "ES", "ES", "IT", "NL", "NG", "RU", "VE", "KP", "IR"}
	pick := func() string { return countries[rng.IntN(len(countries))] }
	// Counts are mostly 0 or 1 with a long tail, as in real traffic.
	count := func(max int) any { return float64(min(max, int(rng.ExpFloat64()*float64(max)/5))) }
	maybe := func(p float64, v any) any {
		if rng.Float64() < p {
			return nil
		}
		return v
	}
	out := make([]Input, n)
	for i := range out {
		amount := math.Round(rng.ExpFloat64()*150*100) / 100
		if rng.IntN(50) == 0 {
			amount += 5000
		}
		card := pick()
		ip := card
		if rng.IntN(8) == 0 {
			ip = pick()
		}
		var seen any = rng.IntN(4) != 0
		if rng.IntN(10) == 0 {
			seen = nil
		}
		out[i] = Input{
			Event: map[string]any{"amount": amount, "currency": "EUR", "ip_country": ip, "card_country": card, "card_id": "card-" + strconv.Itoa(rng.IntN(1000))},
			Features: map[string]any{
				"card_txn_count_1h":          count(8),
				"card_txn_count_24h":         count(20),
				"account_txn_count_1h":       count(7),
				"card_amount_sum_24h":        math.Round(rng.ExpFloat64()*2000*100) / 100,
				"account_amount_avg_30d":     maybe(0.2, math.Round(rng.ExpFloat64()*100*100)/100),
				"card_since_last_s":          maybe(0.3, float64(rng.IntN(3600))),
				"account_device_seen":        seen,
				"device_accounts_24h":        maybe(0.1, count(6)),
				"account_cards_24h":          count(5),
				"account_ips_24h":            count(6),
				"account_age_s":              float64(rng.IntN(400 * 86400)),
				"account_3ds_failed_24h":     count(4),
				"account_profile_changes_7d": count(5),
				"terminal_chargebacks_28d":   maybe(0.3, count(4)),
				"card_charged_back":          rng.IntN(100) == 0,
				// The example's declined and large-checkout counts: below
				// the rules' thresholds, which the other engines do not
				// implement, so riskd evaluates them without their firing.
				"card_declined_24h":        float64(rng.IntN(4)),
				"card_large_checkouts_24h": float64(rng.IntN(3)),
			},
		}
	}
	return out
}
