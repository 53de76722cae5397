package rules_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/valyala/fastjson"

	"github.com/riskd/riskd/features"
	"github.com/riskd/riskd/lists"
	"github.com/riskd/riskd/rules"
)

// envFor fills an environment of rs with event (JSON) and feature values,
// as the engine does.
func envFor(t testing.TB, rs *rules.Ruleset, event string, feats map[string]features.Value) *rules.Env {
	t.Helper()
	ev, err := fastjson.Parse(event)
	if err != nil {
		t.Fatal(err)
	}
	e := rs.NewEnv()
	e.Reset()
	for i, s := range rs.Slots {
		switch {
		case s.List != "":
			e.SetList(i, lists.Empty())
		case s.Feature >= 0:
			e.SetFeature(i, feats[strings.TrimPrefix(s.Name, "features.")])
		default:
			e.SetField(i, ev.Get(s.Path.Parts...))
		}
	}
	return e
}

// TestReasonsAreCapped: a reason renders at most MaxReasonBytes, cut with
// "…" on a character boundary, whatever its holes yield.
func TestReasonsAreCapped(t *testing.T) {
	for _, tt := range []struct {
		name, reason string
		event        string // the event's fields besides id and type
		want         string // the whole reason, or its end when cut
		cut          bool
	}{
		{"short", `card {{event.s}} is fine`, `"s":"c1"`, "card c1 is fine", false},
		{"most of a megabyte from one hole", `got {{repeat(event.s, 900000)}} and more`, `"s":"x"`, "xxx…", true},
		{"many holes", strings.Repeat(`{{event.s}} `, 30), `"s":"` + strings.Repeat("é", 40) + `"`, "é…", true},
		{"long text", strings.Repeat("words ", 300), `"s":1`, "s w…", true},
		{"just fits", strings.Repeat("y", 1024), `"s":1`, strings.Repeat("y", 1024), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rs := goodRuleset + "  - id: r\n    when: \"true\"\n    score: 1\n    reason: '" + tt.reason + "'\n"
			p, err := loadFS(map[string]string{"features.yaml": goodFeatures, "checkout.yaml": rs})
			if err != nil {
				t.Fatal(err)
			}
			checkout := p.ForType("checkout")
			env := envFor(t, checkout, `{"id":"e","type":"checkout",`+tt.event+`}`, map[string]features.Value{"card_txn_count_1h": {Valid: true, Num: 1}})
			out := checkout.Rules[1].Reason.Render([]byte("prefix:"), env)
			got := strings.TrimPrefix(string(out), "prefix:")
			switch {
			case !utf8.ValidString(got):
				t.Errorf("not UTF-8: %q", got)
			case tt.cut && (len(got) > 1024 || len(got) < 1020 || !strings.HasSuffix(got, tt.want)):
				t.Errorf("%d bytes ending %q, want at most 1024 ending %q", len(got), got[max(0, len(got)-20):], tt.want)
			case !tt.cut && got != tt.want:
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
