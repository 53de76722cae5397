package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/riskd/riskd/client"
	"github.com/riskd/riskd/engine"
	"github.com/riskd/riskd/httpapi"
	"github.com/riskd/riskd/internal/apitest"
	"github.com/riskd/riskd/rules"
	"github.com/riskd/riskd/rules/example"
)

// riskd serves the example policy with the real handler; every request
// the client sends and every answer it reads is held to api/openapi.yaml.
func riskd(t *testing.T) http.Handler {
	t.Helper()
	p, err := rules.Load(example.FS, "rules/example")
	if err != nil {
		t.Fatal(err)
	}
	return apitest.Handler(t, httpapi.NewHandler(engine.New(p, engine.Options{MaxEventBytes: 1024}), httpapi.HandlerOptions{}))
}

// newClient returns a client of url. Unless a case sets its own, the
// timeout is long: the race detector and the document's checks make the
// handler slow, and only the cases about budgets are about time.
func newClient(t *testing.T, url string, opts client.Options) *client.Client {
	t.Helper()
	if opts.Timeout == 0 {
		opts.Timeout = time.Minute
	}
	c, err := client.New(url, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func checkout(id string, sec int, fields map[string]any) client.Event {
	f := map[string]any{"account_id": "acc-42", "card_id": "card-7", "amount": 10, "currency": "EUR", "card_country": "FR"}
	for k, v := range fields {
		f[k] = v
	}
	return client.Event{ID: id, Type: "checkout", TS: time.Date(2026, 11, 25, 10, 0, sec, 0, time.UTC), Fields: f}
}

// TestScore: the README's two checkouts, typed; the second sent again is
// answered as a retry.
func TestScore(t *testing.T) {
	srv := apitest.NewServer(t, riskd(t))
	c := newClient(t, srv.URL, client.Options{})
	ctx := context.Background()
	d, err := c.Score(ctx, checkout("e-1000", 0, map[string]any{"device_id": "dev-1", "amount": 80, "ip_country": "FR"}))
	if err != nil {
		t.Fatal(err)
	}
	want := []client.Reason{{Rule: "new_device", Score: 15, Reason: "first time this device is seen on the account"}}
	if d.Outcome != client.Pass || d.Score != 15 || d.Ruleset != "checkout" || d.Version == "" || len(d.Reasons) != 1 || d.Reasons[0] != want[0] || d.Fallback != "" {
		t.Fatalf("e-1000: %+v", d)
	}
	second := checkout("e-1001", 6, map[string]any{"device_id": "dev-2", "amount": json.Number("950.00"), "ip_country": "NG"})
	for i, retry := range []bool{false, true} {
		d, err = c.Score(ctx, second)
		if err != nil {
			t.Fatal(err)
		}
		if d.EventID != "e-1001" || d.Outcome != client.Block || d.Score != 145 || len(d.Reasons) != 6 || d.Retry != retry {
			t.Fatalf("e-1001, call %d: %+v", i+1, d)
		}
	}
	d, err = c.Score(ctx, client.Event{ID: "cb-1", Type: "chargeback", Fields: map[string]any{"card_id": "card-7"}})
	if err != nil || !d.Unscored || d.Outcome != client.Pass || d.Ruleset != "" {
		t.Fatalf("unscored: %+v, %v", d, err)
	}
}

func TestExplain(t *testing.T) {
	srv := apitest.NewServer(t, riskd(t))
	c := newClient(t, srv.URL, client.Options{})
	d, err := c.Explain(context.Background(), client.Event{ID: "x-1", Type: "checkout", Fields: map[string]any{"card_id": "card-9", "ip_country": "KP", "amount": 10}})
	if err != nil {
		t.Fatal(err)
	}
	if d.Outcome != client.Block || len(d.Reasons) != 1 || d.Reasons[0].Action != client.Block {
		t.Fatalf("decision %+v", d)
	}
	if v, ok := d.Features["card_txn_count_1h"]; !ok || v != 0.0 {
		t.Errorf("card_txn_count_1h = %v (present %v), want 0", v, ok)
	}
	if v, ok := d.Features["account_age_s"]; !ok || v != nil {
		t.Errorf("account_age_s = %v (present %v), want nil: the event has no account_id", v, ok)
	}
	errs := 0
	for _, n := range d.NotFired {
		if n.Error != "" {
			errs++
		}
	}
	if len(d.NotFired) == 0 || errs == 0 {
		t.Errorf("not fired: %+v, want rules, some stopped by errors", d.NotFired)
	}
}

// TestRefused: what riskd refuses, or the client cannot send, is a
// *RefusedError, fallback or not: retrying it would not help.
func TestRefused(t *testing.T) {
	srv := apitest.NewServer(t, riskd(t))
	tests := []struct {
		name   string
		ev     client.Event
		status int
		want   string
	}{
		{"bad field", client.Event{ID: "r-1", Type: "checkout", Fields: map[string]any{"card_id": "c", "amount": "950"}}, 400, `field "amount": want number, got string "950"`},
		{"too large", client.Event{ID: "r-2", Type: "checkout", Fields: map[string]any{"note": strings.Repeat("x", 2000)}}, 413, "over the limit of 1024 bytes"},
		{"no id", client.Event{Type: "checkout"}, 0, "an event needs an ID and a Type"},
		{"id among the fields", client.Event{ID: "r-3", Type: "checkout", Fields: map[string]any{"ts": "now"}}, 0, `Fields holds "ts"`},
		{"not JSON", client.Event{ID: "r-4", Type: "checkout", Fields: map[string]any{"amount": func() {}}}, 0, "unsupported type"},
	}
	for _, fallback := range []client.Outcome{"", client.Pass} {
		c := newClient(t, srv.URL, client.Options{Fallback: fallback})
		for _, tt := range tests {
			t.Run(tt.name+"/fallback "+string(fallback), func(t *testing.T) {
				d, err := c.Score(context.Background(), tt.ev)
				var refused *client.RefusedError
				if !errors.As(err, &refused) {
					t.Fatalf("got %+v, %v; want a *RefusedError", d, err)
				}
				if refused.StatusCode != tt.status || !strings.Contains(refused.Message, tt.want) || refused.EventID != tt.ev.ID {
					t.Errorf("%+v, want status %d and %q", refused, tt.status, tt.want)
				}
			})
		}
	}
}

// TestUnavailable: riskd down, too slow for the budget, failing, or
// something else answering: an *UnavailableError, or the caller's
// fallback decision marked as one.
func TestUnavailable(t *testing.T) {
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	// slow answers nothing until the client gives up on it (the server
	// notices a closed connection only once the body is read) or the
	// test ends.
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(slow.Close)
	t.Cleanup(func() { close(release) })
	answer := func(code int, body string) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			w.WriteHeader(code)
			io.WriteString(w, body)
		}))
		t.Cleanup(srv.Close)
		return srv.URL
	}
	tests := []struct {
		name    string
		url     string
		timeout time.Duration
		budget  time.Duration // the caller's deadline, when set
		status  int
		cause   error  // errors.Is the *UnavailableError's cause
		want    string // in the cause's message
	}{
		{name: "down", url: gone.URL, want: "connection refused"},
		{name: "slower than the timeout", url: slow.URL, timeout: 20 * time.Millisecond, cause: context.DeadlineExceeded},
		{name: "slower than the caller's budget", url: slow.URL, timeout: time.Hour, budget: 20 * time.Millisecond, cause: context.DeadlineExceeded},
		{name: "failing", url: answer(500, `{"error":"boom"}`), status: 500, want: "boom"},
		{name: "a proxy with no riskd behind", url: answer(503, "<html>no healthy upstream</html>"), status: 503, want: "no healthy upstream"},
		{name: "not a decision", url: answer(200, "<html>welcome</html>"), status: 200, want: "not a decision"},
	}
	ev := client.Event{ID: "u-1", Type: "checkout", Fields: map[string]any{"card_id": "c"}}
	for _, tt := range tests {
		call := func(t *testing.T, fallback client.Outcome) (client.Decision, error) {
			c := newClient(t, tt.url, client.Options{Timeout: tt.timeout, Fallback: fallback})
			ctx := context.Background()
			if tt.budget > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.budget)
				defer cancel()
			}
			return c.Score(ctx, ev)
		}
		checkCause := func(t *testing.T, err error) {
			var down *client.UnavailableError
			if !errors.As(err, &down) {
				t.Fatalf("%v: want an *UnavailableError", err)
			}
			if down.EventID != "u-1" || down.StatusCode != tt.status || tt.cause != nil && !errors.Is(err, tt.cause) || !strings.Contains(down.Err.Error(), tt.want) {
				t.Errorf("%+v (%v), want status %d, cause %v, %q", down, down.Err, tt.status, tt.cause, tt.want)
			}
		}
		t.Run(tt.name, func(t *testing.T) {
			d, err := call(t, "")
			checkCause(t, err)
			if d.Outcome != "" {
				t.Errorf("a decision with the error: %+v", d)
			}
		})
		for _, fb := range []struct {
			outcome client.Outcome
			policy  string
			action  client.Outcome
		}{{client.Pass, "fail_open", ""}, {client.StepUp, "fail_closed", client.StepUp}, {client.Block, "fail_closed", client.Block}} {
			t.Run(tt.name+"/fallback "+string(fb.outcome), func(t *testing.T) {
				d, err := call(t, fb.outcome)
				if err != nil {
					t.Fatalf("with a fallback: %v", err)
				}
				if d.Outcome != fb.outcome || d.Fallback != fb.policy || d.EventID != "u-1" || d.Type != "checkout" ||
					len(d.Reasons) != 1 || d.Reasons[0].Rule != client.FallbackRule || d.Reasons[0].Action != fb.action {
					t.Errorf("fallback decision %+v", d)
				}
				checkCause(t, d.FallbackCause)
			})
		}
	}
}

// TestRetryAfterALostAnswer: riskd scored the event but its answer was
// lost on the way; the caller retries with the same event, gets riskd's
// answer marked as a retry, and the event was counted once.
func TestRetryAfterALostAnswer(t *testing.T) {
	h := riskd(t)
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			h.ServeHTTP(httptest.NewRecorder(), r) // scored, then lost
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	c := newClient(t, srv.URL, client.Options{})
	ctx := context.Background()
	ev := checkout("p-1", 0, map[string]any{"amount": 20})
	_, err := c.Score(ctx, ev)
	var down *client.UnavailableError
	if !errors.As(err, &down) || down.StatusCode != http.StatusBadGateway {
		t.Fatalf("first call: %v, want unavailable (502)", err)
	}
	d, err := c.Score(ctx, ev)
	if err != nil || !d.Retry {
		t.Fatalf("the retry: %+v, %v; want riskd's answer marked retry", d, err)
	}
	d, err = c.Explain(ctx, checkout("p-2", 30, map[string]any{"amount": 20}))
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Features["card_txn_count_1h"]; got != 1.0 {
		t.Errorf("the card's count after the retried event: %v, want 1", got)
	}
}

// TestKeepAlive: sequential calls share one connection.
func TestKeepAlive(t *testing.T) {
	srv := httptest.NewUnstartedServer(riskd(t))
	var conns atomic.Int32
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	c := newClient(t, srv.URL, client.Options{})
	for i := range 20 {
		if _, err := c.Score(context.Background(), checkout("k-"+strconv.Itoa(i), i, nil)); err != nil {
			t.Fatal(err)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("20 calls opened %d connections, want 1", n)
	}
}

func TestNew(t *testing.T) {
	for _, tt := range []struct {
		url  string
		opts client.Options
		want string
	}{
		{"riskd:8080", client.Options{}, "want http://host:port"},
		{"ftp://riskd", client.Options{}, "want http://host:port"},
		{"http://riskd:8080", client.Options{Fallback: "allow"}, `Fallback "allow"`},
	} {
		if _, err := client.New(tt.url, tt.opts); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("New(%q, %+v): %v, want %q", tt.url, tt.opts, err, tt.want)
		}
	}
}

// TestBaseURLWithAPrefix: behind a gateway that routes a prefix to riskd.
func TestBaseURLWithAPrefix(t *testing.T) {
	mux := http.NewServeMux()
	mux.Handle("/riskd/", http.StripPrefix("/riskd", riskd(t)))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	c := newClient(t, srv.URL+"/riskd/", client.Options{})
	if d, err := c.Score(context.Background(), checkout("g-1", 0, nil)); err != nil || d.Outcome == "" {
		t.Fatalf("%+v, %v", d, err)
	}
}
