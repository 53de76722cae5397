package engine

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Handler serves riskd's HTTP API around an engine.
type Handler struct {
	engine  *Engine
	gather  prometheus.Gatherer
	mux     *http.ServeMux
	buffers sync.Pool // *httpScratch
}

type httpScratch struct {
	body []byte
	out  []byte
	d    Decision
}

// NewHandler returns the HTTP API: /v1/score, /v1/rulesets, /metrics,
// /healthz and /readyz. gather serves /metrics (nil: no metrics endpoint).
func NewHandler(e *Engine, gather prometheus.Gatherer) *Handler {
	h := &Handler{engine: e, gather: gather, mux: http.NewServeMux()}
	h.buffers.New = func() any { return &httpScratch{} }
	h.mux.HandleFunc("POST /v1/score", h.score)
	h.mux.HandleFunc("/v1/score", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", http.MethodPost)
		writeError(w, http.StatusMethodNotAllowed, r.Method+" /v1/score: events are scored with POST")
	})
	h.mux.HandleFunc("GET /v1/rulesets", h.rulesets)
	h.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	h.mux.HandleFunc("GET /readyz", h.ready)
	if gather != nil {
		h.mux.Handle("GET /metrics", promhttp.HandlerFor(gather, promhttp.HandlerOpts{}))
	}
	h.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint: "+r.Method+" "+r.URL.Path+" (see /v1/score, /v1/rulesets, /metrics, /healthz, /readyz)")
	})
	return h
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

func (h *Handler) score(w http.ResponseWriter, r *http.Request) {
	s := h.buffers.Get().(*httpScratch)
	defer h.buffers.Put(s)
	limit := h.engine.maxBytes
	body, err := readLimited(r.Body, s.body[:0], limit)
	s.body = body
	if err != nil {
		if errors.Is(err, ErrTooLarge) {
			h.engine.metrics.invalidEvents.Inc()
			writeError(w, http.StatusRequestEntityTooLarge, "event is over the limit of "+strconv.Itoa(limit)+" bytes")
			return
		}
		writeError(w, http.StatusBadRequest, "reading the request body: "+err.Error())
		return
	}
	explain := false
	if v := r.URL.Query().Get("explain"); v != "" {
		explain = v == "1" || v == "true"
	}
	if err := h.engine.Score(r.Context(), body, ScoreOptions{Explain: explain}, &s.d); err != nil {
		code := http.StatusBadRequest
		if errors.Is(err, ErrTooLarge) {
			code = http.StatusRequestEntityTooLarge
		}
		writeError(w, code, err.Error())
		return
	}
	s.out = s.d.AppendJSON(s.out[:0])
	s.out = append(s.out, '\n')
	w.Header().Set("Content-Type", "application/json")
	w.Write(s.out)
}

// readLimited reads all of r into dst, failing with ErrTooLarge past limit
// bytes without reading the rest.
func readLimited(r io.Reader, dst []byte, limit int) ([]byte, error) {
	for {
		if len(dst) == cap(dst) {
			dst = append(dst, 0)[:len(dst)]
		}
		n, err := r.Read(dst[len(dst):min(cap(dst), limit+1)])
		dst = dst[:len(dst)+n]
		if len(dst) > limit {
			return dst, ErrTooLarge
		}
		if err == io.EOF {
			return dst, nil
		}
		if err != nil {
			return dst, err
		}
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
}

func (h *Handler) rulesets(w http.ResponseWriter, _ *http.Request) {
	p := h.engine.Policy()
	out := struct {
		Dir             string        `json:"dir"`
		LoadedAt        string        `json:"loaded_at"`
		Features        []string      `json:"features"`
		Rulesets        []rulesetInfo `json:"rulesets"`
		LastReloadError *string       `json:"last_reload_error"`
	}{Dir: p.Dir, LoadedAt: p.LoadedAt.UTC().Format(time.RFC3339), Features: p.Features.Names(), Rulesets: []rulesetInfo{}}
	for _, rs := range p.Rulesets {
		out.Rulesets = append(out.Rulesets, rulesetInfo{
			Name: rs.Name, Version: rs.Version, Hash: rs.Hash, File: rs.File,
			EventTypes: rs.EventTypes, Rules: len(rs.Rules), LoadedAt: out.LoadedAt,
		})
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(out)
}

func (h *Handler) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := h.engine.store.Ready(ctx); err != nil {
		writeError(w, http.StatusServiceUnavailable, "feature store not ready: "+err.Error())
		return
	}
	io.WriteString(w, "ready\n")
}

func writeError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	b := append(appendJSONString([]byte(`{"error":`), msg), "}\n"...)
	w.Write(b)
}
