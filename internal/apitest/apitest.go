// Package apitest holds riskd's HTTP exchanges in tests to the OpenAPI
// document (api/openapi.yaml): a handler wrapper for servers under test
// and a RoundTripper for clients of a riskd process.
package apitest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/riskd/riskd/api"
)

type contract struct {
	doc    *openapi3.T
	router routers.Router
}

// load parses and validates the document once per test binary; its
// examples are checked against its schemas on the way.
var load = sync.OnceValues(func() (*contract, error) {
	doc, err := openapi3.NewLoader().LoadFromData(api.OpenAPI)
	if err != nil {
		return nil, fmt.Errorf("api/openapi.yaml: %w", err)
	}
	// The document names riskd's default address; tests serve on others.
	doc.Servers = nil
	router, err := legacy.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("api/openapi.yaml: %w", err)
	}
	return &contract{doc: doc, router: router}, nil
})

func mustLoad(t testing.TB) *contract {
	t.Helper()
	c, err := load()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var options = &openapi3filter.Options{
	MultiError: true,
	// An answer with a status the document does not list is drift too.
	IncludeResponseStatus: true,
	// The document says admin endpoints take a bearer token; whether it
	// is the right one is riskd's to answer (401), not the document's.
	AuthenticationFunc: func(_ context.Context, in *openapi3filter.AuthenticationInput) error {
		got := in.RequestValidationInput.Request.Header.Get("Authorization")
		if tok, ok := strings.CutPrefix(got, "Bearer "); !ok || tok == "" {
			return in.NewError(errors.New("no bearer token"))
		}
		return nil
	},
}

// exchange is one request and its answer, bodies read whole.
type exchange struct {
	req     *http.Request
	reqBody []byte
	status  int
	header  http.Header
	body    []byte
}

// check holds ex to the document. A request the document refuses must
// be refused by riskd too (4xx): riskd may be stricter than its document
// (a ts too far ahead, a duplicate key), never laxer. Every answer,
// errors included, must be one the document describes.
func (c *contract) check(ex exchange) error {
	req := ex.req.Clone(context.Background())
	if req.Method == http.MethodHead {
		req.Method = http.MethodGet // the mux serves HEAD with GET's handler
	}
	route, params, err := c.router.FindRoute(req)
	var re *routers.RouteError
	if errors.As(err, &re) {
		err = re // the router makes a new error of the same reason
	}
	switch {
	case err != nil && err.Error() == routers.ErrPathNotFound.Error() && ex.status == http.StatusMethodNotAllowed && c.pathItem(ex.req.URL.Path) != nil:
		// The router finds a templated path (/v1/lists/{name}) by its
		// methods only: a method it lacks is a 405 to check as such.
		return c.checkMethodNotAllowed(ex)
	case err != nil && err.Error() == routers.ErrPathNotFound.Error():
		if ex.status != http.StatusNotFound {
			return fmt.Errorf("%s %s: the document has no such path, yet riskd answered %d", ex.req.Method, ex.req.URL.Path, ex.status)
		}
		return c.checkError(ex)
	case err != nil && err.Error() == routers.ErrMethodNotAllowed.Error():
		return c.checkMethodNotAllowed(ex)
	case err != nil:
		return fmt.Errorf("%s %s: %w", ex.req.Method, ex.req.URL.Path, err)
	}
	req.Body = io.NopCloser(bytes.NewReader(ex.reqBody))
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: options}
	var errs []error
	if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil && (ex.status < 400 || ex.status >= 500) {
		errs = append(errs, fmt.Errorf("riskd answered %d to a request the document refuses: %w", ex.status, err))
	}
	if ex.req.Method != http.MethodHead {
		out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: ex.status, Header: ex.header, Options: options}
		out.SetBodyBytes(ex.body)
		if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
			errs = append(errs, fmt.Errorf("answer %d %.300s: %w", ex.status, ex.body, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%s %s: %w", ex.req.Method, ex.req.URL.RequestURI(), err)
	}
	return nil
}

// pathItem is the document's path that path is, literally or by its
// template ({name} one segment, {value} the rest); nil when none.
func (c *contract) pathItem(path string) *openapi3.PathItem {
	if item := c.doc.Paths.Value(path); item != nil {
		return item
	}
	for tmpl, item := range c.doc.Paths.Map() {
		if !strings.Contains(tmpl, "{") {
			continue
		}
		re := regexp.QuoteMeta(tmpl)
		re = strings.ReplaceAll(re, `\{value\}`, `.*`)
		re = regexp.MustCompile(`\\\{[a-z]+\\\}`).ReplaceAllString(re, `[^/]+`)
		if regexp.MustCompile("^" + re + "$").MatchString(path) {
			return item
		}
	}
	return nil
}

// checkMethodNotAllowed: a method the document does not list for a path
// gets 405, and Allow names exactly the methods the document lists.
func (c *contract) checkMethodNotAllowed(ex exchange) error {
	what := ex.req.Method + " " + ex.req.URL.Path
	if ex.status != http.StatusMethodNotAllowed {
		return fmt.Errorf("%s: the document has no such operation, yet riskd answered %d", what, ex.status)
	}
	var want []string
	for m := range c.pathItem(ex.req.URL.Path).Operations() {
		want = append(want, m)
		if m == http.MethodGet {
			want = append(want, http.MethodHead)
		}
	}
	var got []string
	for _, m := range strings.Split(ex.header.Get("Allow"), ",") {
		got = append(got, strings.TrimSpace(m))
	}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		return fmt.Errorf("%s: Allow %q, the document lists %v", what, ex.header.Get("Allow"), want)
	}
	return c.checkError(ex)
}

// checkError holds an answer to a path or method the document does not
// describe to the document's Error.
func (c *contract) checkError(ex exchange) error {
	if err := c.checkSchema("Error", ex.body); err != nil {
		return fmt.Errorf("%s %s: answer %d: %w", ex.req.Method, ex.req.URL.Path, ex.status, err)
	}
	return nil
}

func (c *contract) checkSchema(name string, data []byte) error {
	ref := c.doc.Components.Schemas[name]
	if ref == nil {
		return fmt.Errorf("api/openapi.yaml has no schema %q", name)
	}
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return fmt.Errorf("%.300s: %w", data, err)
	}
	if err := ref.Value.VisitJSON(v, openapi3.EnableJSONSchema2020(), openapi3.MultiErrors()); err != nil {
		return fmt.Errorf("%.300s is not a %s: %w", data, name, err)
	}
	return nil
}

// CheckSchema fails t unless data (JSON) is valid against the document's
// components/schemas/name: for what riskd writes elsewhere in the same
// format, such as decisions on Kafka.
func CheckSchema(t testing.TB, name string, data []byte) {
	t.Helper()
	if err := mustLoad(t).checkSchema(name, data); err != nil {
		t.Error(err)
	}
}

// Handler serves h and holds every exchange through it to the document,
// reporting what does not conform with t.Errorf.
func Handler(t testing.TB, h http.Handler) http.Handler {
	c := mustLoad(t)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("%s %s: reading the request: %v", r.Method, r.URL, err)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		rec := &recorder{ResponseWriter: w}
		h.ServeHTTP(rec, r)
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		if err := c.check(exchange{req: r, reqBody: body, status: rec.status, header: w.Header(), body: rec.body.Bytes()}); err != nil {
			t.Errorf("api/openapi.yaml: %v", err)
		}
	})
}

// NewServer starts an httptest server of h through Handler, closed when
// the test ends (Close waits for the handlers, so their checks report in
// time).
func NewServer(t testing.TB, h http.Handler) *httptest.Server {
	srv := httptest.NewServer(Handler(t, h))
	t.Cleanup(srv.Close)
	return srv
}

// recorder passes an answer through and keeps a copy of it.
type recorder struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	r.body.Write(b)
	return r.ResponseWriter.Write(b)
}

// Flush passes through: riskd flushes its answer before it evaluates
// shadow rulesets.
func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// Transport returns a RoundTripper through base (nil: a new
// http.Transport) that holds every exchange to the document, for tests
// that talk to a riskd process.
func Transport(t testing.TB, base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = &http.Transport{}
	}
	return &transport{t: t, c: mustLoad(t), base: base}
}

type transport struct {
	t    testing.TB
	c    *contract
	base http.RoundTripper
}

func (tr *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	var reqBody []byte
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		reqBody = b
		req = req.Clone(req.Context())
		req.Body = io.NopCloser(bytes.NewReader(b))
	}
	resp, err := tr.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if err := tr.c.check(exchange{req: req, reqBody: reqBody, status: resp.StatusCode, header: resp.Header, body: body}); err != nil {
		tr.t.Errorf("api/openapi.yaml: %v", err)
	}
	return resp, nil
}
