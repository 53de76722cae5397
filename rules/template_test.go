package rules_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/expr-lang/expr/vm"
)

// TestReasonsAreCapped: a reason renders at most MaxReasonBytes, cut with
// "…" on a character boundary, whatever its holes yield.
func TestReasonsAreCapped(t *testing.T) {
	for _, tt := range []struct {
		name, reason string
		env          map[string]any
		want         string // the whole reason, or its end when cut
		cut          bool
	}{
		{"short", `card {{event.s}} is fine`, map[string]any{"event.s": "c1"}, "card c1 is fine", false},
		{"most of a megabyte from one hole", `got {{repeat(event.s, 900000)}} and more`, map[string]any{"event.s": "x"}, "xxx…", true},
		{"many holes", strings.Repeat(`{{event.s}} `, 30), map[string]any{"event.s": strings.Repeat("é", 40)}, "é…", true},
		{"long text", strings.Repeat("words ", 300), nil, "s w…", true},
		{"just fits", strings.Repeat("y", 1024), nil, strings.Repeat("y", 1024), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rs := goodRuleset + "  - id: r\n    when: \"true\"\n    score: 1\n    reason: '" + tt.reason + "'\n"
			p, err := loadFS(map[string]string{"features.yaml": goodFeatures, "checkout.yaml": rs})
			if err != nil {
				t.Fatal(err)
			}
			r := p.ForType("checkout").Rules[1]
			env := map[string]any{"features.card_txn_count_1h": 1.0}
			for k, v := range tt.env {
				env[k] = v
			}
			out := r.Reason.Render([]byte("prefix:"), &vm.VM{}, env)
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
