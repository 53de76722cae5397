package httpapi_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/riskd/riskd/engine"
	"github.com/riskd/riskd/httpapi"
	"github.com/riskd/riskd/internal/enginetest"
	"github.com/riskd/riskd/internal/metrictest"
)

// TestHTTPMetrics: requests are counted by the route they took and their
// status code, whatever path was asked for; public and admin handlers of
// one process count into the same series.
func TestHTTPMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := engine.New(enginetest.Example(t), engine.Options{Registerer: reg})
	m := httpapi.NewHTTPMetrics(reg)
	public := httptest.NewServer(httpapi.NewHandler(e, httpapi.HandlerOptions{Endpoints: httpapi.PublicEndpoints, Metrics: m}))
	defer public.Close()
	admin := httptest.NewServer(httpapi.NewHandler(e, httpapi.HandlerOptions{Endpoints: httpapi.AdminEndpoints, Metrics: m, Gatherer: reg}))
	defer admin.Close()
	for _, r := range []struct{ method, url, body string }{
		{"POST", public.URL + "/v1/score", `{"id":"m1","type":"checkout","card_id":"c","amount":1}`},
		{"POST", public.URL + "/v1/score", `{"id":"m2","type":"checkout","card_id":"c","amount":1}`},
		{"POST", public.URL + "/v1/score", `{"id":"m3"}`},
		{"GET", public.URL + "/v1/score", ""},
		{"GET", public.URL + "/healthz", ""},
		{"GET", admin.URL + "/healthz", ""},
		{"GET", public.URL + "/no/such/path/a1", ""},
		{"GET", public.URL + "/no/such/path/b2", ""},
		{"GET", public.URL + "/metrics", ""},
	} {
		req, _ := http.NewRequest(r.method, r.url, strings.NewReader(r.body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	for _, tt := range []struct {
		handler, code string
		want          float64
	}{
		{"/v1/score", "200", 2},
		{"/v1/score", "400", 1},
		{"/v1/score", "405", 1},
		{"/healthz", "200", 2},
		{"/", "404", 2},        // unknown paths share the catch-all's series
		{"/metrics", "404", 1}, // asked of the public listener
	} {
		if got := metrictest.Value(t, reg, "riskd_http_requests_total", map[string]string{"handler": tt.handler, "code": tt.code}); got != tt.want {
			t.Errorf("riskd_http_requests_total{handler=%q,code=%q} = %v, want %v", tt.handler, tt.code, got, tt.want)
		}
	}
	body := scrape(t, admin.URL+"/metrics")
	for _, want := range []string{
		`riskd_http_request_duration_seconds_count{handler="/v1/score"} 4`,
		`riskd_http_requests_in_flight{handler="/metrics"} 1`, // this scrape
		`riskd_http_requests_in_flight{handler="/v1/score"} 0`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestHistogramBucketsAreRound: every bucket boundary riskd exposes prints
// as a round number: at most two significant digits, no float residue
// (le="0.00010000000000000005").
func TestHistogramBucketsAreRound(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := engine.New(enginetest.Example(t), engine.Options{Registerer: reg})
	srv := httptest.NewServer(httpapi.NewHandler(e, httpapi.HandlerOptions{Gatherer: reg, Metrics: httpapi.NewHTTPMetrics(reg)}))
	defer srv.Close()
	resp, err := http.Post(srv.URL+"/v1/score", "application/json", strings.NewReader(`{"id":"b1","type":"checkout","card_id":"c","amount":1}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	les := regexp.MustCompile(`[{,]le="([^"]+)"`).FindAllStringSubmatch(scrape(t, srv.URL+"/metrics"), -1)
	if len(les) < 16 {
		t.Fatalf("%d bucket boundaries exposed: the histograms are not all there", len(les))
	}
	for _, m := range les {
		if m[1] == "+Inf" {
			continue
		}
		v, err := strconv.ParseFloat(m[1], 64)
		if err != nil {
			t.Fatalf("le=%q: %v", m[1], err)
		}
		if round := strconv.FormatFloat(v, 'g', 2, 64); m[1] != strconv.FormatFloat(mustParse(t, round), 'g', -1, 64) {
			t.Errorf("le=%q is not round (%s)", m[1], round)
		}
	}
}

func mustParse(t *testing.T, s string) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
