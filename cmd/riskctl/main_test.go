package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
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
	if code != 0 || !strings.HasPrefix(out, "ok  \t../../rules/example\t27 tests") {
		t.Fatalf("test: exit %d\n%s%s", code, out, errOut)
	}
	if strings.Contains(out, "rules no test makes fire") {
		t.Fatalf("the example's tests leave rules uncovered:\n%s", out)
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
	for _, name := range []string{"features.yaml", "checkout.yaml", "login.yaml", "signup.yaml"} {
		data, err := os.ReadFile(filepath.Join("../../rules/example", name))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, name), data, 0o644)
	}
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
		"rules no test makes fire: checkout/card_velocity_1h",
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

func TestUsage(t *testing.T) {
	for _, args := range [][]string{nil, {"frobnicate"}, {"validate"}, {"score"}, {"test", "a", "b"}} {
		if code, _, _ := riskctl(t, "", args...); code != 2 {
			t.Errorf("riskctl %v: exit %d, want 2", args, code)
		}
	}
}
