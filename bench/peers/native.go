package peers

import "math"

// Native is the checkout policy written by hand in Go: the floor.
type Native struct {
	in []nativeInput
}

type nativeInput struct {
	amount                                    float64
	ipCountry, cardCountry                    string
	card1h, card24h, acct1h                   float64
	cardSum24h, age, cards, ips, fails, churn float64
	avg, sinceLast, deviceAccounts            float64
	hasAvg, hasSinceLast, hasDevice, hasSeen  bool
	seen, chargedBack                         bool
	terminalChargebacks                       float64
	hasTerminal                               bool
}

var sanctioned = map[string]bool{"KP": true, "IR": true, "SY": true, "CU": true}
var highRisk = map[string]bool{"NG": true, "RU": true, "VE": true}

// NewNative converts the inputs into typed structs, as a hand-written
// service would receive them.
func NewNative(inputs []Input) *Native {
	n := &Native{}
	for _, in := range inputs {
		f := in.Features
		x := nativeInput{
			amount: in.Event["amount"].(float64), ipCountry: in.Event["ip_country"].(string), cardCountry: in.Event["card_country"].(string),
			card1h: f["card_txn_count_1h"].(float64), card24h: f["card_txn_count_24h"].(float64), acct1h: f["account_txn_count_1h"].(float64),
			cardSum24h: f["card_amount_sum_24h"].(float64), age: f["account_age_s"].(float64), cards: f["account_cards_24h"].(float64),
			ips: f["account_ips_24h"].(float64), fails: f["account_3ds_failed_24h"].(float64), churn: f["account_profile_changes_7d"].(float64),
		}
		x.avg, x.hasAvg = f["account_amount_avg_30d"].(float64)
		x.sinceLast, x.hasSinceLast = f["card_since_last_s"].(float64)
		x.deviceAccounts, x.hasDevice = f["device_accounts_24h"].(float64)
		x.seen, x.hasSeen = f["account_device_seen"].(bool)
		x.chargedBack = f["card_charged_back"].(bool)
		x.terminalChargebacks, x.hasTerminal = f["terminal_chargebacks_28d"].(float64)
		n.in = append(n.in, x)
	}
	return n
}

// Eval scores input i.
func (n *Native) Eval(i int) Result {
	x := &n.in[i]
	var score float64
	forced := ""
	if sanctioned[x.ipCountry] || sanctioned[x.cardCountry] || x.chargedBack {
		forced = "block"
	}
	add := func(cond bool, s float64) {
		if cond {
			score += math.Round(s)
		}
	}
	add(x.hasTerminal && x.terminalChargebacks >= 1, min(60, 20*x.terminalChargebacks))
	add(x.card1h >= 5, 40)
	add(x.card24h >= 15, 25)
	add(x.acct1h >= 5, 25)
	add(x.hasSinceLast && x.sinceLast < 10, 15)
	add(x.amount >= 5000, 50)
	add(x.hasAvg && x.amount >= 100 && x.amount > 5*x.avg, 30)
	add(x.cardSum24h+x.amount > 10000, 25)
	add(x.hasSeen && !x.seen, 15)
	add(x.hasDevice && x.deviceAccounts >= 3, min(60, 15*x.deviceAccounts))
	add(x.cards >= 3, 30)
	add(x.ips >= 4, 15)
	add(x.ipCountry != x.cardCountry, 20)
	add(highRisk[x.ipCountry], 25)
	add(x.fails >= 2, min(50, 15*x.fails))
	add(x.age < 600 && x.amount >= 500, 40)
	add(x.churn >= 3, 25)
	add(x.age > 180*86400 && x.hasSeen && x.seen, -20)
	s := int64(score)
	return Result{Outcome: Outcome(s, forced), Score: s}
}
