package httpapi

import (
	"net/http"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/riskd/riskd/engine"
)

// HTTPMetrics instruments the HTTP API with promhttp: requests by handler
// and status code, their duration by handler, and those in flight. One
// HTTPMetrics serves every Handler of a process (riskd's public and admin
// listeners count into the same series).
type HTTPMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inFlight *prometheus.GaugeVec
}

// NewHTTPMetrics registers the HTTP metrics with reg (nil: not
// registered).
func NewHTTPMetrics(reg prometheus.Registerer) *HTTPMetrics {
	m := &HTTPMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "riskd_http_requests_total", Help: "HTTP requests answered, by handler (the route's path) and status code.",
		}, []string{"handler", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "riskd_http_request_duration_seconds", Help: "Time to answer an HTTP request, by handler; /v1/score's includes evaluating challengers after the answer is sent.", Buckets: engine.LatencyBuckets,
		}, []string{"handler"}),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "riskd_http_requests_in_flight", Help: "HTTP requests being answered, by handler.",
		}, []string{"handler"}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.duration, m.inFlight)
	}
	return m
}

// instrument wraps mux: each request is counted under the path of the
// route it matches, so the handler label takes only the values the mux
// was given, whatever paths callers send.
func (m *HTTPMetrics) instrument(mux *http.ServeMux) http.Handler {
	var routes sync.Map // handler label -> mux wrapped in that label's metrics
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, pattern := mux.Handler(r)
		label := routeLabel(pattern)
		h, ok := routes.Load(label)
		if !ok {
			by := prometheus.Labels{"handler": label}
			h, _ = routes.LoadOrStore(label, promhttp.InstrumentHandlerInFlight(m.inFlight.With(by),
				promhttp.InstrumentHandlerDuration(m.duration.MustCurryWith(by),
					promhttp.InstrumentHandlerCounter(m.requests.MustCurryWith(by), mux))))
		}
		h.(http.Handler).ServeHTTP(w, r)
	})
}

// routeLabel is a mux pattern's path ("POST /v1/score" -> "/v1/score");
// "other" for a request no route took (the mux's own redirects).
func routeLabel(pattern string) string {
	if pattern == "" {
		return "other"
	}
	if _, path, ok := strings.Cut(pattern, " "); ok {
		return path
	}
	return pattern
}
