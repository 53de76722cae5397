package httpapi_test

import (
	"context"
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
	"github.com/riskd/riskd/internal/enginetest"
	"github.com/riskd/riskd/internal/metrictest"
	"github.com/riskd/riskd/internal/poll"
	"github.com/riskd/riskd/internal/redistest"
	"github.com/riskd/riskd/lists"
	"github.com/riskd/riskd/redisstore"
	"github.com/riskd/riskd/rules"
)

func listServer(t *testing.T, opts httpapi.HandlerOptions) (*httptest.Server, *prometheus.Registry) {
	t.Helper()
	p, err := rules.Load(fstest.MapFS{
		"features.yaml":           {Data: []byte(enginetest.ListsFeatures)},
		"payment.yaml":            {Data: []byte(enginetest.ListsRuleset)},
		"lists/blocked_cards.txt": {Data: []byte("c-file\n")},
	}, "p")
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	e := engine.New(p, engine.Options{Registerer: reg, Lists: lists.NewMemory(lists.Options{Registerer: reg})})
	srv := httptest.NewServer(httpapi.NewHandler(e, opts))
	t.Cleanup(srv.Close)
	return srv, reg
}

func call(t *testing.T, method, url, token, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestListAPI: values are added (with an expiry), listed in pages and
// removed through the admin API, behind a named token whose name every
// change carries; mistakes get the status that says what is wrong.
func TestListAPI(t *testing.T) {
	srv, reg := listServer(t, httpapi.HandlerOptions{AdminToken: "root-secret", AdminTokens: []httpapi.NamedToken{{Name: "case-tool", Token: "ct-secret"}}})
	u := srv.URL + "/v1/lists/"
	for _, tt := range []struct {
		name, method, path, token, body string
		code                            int
		want                            string // in the body
	}{
		{"no token", "POST", "blocked_cards_api", "", `{"values":["x"]}`, 401, "missing or wrong bearer token"},
		{"wrong token", "POST", "blocked_cards_api", "nope", `{"values":["x"]}`, 401, "missing or wrong bearer token"},
		{"add", "POST", "blocked_cards_api", "ct-secret", `{"values":["c1","c2"]}`, 200, `"op":"add","values":2,"version":1,"by":"case-tool"`},
		{"add with ttl", "POST", "blocked_cards_api", "root-secret", `{"values":["c3"],"ttl":"30d"}`, 200, `"version":2,"by":"admin"`},
		{"bad ttl", "POST", "blocked_cards_api", "ct-secret", `{"values":["c4"],"ttl":"soon"}`, 400, `ttl \"soon\": a positive duration`},
		{"unknown field", "POST", "blocked_cards_api", "ct-secret", `{"value":"c4"}`, 400, `unknown field \"value\"`},
		{"empty value", "POST", "blocked_cards_api", "ct-secret", `{"values":[""]}`, 400, "value 0 is empty"},
		{"not mutable", "POST", "blocked_cards", "ct-secret", `{"values":["x"]}`, 404, `no such mutable list \"blocked_cards\" (the policy declares blocked_cards_api, watched_cards)`},
		{"first page", "GET", "blocked_cards_api?limit=2", "ct-secret", "", 200, `"version":2,"total":3,`},
		{"next page", "GET", "blocked_cards_api?limit=2&after=c2", "ct-secret", "", 200, `"values":[{"value":"c3","expires_at":"`},
		{"bad limit", "GET", "blocked_cards_api?limit=0", "ct-secret", "", 400, "limit"},
		{"remove", "DELETE", "blocked_cards_api/c1", "ct-secret", "", 200, `"op":"remove","values":1,"version":3`},
		{"remove what is not there", "DELETE", "blocked_cards_api/a%2Fb", "ct-secret", "", 404, `value \"a/b\": no such value in the list (version 3)`},
		{"add a slash and a dot", "POST", "blocked_cards_api", "ct-secret", `{"values":["a/b","."]}`, 200, `"version":4`},
		{"remove escaped", "DELETE", "blocked_cards_api/a%2Fb", "ct-secret", "", 200, `"version":5`},
		{"remove in the body", "POST", "blocked_cards_api", "ct-secret", `{"op":"remove","values":[".","nope"]}`, 200, `"op":"remove","values":1,"version":6`},
		{"remove none there", "POST", "blocked_cards_api", "ct-secret", `{"op":"remove","values":["nope","nix"]}`, 404, `none of the 2 values: no such value in the list (version 6)`},
		{"remove with a ttl", "POST", "blocked_cards_api", "ct-secret", `{"op":"remove","values":["c2"],"ttl":"1d"}`, 400, `takes values and no ttl`},
		{"unknown op", "POST", "blocked_cards_api", "ct-secret", `{"op":"drop"}`, 400, `op \"drop\": add (the default), remove or clear`},
		{"after removal", "GET", "blocked_cards_api", "ct-secret", "", 200, `"values":[{"value":"c2","expires_at":null},{"value":"c3"`},
		{"clear the other", "POST", "watched_cards", "ct-secret", `{"op":"clear"}`, 200, `"op":"clear","values":0,"version":1`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, body := call(t, tt.method, u+tt.path, tt.token, tt.body)
			if code != tt.code || !strings.Contains(body, tt.want) {
				t.Errorf("%s %s: %d %s\nwant %d with %s", tt.method, tt.path, code, body, tt.code, tt.want)
			}
		})
	}
	if got := metrictest.Value(t, reg, "riskd_list_changes_total", map[string]string{"list": "blocked_cards_api", "op": "add"}); got != 5 {
		t.Errorf("values added: %v, want 5", got)
	}
	// The page after c2 with limit 2 ended the list: no next.
	_, body := call(t, "GET", u+"blocked_cards_api?limit=1", "ct-secret", "")
	var page struct{ Next *string }
	json.Unmarshal([]byte(body), &page)
	if page.Next == nil || *page.Next != "c2" {
		t.Errorf("next of the first page of one: %v in %s", page.Next, body)
	}
	// Scoring sees what the API changed.
	code, body := call(t, "POST", srv.URL+"/v1/score", "", `{"id":"e1","type":"payment","card_id":"c2","account_id":"a"}`)
	if code != 200 || !strings.Contains(body, `"decision":"block"`) || !strings.Contains(body, `"blocked_cards_api":"6"`) {
		t.Errorf("score after the change: %d %s", code, body)
	}
}

// TestListAPIClosedWithoutTokens: no token configured, no change.
func TestListAPIClosedWithoutTokens(t *testing.T) {
	srv, _ := listServer(t, httpapi.HandlerOptions{})
	if code, body := call(t, "POST", srv.URL+"/v1/lists/blocked_cards_api", "x", `{"values":["c1"]}`); code != 403 || !strings.Contains(body, "admin endpoints are disabled") {
		t.Errorf("%d %s", code, body)
	}
}

// TestRulesetsShowLists: GET /v1/rulesets says what each list is and,
// for mutable ones, where they live.
func TestRulesetsShowLists(t *testing.T) {
	srv, _ := listServer(t, httpapi.HandlerOptions{})
	code, body := call(t, "GET", srv.URL+"/v1/rulesets", "", "")
	var out struct {
		Lists []map[string]any `json:"lists"`
	}
	if err := json.Unmarshal([]byte(body), &out); code != 200 || err != nil {
		t.Fatalf("%d %v %s", code, err, body)
	}
	kinds := map[string]string{}
	for _, l := range out.Lists {
		kinds[l["name"].(string)] = l["kind"].(string)
		if l["kind"] == "mutable" && !strings.HasPrefix(l["store"].(string), "memory: this riskd's own") {
			t.Errorf("mutable list %v does not say it lives in memory", l)
		}
	}
	want := map[string]string{"blocked_cards": "file", "blocked_cards_api": "mutable", "watched_cards": "mutable"}
	if len(kinds) != len(want) {
		t.Errorf("lists %v, want %v", kinds, want)
	}
	for n, k := range want {
		if kinds[n] != k {
			t.Errorf("list %s: kind %q, want %q", n, kinds[n], k)
		}
	}
}

// TestListAPISharedOnRedis: a value added through one riskd's API blocks
// on another riskd on the same Redis once its registry syncs, with no
// list command on the scoring path.
func TestListAPISharedOnRedis(t *testing.T) {
	srv := redistest.Start(t)
	p, err := rules.Load(fstest.MapFS{
		"features.yaml":           {Data: []byte(enginetest.ListsFeatures)},
		"payment.yaml":            {Data: []byte(enginetest.ListsRuleset)},
		"lists/blocked_cards.txt": {Data: []byte("c-file\n")},
	}, "p")
	if err != nil {
		t.Fatal(err)
	}
	instance := func() (*httptest.Server, *lists.Registry) {
		reg, err := redisstore.NewLists(redisstore.ListOptions{Addrs: []string{srv.Addr()}, Prefix: "shared:", Options: lists.Options{SyncEvery: 20 * time.Millisecond}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { reg.Close() })
		e := engine.New(p, engine.Options{Lists: reg})
		s := httptest.NewServer(httpapi.NewHandler(e, httpapi.HandlerOptions{AdminTokens: []httpapi.NamedToken{{Name: "ops", Token: "ops-secret-0123456"}}}))
		t.Cleanup(s.Close)
		return s, reg
	}
	a, _ := instance()
	b, regB := instance()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); regB.Run(ctx) }()
	defer func() { cancel(); <-done }()

	if code, body := call(t, "POST", a.URL+"/v1/lists/blocked_cards_api", "ops-secret-0123456", `{"values":["c-9"],"ttl":"30d"}`); code != 200 {
		t.Fatalf("add: %d %s", code, body)
	}
	var body string
	i := 0
	poll.Wait{Explain: func() string { return "last answer: " + body }}.Until(t, "the other instance to block", func() bool {
		_, body = call(t, "POST", b.URL+"/v1/score", "", `{"id":"b`+strconv.Itoa(i)+`","type":"payment","card_id":"c-9","account_id":"a"}`)
		i++
		return strings.Contains(body, `"decision":"block"`)
	})
	if !strings.Contains(body, `"blocked_cards_api":"1"`) {
		t.Errorf("the block does not name version 1 of the list: %s", body)
	}
	code, body := call(t, "GET", b.URL+"/v1/lists/blocked_cards_api", "ops-secret-0123456", "")
	if code != 200 || !strings.Contains(body, `"store":"redis: shared by every riskd on it`) || !strings.Contains(body, `"value":"c-9","expires_at":"`) {
		t.Errorf("GET on the other instance: %d %s", code, body)
	}
}
