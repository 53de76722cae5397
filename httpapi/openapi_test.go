package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/riskd/riskd/api"
	"github.com/riskd/riskd/engine"
	"github.com/riskd/riskd/features"
	"github.com/riskd/riskd/httpapi"
	"github.com/riskd/riskd/internal/apitest"
	"github.com/riskd/riskd/internal/enginetest"
	"github.com/riskd/riskd/lists"
	"github.com/riskd/riskd/outcomes"
	"github.com/riskd/riskd/redisstore"
	"github.com/riskd/riskd/rules"
)

// documented lists every operation of api/openapi.yaml ("POST
// /v1/score") with the statuses it documents.
func documented(t *testing.T) map[string][]int {
	t.Helper()
	var doc struct {
		Paths map[string]map[string]struct {
			Responses map[string]any `yaml:"responses"`
		} `yaml:"paths"`
	}
	if err := yaml.Unmarshal(api.OpenAPI, &doc); err != nil {
		t.Fatal(err)
	}
	ops := map[string][]int{}
	for path, item := range doc.Paths {
		for method, op := range item {
			key := strings.ToUpper(method) + " " + path
			for code := range op.Responses {
				n, err := strconv.Atoi(code)
				if err != nil {
					t.Fatalf("%s: response %q is not a status", key, code)
				}
				ops[key] = append(ops[key], n)
			}
			slices.Sort(ops[key])
		}
	}
	return ops
}

// TestHTTPMethodsAndPathsMatchTheDocument asks every listener for every
// documented path with every method, and for a path the document does
// not have: the wrapper holds each answer to the document (405 with the
// Allow it lists, 404 for the unknown path), and with every endpoint on
// one listener no documented operation is missing.
func TestHTTPMethodsAndPathsMatchTheDocument(t *testing.T) {
	ops := documented(t)
	paths := []string{"/v1/nope"}
	for op := range ops {
		_, path, _ := strings.Cut(op, " ")
		// The example policy's mutable list, and a value in it.
		path = strings.NewReplacer("{name}", "blocked_cards_api", "{value}", "card-7").Replace(path)
		if !slices.Contains(paths, path) {
			paths = append(paths, path)
		}
	}
	reg := prometheus.NewRegistry()
	e := engine.New(enginetest.Example(t), engine.Options{Registerer: reg})
	for _, ep := range []httpapi.Endpoints{httpapi.AllEndpoints, httpapi.PublicEndpoints, httpapi.AdminEndpoints} {
		srv := apitest.NewServer(t, httpapi.NewHandler(e, httpapi.HandlerOptions{Endpoints: ep, Gatherer: reg, AdminToken: "s3cret", Label: testLabel}))
		for _, path := range paths {
			for _, method := range []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"} {
				req, _ := http.NewRequest(method, srv.URL+path, nil)
				req.Header.Set("Authorization", "Bearer s3cret")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				isOp := false
				for op := range ops {
					isOp = isOp || templateMatch(op, method+" "+path)
				}
				// A value the list does not hold is the endpoint's own 404.
				// So is an event id no decision is kept for.
				routed404 := resp.StatusCode == 404 && (strings.Contains(string(body), lists.ErrNotInList.Error()) || strings.Contains(string(body), "no decision kept"))
				if ep == httpapi.AllEndpoints && isOp && (resp.StatusCode == 404 && !routed404 || resp.StatusCode == 405) {
					t.Errorf("%s %s is documented, but riskd answers %d", method, path, resp.StatusCode)
				}
			}
		}
	}
}

// testLabel stands in for riskd's label recording: it parses as riskd
// does, and fails to send on a label of event "down".
func testLabel(_ context.Context, body []byte, _ string) (int, []byte) {
	o, err := outcomes.ParseLabel(body, time.Now())
	switch {
	case err != nil:
		b, _ := json.Marshal(map[string]string{"error": err.Error()})
		return http.StatusBadRequest, b
	case o.EventID == "down":
		return http.StatusServiceUnavailable, []byte(`{"error":"writing to the decisions topic: the decisions topic's buffer is full (the brokers fall behind)"}`)
	}
	b, _ := json.Marshal(map[string]any{"event_id": o.EventID, "label": o.Label, "source": o.Source})
	return http.StatusAccepted, b
}

// downStore is a feature store that cannot be reached.
type downStore struct{}

var errDown = errors.New("dial tcp 10.0.0.1:6379: connect: connection refused")

func (downStore) Observe(context.Context, *features.Observation) error { return errDown }
func (downStore) Ready(context.Context) error                          { return errDown }
func (downStore) KeepDecision(string, []byte)                          {}
func (downStore) Decision(context.Context, string) ([]byte, error)     { return nil, errDown }
func (downStore) Close() error                                         { return nil }

// TestHTTPAnswersEveryDocumentedResponse makes riskd give every response
// the document lists, each answer held to it by the wrapper, and fails
// when the document lists one that no case here produces: an answer no
// test gets is an answer the document may misdescribe.
func TestHTTPAnswersEveryDocumentedResponse(t *testing.T) {
	dir := t.TempDir()
	enginetest.CopyExample(t, dir, "v1")
	p, err := rules.Load(os.DirFS(dir), dir)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	live := engine.New(p, engine.Options{Registerer: reg})
	rl := rules.NewReloader(rules.ReloaderOptions{Dir: dir, Apply: live.SetPolicy})
	rl.Loaded(p)
	opts := httpapi.HandlerOptions{Reloader: rl, AdminToken: "s3cret", Gatherer: reg, Label: testLabel}
	all := apitest.NewServer(t, httpapi.NewHandler(live, opts))
	public, admin := opts, opts
	public.Endpoints, admin.Endpoints = httpapi.PublicEndpoints, httpapi.AdminEndpoints
	publicSrv := apitest.NewServer(t, httpapi.NewHandler(live, public))
	adminSrv := apitest.NewServer(t, httpapi.NewHandler(live, admin))
	builtin := apitest.NewServer(t, httpapi.NewHandler(engine.New(enginetest.Example(t), engine.Options{MaxEventBytes: 1024}), httpapi.HandlerOptions{AdminToken: "s3cret"}))
	closed := apitest.NewServer(t, httpapi.NewHandler(live, httpapi.HandlerOptions{Reloader: rl, Label: testLabel}))
	shadows := apitest.NewServer(t, httpapi.NewHandler(engine.New(enginetest.Challengers(t, "5%"), engine.Options{}), httpapi.HandlerOptions{}))
	failClosed, err := rules.Load(fstest.MapFS{
		"features.yaml": {Data: []byte("features:\n  - {name: card_count_1h, kind: count, key: card_id, window: 1h}\n")},
		"checkout.yaml": {Data: []byte("name: checkout\nversion: \"1\"\nevent_types: [checkout]\non_store_error: fail_closed\nthresholds: {step_up: 50, block: 90}\nrules:\n  - {id: velocity, when: features.card_count_1h >= 5, score: 60}\n")},
	}, "p")
	if err != nil {
		t.Fatal(err)
	}
	downEngine := engine.New(failClosed, engine.Options{Store: downStore{}})
	down := apitest.NewServer(t, httpapi.NewHandler(downEngine, httpapi.HandlerOptions{}))
	downAdmin := apitest.NewServer(t, httpapi.NewHandler(downEngine, httpapi.HandlerOptions{AdminToken: "s3cret"}))

	// Mutable lists in a Redis that is not there.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	downLists, err := redisstore.NewLists(redisstore.ListOptions{Addrs: []string{ln.Addr().String()}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { downLists.Close() })
	listsDown := apitest.NewServer(t, httpapi.NewHandler(engine.New(enginetest.Example(t), engine.Options{Lists: downLists}), httpapi.HandlerOptions{AdminToken: "s3cret"}))

	const checkout = `{"id":"d1","type":"checkout","ts":"2026-11-25T10:00:00Z","account_id":"acc-1","card_id":"card-1","amount":80}`
	tests := []struct {
		name         string
		srv          *httptest.Server
		before       func()
		method, path string
		token, body  string
		code         int
		want         string
	}{
		{name: "decision", srv: all, method: "POST", path: "/v1/score", body: checkout, code: 200, want: `"decision":"pass"`},
		{name: "retry", srv: all, method: "POST", path: "/v1/score", body: checkout, code: 200, want: `"retry":true`},
		{name: "id reused for another body", srv: all, method: "POST", path: "/v1/score", body: strings.Replace(checkout, `"amount":`, `"amount":1`, 1), code: 409, want: `scored within the idempotency window for another event body`},
		{name: "explained", srv: all, method: "POST", path: "/v1/score?explain=1", body: `{"id":"d2","type":"checkout","card_id":"card-1","amount":1}`, code: 200, want: `"error":"invalid operation: <nil> >= int`},
		{name: "unscored", srv: all, method: "POST", path: "/v1/score", body: `{"id":"d3","type":"chargeback","card_id":"card-1"}`, code: 200, want: `"unscored":true`},
		{name: "shadows explained", srv: shadows, method: "POST", path: "/v1/score?explain=true", body: `{"id":"d4","type":"checkout","card_id":"c","account_id":"a"}`, code: 200, want: `"shadow":[{"decision":"pass","score":0,"ruleset":"checkout"`},
		{name: "degraded", srv: down, method: "POST", path: "/v1/score", body: `{"id":"d5","type":"checkout","card_id":"c"}`, code: 200, want: `"degraded":true,"store_policy":"fail_closed"`},
		{name: "refused", srv: all, method: "POST", path: "/v1/score", body: `{"id":"d6"}`, code: 400, want: `missing required field \"type\"`},
		{name: "too large", srv: builtin, method: "POST", path: "/v1/score", body: `{"id":"d7","type":"checkout","pad":"` + strings.Repeat("x", 2000) + `"}`, code: 413, want: "over the limit of 1024 bytes"},
		{name: "score on the admin listener", srv: adminSrv, method: "POST", path: "/v1/score", body: checkout, code: 404, want: "public (-listen) listener"},
		{name: "score by GET", srv: all, method: "GET", path: "/v1/score", code: 405, want: "use POST"},
		{name: "decision kept", srv: adminSrv, method: "GET", path: "/v1/decisions/d1", token: "s3cret", code: 200, want: `{"event_id":"d1","type":"checkout","ruleset":"checkout","version":"v1","decision":"pass"`},
		{name: "decision not kept", srv: all, method: "GET", path: "/v1/decisions/never", token: "s3cret", code: 404, want: `no decision kept for event id \"never\"`},
		{name: "decision, store down", srv: downAdmin, method: "GET", path: "/v1/decisions/d5", token: "s3cret", code: 503, want: "connection refused"},
		{name: "decision, wrong token", srv: all, method: "GET", path: "/v1/decisions/d1", token: "guess", code: 401, want: "wrong bearer token"},
		{name: "decision, admin closed", srv: closed, method: "GET", path: "/v1/decisions/d1", token: "s3cret", code: 403, want: "disabled"},
		{name: "decision on the public listener", srv: publicSrv, method: "GET", path: "/v1/decisions/d1", token: "s3cret", code: 404, want: "admin (-admin-listen) listener"},
		{name: "decision by POST", srv: all, method: "POST", path: "/v1/decisions/d1", token: "s3cret", code: 405, want: "use GET"},
		{name: "status", srv: all, method: "GET", path: "/v1/rulesets", code: 200, want: `"last_reload_error": null`},
		{name: "status on the public listener", srv: publicSrv, method: "GET", path: "/v1/rulesets", code: 404, want: "admin (-admin-listen) listener"},
		{name: "status by POST", srv: all, method: "POST", path: "/v1/rulesets", code: 405, want: "use GET"},
		{name: "reload unchanged", srv: all, method: "POST", path: "/v1/reload", token: "s3cret", code: 200, want: `"reason":"unchanged"`},
		{name: "reload", srv: all, before: func() { enginetest.CopyExample(t, dir, "v2") }, method: "POST", path: "/v1/reload", token: "s3cret", code: 200, want: `"reloaded":true`},
		{name: "reload refused", srv: all, before: func() {
			os.WriteFile(filepath.Join(dir, "login.yaml"), []byte("name: login\nbogus: 1\n"), 0o644)
		}, method: "POST", path: "/v1/reload", token: "s3cret", code: 422, want: `unknown key \"bogus\"`},
		{name: "status after a refused reload", srv: all, method: "GET", path: "/v1/rulesets", code: 200, want: `"last_reload_error_at"`},
		{name: "wrong token", srv: all, method: "POST", path: "/v1/reload", token: "guess", code: 401, want: "wrong bearer token"},
		{name: "admin closed", srv: closed, method: "POST", path: "/v1/reload", token: "s3cret", code: 403, want: "admin endpoints are disabled"},
		{name: "built-in policy", srv: builtin, method: "POST", path: "/v1/reload", token: "s3cret", code: 409, want: "built-in example policy"},
		{name: "reload on the public listener", srv: publicSrv, method: "POST", path: "/v1/reload", token: "s3cret", code: 404, want: "admin (-admin-listen) listener"},
		{name: "reload by GET", srv: all, method: "GET", path: "/v1/reload", code: 405, want: "use POST"},
		{name: "metrics", srv: all, method: "GET", path: "/metrics", code: 200, want: "riskd_decisions_total"},
		{name: "metrics on the public listener", srv: publicSrv, method: "GET", path: "/metrics", code: 404, want: "admin (-admin-listen) listener"},
		{name: "metrics by POST", srv: all, method: "POST", path: "/metrics", code: 405, want: "use GET"},
		{name: "alive", srv: all, method: "GET", path: "/healthz", code: 200, want: "ok"},
		{name: "alive by DELETE", srv: all, method: "DELETE", path: "/healthz", code: 405, want: "use GET"},
		{name: "ready", srv: all, method: "GET", path: "/readyz", code: 200, want: "ready"},
		{name: "not ready", srv: down, method: "GET", path: "/readyz", code: 503, want: "connection refused"},
		{name: "ready by POST", srv: all, method: "POST", path: "/readyz", code: 405, want: "use GET"},
		{name: "document", srv: publicSrv, method: "GET", path: "/openapi.yaml", code: 200, want: "openapi: 3.1.0"},
		{name: "document by PUT", srv: adminSrv, method: "PUT", path: "/openapi.yaml", code: 405, want: "use GET"},
		{name: "list add", srv: all, method: "POST", path: "/v1/lists/blocked_cards_api", token: "s3cret", body: `{"values":["card-7"],"ttl":"30d"}`, code: 200, want: `"by":"admin"`},
		{name: "list add, bad body", srv: all, method: "POST", path: "/v1/lists/blocked_cards_api", token: "s3cret", body: `{"values":"card-7"}`, code: 400, want: "body: want"},
		{name: "list add, wrong token", srv: all, method: "POST", path: "/v1/lists/blocked_cards_api", token: "guess", body: `{"values":["x"]}`, code: 401, want: "wrong bearer token"},
		{name: "list add, admin closed", srv: closed, method: "POST", path: "/v1/lists/blocked_cards_api", token: "s3cret", body: `{"values":["x"]}`, code: 403, want: "admin endpoints are disabled"},
		{name: "list add, not a mutable list", srv: all, method: "POST", path: "/v1/lists/nope", token: "s3cret", body: `{"values":["x"]}`, code: 404, want: "nope"},
		{name: "list add, store down", srv: listsDown, method: "POST", path: "/v1/lists/blocked_cards_api", token: "s3cret", body: `{"values":["x"]}`, code: 503, want: "refused"},
		{name: "list by PUT", srv: all, method: "PUT", path: "/v1/lists/blocked_cards_api", token: "s3cret", code: 405, want: "GET, HEAD, POST"},
		{name: "list page", srv: all, method: "GET", path: "/v1/lists/blocked_cards_api", token: "s3cret", code: 200, want: `"value":"card-7"`},
		{name: "list page, bad limit", srv: all, method: "GET", path: "/v1/lists/blocked_cards_api?limit=0", token: "s3cret", code: 400, want: "limit"},
		{name: "list page, wrong token", srv: all, method: "GET", path: "/v1/lists/blocked_cards_api", token: "guess", code: 401, want: "wrong bearer token"},
		{name: "list page, admin closed", srv: closed, method: "GET", path: "/v1/lists/blocked_cards_api", token: "s3cret", code: 403, want: "disabled"},
		{name: "list page, on the public listener", srv: publicSrv, method: "GET", path: "/v1/lists/blocked_cards_api", token: "s3cret", code: 404, want: "admin (-admin-listen) listener"},
		{name: "list remove", srv: all, method: "DELETE", path: "/v1/lists/blocked_cards_api/card-7", token: "s3cret", code: 200, want: `"op":"remove"`},
		{name: "list remove, no value", srv: all, method: "DELETE", path: "/v1/lists/blocked_cards_api/", token: "s3cret", code: 400, want: "empty"},
		{name: "list remove, wrong token", srv: all, method: "DELETE", path: "/v1/lists/blocked_cards_api/card-7", token: "guess", code: 401, want: "wrong bearer token"},
		{name: "list remove, admin closed", srv: closed, method: "DELETE", path: "/v1/lists/blocked_cards_api/card-7", token: "s3cret", code: 403, want: "disabled"},
		{name: "list remove, not a mutable list", srv: all, method: "DELETE", path: "/v1/lists/nope/x", token: "s3cret", code: 404, want: "nope"},
		{name: "list remove, store down", srv: listsDown, method: "DELETE", path: "/v1/lists/blocked_cards_api/x", token: "s3cret", code: 503, want: "refused"},
		{name: "list remove by GET", srv: all, method: "GET", path: "/v1/lists/blocked_cards_api/x", token: "s3cret", code: 405, want: "use DELETE"},
		{name: "label", srv: adminSrv, method: "POST", path: "/v1/labels", token: "s3cret", body: `{"event_id":"e-1","label":"fraud","source":"chargeback","card_id":"card-7"}`, code: 202, want: `"source":"chargeback"`},
		{name: "label, bad", srv: all, method: "POST", path: "/v1/labels", token: "s3cret", body: `{"event_id":"e-1","label":"fruad"}`, code: 400, want: "want fraud"},
		{name: "label, wrong token", srv: all, method: "POST", path: "/v1/labels", token: "guess", body: `{}`, code: 401, want: "wrong bearer token"},
		{name: "label, admin closed", srv: closed, method: "POST", path: "/v1/labels", token: "s3cret", body: `{}`, code: 403, want: "disabled"},
		{name: "label on the public listener", srv: publicSrv, method: "POST", path: "/v1/labels", token: "s3cret", body: `{}`, code: 404, want: "admin (-admin-listen) listener"},
		{name: "label by GET", srv: all, method: "GET", path: "/v1/labels", token: "s3cret", code: 405, want: "use POST"},
		{name: "label too large", srv: all, method: "POST", path: "/v1/labels", token: "s3cret", body: `{"event_id":"` + strings.Repeat("x", 70000) + `"}`, code: 413, want: "at most 65536 bytes"},
		{name: "label, topic down", srv: all, method: "POST", path: "/v1/labels", token: "s3cret", body: `{"event_id":"down","label":"fraud"}`, code: 503, want: "buffer is full"},
	}
	ops := documented(t)
	got := map[string][]int{}
	for _, tt := range tests {
		if tt.before != nil {
			tt.before()
		}
		req, _ := http.NewRequest(tt.method, tt.srv.URL+tt.path, strings.NewReader(tt.body))
		if tt.body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		if tt.token != "" {
			req.Header.Set("Authorization", "Bearer "+tt.token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.code || !strings.Contains(string(b), tt.want) {
			t.Errorf("%s: %s %s: %d %.400s\nwant %d and %s", tt.name, tt.method, tt.path, resp.StatusCode, b, tt.code, tt.want)
		}
		path, _, _ := strings.Cut(tt.path, "?")
		for op := range ops {
			// A 405 answers a method the path does not document, so it
			// counts for the operations the path does.
			_, opPath, _ := strings.Cut(op, " ")
			if templateMatch(op, tt.method+" "+path) || tt.code == 405 && templateMatch(opPath, path) {
				got[op] = append(got[op], tt.code)
			}
		}
	}
	for op, codes := range ops {
		for _, code := range codes {
			if !slices.Contains(got[op], code) {
				t.Errorf("%s: the document lists %d, which no case here answers", op, code)
			}
		}
	}
}

// templateMatch reports whether "METHOD /path" matches a documented
// "METHOD /path/{param}": a parameter is one segment, {value} the rest.
func templateMatch(op, req string) bool {
	pattern := regexp.QuoteMeta(op)
	pattern = strings.ReplaceAll(pattern, `\{value\}`, `.*`)
	pattern = regexp.MustCompile(`\\\{[a-z]+\\\}`).ReplaceAllString(pattern, `[^/]+`)
	return regexp.MustCompile("^" + pattern + "$").MatchString(req)
}
