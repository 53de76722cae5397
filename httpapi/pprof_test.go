package httpapi_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/riskd/riskd/engine"
	"github.com/riskd/riskd/httpapi"
	"github.com/riskd/riskd/internal/enginetest"
)

// TestProfilesNeedTheAdminToken: /debug/pprof/ is served where the admin
// endpoints are, to a caller with an admin token only, and not on the
// public listener.
func TestProfilesNeedTheAdminToken(t *testing.T) {
	e := engine.New(enginetest.Example(t), engine.Options{})
	opts := httpapi.HandlerOptions{AdminToken: "s3cret", AdminTokens: []httpapi.NamedToken{{Name: "ops", Token: "t0ken"}}}
	serve := func(ep httpapi.Endpoints) *httptest.Server {
		o := opts
		o.Endpoints = ep
		srv := httptest.NewServer(httpapi.NewHandler(e, o))
		t.Cleanup(srv.Close)
		return srv
	}
	all, admin, public := serve(httpapi.AllEndpoints), serve(httpapi.AdminEndpoints), serve(httpapi.PublicEndpoints)
	closed := httptest.NewServer(httpapi.NewHandler(e, httpapi.HandlerOptions{Endpoints: httpapi.AdminEndpoints}))
	t.Cleanup(closed.Close)
	for _, tt := range []struct {
		name  string
		srv   *httptest.Server
		path  string
		token string
		code  int
		want  string
	}{
		{"no token", admin, "/debug/pprof/", "", 401, "missing or wrong bearer token"},
		{"wrong token", admin, "/debug/pprof/heap", "guess", 401, "missing or wrong bearer token"},
		{"index", admin, "/debug/pprof/", "s3cret", 200, "goroutine"},
		{"named token", admin, "/debug/pprof/goroutine?debug=1", "t0ken", 200, "goroutine profile:"},
		{"cmdline", admin, "/debug/pprof/cmdline", "s3cret", 200, ""},
		{"symbol", admin, "/debug/pprof/symbol", "s3cret", 200, "num_symbols"},
		{"one listener", all, "/debug/pprof/allocs?debug=1", "s3cret", 200, "heap profile:"},
		{"one listener, no token", all, "/debug/pprof/", "", 401, "missing or wrong bearer token"},
		{"admin closed", closed, "/debug/pprof/", "s3cret", 403, "admin endpoints are disabled"},
		{"public", public, "/debug/pprof/", "s3cret", 404, "no such endpoint"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", tt.srv.URL+tt.path, nil)
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
				t.Errorf("GET %s: %d %.300s\nwant %d and %q", tt.path, resp.StatusCode, b, tt.code, tt.want)
			}
		})
	}
}
