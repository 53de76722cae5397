// Package httpapi serves riskd's HTTP API over an engine: scoring, the
// admin endpoints (rulesets, reload, lists, metrics, profiles), readiness
// and the OpenAPI description (api/openapi.yaml describes them all).
package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/riskd/riskd/api"
	"github.com/riskd/riskd/engine"
	"github.com/riskd/riskd/readiness"
	"github.com/riskd/riskd/rules"
)

// Handler serves riskd's HTTP API around an engine.
type Handler struct {
	engine    *engine.Engine
	opts      HandlerOptions
	mux       *http.ServeMux
	served    http.Handler // mux, instrumented when opts.Metrics is set
	readiness *readiness.Checker
	buffers   sync.Pool // *httpScratch
}

// Endpoints selects which of the API's endpoints a Handler serves.
type Endpoints uint8

const (
	// AllEndpoints serves everything on one listener: riskd without
	// -admin-listen.
	AllEndpoints Endpoints = iota
	// PublicEndpoints serves what callers of the scoring API need: POST
	// /v1/score, GET /healthz and GET /readyz.
	PublicEndpoints
	// AdminEndpoints serves what operators need: GET /v1/rulesets, POST
	// /v1/reload, the list endpoints, GET /metrics, GET /debug/pprof/,
	// and GET /healthz and GET /readyz.
	AdminEndpoints
)

// HandlerOptions configure the HTTP API. Zero values are safe.
type HandlerOptions struct {
	// Endpoints is which endpoints to serve; default AllEndpoints.
	Endpoints Endpoints
	// Gatherer serves /metrics; nil: no metrics endpoint.
	Gatherer prometheus.Gatherer
	// Reloader serves POST /v1/reload and the reload status in
	// /v1/rulesets; nil: the policy cannot be reloaded (built-in example).
	Reloader *rules.Reloader
	// AdminToken is the bearer token admin endpoints require; empty: admin
	// endpoints answer 403 (unless AdminTokens has some). Changes made
	// with it are logged as made by "admin".
	AdminToken string
	// Readiness is what GET /readyz checks; nil: the engine's feature
	// store, as "feature_store".
	Readiness *readiness.Checker
	// Metrics counts and times the requests; nil: not instrumented.
	Metrics *HTTPMetrics
	// Audit receives every decision answered, as answered in json (which
	// it must copy to keep); nil: none is kept. riskd passes
	// stream.AuditStream's Record, so this package need not link Kafka.
	Audit func(d *engine.Decision, json []byte)
	// AdminTokens are more admin tokens, each with the name changes made
	// with it are logged under.
	AdminTokens []NamedToken
	// Logger reports failed admin authentications (riskd's rate-limits
	// repeated warnings); nil discards.
	Logger *slog.Logger
	// Review receives every review decision with its event as received,
	// after the answer is sent (both alias buffers the next request
	// reuses: it copies what it keeps); riskd opens the case. Nil: none.
	Review func(d *engine.Decision, event []byte)
	// Console is the analysts' console, served under /console/ on the
	// admin listener; nil: none.
	Console http.Handler
	// Label records an external label, POST /v1/labels (admin token of
	// either role): the body as sent, the token's name. It answers the
	// status and JSON body to send. Nil: the endpoint answers 404.
	Label func(ctx context.Context, body []byte, by string) (int, []byte)
}

type httpScratch struct {
	body []byte
	out  []byte
	d    engine.Decision
}

// NewHandler returns the HTTP API, or the part of it opts.Endpoints
// names: /v1/score, /v1/rulesets, /v1/reload, /metrics, /healthz,
// /readyz and /openapi.yaml (api/openapi.yaml describes them all).
func NewHandler(e *engine.Engine, opts HandlerOptions) *Handler {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	h := &Handler{engine: e, opts: opts, mux: http.NewServeMux(), readiness: opts.Readiness}
	h.buffers.New = func() any { return &httpScratch{} }
	if h.readiness == nil {
		h.readiness = readiness.New(readiness.Options{Dependencies: []readiness.Dependency{{Name: "feature_store", Check: e.Store().Ready}}})
	}
	h.served = h.mux
	if opts.Metrics != nil {
		h.served = opts.Metrics.instrument(h.mux)
	}
	public := opts.Endpoints != AdminEndpoints
	admin := opts.Endpoints != PublicEndpoints
	var served []string
	// An endpoint asked for on the wrong listener is answered 404 naming
	// the listener that serves it (and 405 for a method it never serves).
	elsewhere := func(path, method, where string) {
		h.route(path, method, func(w http.ResponseWriter, r *http.Request) {
			writeError(w, http.StatusNotFound, r.Method+" "+r.URL.Path+" is served on riskd's "+where+" listener, not this one")
		})
	}
	if public {
		h.route("/v1/score", "POST", h.score)
		served = append(served, "/v1/score")
	} else {
		elsewhere("/v1/score", "POST", "public (-listen)")
	}
	if admin {
		if opts.Console != nil {
			h.mux.Handle("/console/", opts.Console)
			served = append(served, "/console/")
		}
		if opts.Label != nil {
			h.route("/v1/labels", "POST", h.label)
			served = append(served, "/v1/labels")
		}
		h.route("/v1/decisions/{id}", "GET", h.decision)
		h.route("/v1/rulesets", "GET", h.rulesets)
		h.route("/v1/reload", "POST", h.reload)
		served = append(served, "/v1/decisions/{id}", "/v1/rulesets", "/v1/reload", h.routeLists(""))
		if opts.Gatherer != nil {
			h.route("/metrics", "GET", promhttp.HandlerFor(opts.Gatherer, promhttp.HandlerOpts{}).ServeHTTP)
			served = append(served, "/metrics")
		}
		served = append(served, h.routeProfiles())
	} else {
		elsewhere("/v1/decisions/{id}", "GET", "admin (-admin-listen)")
		elsewhere("/v1/rulesets", "GET", "admin (-admin-listen)")
		elsewhere("/v1/reload", "POST", "admin (-admin-listen)")
		elsewhere("/metrics", "GET", "admin (-admin-listen)")
		if opts.Label != nil {
			elsewhere("/v1/labels", "POST", "admin (-admin-listen)")
		}
		h.routeLists("admin (-admin-listen)")
	}
	h.route("/healthz", "GET", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok\n")
	})
	h.route("/readyz", "GET", h.ready)
	h.route("/openapi.yaml", "GET", serveOpenAPI)
	served = append(served, "/healthz", "/readyz", "/openapi.yaml")
	see := strings.Join(served, ", ")
	h.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint: "+r.Method+" "+r.URL.Path+" (see "+see+")")
	})
	return h
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.served.ServeHTTP(w, r) }

// route serves path with one method and answers any other with 405 and
// Allow. Without the path's own fallback the mux's catch-all would answer
// 404, as if the endpoint did not exist.
func (h *Handler) route(path, method string, serve http.HandlerFunc) {
	h.mux.HandleFunc(method+" "+path, serve)
	allow := method
	if method == http.MethodGet {
		allow += ", " + http.MethodHead // the mux serves HEAD with GET's handler
	}
	h.mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		writeError(w, http.StatusMethodNotAllowed, r.Method+" "+path+": method not allowed, use "+method)
	})
}

// routeProfiles serves the runtime's profiles (net/http/pprof) under
// /debug/pprof/, behind the admin token as every admin endpoint: a
// profile shows the process's code and data, and collecting one costs
// CPU. The handlers are registered on h's mux by name; the package's
// own registration on http.DefaultServeMux is never served. A CPU
// profile or trace must ask for fewer seconds than the server's write
// timeout (10s): ?seconds=5.
func (h *Handler) routeProfiles() string {
	for path, serve := range map[string]http.HandlerFunc{
		"/debug/pprof/":        pprof.Index, // and the named profiles: heap, goroutine, allocs, ...
		"/debug/pprof/cmdline": pprof.Cmdline,
		"/debug/pprof/profile": pprof.Profile,
		"/debug/pprof/symbol":  pprof.Symbol,
		"/debug/pprof/trace":   pprof.Trace,
	} {
		h.mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			if _, ok := h.changer(w, r); ok {
				serve(w, r)
			}
		})
	}
	return "/debug/pprof/"
}

// serveOpenAPI serves the API's description, so a caller's tooling reads
// the contract of the riskd it talks to.
func serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/yaml")
	w.Write(api.OpenAPI)
}

func (h *Handler) score(w http.ResponseWriter, r *http.Request) {
	s := h.buffers.Get().(*httpScratch)
	defer h.buffers.Put(s)
	body, err := h.engine.ReadEvent(r.Body, s.body[:0])
	s.body = body
	if err != nil {
		if errors.Is(err, engine.ErrTooLarge) {
			writeError(w, http.StatusRequestEntityTooLarge, "event is over the limit of "+strconv.Itoa(h.engine.MaxEventBytes())+" bytes")
			return
		}
		writeError(w, http.StatusBadRequest, "reading the request body: "+err.Error())
		return
	}
	explain := false
	if r.URL.RawQuery != "" { // parsing an empty query still allocates
		v := r.URL.Query().Get("explain")
		explain = v == "1" || v == "true"
	}
	// Challengers are evaluated after the answer is on its way (explain
	// shows them, so it waits for them).
	if err := h.engine.Score(r.Context(), body, engine.ScoreOptions{Explain: explain, DeferShadow: !explain}, &s.d); err != nil {
		code := http.StatusBadRequest
		switch {
		case errors.Is(err, engine.ErrTooLarge):
			code = http.StatusRequestEntityTooLarge
		case errors.Is(err, engine.ErrConflict):
			code = http.StatusConflict
		}
		writeError(w, code, err.Error())
		return
	}
	s.out = s.d.AppendJSON(s.out[:0])
	s.out = append(s.out, '\n')
	// A shared slice: Header.Set would allocate a new one per response.
	w.Header()["Content-Type"] = jsonContentType
	if h.opts.Audit != nil {
		h.opts.Audit(&s.d, s.out[:len(s.out)-1])
	}
	if !s.d.ShadowPending() {
		w.Write(s.out)
		h.review(&s.d, body)
		return
	}
	// Send the answer now, framed by its length (a flush without one
	// would switch to chunked encoding), then evaluate the shadows.
	w.Header()["Content-Length"] = []string{strconv.Itoa(len(s.out))}
	w.Write(s.out)
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	h.review(&s.d, body)
	h.engine.Shadow(&s.d)
}

// review hands a review decision, already answered, to opts.Review.
func (h *Handler) review(d *engine.Decision, event []byte) {
	if d.CaseID != "" && h.opts.Review != nil {
		h.opts.Review(d, event)
	}
}

// label serves POST /v1/labels.
func (h *Handler) label(w http.ResponseWriter, r *http.Request) {
	who, ok := h.adminName(w, r)
	if !ok {
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10+1))
	if err != nil {
		writeError(w, http.StatusBadRequest, "reading the request body: "+err.Error())
		return
	}
	if len(body) > 64<<10 {
		writeError(w, http.StatusRequestEntityTooLarge, "a label is at most 65536 bytes")
		return
	}
	code, answer := h.opts.Label(r.Context(), body, who)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(answer)
}

// decision serves GET /v1/decisions/{id} (admin token of either role):
// the decision an event id was first given, as the feature store keeps
// it beside the first answer, for the idempotency window.
func (h *Handler) decision(w http.ResponseWriter, r *http.Request) {
	if _, ok := h.adminName(w, r); !ok {
		return
	}
	id := r.PathValue("id")
	dec, err := h.engine.Decision(r.Context(), id)
	switch {
	case err != nil:
		writeError(w, http.StatusServiceUnavailable, "looking up the decision of event id "+strconv.Quote(id)+": "+err.Error())
	case dec == nil:
		writeError(w, http.StatusNotFound, "no decision kept for event id "+strconv.Quote(id)+": never scored, or scored longer ago than the idempotency window")
	default:
		w.Header()["Content-Type"] = jsonContentType
		w.Write(append(dec, '\n'))
	}
}

type rulesetInfo struct {
	Name       string   `json:"name"`
	Version    string   `json:"version"`
	Hash       string   `json:"hash"`
	File       string   `json:"file"`
	EventTypes []string `json:"event_types"`
	Rules      int      `json:"rules"`
	LoadedAt   string   `json:"loaded_at"`
	// A challenger's champion, and its share of traffic when it has one.
	ShadowOf string `json:"shadow_of,omitempty"`
	Traffic  string `json:"traffic,omitempty"`
	SplitKey string `json:"split_key,omitempty"`
	// RuleErrors: each rule's last minute with run-time errors.
	RuleErrors []engine.RuleErrors `json:"rule_errors,omitempty"`
}

func (h *Handler) rulesets(w http.ResponseWriter, _ *http.Request) {
	p := h.engine.Policy()
	out := struct {
		Dir               string        `json:"dir"`
		LoadedAt          string        `json:"loaded_at"`
		Features          []string      `json:"features"`
		Warnings          []string      `json:"warnings"`
		Rulesets          []rulesetInfo `json:"rulesets"`
		Lists             []listInfo    `json:"lists"`
		LastReloadError   *string       `json:"last_reload_error"`
		LastReloadErrorAt *string       `json:"last_reload_error_at,omitempty"`
	}{Dir: p.Dir, LoadedAt: p.LoadedAt.UTC().Format(time.RFC3339), Features: p.Features.Names(), Warnings: p.Warnings, Rulesets: []rulesetInfo{}, Lists: h.listInfos(p)}
	if out.Warnings == nil {
		out.Warnings = []string{}
	}
	if h.opts.Reloader != nil {
		if at, err := h.opts.Reloader.LastError(); err != nil {
			msg, when := err.Error(), at.UTC().Format(time.RFC3339)
			out.LastReloadError, out.LastReloadErrorAt = &msg, &when
		}
	}
	for _, rs := range p.Rulesets {
		info := rulesetInfo{
			Name: rs.Name, Version: rs.Version, Hash: rs.Hash, File: rs.File,
			EventTypes: rs.EventTypes, Rules: len(rs.Rules), LoadedAt: out.LoadedAt, ShadowOf: rs.ShadowOf,
		}
		info.RuleErrors = h.engine.RecentRuleErrors(rs)
		if rs.TrafficPPM > 0 {
			info.Traffic = strconv.FormatFloat(float64(rs.TrafficPPM)/1e4, 'f', -1, 64) + "%"
			info.SplitKey = rs.SplitKey.Name
		}
		out.Rulesets = append(out.Rulesets, info)
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(out)
}

// reload loads the policy directory again (admin). 200: loaded or
// unchanged; 422: rejected, with every error; the previous policy keeps
// serving.
func (h *Handler) reload(w http.ResponseWriter, r *http.Request) {
	if _, ok := h.changer(w, r); !ok {
		return
	}
	if h.opts.Reloader == nil {
		writeError(w, http.StatusConflict, "riskd serves the built-in example policy: start it with -rules DIR to reload a directory")
		return
	}
	err := h.opts.Reloader.Reload()
	switch {
	case errors.Is(err, rules.ErrUnchanged):
		writeJSON(w, http.StatusOK, map[string]any{"reloaded": false, "reason": "unchanged"})
	case err != nil:
		writeError(w, http.StatusUnprocessableEntity, err.Error())
	default:
		writeJSON(w, http.StatusOK, map[string]any{"reloaded": true})
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// ready checks every dependency and names those failing: 200 when none
// is, else 503 with "error" summing them up.
func (h *Handler) ready(w http.ResponseWriter, r *http.Request) {
	deps := h.readiness.Check(r.Context())
	out := struct {
		Ready        bool               `json:"ready"`
		Error        string             `json:"error,omitempty"`
		Dependencies []readiness.Status `json:"dependencies"`
	}{Ready: true, Dependencies: deps}
	code := http.StatusOK
	if msg := readiness.Summary(deps); msg != "" {
		out.Ready, out.Error, code = false, "not ready: "+msg, http.StatusServiceUnavailable
	}
	writeJSON(w, code, out)
}

var jsonContentType = []string{"application/json"}

func writeError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	b := append(engine.AppendJSONString([]byte(`{"error":`), msg), "}\n"...)
	w.Write(b)
}
