package rules_test

import (
	"strings"
	"testing"
)

// whereFeatures declares a schema and, after goodFeatures, one filtered
// feature whose where is replaced by each test.
func whereFeatures(where string) string {
	return schemaFeatures + `  - name: big_count_24h
    kind: count
    key: card_id
    window: 24h
    event_types: [checkout]
    where: ` + where + "\n"
}

// TestWhereIsCompiledLikeARule: a feature's where is type-checked against
// the schema of its event types at load, with file:line:col messages.
func TestWhereIsCompiledLikeARule(t *testing.T) {
	for _, tt := range []struct {
		name, where string
		want        string // "" loads
	}{
		{"good", `event.amount > 500`, ""},
		{"good with a list and ??", `(event.amount ?? 0) > 500 && event.ip_country not in ["FR", "DE"]`, ""},
		{"type error", `event.amount > "x"`, `p/features.yaml:25:25: feature "big_count_24h": where: invalid operation: > (mismatched types float64 and string)`},
		{"not a condition", `event.amount`, `p/features.yaml:25:12: feature "big_count_24h": where: expected bool, but got float64`},
		{"reads a feature", `features.card_txn_count_1h > 2`, `p/features.yaml:25:21: feature "big_count_24h": where: a where reads event.* and lists.*, not features: it decides whether the event is recorded, before any feature is read`},
		{"unknown list", `event.ip_country in lists.nope`, `p/features.yaml:25:38: feature "big_count_24h": where: unknown list "nope" (a where reads the lists declared under lists: in features.yaml)`},
		{"syntax", `event.amount >`, `p/features.yaml:25:25: feature "big_count_24h": where: unexpected token EOF`},
		{"empty", `"  "`, `p/features.yaml:25:12: feature "big_count_24h": where is empty: give a condition on the event (e.g. where: event.amount > 500) or leave it out`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := loadFS(map[string]string{"features.yaml": whereFeatures(tt.where), "checkout.yaml": goodRuleset})
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

// TestWhereWarnsOfUndeclaredFields: a where reading a field the schema
// does not declare for the feature's event types warns, as a rule does.
func TestWhereWarnsOfUndeclaredFields(t *testing.T) {
	p := loadPolicy(t, whereFeatures(`event.status == "declined"`), goodRuleset)
	want := `p/features.yaml:25:18: feature "big_count_24h": where: event.status is not declared in event_fields for checkout events: rules read it untyped and events are not checked for it`
	if strings.Join(p.Warnings, "\n") != want {
		t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(p.Warnings, "\n"), want)
	}
}

// TestWhereGivesFeaturesTheirOwnLog: features of one entity and event
// types share a log only when they share their condition too.
func TestWhereGivesFeaturesTheirOwnLog(t *testing.T) {
	feats := whereFeatures(`event.amount > 500`) + `  - name: big_sum_24h
    kind: sum
    key: card_id
    field: amount
    window: 24h
    event_types: [checkout]
    where: event.amount > 500
  - name: card_count_24h
    kind: count
    key: card_id
    window: 24h
    event_types: [checkout]
  - name: small_count_24h
    kind: count
    key: card_id
    window: 24h
    event_types: [checkout]
    where: event.amount <= 500
`
	p := loadPolicy(t, feats, goodRuleset)
	logOf := func(name string) int {
		i, ok := p.Features.Index(name)
		if !ok {
			t.Fatalf("no feature %s", name)
		}
		return p.Features.Features[i].EventLog.Index
	}
	big, sum, all, small := logOf("big_count_24h"), logOf("big_sum_24h"), logOf("card_count_24h"), logOf("small_count_24h")
	if big != sum || big == all || big == small || all == small {
		t.Errorf("logs: big %d, big sum %d, all %d, small %d: want big and big sum shared, the others apart", big, sum, all, small)
	}
	if p.Filters[all] != nil || p.Filters[big] == nil || p.Filters[small] == nil {
		t.Errorf("filters: want one on the filtered logs only")
	}
	if got := p.Filters[big].Features; strings.Join(got, ",") != "big_count_24h,big_sum_24h" {
		t.Errorf("filter of the big log names %v", got)
	}
}
