package rules

import (
	"strings"
	"testing"
)

func TestTooDeep(t *testing.T) {
	for _, tt := range []struct {
		src  string
		max  int
		want int // offset where nesting passes max, -1: within
	}{
		{"features.card_txn_count_1h >= 5", 0, -1},
		{"!(!(x))", 4, -1},
		{"!(!(x))", 3, 3},       // the second ( is the fourth level
		{"not not not x", 2, 8}, // the third not
		{"a - -b", 1, -1},       // binary minus, then one unary
		{"a - - -b", 1, 6},
		{"(a) - (b) - (c)", 1, -1}, // siblings, not nesting
		{"-x + -y + -z", 1, -1},    // a unary ends with its operand
		{"!x && !y && !(!z)", 3, -1},
		{"a not in b and !c", 1, -1},
		{"a != b", 0, -1},
		{`"(((((" + '[[[[' + ` + "`{{{{`" + ` /* (((( */ // ((((`, 0, -1},
		{`"\"(((" == x`, 0, -1},
		{"filter(event.items, {#.price > 1})", 2, -1},
		{"filter(event.items, {#.price > 1})", 1, 20},
		{"1..5 | map(-#)", 1, 11}, // ( then unary -
		{"f(1.5, -2)", 1, 7},
		{")))(", 0, 3}, // unbalanced: left for expr to report
		{strings.Repeat("!", 1000) + "true", 100, 100},
		{strings.Repeat("(", 1000) + "true", 100, 100},
		{strings.Repeat("!(", 60) + "true" + strings.Repeat(")", 60), 100, 100},
	} {
		if got := tooDeep(tt.src, tt.max); got != tt.want {
			t.Errorf("tooDeep(%.40q, %d) = %d, want %d", tt.src, tt.max, got, tt.want)
		}
	}
}

// The example policy sits far from the bounds.
func TestExamplePolicyIsShallow(t *testing.T) {
	for _, src := range []string{
		"features.card_txn_count_1h >= 5 && !(event.ip_country in lists.high_risk_countries)",
		`event.amount > 1000 and (event.card_country != event.ip_country or features.account_age_s < 3600)`,
		"min(60, 15 * features.terminal_chargebacks_7d)",
	} {
		if msg, _ := checkShape(src); msg != "" {
			t.Errorf("%s: %s", src, msg)
		}
	}
}
