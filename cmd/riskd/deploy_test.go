package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"go.yaml.in/yaml/v3"
)

const (
	alertsFile     = "../../deploy/prometheus/alerts.yaml"
	alertTestsFile = "../../deploy/prometheus/alerts_test.yaml"
	dashboardFile  = "../../deploy/grafana/riskd.json"
)

// alertRules reads the alerting rules of deploy/prometheus/alerts.yaml.
func alertRules(t *testing.T) []struct{ Alert, Expr string } {
	t.Helper()
	data, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Groups []struct {
			Rules []struct{ Alert, Expr string }
		}
	}
	if err := yaml.Unmarshal(data, &f); err != nil {
		t.Fatalf("%s: %v", alertsFile, err)
	}
	var out []struct{ Alert, Expr string }
	for _, g := range f.Groups {
		out = append(out, g.Rules...)
	}
	if len(out) == 0 {
		t.Fatalf("%s: no rules", alertsFile)
	}
	return out
}

// dashboardQueries reads the PromQL of every panel of the Grafana
// dashboard, by panel title.
func dashboardQueries(t *testing.T) map[string][]string {
	t.Helper()
	data, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	out := map[string][]string{}
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			out[p.Title] = append(out[p.Title], tg.Expr)
		}
	}
	if len(out) == 0 {
		t.Fatalf("%s: no queries", dashboardFile)
	}
	return out
}

var metricNameRE = regexp.MustCompile(`\briskd_[a-z0-9_]+`)

// exposedFamilies scrapes url and returns its metric families by name,
// with their type, and the text it read.
func exposedFamilies(t *testing.T, url string) (map[string]string, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	out := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			out[f[2]] = f[3]
		}
	}
	return out, string(b)
}

// exposes says whether name, as a query may use it, is in families: a
// family's own name, or a histogram's _bucket, _sum or _count series.
func exposes(families map[string]string, name string) bool {
	if _, ok := families[name]; ok {
		return true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok && families[base] == "histogram" {
			return true
		}
	}
	return false
}

// TestDashboardAndAlertsUseRealMetrics runs riskd with everything that
// has metrics (Kafka, a policy directory with a challenger), drives one
// event through each path and a reload, and fails if the dashboard or an
// alert names a metric riskd's /metrics does not have.
func TestDashboardAndAlertsUseRealMetrics(t *testing.T) {
	broker, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "risk.events", "risk.decisions", "risk.decisions.shadow", "risk.events.dlq"))
	if err != nil {
		t.Fatal(err)
	}
	defer broker.Close()
	addr := broker.ListenAddrs()[0]
	rules := t.TempDir()
	copyExample(t, rules)
	os.WriteFile(filepath.Join(rules, "next.yaml"), []byte(`name: checkout_next
shadow_of: checkout
thresholds: {step_up: 50, block: 90}
rules:
  - {id: big, when: event.amount > 40, score: 60}
`), 0o644)

	// A webhook nobody answers: its metrics show before any outcome.
	secret := filepath.Join(t.TempDir(), "webhook-secret")
	os.WriteFile(secret, []byte("0123456789abcdef0123"), 0o600)
	p := startRiskd(t, riskdBinary(t), filepath.Join(t.TempDir(), "riskd.log"),
		"-listen", "127.0.0.1:0", "-kafka-brokers", addr, "-rules", rules, "-admin-token", "s3cret-admin-token",
		"-webhook-url", "https://127.0.0.1:9/riskd", "-webhook-secret-file", secret)
	public, _ := serving(t, p)
	client := &http.Client{Timeout: 10 * time.Second}
	post := func(path, body string) {
		t.Helper()
		req, _ := http.NewRequest("POST", public+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer s3cret-admin-token")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("POST %s: %d", path, resp.StatusCode)
		}
	}
	post("/v1/score", `{"id":"m-1","type":"checkout","card_id":"c","account_id":"a","amount":50}`)
	post("/v1/reload", "")
	w := &kafka.Writer{Addr: kafka.TCP(addr), Topic: "risk.events", BatchTimeout: time.Millisecond, RequiredAcks: kafka.RequireAll}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	err = w.WriteMessages(ctx, kafka.Message{Key: []byte("a"), Value: []byte(`{"id":"m-2","type":"checkout","card_id":"c","account_id":"a","amount":50}`)})
	cancel()
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	var families map[string]string
	pollUntil(t, 50*time.Millisecond, 60*time.Second, "the Kafka event to be decided and the HTTP one written to the audit stream", func() bool {
		var text string
		families, text = exposedFamilies(t, public+"/metrics")
		written, _ := metricValue(text, `riskd_audit_records_total{result="written"}`)
		return exposes(families, "riskd_kafka_consumer_lag") && exposes(families, "riskd_kafka_commit_duration_seconds_count") && written == 1
	}, p.output)

	used := map[string][]string{} // metric -> where it is used
	for _, r := range alertRules(t) {
		for _, name := range metricNameRE.FindAllString(r.Expr, -1) {
			used[name] = append(used[name], "alert "+r.Alert)
		}
	}
	for title, exprs := range dashboardQueries(t) {
		for _, e := range exprs {
			for _, name := range metricNameRE.FindAllString(e, -1) {
				used[name] = append(used[name], "panel "+title)
			}
		}
	}
	if len(used) < 15 {
		t.Fatalf("only %d metric names found in the dashboard and alerts: is the extraction broken?", len(used))
	}
	for name, where := range used {
		if !exposes(families, name) {
			slices.Sort(where)
			t.Errorf("%s, used by %s, is not in riskd's /metrics", name, strings.Join(slices.Compact(where), ", "))
		}
	}

	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(60 * time.Second):
		t.Fatalf("riskd still running 60s after SIGTERM\n%s", p.output())
	}
}

// TestEveryAlertIsTested: each alert of alerts.yaml has a promtool unit
// test in alerts_test.yaml that expects it to fire (test.sh runs them).
func TestEveryAlertIsTested(t *testing.T) {
	data, err := os.ReadFile(alertTestsFile)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string
				ExpAlerts []map[string]any `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		}
	}
	if err := yaml.Unmarshal(data, &f); err != nil {
		t.Fatalf("%s: %v", alertTestsFile, err)
	}
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, tt := range f.Tests {
		for _, a := range tt.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				quiet[a.Alertname] = true
			}
		}
	}
	for _, r := range alertRules(t) {
		if !fires[r.Alert] || !quiet[r.Alert] {
			t.Errorf("alert %s: a test where it fires %v, one where it does not %v; want both", r.Alert, fires[r.Alert], quiet[r.Alert])
		}
	}
}

// TestDashboardQueriesParse hands every dashboard query, its Grafana
// variables replaced, to promtool as a recording rule: a query Prometheus
// cannot parse fails here rather than as an empty panel.
func TestDashboardQueriesParse(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool is needed for this test (Debian: apt-get install prometheus; ./test.sh installs it): %v", err)
	}
	vars := strings.NewReplacer("$__rate_interval", "5m", "$instance", ".*")
	var b strings.Builder
	b.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	n := 0
	for title, exprs := range dashboardQueries(t) {
		for _, e := range exprs {
			n++
			q, _ := json.Marshal(vars.Replace(e)) // a JSON string is a YAML string
			fmt.Fprintf(&b, "      - record: dashboard:query%d # %s\n        expr: %s\n", n, title, q)
		}
	}
	file := filepath.Join(t.TempDir(), "dashboard.rules.yaml")
	if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "check", "rules", file).CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules on the dashboard's queries: %v\n%s", err, out)
	}
}

// copyExample copies the example policy, its list files included, into
// dir.
func copyExample(t *testing.T, dir string) {
	t.Helper()
	files, _ := filepath.Glob("../../rules/example/*.yaml")
	lists, _ := filepath.Glob("../../rules/example/lists/*.txt")
	if err := os.MkdirAll(filepath.Join(dir, "lists"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range append(files, lists...) {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel("../../rules/example", f)
		if err := os.WriteFile(filepath.Join(dir, rel), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
