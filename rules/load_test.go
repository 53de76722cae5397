package rules_test

import (
	"strings"
	"testing"
	"testing/fstest"

	"github.com/riskd/riskd/rules"
)

const goodFeatures = `features:
  - name: card_txn_count_1h
    kind: count
    key: card_id
    window: 1h
  - name: account_device_seen
    kind: seen
    key: [account_id, device_id]
  - name: account_amount_avg_30d
    kind: avg
    key: account_id
    field: amount
    window: 30d
`

const goodRuleset = `name: checkout
version: "1"
event_types: [checkout]
thresholds: {step_up: 50, block: 90}
lists:
  bad: [NG, RU]
rules:
  - id: velocity
    when: features.card_txn_count_1h >= 5
    score: 40
    reason: "card used {{features.card_txn_count_1h}} times"
`

func load(t *testing.T, files map[string]string) error {
	t.Helper()
	_, err := loadFS(files)
	return err
}

func loadFS(files map[string]string) (*rules.Policy, error) {
	fsys := fstest.MapFS{}
	for name, body := range files {
		fsys[name] = &fstest.MapFile{Data: []byte(body)}
	}
	return rules.Load(fsys, "p")
}

func TestLoadReportsEveryProblemWithItsPosition(t *testing.T) {
	tests := []struct {
		name     string
		features string // default goodFeatures
		ruleset  string
		want     []string // error lines, in order
	}{
		{name: "good", ruleset: goodRuleset},
		{
			name: "misspelt feature gets a suggestion",
			ruleset: strings.Replace(goodRuleset, "when: features.card_txn_count_1h >= 5",
				"when: features.card_txn_cnt_1h >= 5", 1),
			want: []string{`p/checkout.yaml:9:20: rule velocity: when: unknown feature "card_txn_cnt_1h" (did you mean features.card_txn_count_1h?)`},
		},
		{
			name: "type error",
			ruleset: strings.Replace(goodRuleset, "when: features.card_txn_count_1h >= 5",
				`when: features.account_device_seen > 5`, 1),
			want: []string{`p/checkout.yaml:9:40: rule velocity: when: invalid operation: > (mismatched types bool and int)`},
		},
		{
			name:    "when must be boolean",
			ruleset: strings.Replace(goodRuleset, "when: features.card_txn_count_1h >= 5", `when: features.card_txn_count_1h`, 1),
			want:    []string{`p/checkout.yaml:9:11: rule velocity: when: expected bool, but got float64`},
		},
		{
			name:    "unknown list",
			ruleset: strings.Replace(goodRuleset, "when: features.card_txn_count_1h >= 5", `when: event.ip_country in lists.bda`, 1),
			want:    []string{`p/checkout.yaml:9:37: rule velocity: when: unknown list "bda" (did you mean lists.bad?)`},
		},
		{
			name:    "a pattern from the event",
			ruleset: strings.Replace(goodRuleset, "when: features.card_txn_count_1h >= 5", `when: event.ua matches event.pattern`, 1),
			want:    []string{`p/checkout.yaml:9:20: rule velocity: when: matches needs a constant pattern (a string in quotes), not one built from event.pattern: such a pattern is compiled anew on every event, and whoever sends the event chooses how slow it is`},
		},
		{
			name:    "a pattern built in part from the event",
			ruleset: strings.Replace(goodRuleset, "when: features.card_txn_count_1h >= 5", `when: not (event.ua matches ("^" + event.browser.name + ".*"))`, 1),
			want:    []string{`p/checkout.yaml:9:25: rule velocity: when: matches needs a constant pattern (a string in quotes), not one built from event.browser.name: such a pattern is compiled anew on every event, and whoever sends the event chooses how slow it is`},
		},
		{
			name:    "a pattern from a closure",
			ruleset: strings.Replace(goodRuleset, "when: features.card_txn_count_1h >= 5", `when: 'any(event.patterns, {event.ua matches #})'`, 1),
			want:    []string{`p/checkout.yaml:9:42: rule velocity: when: matches needs a constant pattern (a string in quotes), not one built from #: such a pattern is compiled anew on every event, and whoever sends the event chooses how slow it is`},
		},
		{
			name:    "constant patterns are fine",
			ruleset: strings.Replace(goodRuleset, "when: features.card_txn_count_1h >= 5", `when: event.ua matches "(?i)headless" or event.email matches ("^" + "test" + "@")`, 1),
		},
		{
			name:    "an invalid constant pattern",
			ruleset: strings.Replace(goodRuleset, "when: features.card_txn_count_1h >= 5", `when: event.ua matches "(unclosed"`, 1),
			want:    []string{"p/checkout.yaml:9:20: rule velocity: when: error parsing regexp: missing closing ): `(unclosed`"},
		},
		{
			name:    "syntax error in expression",
			ruleset: strings.Replace(goodRuleset, "when: features.card_txn_count_1h >= 5", `when: "features.card_txn_count_1h >= "`, 1),
			want:    []string{`p/checkout.yaml:9:41: rule velocity: when: unexpected token EOF`},
		},
		{
			name:    "reason template error",
			ruleset: strings.Replace(goodRuleset, `{{features.card_txn_count_1h}} times`, `{{features.nope}} times`, 1),
			want:    []string{`p/checkout.yaml:11:35: rule velocity: reason: unknown feature "nope" (features are declared in features.yaml)`},
		},
		{
			name:    "unclosed template",
			ruleset: strings.Replace(goodRuleset, `{{features.card_txn_count_1h}} times`, `{{features.card_txn_count_1h times`, 1),
			want:    []string{`p/checkout.yaml:11:13: rule velocity: reason: unclosed {{ at character 11`},
		},
		{
			name:    "too many holes",
			ruleset: strings.Replace(goodRuleset, `{{features.card_txn_count_1h}} times`, strings.Repeat(`{{1}}`, 33), 1),
			want:    []string{`p/checkout.yaml:11:13: rule velocity: reason: 33 {{…}}, more than the 32 a reason may have`},
		},
		{
			name:    "unknown key with suggestion and thresholds out of order",
			ruleset: strings.Replace(strings.Replace(goodRuleset, "reason:", "reasn:", 1), "{step_up: 50, block: 90}", "{step_up: 95, block: 90}", 1),
			want: []string{
				`p/checkout.yaml:4:23: thresholds out of order: step_up (95) must not be above block (90)`,
				`p/checkout.yaml:11:5: unknown key "reasn" in rule (did you mean "reason"?)`,
			},
		},
		{
			name:    "review between step_up and block",
			ruleset: strings.Replace(goodRuleset, "{step_up: 50, block: 90}", "{step_up: 50, review: 70, block: 90}", 1),
		},
		{
			name:    "review beside block: no block by score",
			ruleset: strings.Replace(goodRuleset, "{step_up: 50, block: 90}", "{step_up: 50, review: 70}", 1),
		},
		{
			name:    "review at block reviews nothing",
			ruleset: strings.Replace(goodRuleset, "{step_up: 50, block: 90}", "{step_up: 50, review: 90, block: 90}", 1),
			want:    []string{`p/checkout.yaml:4:35: thresholds out of order: review (90) must be below block (90), or no score would be reviewed`},
		},
		{
			name:    "review below step_up",
			ruleset: strings.Replace(goodRuleset, "{step_up: 50, block: 90}", "{step_up: 50, review: 40}", 1),
			want:    []string{`p/checkout.yaml:4:23: thresholds out of order: step_up (50) must not be above review (40)`},
		},
		{
			name:    "neither review nor block",
			ruleset: strings.Replace(goodRuleset, "{step_up: 50, block: 90}", "{step_up: 50, reviw: 70}", 1),
			want: []string{
				`p/checkout.yaml:4:13: thresholds need block, review or both beside step_up (e.g. {step_up: 50, review: 70, block: 90})`,
				`p/checkout.yaml:4:27: unknown key "reviw" in thresholds (did you mean "review"?)`,
			},
		},
		{
			name: "duplicate rule id, bad action, fractional score, missing when",
			ruleset: goodRuleset + `  - id: velocity
    when: "true"
    score: 1
  - id: other
    when: "true"
    action: deny
  - id: third
    when: "true"
    score: 2.5
  - id: fourth
    score: 3
`,
			want: []string{
				`p/checkout.yaml:12:5: duplicate rule id "velocity" (first at line 8)`,
				`p/checkout.yaml:17:13: rule other: action must be block, review or step_up, got "deny"`,
				`p/checkout.yaml:20:12: rule third: score 2.5 must be a whole number (scores are whole points so the reasons add up exactly)`,
				`p/checkout.yaml:21:5: rule is missing required key "when"`,
			},
		},
		{
			name:    "missing required keys",
			ruleset: "name: checkout\nrules:\n  - id: a\n    when: \"true\"\n    score: 1\n",
			want: []string{
				`p/checkout.yaml:1:1: ruleset is missing required key "thresholds"`,
				`p/checkout.yaml:1:1: ruleset is missing required key "event_types" (only a challenger, with shadow_of, takes its champion's)`,
			},
		},
		{
			name:    "YAML syntax",
			ruleset: "name: checkout\nrules: [\n",
			want:    []string{`p/checkout.yaml:2: YAML syntax: did not find expected node content`},
		},
		{
			name: "bad features.yaml",
			features: `features:
  - name: a
    kind: cnt
    key: card_id
    window: 1h
  - name: b
    kind: count
    key: card_id
    window: 1 hour
  - name: c
    kind: sum
    key: card_id
    window: 1h
  - name: c
    kind: seen
    key: card_id
    window: 1h
  - name: d
    kind: distinct
    key: card_id
    windw: 1h
`,
			ruleset: goodRuleset,
			want: []string{
				`p/features.yaml:3:11: feature "a": unknown kind "cnt" (did you mean "count"?)`,
				`p/features.yaml:9:13: window: invalid duration "1 hour": unknown unit "r" (use s, m, h, d or w, e.g. 15m or 7d)`,
				`p/features.yaml:10:5: feature "c": kind sum needs field: the numeric event field to aggregate (e.g. field: amount)`,
				`p/features.yaml:17:5: feature "c": kind seen has no window (it looks back over the retention, default 400d)`,
				`p/features.yaml:18:5: feature "d": kind distinct needs a window (e.g. window: 1h)`,
				`p/features.yaml:18:5: feature "d": kind distinct needs of: the event field whose distinct values are counted (e.g. of: account_id)`,
				`p/features.yaml:21:5: unknown key "windw" in feature (did you mean "window"?)`,
				// The rulesets are checked in the same run.
				`p/checkout.yaml:9:20: rule velocity: when: unknown feature "card_txn_count_1h" (features are declared in features.yaml)`,
				`p/checkout.yaml:11:35: rule velocity: reason: unknown feature "card_txn_count_1h" (features are declared in features.yaml)`,
			},
		},
		{
			name:     "an unreadable features.yaml does not make every feature unknown",
			features: "features: [",
			ruleset:  goodRuleset,
			want:     []string{`p/features.yaml:1: YAML syntax: did not find expected node content`},
		},
		{
			name:     "a broken feature is reported once, not again in every rule that reads it",
			features: strings.Replace(goodFeatures, "kind: count", "kind: cnt", 1),
			ruleset:  strings.Replace(goodRuleset, "score: 40", "score: 4O", 1),
			want: []string{
				`p/features.yaml:3:11: feature "card_txn_count_1h": unknown kind "cnt" (did you mean "count"?)`,
				`p/checkout.yaml:10:13: rule velocity: score: bad number syntax: "4O"`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := tt.features
			if fs == "" {
				fs = goodFeatures
			}
			err := load(t, map[string]string{"features.yaml": fs, "checkout.yaml": tt.ruleset})
			var got []string
			if err != nil {
				got = strings.Split(err.Error(), "\n")
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestLoadRefusesTwoRulesetsForOneEventType(t *testing.T) {
	err := load(t, map[string]string{
		"features.yaml": goodFeatures,
		"a.yaml":        goodRuleset,
		"b.yaml":        strings.Replace(goodRuleset, "name: checkout", "name: checkout2", 1),
	})
	want := `p/b.yaml:3:14: event type "checkout" is already scored by p/a.yaml; one live ruleset per event type (a challenger says shadow_of)`
	if err == nil || err.Error() != want {
		t.Fatalf("got %v, want %s", err, want)
	}
}

// TestLoadQuotesOnlyExcerpts: a file that is not a policy (here, what
// /etc/passwd holds) is refused without being echoed back whole; errors
// end up in logs and in GET /v1/rulesets.
func TestLoadQuotesOnlyExcerpts(t *testing.T) {
	passwd := "root:x:0:0:root:/root:/bin/bash\n" + strings.Repeat("svc:x:999:999:secret-looking-line:/var/lib/svc:/usr/sbin/nologin\n", 60)
	key := "-----BEGIN PRIVATE KEY-----\n" + strings.Repeat("MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\n", 40) + "-----END PRIVATE KEY-----\n"
	for _, tt := range []struct {
		name, body, want string
	}{
		{"passwd", passwd, `p/passwd.yaml:1:1: ruleset must be a mapping, got "root:x:0:0:root:/root:/bin/bash svc:x:999:999:secret-looking-line:/var/lib/svc:/…"`},
		{"key", key, `p/passwd.yaml:1:1: ruleset must be a mapping, got "-----BEGIN PRIVATE KEY----- MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7…"`},
		{"long key", strings.Repeat("k", 1000) + ": 1\n", `p/passwd.yaml:1:1: unknown key "` + strings.Repeat("k", 80) + `…" in ruleset (known keys: `},
		{"long values", "name: checkout\nevent_types: [checkout]\nthresholds: {step_up: 1, block: 2}\non_store_error: " + strings.Repeat("v", 3000) + "\nrules: [{id: a, when: 'true', score: 1, action: " + strings.Repeat("w", 3000) + "}]\n",
			`p/passwd.yaml:4:17: on_store_error must be fail_open or fail_closed, got "` + strings.Repeat("v", 80) + `…"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := load(t, map[string]string{"features.yaml": goodFeatures, "checkout.yaml": goodRuleset, "passwd.yaml": tt.body})
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("got %v\nwant %s", err, tt.want)
			}
			for _, line := range strings.Split(err.Error(), "\n") {
				if len(line) > 400 {
					t.Errorf("a line of %d bytes: %.120s…", len(line), line)
				}
			}
		})
	}
}

// TestLoadBoundsExpressions: expressions too long or too deeply nested are
// refused at their position before expr parses them; a million ! used to
// overflow the stack (killing the process) and 300,000 nested parentheses
// took 865 MB to refuse.
func TestLoadBoundsExpressions(t *testing.T) {
	rule := func(field, src string) string {
		r := "name: checkout\nevent_types: [checkout]\nthresholds: {step_up: 50, block: 90}\nrules:\n  - id: deep\n    when: 'true'\n    score: 1\n"
		switch field {
		case "when":
			r = strings.Replace(r, "when: 'true'", "when: '"+src+"'", 1)
		case "score":
			r = strings.Replace(r, "score: 1", "score: '"+src+"'", 1)
		case "reason":
			r += "    reason: 'deep {{" + src + "}}'\n"
		}
		return r
	}
	nested := func(n int, open, close, inner string) string {
		return strings.Repeat(open, n) + inner + strings.Repeat(close, n)
	}
	for _, tt := range []struct {
		name, field, src, want string
	}{
		{"a million !", "when", strings.Repeat("!", 1_000_000) + "true",
			"p/checkout.yaml:6:12: rule deep: when: expression of 1000004 bytes, over the limit of 65536"},
		{"300k parentheses", "when", nested(300_000, "(", ")", "true"),
			"p/checkout.yaml:6:12: rule deep: when: expression of 600004 bytes, over the limit of 65536"},
		{"deep and short", "when", strings.Repeat("!", 5000) + "true",
			"p/checkout.yaml:6:112: rule deep: when: expression nested more than 100 deep (brackets and unary operators such as ! and not count a level each)"},
		{"parentheses", "when", nested(20_000, "(", ")", "true"),
			"p/checkout.yaml:6:112: rule deep: when: expression nested more than 100 deep (brackets and unary operators such as ! and not count a level each)"},
		{"graded score", "score", nested(150, "[", "]", "1") + "[0]",
			"p/checkout.yaml:7:113: rule deep: score: expression nested more than 100 deep (brackets and unary operators such as ! and not count a level each)"},
		{"reason hole", "reason", "1 + " + nested(3000, "-(", ")", "1"),
			"p/checkout.yaml:8:125: rule deep: reason: expression nested more than 100 deep (brackets and unary operators such as ! and not count a level each)"},
		{"within bounds", "when", nested(99, "(", ")", "true"), ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := load(t, map[string]string{"features.yaml": goodFeatures, "checkout.yaml": rule(tt.field, tt.src)})
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Errorf("got  %.300s\nwant %s", got, tt.want)
			}
		})
	}
}

func loadPolicy(t testing.TB, features, ruleset string) *rules.Policy {
	t.Helper()
	p, err := loadFS(map[string]string{"features.yaml": features, "checkout.yaml": ruleset})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestThresholdsBands(t *testing.T) {
	for _, tt := range []struct {
		thresholds string
		scores     map[int64]rules.Outcome
	}{
		{"{step_up: 50, block: 90}", map[int64]rules.Outcome{49: rules.Pass, 50: rules.StepUp, 89: rules.StepUp, 90: rules.Block}},
		{"{step_up: 50, review: 70, block: 90}", map[int64]rules.Outcome{49: rules.Pass, 69: rules.StepUp, 70: rules.Review, 89: rules.Review, 90: rules.Block}},
		{"{step_up: 50, review: 70}", map[int64]rules.Outcome{50: rules.StepUp, 70: rules.Review, 1 << 40: rules.Review}},
		{"{step_up: 70, review: 70, block: 90}", map[int64]rules.Outcome{69: rules.Pass, 70: rules.Review, 90: rules.Block}},
	} {
		t.Run(tt.thresholds, func(t *testing.T) {
			p, err := loadFS(map[string]string{"features.yaml": goodFeatures, "checkout.yaml": strings.Replace(goodRuleset, "{step_up: 50, block: 90}", tt.thresholds, 1)})
			if err != nil {
				t.Fatal(err)
			}
			rs := p.ForType("checkout")
			for score, want := range tt.scores {
				if got := rs.Outcome(score); got != want {
					t.Errorf("score %d: %s, want %s", score, got, want)
				}
			}
		})
	}
}

func TestParseOutcome(t *testing.T) {
	for _, o := range rules.Outcomes {
		if got, ok := rules.ParseOutcome(o.String()); !ok || got != o {
			t.Errorf("ParseOutcome(%q) = %v, %v", o, got, ok)
		}
	}
	if _, ok := rules.ParseOutcome("deny"); ok {
		t.Error("ParseOutcome(deny) succeeded")
	}
}
