package httpapi_test

import (
	"bytes"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/riskd/riskd/engine"
	"github.com/riskd/riskd/httpapi"
	"github.com/riskd/riskd/internal/apitest"
	"github.com/riskd/riskd/internal/enginetest"
	"github.com/riskd/riskd/internal/metrictest"
)

// TestAdminAuthFailures: a request refused for its token is counted by
// reason and logged with the client's address, never with the token.
func TestAdminAuthFailures(t *testing.T) {
	reg := prometheus.NewRegistry()
	var logs bytes.Buffer
	e := engine.New(enginetest.Example(t), engine.Options{Registerer: reg})
	srv := apitest.NewServer(t, httpapi.NewHandler(e, httpapi.HandlerOptions{Gatherer: reg, AdminToken: "the-right-token-0123",
		Metrics: httpapi.NewHTTPMetrics(reg), Logger: slog.New(slog.NewTextHandler(&logs, nil))}))
	for _, tok := range []string{"", "guess-Zq81-token-guess", "the-right-token-0123"} {
		req, _ := http.NewRequest("POST", srv.URL+"/v1/reload", nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	for reason, want := range map[string]float64{"missing": 1, "wrong": 1} {
		if got := metrictest.Value(t, reg, "riskd_admin_auth_failures_total", map[string]string{"reason": reason}); got != want {
			t.Errorf("riskd_admin_auth_failures_total{reason=%q} = %v, want %v", reason, got, want)
		}
	}
	out := logs.String()
	if strings.Count(out, `msg="admin authentication failed" client=127.0.0.1 method=POST path=/v1/reload reason=`) != 2 ||
		!strings.Contains(out, "reason=\"missing token\"") || !strings.Contains(out, "reason=\"wrong token\"") {
		t.Errorf("log lines:\n%s", out)
	}
	if strings.Contains(out, "Zq81") || strings.Contains(out, "the-right-token") {
		t.Errorf("the log shows a token:\n%s", out)
	}
}
