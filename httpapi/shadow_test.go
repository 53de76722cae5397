package httpapi_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/riskd/riskd/engine"
	"github.com/riskd/riskd/httpapi"
	"github.com/riskd/riskd/internal/apitest"
	"github.com/riskd/riskd/internal/enginetest"
	"github.com/riskd/riskd/internal/metrictest"
)

// TestHTTPAnswersBeforeShadows: the answer is framed by its length and
// sent before the shadows run, which are still recorded.
func TestHTTPAnswersBeforeShadows(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := engine.New(enginetest.Challengers(t, "5%"), engine.Options{Registerer: reg})
	h := apitest.Handler(t, httpapi.NewHandler(e, httpapi.HandlerOptions{Gatherer: reg}))
	for i := 0; i < 3; i++ {
		rec := httptest.NewRecorder()
		body := fmt.Sprintf(`{"id":"h%d","type":"checkout","ts":1780000000000,"card_id":"c"}`, i)
		req := httptest.NewRequest(http.MethodPost, "/v1/score", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		h.ServeHTTP(rec, req)
		if rec.Code != 200 || rec.Header().Get("Content-Length") != fmt.Sprint(rec.Body.Len()) || !rec.Flushed {
			t.Fatalf("answer %d, Content-Length %q for %d bytes, flushed %v: %s", rec.Code, rec.Header().Get("Content-Length"), rec.Body.Len(), rec.Flushed, rec.Body)
		}
	}
	if got := metrictest.Value(t, reg, "riskd_shadow_decisions_total", map[string]string{"ruleset": "strict", "outcome": "block"}); got != 1 {
		t.Fatalf("strict's shadow blocks: %v, want 1", got)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/rulesets", nil))
	for _, want := range []string{`"name": "split",`, `"shadow_of": "checkout",`, `"traffic": "5%",`, `"split_key": "account_id"`} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("/v1/rulesets lacks %s:\n%s", want, rec.Body)
		}
	}
}
