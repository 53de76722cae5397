package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func riskctl(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(args, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestExamplePolicyValidatesAndItsTestsPass(t *testing.T) {
	if code, out, errOut := riskctl(t, "", "validate", "../../rules/example"); code != 0 {
		t.Fatalf("validate: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut := riskctl(t, "", "test", "../../rules/example")
	if code != 0 || !strings.HasPrefix(out, "ok  \t../../rules/example\t32 tests") {
		t.Fatalf("test: exit %d\n%s%s", code, out, errOut)
	}
	if strings.Contains(out, "rules no test makes fire") || strings.Contains(out, "run-time errors") || errOut != "" {
		t.Fatalf("the example's tests leave rules uncovered or failing:\n%s%s", out, errOut)
	}
}

// TestSchemalessTyposWarn: without event_fields, a field one expression
// reads that is a typo of one read in two other places is a warning
// with a did-you-mean (an error with -strict); alike names that are no
// typo (card_country, ip_country) are not.
func TestSchemalessTyposWarn(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"features.yaml": `features:
  - {name: card_sum_24h, kind: sum, key: card_id, field: amount, window: 24h}
  - {name: card_big_1h, kind: count, key: card_id, window: 1h, where: event.amout > 500}
`,
		"checkout.yaml": `name: checkout
event_types: [checkout]
thresholds: {step_up: 50, block: 90}
rules:
  - {id: big, when: event.amount > 5000, score: 60}
  - {id: bigger, when: event.amont > 9000, score: 60}
  - {id: abroad, when: event.card_country != event.ip_country, score: 10}
  - {id: home, when: event.ip_country == "FR", score: -10}
`,
		"login.yaml": `name: login
event_types: [login]
thresholds: {step_up: 50, block: 90}
rules:
  - {id: far, when: event.ip_country == "KP", score: 60}
`,
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want := dir + `/features.yaml:3:77: feature "card_big_1h": where: event.amout is read by no feature or other ruleset and not declared in event_fields (did you mean event.amount?): on events without it the expression reads nil` + "\n" +
		dir + `/checkout.yaml:6:30: rule bigger: when: event.amont is read by no feature or other ruleset and not declared in event_fields (did you mean event.amount?): on events without it the expression reads nil` + "\n"
	code, _, errOut := riskctl(t, "", "validate", "-cost-warn", "0", dir)
	if code != 0 || errOut != strings.ReplaceAll("warning: "+strings.TrimSuffix(want, "\n"), "\n", "\nwarning: ")+"\n" {
		t.Errorf("validate: exit %d\n%s\nwant:\n%s", code, errOut, want)
	}
	code, out, errOut := riskctl(t, "", "validate", "-strict", "-cost-warn", "0", dir)
	if code != 1 || out != "" || errOut != want {
		t.Errorf("validate -strict: exit %d\n%s%s\nwant:\n%s", code, out, errOut, want)
	}
}

// TestValidateWarnsAndTestListsRuleErrors: validate prints the policy's
// warnings (a field the schema does not declare); test lists the rules
// that failed at run time, how often, with an example.
func TestValidateWarnsAndTestListsRuleErrors(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"features.yaml": "event_fields:\n  - {name: amount, type: number, event_types: [checkout]}\nfeatures:\n  - {name: n, kind: count, key: card_id, window: 1h}\n",
		"checkout.yaml": "name: checkout\nevent_types: [checkout, login]\nthresholds: {step_up: 50, block: 90}\nrules:\n  - {id: big, when: event.amount > 100, score: 60}\n  - {id: code, when: event.code > 1, score: 1}\n",
		"tests/t.yaml":  "tests:\n  - name: t\n    events:\n      - {id: a, type: checkout, ts: \"2026-11-20T10:00:00Z\", amount: 120, code: x}\n      - {id: b, type: checkout, ts: \"2026-11-20T10:00:01Z\", amount: 1, code: 2}\n    expect:\n      - {event: a, fired: [big]}\n",
	}
	for name, body := range files {
		os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	code, _, errOut := riskctl(t, "", "validate", "-cost-warn", "0", dir)
	if code != 0 || !strings.Contains(errOut, "warning: "+dir+"/checkout.yaml:6:28: rule code: when: event.code is not declared in event_fields for checkout, login events") {
		t.Errorf("validate: exit %d\n%s", code, errOut)
	}
	// -strict, for CI: every warning is an error.
	code, out, errOut := riskctl(t, "", "validate", "-strict", "-cost-warn", "0", dir)
	if code != 1 || out != "" || !strings.Contains(errOut, dir+"/checkout.yaml:6:28: rule code: when: event.code is not declared") || strings.Contains(errOut, "warning:") {
		t.Errorf("validate -strict: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = riskctl(t, "", "test", dir)
	if code != 0 || !strings.Contains(out, "rules with run-time errors (they did not fire when they failed):\n  checkout.code: 1 of 2 evaluations (50.00%), e.g. event a: invalid operation: string > int (1:12)\n") {
		t.Errorf("test: exit %d\n%s%s", code, out, errOut)
	}
}

// TestBrokenPolicies is the gallery of broken policy directories under
// testdata/broken: each must be refused with exactly the messages in its
// want.txt (go test ./cmd/riskctl -run Broken -update rewrites them).
func TestBrokenPolicies(t *testing.T) {
	dirs, err := filepath.Glob("testdata/broken/*")
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no broken policies: %v", err)
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			code, out, errOut := riskctl(t, "", "validate", dir)
			if code != 1 || out != "" {
				t.Fatalf("exit %d, stdout %q: want 1 and only errors", code, out)
			}
			golden := filepath.Join(dir, "want.txt")
			if *update {
				os.WriteFile(golden, []byte(errOut), 0o644)
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if errOut != string(want) {
				t.Errorf("errors:\n%s\nwant:\n%s", errOut, want)
			}
		})
	}
}

func TestFailingRuleTestsReportAndExit1(t *testing.T) {
	dir := t.TempDir()
	copyExample(t, dir)
	os.Mkdir(filepath.Join(dir, "tests"), 0o755)
	os.WriteFile(filepath.Join(dir, "tests", "wrong.yaml"), []byte(`tests:
  - name: expects the wrong thing
    events:
      - {id: g1, type: checkout, ts: "2026-11-20T10:00:00Z", account_id: a, card_id: c, amount: 20, ip_country: KP}
    expect:
      - {event: g1, decision: pass, fired: [cross_border], score: 5}
  - name: right
    events:
      - {id: g1, type: checkout, ts: "2026-11-20T10:00:00Z", account_id: a, card_id: c, amount: 20}
    expect:
      - {event: g1, decision: pass, fired: []}
`), 0o644)
	code, out, _ := riskctl(t, "", "test", dir)
	wrong := filepath.Join(dir, "tests", "wrong.yaml")
	for _, want := range []string{
		"--- FAIL: wrong.yaml/expects the wrong thing",
		wrong + ":6: event g1: decision block (score 0), want pass",
		wrong + ":6: event g1: fired [sanctioned_country], want [cross_border]",
		wrong + ":6: event g1: score 0, want 5",
		"FAIL\t" + dir + "\t1 of 2 tests failed",
		"rules no test makes fire: checkout/blocked_card, checkout/blocked_card_api, checkout/card_charged_back, checkout/terminal_chargebacks, checkout/card_velocity_1h",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	if code, out, _ := riskctl(t, "", "test", "-run", "right$", dir); code != 0 || !strings.Contains(out, "1 tests") {
		t.Errorf("-run right$: exit %d\n%s", code, out)
	}
}

func TestScore(t *testing.T) {
	in := `{"id":"e1","type":"checkout","ts":"2026-11-20T10:00:00Z","account_id":"a","card_id":"c","amount":6000}

not json
{"id":"e2","type":"checkout","ts":"2026-11-20T10:00:01Z","account_id":"a","card_id":"c","amount":10}
`
	code, out, errOut := riskctl(t, in, "score", "-rules", "../../rules/example")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], `"event_id":"e1","type":"checkout","decision":"block"`) ||
		!strings.Contains(lines[1], `"rule":"card_burst"`) {
		t.Errorf("decisions:\n%s", out)
	}
	if code != 1 || !strings.Contains(errOut, "line 3: invalid JSON") {
		t.Errorf("exit %d, stderr %q: want 1 and the refused line named", code, errOut)
	}
}

// TestChallengerRuleTests: an expectation naming a ruleset checks that
// ruleset's verdict, live or shadow.
func TestChallengerRuleTests(t *testing.T) {
	dir := t.TempDir()
	data, err := os.ReadFile("../../rules/example/features.yaml")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "features.yaml"), data, 0o644)
	os.WriteFile(filepath.Join(dir, "checkout.yaml"), []byte(`name: checkout
event_types: [checkout]
thresholds: {step_up: 50, block: 90}
rules:
  - {id: big, when: event.amount > 1000, score: 60}
`), 0o644)
	os.WriteFile(filepath.Join(dir, "strict.yaml"), []byte(`name: strict
shadow_of: checkout
thresholds: {step_up: 50, block: 90}
rules:
  - {id: big, when: event.amount > 1000, score: 95}
`), 0o644)
	os.Mkdir(filepath.Join(dir, "tests"), 0o755)
	os.WriteFile(filepath.Join(dir, "tests", "t.yaml"), []byte(`tests:
  - name: the challenger blocks what the champion steps up
    events:
      - {id: g1, type: checkout, ts: "2026-11-20T10:00:00Z", amount: 2000}
    expect:
      - {event: g1, decision: step_up, fired: [big], score: 60}
      - {event: g1, ruleset: strict, decision: block, fired: [big], score: 95}
      - {event: g1, ruleset: strict, decision: pass}
`), 0o644)
	code, out, _ := riskctl(t, "", "test", dir)
	at := filepath.Join(dir, "tests", "t.yaml")
	for _, want := range []string{
		at + ":8: event g1 (strict): decision block (score 95), want pass",
		"1 of 1 tests failed",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	if code != 1 || strings.Contains(out, "rules no test makes fire") {
		t.Errorf("exit %d, want 1 with every rule covered:\n%s", code, out)
	}
}

// TestReviewRuleTests: rule tests expect review decisions, by threshold
// and by a rule's action, and name a wrong one.
func TestReviewRuleTests(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "features.yaml"), []byte("features:\n  - {name: card_count_1h, kind: count, key: card_id, window: 1h}\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "checkout.yaml"), []byte(`name: checkout
event_types: [checkout]
thresholds: {step_up: 30, review: 60}
rules:
  - {id: big, when: event.amount > 1000, score: 60}
  - {id: gift, when: event.item == "gift_card", action: review}
  - {id: repeat, when: features.card_count_1h >= 1, score: 1}
`), 0o644)
	os.Mkdir(filepath.Join(dir, "tests"), 0o755)
	os.WriteFile(filepath.Join(dir, "tests", "t.yaml"), []byte(`tests:
  - name: big amounts and gift cards go to an analyst
    events:
      - {id: r1, type: checkout, ts: "2026-11-20T10:00:00Z", card_id: c1, amount: 2000}
      - {id: r2, type: checkout, ts: "2026-11-20T10:01:00Z", card_id: c1, item: gift_card}
    expect:
      - {event: r1, decision: review, fired: [big], score: 60}
      - {event: r2, decision: review, fired: [gift, repeat], score: 1}
      - {event: r2, decision: block}
`), 0o644)
	code, out, _ := riskctl(t, "", "test", dir)
	if want := filepath.Join(dir, "tests", "t.yaml") + ":9: event r2: decision review (score 1), want block"; code != 1 || !strings.Contains(out, want) {
		t.Errorf("exit %d, want 1 and %q in:\n%s", code, want, out)
	}
	if strings.Count(out, "want") != 1 {
		t.Errorf("the review expectations failed:\n%s", out)
	}
}

// TestReplay replays a generated history of the example policy against
// the handbook policy as a challenger (a different directory, features and
// all), with labels, a window and decisions written out.
func TestReplay(t *testing.T) {
	dir := t.TempDir()
	var in strings.Builder
	for i := 0; i < 40; i++ {
		amount, fraud := 20, 0
		if i%10 == 9 {
			amount, fraud = 6000, 1
		}
		fmt.Fprintf(&in, `{"id":"e%d","type":"checkout","ts":%d,"account_id":"a%d","card_id":"c%d","customer_id":"u%d","terminal_id":"t1","amount":%d,"is_fraud":%d}`+"\n",
			i, 1800000000000+int64(i)*60000, i%3, i%3, i%3, amount, fraud)
	}
	events := filepath.Join(dir, "events.jsonl")
	if err := os.WriteFile(events, []byte(in.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	decisions := filepath.Join(dir, "decisions.jsonl")
	code, out, errOut := riskctl(t, "", "replay", "-rules", "../../rules/example", "-challenger", "../../bench/handbook",
		"-in", events, "-label", "is_fraud", "-from", "2027-01-15T08:05:00Z", "-out", decisions, "-json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var res struct {
		Events int
		Live   struct {
			Scored int
			Labels struct {
				Fraud int
				Block struct{ Recall float64 }
			}
		}
		Challenger struct{ Scored int }
		Comparison struct{ Changed int }
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	// Events from 08:05 on: e5..e39, of which e9, e19, e29, e39 are fraud.
	if res.Events != 40 || res.Live.Scored != 35 || res.Challenger.Scored != 35 || res.Live.Labels.Fraud != 4 || res.Live.Labels.Block.Recall != 1 {
		t.Errorf("summary: %s", out)
	}
	if b, err := os.ReadFile(decisions); err != nil || strings.Count(string(b), "\n") != 40 {
		t.Errorf("decisions file: %v\n%s", err, b)
	}
	// The same labels from an export of the decisions topic's label
	// records, joined by event id: the same counts without -label.
	var export strings.Builder
	for i := 0; i < 40; i++ {
		fmt.Fprintf(&export, `{"event_id":"e%d","type":"checkout","decision":"pass","score":0}`+"\n", i)
		if i%10 == 9 {
			fmt.Fprintf(&export, `{"source":"chargeback","event_id":"e%d","type":"checkout","label":"fraud"}`+"\n", i)
		} else {
			fmt.Fprintf(&export, `{"source":"review","event_id":"e%d","type":"checkout","label":"not_fraud","analyst":"ann"}`+"\n", i)
		}
	}
	labels := filepath.Join(dir, "labels.jsonl")
	if err := os.WriteFile(labels, []byte(export.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = riskctl(t, "", "replay", "-rules", "../../rules/example", "-in", events, "-labels", labels,
		"-from", "2027-01-15T08:05:00Z", "-json")
	res.Live.Labels.Fraud, res.Live.Labels.Block.Recall = 0, 0
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil || res.Live.Labels.Fraud != 4 || res.Live.Labels.Block.Recall != 1 ||
		!strings.Contains(errOut, "-labels "+labels+": 40 labels, 40 events labelled") {
		t.Errorf("-labels: exit %d\n%s%s", code, out, errOut)
	}
	code, _, errOut = riskctl(t, "", "replay", "-rules", "../../rules/example", "-in", events, "-labels", events)
	if code != 2 || !strings.Contains(errOut, "-labels "+events+": no label record") {
		t.Errorf("-labels without a label record: exit %d\n%s", code, errOut)
	}
	if err := os.WriteFile(labels, []byte(`{"event_id":"other","label":"fraud"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = riskctl(t, "", "replay", "-rules", "../../rules/example", "-in", events, "-labels", labels)
	if code != 2 || !strings.Contains(errOut, "no event of "+events+" has the id of a label") {
		t.Errorf("-labels joining no event: exit %d\n%s", code, errOut)
	}
	// Each customer's events after its first fraud are left out; e39 is
	// u0's second fraud.
	training := filepath.Join(dir, "training.csv")
	code, out, errOut = riskctl(t, "", "replay", "-rules", "../../rules/example", "-in", events, "-label", "is_fraud",
		"-from", "2027-01-15T08:05:00Z", "-known-fraud", "customer_id", "-known-delay", "0", "-known-every", "0", "-features-out", training)
	if code != 0 || !strings.Contains(out, "left out 19 events whose customer_id had a fraud known before them (labels known 0s after the fraud, taken in as they arrive; frauds all history)") ||
		!strings.Contains(out, "labels: 3 fraud, 13 genuine") {
		t.Errorf("-known-fraud: exit %d\n%s%s", code, out, errOut)
	}
	// The rows are the 16 counted events; replay's tests check their values.
	if b, err := os.ReadFile(training); err != nil || strings.Count(string(b), "\n") != 17 ||
		!strings.HasPrefix(string(b), "event_id,ts,type,ruleset,label,score,decision,rules,event.amount,") {
		t.Errorf("-features-out: %v\n%s", err, b)
	}
	// A label field no event carries drops every label metric: refused,
	// with a did-you-mean.
	code, out, errOut = riskctl(t, "", "replay", "-rules", "../../rules/example", "-in", events, "-label", "is_fruad")
	if code != 2 || out != "" || !strings.Contains(errOut, `riskctl replay: -label is_fruad: no event carries the field "is_fruad" (did you mean is_fraud?)`) {
		t.Errorf("-label is_fruad: exit %d\n%s%s", code, out, errOut)
	}
	// Case is a typo like any other.
	code, out, errOut = riskctl(t, "", "replay", "-rules", "../../rules/example", "-in", events, "-label", "IS_FRAUD")
	if code != 2 || out != "" || !strings.Contains(errOut, `(did you mean is_fraud?)`) {
		t.Errorf("-label IS_FRAUD: exit %d\n%s%s", code, out, errOut)
	}
	// One that some events lack is reported with the count.
	partial := filepath.Join(dir, "partial.jsonl")
	os.WriteFile(partial, []byte(strings.Replace(in.String(), `,"is_fraud":0}`, `}`, 3)), 0o644)
	code, _, errOut = riskctl(t, "", "replay", "-rules", "../../rules/example", "-in", partial, "-label", "is_fraud")
	if code != 0 || !strings.Contains(errOut, "replay: -label is_fraud: 3 of 40 events lack it (or hold null); they count as unlabelled") {
		t.Errorf("-label with gaps: exit %d\n%s", code, errOut)
	}
	code, _, errOut = riskctl(t, "", "replay", "-rules", "../../rules/example", "-in", events, "-label", "amount")
	if code != 1 || !strings.Contains(errOut, "events.jsonl:line 1: label field \"amount\": 20 is not a label") {
		t.Errorf("bad labels: exit %d, stderr %s", code, errOut)
	}
	for _, args := range [][]string{
		{"-rules", "../../rules/example"},
		{"-rules", "../../rules/example", "-in", events, "-from", "yesterday"},
		{"-rules", "../../rules/example", "-in", events, "-from", "2027-01-02", "-to", "2027-01-01"},
		{"-rules", "../../rules/example", "-in", events, "-known-fraud", "customer_id"},
		{"-rules", "../../rules/example", "-in", events, "-label", "is_fraud", "-known-fraud", "customer_id", "-known-delay", "a week"},
		{"-rules", "../../rules/example", "-in", events, "-label", "is_fraud", "-known-fraud", "customer_id", "-known-from", "July"},
	} {
		if code, _, _ := riskctl(t, "", append([]string{"replay"}, args...)...); code != 2 {
			t.Errorf("replay %v: exit %d, want 2", args, code)
		}
	}
}

func TestUsage(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string // on standard error
	}{
		{nil, "riskctl COMMAND -h"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"validate"}, "riskctl validate: want a policy directory: DIR or -rules DIR\n\nusage: riskctl validate [flags] DIR"},
		{[]string{"score"}, "riskctl score: want a policy directory: DIR or -rules DIR\n\nusage: riskctl score -rules DIR"},
		{[]string{"test", "a", "b"}, "usage: riskctl test [flags] DIR"},
		{[]string{"replay", "-label"}, "flag needs an argument: -label\nusage: riskctl replay -rules DIR -in FILE [flags]"},
	} {
		if code, _, errOut := riskctl(t, "", tt.args...); code != 2 || !strings.Contains(errOut, tt.want) {
			t.Errorf("riskctl %v: exit %d, want 2 and %q in\n%s", tt.args, code, tt.want, errOut)
		}
	}
}

// TestCommandHelp: every command's -h (or help COMMAND) says what it
// takes and does, then each flag, on standard output with exit 0.
func TestCommandHelp(t *testing.T) {
	for _, tt := range []struct {
		command string
		want    []string
	}{
		{"validate", []string{"usage: riskctl validate [flags] DIR\n", "file:line:col: message", "  -cost-warn DURATION\n", "  -rules-max-file-bytes BYTES\n"}},
		{"test", []string{"usage: riskctl test [flags] DIR\n", "DIR/tests/*.yaml", "  -run REGEXP\n", "  -v\t"}},
		{"score", []string{"usage: riskctl score -rules DIR [flags] < events.jsonl > decisions.jsonl\n", "one JSON object a line on standard input", "  -rules DIR\n", "  -explain\n"}},
		{"replay", []string{"usage: riskctl replay -rules DIR -in FILE [flags]\n", "ROC AUC", "  -in FILE\n", "  -label FIELD\n", "  -from TIME\n", "  -challenger DIR\n", "  -changed N\n", "  -out FILE\n"}},
	} {
		for _, args := range [][]string{{tt.command, "-h"}, {"help", tt.command}} {
			code, out, errOut := riskctl(t, "", args...)
			if code != 0 || errOut != "" {
				t.Errorf("riskctl %v: exit %d, standard error %q", args, code, errOut)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("riskctl %v: no %q in\n%s", args, w, out)
				}
			}
		}
	}
}

func TestVersion(t *testing.T) {
	for _, arg := range []string{"-version", "--version", "version"} {
		code, out, errOut := riskctl(t, "", arg)
		// A test binary has no module version or VCS stamp of its own.
		if want := "riskctl (devel) (revision unknown, " + runtime.Version() + ")\n"; code != 0 || out != want || errOut != "" {
			t.Errorf("riskctl %s: exit %d, %q %q; want 0, %q", arg, code, out, errOut, want)
		}
	}
}

// copyExample copies the example policy's files into dir.
func copyExample(t *testing.T, dir string) {
	t.Helper()
	os.MkdirAll(filepath.Join(dir, "lists"), 0o755)
	for _, name := range []string{"features.yaml", "checkout.yaml", "login.yaml", "signup.yaml", "lists/blocked_cards.txt"} {
		data, err := os.ReadFile(filepath.Join("../../rules/example", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestValidateReadsTheDirectoryAsRiskdDoes: riskctl validate reads a
// directory with riskd's code and bounds, so it says ok exactly when
// riskd loads it: a Kubernetes ConfigMap volume loads (riskd used to
// refuse it on every reload while validate said ok); a FIFO, a symlink
// out of the directory or a file over the bound are refused by both.
func TestValidateReadsTheDirectoryAsRiskdDoes(t *testing.T) {
	fi, err := os.Stat("../../rules/example/checkout.yaml")
	if err != nil {
		t.Fatal(err)
	}
	checkoutSize := fi.Size()
	outside := filepath.Join(t.TempDir(), "passwd")
	os.WriteFile(outside, []byte("root:x:0:0:root:/root:/bin/bash\n"), 0o644)
	for _, tt := range []struct {
		name  string
		setup func(t *testing.T, dir string)
		flags []string
		want  string // "" valid; else a line of the errors, after DIR
	}{
		{name: "ConfigMap volume", setup: func(t *testing.T, dir string) {
			ts := filepath.Join(dir, "..2026_11_29_10_00_00.1")
			os.Mkdir(ts, 0o755)
			copyExample(t, ts)
			os.Symlink(filepath.Base(ts), filepath.Join(dir, "..data"))
			for _, name := range []string{"features.yaml", "checkout.yaml", "login.yaml", "signup.yaml", "lists"} {
				os.Symlink(filepath.Join("..data", name), filepath.Join(dir, name))
			}
		}},
		{name: "FIFO", setup: func(t *testing.T, dir string) {
			copyExample(t, dir)
			if err := syscall.Mkfifo(filepath.Join(dir, "pipe.yaml"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, want: "/pipe.yaml: not a regular file (a named pipe): only regular files are read"},
		{name: "symlink out", setup: func(t *testing.T, dir string) {
			copyExample(t, dir)
			os.Symlink(outside, filepath.Join(dir, "passwd.yaml"))
		}, want: "/passwd.yaml: a symlink to " + outside + ", outside the policy directory: refused (-rules-follow-symlinks allows it)"},
		{name: "symlink out, followed", flags: []string{"-rules-follow-symlinks"}, setup: func(t *testing.T, dir string) {
			copyExample(t, dir)
			os.Symlink(outside, filepath.Join(dir, "passwd.yaml"))
		}, want: `/passwd.yaml:1:1: ruleset must be a mapping, got "root:x:0:0:root:/root:/bin/bash"`},
		{name: "file over the bound", flags: []string{"-rules-max-file-bytes", fmt.Sprint(checkoutSize - 1)}, setup: copyExample,
			want: fmt.Sprintf("/checkout.yaml: %d bytes, larger than the limit of %d bytes for a policy file (-rules-max-file-bytes raises it)", checkoutSize, checkoutSize-1)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			tt.setup(t, dir)
			code, out, errOut := riskctl(t, "", append(append([]string{"validate"}, tt.flags...), dir)...)
			if tt.want == "" {
				if code != 0 || !strings.Contains(out, ": ok: ") {
					t.Fatalf("exit %d\n%s%s", code, out, errOut)
				}
				return
			}
			if code != 1 || !strings.Contains(errOut, dir+tt.want+"\n") {
				t.Fatalf("exit %d, errors:\n%s\nwant a line %s%s", code, errOut, dir, tt.want)
			}
		})
	}
}

// TestValidateWarnsOfCostlyRules: a rule that scans a long list on every
// event is reported with its cost on generated events (any() over a list
// of 200k items cost 14-18 ms an event and was accepted silently); the
// same membership test with `in` is a set lookup and is not.
func TestValidateWarnsOfCostlyRules(t *testing.T) {
	dir := t.TempDir()
	copyExample(t, dir)
	for _, f := range []string{"login.yaml", "signup.yaml"} {
		os.Remove(filepath.Join(dir, f))
	}
	items := make([]string, 100_000)
	for i := range items {
		items[i] = fmt.Sprintf("b%d", i)
	}
	// bin is declared a string: generated events may give an undeclared
	// field a list, and `in` a 100,000-value inline list with a list for
	// a needle costs milliseconds (a warning then rightly says so).
	feats, err := os.ReadFile(filepath.Join(dir, "features.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "features.yaml"), bytes.Replace(feats, []byte("event_fields:\n"), []byte("event_fields:\n  - {name: bin, type: string}\n"), 1), 0o644)
	os.WriteFile(filepath.Join(dir, "checkout.yaml"), []byte(`name: checkout
event_types: [checkout]
thresholds: {step_up: 50, block: 90}
lists:
  bins: [`+strings.Join(items, ", ")+`]
rules:
  - id: scan
    when: 'any(lists.bins, {# == event.card_id})'
    score: 10
  - id: lookup
    when: event.card_id in lists.bins
    score: 10
`), 0o644)
	code, out, errOut := riskctl(t, "", "validate", "-cost", dir)
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	if !strings.Contains(errOut, "warning: checkout/scan costs ") || !strings.Contains(errOut, "per event on generated events, above 100µs (-cost-warn)") {
		t.Errorf("no warning for the scan:\n%s", errOut)
	}
	if strings.Contains(errOut, "checkout/lookup") {
		t.Errorf("a warning for the lookup:\n%s", errOut)
	}
	if !strings.Contains(out, "cost per event on 64 generated events") || !regexp.MustCompile(`\n  checkout/lookup +\d`).MatchString(out) {
		t.Errorf("-cost table:\n%s", out)
	}
	if code, out, errOut := riskctl(t, "", "validate", "-cost-warn", "0", dir); code != 0 || strings.Contains(out+errOut, "cost") {
		t.Errorf("-cost-warn 0: exit %d\n%s%s", code, out, errOut)
	}
}

// TestCommandLines: every command that reads a policy takes DIR or
// -rules DIR, flags may follow the arguments, and a mistyped command is
// answered with a did-you-mean.
func TestCommandLines(t *testing.T) {
	const ex = "../../rules/example"
	events := `{"id":"e1","type":"checkout","ts":"2026-11-20T10:00:00Z","account_id":"a","card_id":"c","amount":10}` + "\n"
	in := filepath.Join(t.TempDir(), "events.jsonl")
	os.WriteFile(in, []byte(events), 0o644)
	for _, tt := range []struct {
		name  string
		args  []string
		code  int
		out   string // in stdout, or in stderr when code != 0
		stdin string
	}{
		{"validate -rules", []string{"validate", "-cost-warn", "0", "-rules", ex}, 0, ex + ": ok:", ""},
		{"validate, flag after DIR", []string{"validate", ex, "-cost-warn", "0"}, 0, ex + ": ok:", ""},
		{"test -rules, flag after", []string{"test", "-rules", ex, "-run", "nothing matches"}, 0, "[no tests to run]", ""},
		{"score DIR", []string{"score", ex}, 0, `"event_id":"e1"`, events},
		{"score, flag after DIR", []string{"score", ex, "-explain"}, 0, `"features":`, events},
		{"replay DIR, flags after", []string{"replay", ex, "-in", in, "-json"}, 0, `"events": 1`, ""},
		{"two directories", []string{"validate", "-rules", ex, ex}, 2, "the policy directory is -rules " + ex + "; unexpected arguments " + ex, ""},
		{"no directory", []string{"test"}, 2, "want a policy directory: DIR or -rules DIR", ""},
		{"unknown flag after DIR", []string{"validate", ex, "-strcit"}, 2, "flag provided but not defined: -strcit (did you mean -strict?)", ""},
		{"unknown command", []string{"valdate", ex}, 2, `riskctl: unknown command "valdate" (did you mean "validate"?)`, ""},
		{"help", []string{"validate", "-h"}, 0, "usage: riskctl validate", ""},
		{"help of a lists operation", []string{"help", "lists", "add"}, 0, "usage: riskctl lists add", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := riskctl(t, tt.stdin, tt.args...)
			got := out
			if tt.code != 0 {
				got = errOut
			}
			if code != tt.code || !strings.Contains(got, tt.out) {
				t.Errorf("exit %d\nstdout: %s\nstderr: %s\nwant exit %d with %q", code, out, errOut, tt.code, tt.out)
			}
		})
	}
}

// TestRuleTestMistakes: a test naming a rule, ruleset, feature, mutable
// list or event type the policy lacks is refused at file:line:col with a did-you-mean (it could
// only fail, without saying why); a refused event is named where it is.
func TestRuleTestMistakes(t *testing.T) {
	dir := t.TempDir()
	copyExample(t, dir)
	os.Mkdir(filepath.Join(dir, "tests"), 0o755)
	os.WriteFile(filepath.Join(dir, "tests", "typos.yaml"), []byte(`tests:
  - name: typos
    events:
      - {id: g1, type: checkout, ts: "2026-11-20T10:00:00Z", account_id: a, card_id: c, amount: 20}
    expect:
      - {event: g1, fired: [sanctioned_contry, cross_border]}
      - {event: g1, ruleset: chekout, decision: pass}
      - {event: g1, features: {card_txn_cont_1h: 0}}
  - name: more typos
    lists: {blocked_card_api: [c]}
    events:
      - {id: h1, type: chekout, ts: "2026-11-20T10:00:00Z", account_id: a, card_id: c, amount: 20}
    expect:
      - {event: h1, decision: pass}
`), 0o644)
	code, out, errOut := riskctl(t, "", "test", dir)
	at := filepath.Join(dir, "tests", "typos.yaml")
	want := at + `:6:29: fired: ruleset checkout has no rule "sanctioned_contry" (did you mean sanctioned_country?)` + "\n" +
		at + `:7:30: no ruleset named "chekout" (did you mean "checkout"?)` + "\n" +
		at + `:8:32: features: no feature named "card_txn_cont_1h" (did you mean card_txn_count_1h?)` + "\n" +
		at + `:10:13: lists: the policy declares no mutable list "blocked_card_api" (did you mean blocked_cards_api?)` + "\n" +
		at + `:12:24: event h1: type "chekout" is named by no ruleset, feature or event_fields declaration (did you mean "checkout"?)` + "\n"
	if code != 2 || out != "" || errOut != want {
		t.Errorf("exit %d\nstdout: %s\nstderr: %s\nwant:\n%s", code, out, errOut, want)
	}
	os.WriteFile(filepath.Join(dir, "tests", "typos.yaml"), []byte(`tests:
  - name: refused
    events:
      - {id: g1, type: checkout, ts: "2026-11-20T10:00:00Z", account_id: a, card_id: c, amount: 20}
      - {id: g2, type: checkout, ts: "2026-11-20T10:00:01Z", account_id: a, card_id: c, amount: "twenty"}
    expect:
      - {event: g1, decision: pass}
`), 0o644)
	code, out, _ = riskctl(t, "", "test", dir)
	if code != 1 || !strings.Contains(out, at+`:5:9: event refused: field "amount": `) {
		t.Errorf("exit %d\n%s", code, out)
	}
}

// TestValidateCostsLoopsOverEventLists: a where condition and a rule
// looping over an event's list inside another are costed on generated
// events that carry lists (they were costed on scalars only, at 103 ns),
// and warned of; the evaluation budget bounds what they cost.
func TestValidateCostsLoopsOverEventLists(t *testing.T) {
	dir := t.TempDir()
	copyExample(t, dir)
	for _, f := range []string{"login.yaml", "signup.yaml"} {
		os.Remove(filepath.Join(dir, f))
	}
	nested := `all(event.items, {any(event.items, {.n == -1}) == false})`
	feats, err := os.ReadFile(filepath.Join(dir, "features.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	feats = bytes.Replace(feats, []byte("event_fields:\n"), []byte("event_fields:\n  - {name: items, type: list, event_types: [checkout]}\n"), 1)
	feats = append(feats, "  - {name: card_cart_checkouts_1h, kind: count, key: card_id, window: 1h, event_types: [checkout], where: '"+nested+"'}\n"...)
	os.WriteFile(filepath.Join(dir, "features.yaml"), feats, 0o644)
	os.WriteFile(filepath.Join(dir, "checkout.yaml"), []byte(`name: checkout
event_types: [checkout]
thresholds: {step_up: 50, block: 90}
rules:
  - id: nested
    when: '`+nested+`'
    score: 10
  - id: carts
    when: features.card_cart_checkouts_1h > 3
    score: 10
`), 0o644)
	code, out, errOut := riskctl(t, "", "validate", "-cost", dir)
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	for _, want := range []string{"warning: checkout/nested costs ", "warning: features/card_cart_checkouts_1h where costs "} {
		if !strings.Contains(errOut, want) {
			t.Errorf("no %q:\n%s", want, errOut)
		}
	}
	if strings.Contains(errOut, "checkout/carts") {
		t.Errorf("a warning for a plain rule:\n%s", errOut)
	}
	if !regexp.MustCompile(`\n  features/card_cart_checkouts_1h where +\d`).MatchString(out) {
		t.Errorf("-cost table without the where:\n%s", out)
	}
}
