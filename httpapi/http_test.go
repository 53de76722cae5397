package httpapi_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/riskd/riskd/engine"
	"github.com/riskd/riskd/httpapi"
	"github.com/riskd/riskd/internal/apitest"
	"github.com/riskd/riskd/internal/enginetest"
	"github.com/riskd/riskd/rules"
)

func newServer(t *testing.T) *httptest.Server {
	t.Helper()
	reg := prometheus.NewRegistry()
	e := engine.New(enginetest.Example(t), engine.Options{Registerer: reg, MaxEventBytes: 1024})
	return apitest.NewServer(t, httpapi.NewHandler(e, httpapi.HandlerOptions{Gatherer: reg}))
}

func TestHTTPScoreErrors(t *testing.T) {
	srv := newServer(t)
	tests := []struct {
		name, body string
		code       int
		want       string
	}{
		{"invalid JSON", `{"id":"a","type":"checkout",}`, 400, `{"error":"invalid JSON: cannot parse JSON: cannot parse object: cannot find opening '\"\" for object key; unparsed tail: \"}\""}`},
		{"not an object", `[1,2]`, 400, `{"error":"event must be a JSON object, got array"}`},
		{"empty body", ``, 400, `{"error":"invalid JSON: cannot parse JSON: cannot parse empty string; unparsed tail: \"\""}`},
		{"missing id", `{"type":"checkout"}`, 400, `{"error":"missing required field \"id\""}`},
		{"numeric id", `{"id":7,"type":"checkout"}`, 400, `{"error":"field \"id\" must be a string, got number"}`},
		{"empty type", `{"id":"a","type":""}`, 400, `{"error":"field \"type\" must not be empty"}`},
		{"missing type", `{"id":"a"}`, 400, `{"error":"missing required field \"type\""}`},
		{"bad ts string", `{"id":"a","type":"checkout","ts":"yesterday"}`, 400, `{"error":"field \"ts\": \"yesterday\" is not an RFC 3339 time (e.g. 2026-11-21T10:15:00Z) or Unix milliseconds"}`},
		{"ts in seconds", `{"id":"a","type":"checkout","ts":1763640000}`, 400, `{"error":"field \"ts\" 1970-01-21T09:54:00Z is outside 1990..2200 (Unix milliseconds expected, not seconds)"}`},
		{"ts of wrong type", `{"id":"a","type":"checkout","ts":true}`, 400, `{"error":"field \"ts\" must be an RFC 3339 string or Unix milliseconds, got true"}`},
		{"amount past what a sum keeps", `{"id":"a","type":"checkout","account_id":"x","card_id":"y","amount":1e13}`, 400, `{"error":"field \"amount\": 1e13: magnitude over 9e12, the largest a feature records"}`},
		{"amount as a string (the schema wants a number)", `{"id":"a","type":"checkout","card_id":"y","amount":"950"}`, 400, `{"error":"field \"amount\": want number, got string \"950\""}`},
		{"required amount missing", `{"id":"a","type":"checkout","card_id":"y"}`, 400, `{"error":"field \"amount\": want number, got nothing: it is required in \"checkout\" events"}`},
		{"country of the wrong type", `{"id":"a","type":"login","account_id":"y","ip_country":250}`, 400, `{"error":"field \"ip_country\": want string, got number 250"}`},
		{"country too long", `{"id":"a","type":"login","account_id":"y","ip_country":"FRA"}`, 400, `{"error":"field \"ip_country\": want at most 2 characters, got 3"}`},
		{"NaN", `{"id":"a","type":"checkout","amount":NaN}`, 400, `{"error":"field \"amount\": NaN is not a JSON number"}`},
		{"Inf", `{"id":"a","type":"checkout","amount":-Inf}`, 400, `{"error":"field \"amount\": -Inf is not a JSON number"}`},
		{"not finite", `{"id":"a","type":"checkout","amount":1e309}`, 400, `{"error":"field \"amount\": 1e309 is not a finite number"}`},
		{"leading zero", `{"id":"a","type":"checkout","amount":012}`, 400, `{"error":"field \"amount\": 012 is not a JSON number"}`},
		{"duplicate key", `{"id":"a","type":"checkout","amount":1,"amount":9000}`, 400, `{"error":"duplicate key \"amount\" (parsers disagree on which one counts: refused)"}`},
		{"nested duplicate key", `{"id":"a","type":"checkout","billing":{"items":[{"sku":"x","sku":"y"}]}}`, 400, `{"error":"field \"billing.items[0]\": duplicate key \"sku\" (parsers disagree on which one counts: refused)"}`},
		{"control character", "{\"id\":\"a\",\"type\":\"checkout\",\"name\":\"x\x01y\"}", 400, `{"error":"invalid JSON: raw control character 0x01 inside a string at byte 37 (escape it as \\u0001)"}`},
		{"too large", `{"id":"a","type":"checkout","pad":"` + strings.Repeat("x", 2000) + `"}`, 413, `{"error":"event is over the limit of 1024 bytes"}`},
		{"ok", `{"id":"a","type":"payout","ts":"2026-11-20T15:00:00Z"}`, 200, `{"event_id":"a","type":"payout","decision":"pass","score":0,"ruleset":"","version":"","reasons":[],"degraded":false,"unscored":true,"elapsed_us":`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := http.Post(srv.URL+"/v1/score", "application/json", strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.code {
				t.Errorf("status %d, want %d (%s)", resp.StatusCode, tt.code, b)
			}
			if got := strings.TrimSpace(string(b)); !strings.HasPrefix(got, tt.want) {
				t.Errorf("body:\n%s\nwant:\n%s", got, tt.want)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
		})
	}
}

func TestHTTPEndpoints(t *testing.T) {
	srv := newServer(t)
	post := func(body string) {
		resp, err := http.Post(srv.URL+"/v1/score?explain=1", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), `"not_fired":[`) {
			t.Fatalf("explain: %d %s", resp.StatusCode, b)
		}
	}
	post(`{"id":"e1","type":"checkout","account_id":"a","card_id":"c","amount":10}`)
	post(`{"id":"e2","type":"checkout","ip_country":"KP","amount":1}`)

	for _, tt := range []struct {
		path string
		code int
		want []string
	}{
		{"/healthz", 200, []string{"ok"}},
		{"/readyz", 200, []string{"ready"}},
		{"/v1/rulesets", 200, []string{`"name": "checkout"`, `"hash": "`, `"event_types": [`, `"last_reload_error": null`}},
		{"/metrics", 200, []string{
			`riskd_decisions_total{outcome="block",ruleset="checkout"} 1`,
			`riskd_rule_hits_total{rule="sanctioned_country",ruleset="checkout"} 1`,
			`riskd_rule_errors_total{rule="card_velocity_1h",ruleset="checkout"} 1`, // e2 has no card: nil >= 5
			`riskd_score_duration_seconds_count 2`,
			`riskd_feature_store_duration_seconds_count 1`, // e2 has no entity key: no store call
		}},
		{"/nope", 404, []string{`{"error":"no such endpoint: GET /nope`}},
		{"/v1/score", 405, []string{`{"error":"GET /v1/score: method not allowed, use POST"}`}},
		{"/v1/reload", 405, []string{`{"error":"GET /v1/reload: method not allowed, use POST"}`}},
		{"/openapi.yaml", 200, []string{"openapi: 3.1.0", "/v1/score:"}},
	} {
		resp, err := http.Get(srv.URL + tt.path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.code {
			t.Errorf("%s: status %d, want %d", tt.path, resp.StatusCode, tt.code)
		}
		for _, w := range tt.want {
			if !strings.Contains(string(b), w) {
				t.Errorf("%s: missing %q in\n%s", tt.path, w, b)
			}
		}
	}
}

// TestHTTPUnscoredTypesKeepMetricsSane: event types come from callers;
// the unscored counter's labels are the policy's types and "other", never
// bytes of an event, so /metrics stays well formed whatever is sent.
func TestHTTPUnscoredTypesKeepMetricsSane(t *testing.T) {
	srv := newServer(t)
	for i := range 3000 {
		typ := []string{"login_failed", "3ds_failed", "payout", strings.Repeat("x", 1+i%128), "login_failed\\\",\\\"ac"}[i%5]
		body := `{"id":"u` + strconv.Itoa(i) + `","type":"` + typ + `","account_id":"acc-` + strconv.Itoa(i%7) + `"}`
		resp, err := http.Post(srv.URL+"/v1/score", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics: %d\n%s", resp.StatusCode, body)
	}
	var got []string
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "riskd_unscored_events_total{") {
			got = append(got, line)
		}
	}
	want := []string{
		`riskd_unscored_events_total{type="3ds_failed"} 600`,
		`riskd_unscored_events_total{type="login_failed"} 600`,
		`riskd_unscored_events_total{type="other"} 1800`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("unscored series:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestHTTPFutureEventsAreRefused: an event stamped far ahead of the
// server's clock is refused, naming the field; one within the allowed
// skew is scored.
func TestHTTPFutureEventsAreRefused(t *testing.T) {
	now := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	e := engine.New(enginetest.Example(t), engine.Options{Now: func() time.Time { return now }, MaxFutureSkew: 5 * time.Minute})
	srv := apitest.NewServer(t, httpapi.NewHandler(e, httpapi.HandlerOptions{}))
	for _, tt := range []struct {
		ts   string
		code int
		want string
	}{
		{`"2199-12-31T00:00:00Z"`, 400, `{"error":"field \"ts\" 2199-12-31T00:00:00Z is 1517246h0m0s ahead of this server's clock, more than the 5m0s allowed"}`},
		{strconv.FormatInt(now.Add(6*time.Minute).UnixMilli(), 10), 400, `{"error":"field \"ts\" 2026-11-29T10:06:00Z is 6m0s ahead of this server's clock, more than the 5m0s allowed"}`},
		{`"2026-11-29T10:04:59Z"`, 200, `{"event_id":"f","type":"checkout","decision":"pass"`},
	} {
		resp, err := http.Post(srv.URL+"/v1/score", "application/json", strings.NewReader(`{"id":"f","type":"checkout","card_id":"c","amount":1,"ts":`+tt.ts+`}`))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.code || !strings.HasPrefix(string(body), tt.want) {
			t.Errorf("ts %s: %d %s\nwant %d %s", tt.ts, resp.StatusCode, body, tt.code, tt.want)
		}
	}
}

// TestHTTPPublicAndAdminEndpoints: with an admin listener, the public one
// serves scoring and health only, the admin one status, reload and
// metrics; health is on both.
func TestHTTPPublicAndAdminEndpoints(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := engine.New(enginetest.Example(t), engine.Options{Registerer: reg})
	public := apitest.NewServer(t, httpapi.NewHandler(e, httpapi.HandlerOptions{Gatherer: reg, AdminToken: "s3cret", Endpoints: httpapi.PublicEndpoints}))
	admin := apitest.NewServer(t, httpapi.NewHandler(e, httpapi.HandlerOptions{Gatherer: reg, AdminToken: "s3cret", Endpoints: httpapi.AdminEndpoints}))
	score := `{"id":"s1","type":"checkout","card_id":"c","amount":10}`
	for _, tt := range []struct {
		srv          *httptest.Server
		method, path string
		code         int
		want         string
	}{
		{public, "POST", "/v1/score", 200, `"event_id":"s1"`},
		{public, "GET", "/healthz", 200, "ok"},
		{public, "GET", "/readyz", 200, "ready"},
		{public, "GET", "/v1/rulesets", 404, `{"error":"GET /v1/rulesets is served on riskd's admin (-admin-listen) listener, not this one"}`},
		{public, "POST", "/v1/reload", 404, `{"error":"POST /v1/reload is served on riskd's admin (-admin-listen) listener, not this one"}`},
		{public, "GET", "/metrics", 404, `{"error":"GET /metrics is served on riskd's admin (-admin-listen) listener, not this one"}`},
		{public, "GET", "/debug/pprof/", 404, `{"error":"no such endpoint: GET /debug/pprof/ (see /v1/score, /healthz, /readyz, /openapi.yaml)"}`},
		{admin, "GET", "/v1/rulesets", 200, `"name": "checkout"`},
		{admin, "GET", "/metrics", 200, `riskd_decisions_total{outcome="pass",ruleset="checkout"} 1`},
		{admin, "POST", "/v1/reload", 401, `admin endpoint: missing or wrong bearer token`},
		{admin, "GET", "/healthz", 200, "ok"},
		{admin, "GET", "/readyz", 200, "ready"},
		{admin, "POST", "/v1/score", 404, `{"error":"POST /v1/score is served on riskd's public (-listen) listener, not this one"}`},
		{admin, "GET", "/nope", 404, `{"error":"no such endpoint: GET /nope (see /v1/decisions/{id}, /v1/rulesets, /v1/reload, /v1/lists/NAME, /metrics, /debug/pprof/, /healthz, /readyz, /openapi.yaml)"}`},
		{public, "POST", "/v1/lists/blocked", 404, `{"error":"POST /v1/lists/blocked is served on riskd's admin (-admin-listen) listener, not this one"}`},
	} {
		var body io.Reader
		if tt.method == "POST" {
			body = strings.NewReader(score)
		}
		req, _ := http.NewRequest(tt.method, tt.srv.URL+tt.path, body)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		where := "public"
		if tt.srv == admin {
			where = "admin"
		}
		if resp.StatusCode != tt.code || !strings.Contains(string(b), tt.want) {
			t.Errorf("%s %s %s: %d %s\nwant %d %s", where, tt.method, tt.path, resp.StatusCode, b, tt.code, tt.want)
		}
	}
}

// TestHTTPReasonsAreCapped: a reason template cannot make the answer
// large: a hole yielding most of a megabyte, or many holes, render at most
// 1 KiB of reason, cut with "…".
func TestHTTPReasonsAreCapped(t *testing.T) {
	p, err := rules.Load(fstest.MapFS{
		"features.yaml": {Data: []byte("features:\n  - {name: n, kind: count, key: card_id, window: 1h}\n")},
		"checkout.yaml": {Data: []byte(`name: checkout
event_types: [checkout]
thresholds: {step_up: 50, block: 90}
rules:
  - id: big
    when: "true"
    score: 1
    reason: "{{repeat(event.s, 9000)}}"
  - id: many
    when: "true"
    score: 1
    reason: '` + strings.Repeat("{{event.s}}{{event.s}}", 16) + `'
`)},
	}, "p")
	if err != nil {
		t.Fatal(err)
	}
	srv := apitest.NewServer(t, httpapi.NewHandler(engine.New(p, engine.Options{}), httpapi.HandlerOptions{}))
	resp, err := http.Post(srv.URL+"/v1/score", "application/json", strings.NewReader(`{"id":"r1","type":"checkout","amount":1,"s":"`+strings.Repeat("ab", 50)+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var d struct {
		Reasons []struct{ Rule, Reason string }
	}
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &d); err != nil || resp.StatusCode != 200 || len(d.Reasons) != 2 {
		t.Fatalf("%d %.300s: %v", resp.StatusCode, b, err)
	}
	if len(b) > 4096 {
		t.Errorf("an answer of %d bytes", len(b))
	}
	for _, r := range d.Reasons {
		if len(r.Reason) != 1024 || !strings.HasSuffix(r.Reason, "ba…") {
			t.Errorf("%s: a reason of %d bytes ending %q", r.Rule, len(r.Reason), r.Reason[max(0, len(r.Reason)-10):])
		}
	}
}

// TestRulesetsShowRuleErrors: GET /v1/rulesets shows each rule's last
// minute with run-time errors (what is counted is the engine's test).
func TestRulesetsShowRuleErrors(t *testing.T) {
	p, err := rules.Load(fstest.MapFS{
		"features.yaml": {Data: []byte("features:\n  - {name: n, kind: count, key: card_id, window: 1h}\n")},
		"checkout.yaml": {Data: []byte(`name: checkout
event_types: [checkout]
thresholds: {step_up: 50, block: 90}
rules:
  - {id: big, when: event.amount > 100, score: 60}
`)},
	}, "p")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	e := engine.New(p, engine.Options{Now: func() time.Time { return now }})
	enginetest.ScoreWith(t, e, `{"id":"e0","type":"checkout","amount":"950"}`, engine.ScoreOptions{})
	enginetest.ScoreWith(t, e, `{"id":"e1","type":"checkout","amount":120}`, engine.ScoreOptions{})
	now = now.Add(time.Minute) // the next minute's first event reviews the last one
	enginetest.ScoreWith(t, e, `{"id":"e2","type":"checkout","amount":1}`, engine.ScoreOptions{})

	srv := apitest.NewServer(t, httpapi.NewHandler(e, httpapi.HandlerOptions{}))
	resp, err := http.Get(srv.URL + "/v1/rulesets")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Rulesets []struct {
			RuleErrors []map[string]any `json:"rule_errors"`
		} `json:"rulesets"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	if len(out.Rulesets) != 1 || len(out.Rulesets[0].RuleErrors) != 1 {
		t.Fatalf("rulesets: %+v", out.Rulesets)
	}
	got := out.Rulesets[0].RuleErrors[0]
	if got["rule"] != "big" || got["errors"] != 1.0 || got["evaluations"] != 2.0 || got["example_event_id"] != "e0" ||
		got["minute"] != "2026-11-29T10:00:00Z" || !strings.HasPrefix(got["example_error"].(string), "invalid operation: string > int") {
		t.Errorf("rule_errors: %v", got)
	}
}
