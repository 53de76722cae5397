package rules_test

import (
	"strings"
	"testing"

	"github.com/valyala/fastjson"

	"github.com/riskd/riskd/features"
)

const schemaFeatures = `event_fields:
  - {name: card_id, type: string}
  - {name: account_id, type: string}
  - {name: device_id, type: string}
  - {name: amount, type: number, required: true}
  - {name: ip_country, type: string}
  - {name: tags, type: list of string}
  - {name: billing, type: object}
  - {name: coupon, type: string, event_types: [checkout]}
` + goodFeatures

func ruleWhen(when string) string {
	return strings.Replace(goodRuleset, "when: features.card_txn_count_1h >= 5", "when: "+when, 1)
}

// TestSchemaTypesRules: with a schema, rules are compiled against the
// declared types, so type errors are load errors with their position.
func TestSchemaTypesRules(t *testing.T) {
	for _, tt := range []struct {
		name, ruleset string
		want          string
	}{
		{"number compared to text", ruleWhen(`event.amount > "x"`), `p/checkout.yaml:9:24: rule velocity: when: invalid operation: > (mismatched types float64 and string)`},
		{"arithmetic on text", ruleWhen(`event.ip_country + 1 > 2`), `p/checkout.yaml:9:28: rule velocity: when: invalid operation: + (mismatched types string and int)`},
		{"len of a number", ruleWhen(`len(event.amount) > 2`), `p/checkout.yaml:9:11: rule velocity: when: invalid argument for len (type float64)`},
		{"graded score of text", strings.Replace(goodRuleset, "score: 40", `score: "event.ip_country"`, 1), `p/checkout.yaml:10:13: rule velocity: score: expected float64, but got string`},
		{"reason hole", strings.Replace(goodRuleset, `{{features.card_txn_count_1h}}`, `{{event.amount + 'x'}}`, 1), `p/checkout.yaml:11:39: rule velocity: reason: invalid operation: + (mismatched types float64 and string)`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := load(t, map[string]string{"features.yaml": schemaFeatures, "checkout.yaml": tt.ruleset})
			if err == nil || err.Error() != tt.want {
				t.Errorf("got %v\nwant %s", err, tt.want)
			}
			// Without a schema the same rule loads: it fails at run time.
			if err := load(t, map[string]string{"features.yaml": goodFeatures, "checkout.yaml": tt.ruleset}); err != nil && !strings.Contains(tt.name, "graded") {
				t.Errorf("without a schema: %v", err)
			}
		})
	}
}

// TestSchemaRefusesUndeclaredFields: with a schema declared for every type
// a ruleset scores, a rule reading a field it does not declare is a load
// error with a did-you-mean (a typo would never fire); a field declared
// for some of the types only is read untyped, with a warning; fields
// inside a declared object and the built-in id, type and ts pass.
func TestSchemaRefusesUndeclaredFields(t *testing.T) {
	err := load(t, map[string]string{"features.yaml": schemaFeatures, "checkout.yaml": ruleWhen(`event.amout > 10 && event.channel == "web" && event.billing.country == "FR" && event.coupon != nil && event.type == "checkout"`)})
	want := `p/checkout.yaml:9:17: rule velocity: when: event.amout is not declared in event_fields for checkout events (did you mean event.amount?)
p/checkout.yaml:9:37: rule velocity: when: event.channel is not declared in event_fields for checkout events`
	if err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
	twoTypes := strings.Replace(ruleWhen(`event.amount > 10 && event.coupon != nil`), "event_types: [checkout]", "event_types: [checkout, refund]", 1)
	p := loadPolicy(t, schemaFeatures, twoTypes)
	want = `p/checkout.yaml:9:38: rule velocity: when: event.coupon is not declared in event_fields for checkout, refund events: rules read it untyped and events are not checked for it`
	if strings.Join(p.Warnings, "\n") != want {
		t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(p.Warnings, "\n"), want)
	}
	// coupon is declared for checkout only: a ruleset that also scores
	// refunds reads it untyped.
	rs := strings.Replace(ruleWhen(`event.coupon != nil`), "event_types: [checkout]", "event_types: [checkout, refund]", 1)
	p = loadPolicy(t, schemaFeatures, rs)
	if len(p.Warnings) != 1 || !strings.Contains(p.Warnings[0], "event.coupon is not declared in event_fields for checkout, refund events") {
		t.Errorf("warnings: %q", p.Warnings)
	}
	// No schema, no warnings.
	if p := loadPolicy(t, goodFeatures, ruleWhen(`event.channel == "web"`)); len(p.Warnings) != 0 {
		t.Errorf("warnings without a schema: %q", p.Warnings)
	}
}

// TestSchemaTypesChallengers: a challenger is typed for its champion's
// event types.
func TestSchemaTypesChallengers(t *testing.T) {
	challenger := "name: v2\nshadow_of: checkout\nthresholds: {step_up: 50, block: 90}\nrules:\n  - id: r\n    when: event.coupon > 1\n    score: 1\n"
	_, err := loadFS(map[string]string{"features.yaml": schemaFeatures, "checkout.yaml": goodRuleset, "v2.yaml": challenger})
	if err == nil || !strings.Contains(err.Error(), "p/v2.yaml:6:24: rule r: when: invalid operation: > (mismatched types string and int)") {
		t.Errorf("got %v", err)
	}
}

// TestSchemaChecksFeatures: a feature cannot sum a declared string or key
// on a list.
func TestSchemaChecksFeatures(t *testing.T) {
	f := schemaFeatures + `  - {name: s, kind: sum, key: card_id, field: ip_country, window: 1h}
  - {name: k, kind: count, key: tags, window: 1h}
`
	err := load(t, map[string]string{"features.yaml": f, "checkout.yaml": goodRuleset})
	for _, want := range []string{
		`feature "s": field ip_country is declared as string; sum needs a number`,
		`feature "k": tags is declared as list of string; keys and distinct values are strings, numbers or booleans`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("got %v, want %s", err, want)
		}
	}
}

// TestTypedValuesReachRules: declared fields reach rules in their type
// (integers as int, numeric strings coerced), the free-form inside a
// declared object as JSON has them.
func TestTypedValuesReachRules(t *testing.T) {
	f := "event_fields:\n  - {name: qty, type: integer}\n  - {name: amount, type: number, coerce: true}\n" + goodFeatures
	f = strings.Replace(f, "event_fields:\n", "event_fields:\n  - {name: extra, type: object}\n  - {name: card_id, type: string}\n  - {name: account_id, type: string}\n  - {name: device_id, type: string}\n", 1)
	p := loadPolicy(t, f, ruleWhen(`event.qty % 2 == 1 && event.amount > 900 && event.extra.free == "x"`))
	rs := p.ForType("checkout")
	for _, tt := range []struct {
		event string
		fired bool
	}{
		{`{"qty": 3, "amount": "950", "extra": {"free": "x"}}`, true},
		{`{"qty": 3, "amount": 950.5, "extra": {"free": "x"}}`, true},
		{`{"qty": 4, "amount": "950", "extra": {"free": "x"}}`, false},
		{`{"qty": 3, "amount": "950", "extra": {"free": 1}}`, false},
	} {
		env := envFor(t, rs, tt.event, map[string]features.Value{"card_txn_count_1h": {Valid: true, Num: 1}})
		res := rs.Eval(env, nil)
		if res[0].Fired != tt.fired || res[0].Err != nil {
			t.Errorf("%s: %+v, want fired %v", tt.event, res[0], tt.fired)
		}
	}
}

// TestParentAndChildFieldsInOneExpression: a rule reading event.billing
// and event.billing.country reads both; one Env scoring event after event
// never sees an earlier event's billing.
func TestParentAndChildFieldsInOneExpression(t *testing.T) {
	rs := `name: checkout
event_types: [checkout]
thresholds: {step_up: 50, block: 90}
rules:
  - id: no_country
    when: event.billing != nil && (event.billing.country ?? "none") == "none"
    score: 1
  - id: no_billing
    when: event.billing == nil
    score: 1
  - id: french
    when: event.billing != nil && event.billing.country == "FR"
    score: 1
`
	// Alone in its ruleset, the rule reading both still loads: its reads
	// are event.billing and event.billing.country, not the latter only.
	loadPolicy(t, schemaFeatures, "name: checkout\nevent_types: [checkout]\nthresholds: {step_up: 50, block: 90}\nrules:\n  - {id: only, when: 'event.billing != nil && event.billing.country == \"DE\"', score: 1}\n")
	p := loadPolicy(t, schemaFeatures, rs)
	checkout := p.ForType("checkout")
	feats := map[string]features.Value{}
	env := envFor(t, checkout, `{"amount":1}`, feats) // one environment, reused below
	var parser fastjson.Parser
	for _, tt := range []struct {
		event string
		fired []bool // no_country, no_billing, french
	}{
		{`{"amount":1,"billing":{"country":"FR"}}`, []bool{false, false, true}},
		{`{"amount":1}`, []bool{false, true, false}},
		{`{"amount":1,"billing":null}`, []bool{false, true, false}},
		{`{"amount":1,"billing":{}}`, []bool{true, false, false}},
	} {
		ev, err := parser.Parse(tt.event)
		if err != nil {
			t.Fatal(err)
		}
		env.Reset()
		for i, s := range checkout.Slots {
			if s.Feature < 0 {
				env.SetField(i, ev.Get(s.Path.Parts...))
			}
		}
		res := checkout.Eval(env, nil)
		for i, want := range tt.fired {
			if res[i].Fired != want {
				t.Errorf("%s: rule %s fired %v, want %v (%v)", tt.event, checkout.Rules[i].ID, res[i].Fired, want, res[i].Err)
			}
		}
	}
}

// TestPolicyTyposWarn: what cannot be proven wrong is a warning naming
// the likely mistake: without a schema, a feature key close to the other
// features' and used by none; a ruleset's event type named nowhere else,
// with the schema's types left unscored.
func TestPolicyTyposWarn(t *testing.T) {
	f := strings.Replace(goodFeatures, "key: [account_id, device_id]", "key: [account_id, devce_id]", 1)
	f += "  - {name: device_accounts_24h, kind: distinct, key: device_id, of: account_id, window: 24h}\n  - {name: device_age_s, kind: age, key: device_id}\n"
	p := loadPolicy(t, f, goodRuleset)
	if want := `p/features.yaml:8:10: feature "account_device_seen": key devce_id is read by no other feature and not declared in event_fields (did you mean device_id?): events without it are not recorded and the feature stays nil`; strings.Join(p.Warnings, "\n") != want {
		t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(p.Warnings, "\n"), want)
	}
	rs := strings.Replace(goodRuleset, "event_types: [checkout]", "event_types: [purchase]", 1)
	p = loadPolicy(t, "event_fields:\n  - {name: amount, type: number, event_types: [checkout]}\n"+goodFeatures, rs)
	if want := `p/checkout.yaml:3:14: event type "purchase" is named by no event_fields declaration, feature or other ruleset, and no ruleset scores the event types event_fields declares: checkout (they are answered pass, unscored)`; strings.Join(p.Warnings, "\n") != want {
		t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(p.Warnings, "\n"), want)
	}
}
