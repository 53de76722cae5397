package httpapi_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/fstest"
	"time"

	"github.com/riskd/riskd/cases"
	"github.com/riskd/riskd/engine"
	"github.com/riskd/riskd/httpapi"
	"github.com/riskd/riskd/rules"
)

// TestAnalystTokens: an analyst's token reads lists and posts labels, but
// changes no list, reloads nothing and reads no profile.
func TestAnalystTokens(t *testing.T) {
	var labelled []string
	srv, _ := listServer(t, httpapi.HandlerOptions{AdminTokens: []httpapi.NamedToken{{Name: "ann", Token: "ann-secret", Analyst: true}, {Name: "root", Token: "root-secret"}},
		Label: func(_ context.Context, body []byte, by string) (int, []byte) {
			labelled = append(labelled, by+" "+string(body))
			return http.StatusAccepted, []byte(`{"event_id":"e-1","label":"fraud","source":"psp"}` + "\n")
		}})
	for _, tt := range []struct {
		method, path, token, body string
		code                      int
	}{
		{"GET", "/v1/lists/blocked_cards_api", "ann-secret", "", http.StatusOK},
		{"POST", "/v1/lists/blocked_cards_api", "ann-secret", `{"values":["c-1"]}`, http.StatusForbidden},
		{"DELETE", "/v1/lists/blocked_cards_api/c-1", "ann-secret", "", http.StatusForbidden},
		{"POST", "/v1/reload", "ann-secret", "", http.StatusForbidden},
		{"GET", "/debug/pprof/", "ann-secret", "", http.StatusForbidden},
		{"POST", "/v1/lists/blocked_cards_api", "root-secret", `{"values":["c-1"]}`, http.StatusOK},
		{"POST", "/v1/labels", "ann-secret", `{"event_id":"e-1","label":"fraud","source":"psp"}`, http.StatusAccepted},
		{"POST", "/v1/labels", "", `{}`, http.StatusUnauthorized},
		{"GET", "/v1/labels", "ann-secret", "", http.StatusMethodNotAllowed},
	} {
		code, body := call(t, tt.method, srv.URL+tt.path, tt.token, tt.body)
		if code != tt.code {
			t.Errorf("%s %s as %s: %d %s, want %d", tt.method, tt.path, tt.token, code, body, tt.code)
		}
		if code == http.StatusForbidden && !strings.Contains(body, "analyst") {
			t.Errorf("%s %s: %s does not say why", tt.method, tt.path, body)
		}
	}
	if len(labelled) != 1 || !strings.HasPrefix(labelled[0], "ann {") {
		t.Errorf("labels %q", labelled)
	}
}

// TestReviewAfterTheAnswer: a review decision reaches opts.Review with its
// event, after the answer; other decisions do not.
func TestReviewAfterTheAnswer(t *testing.T) {
	p, err := rules.Load(fstest.MapFS{
		"features.yaml": {Data: []byte("features:\n  - {name: card_count_1h, kind: count, key: card_id, window: 1h}\n")},
		"checkout.yaml": {Data: []byte("name: checkout\nevent_types: [checkout]\nthresholds: {step_up: 30, review: 60, block: 90}\nrules:\n  - {id: big, when: event.amount > 500, score: 60}\n")},
	}, "p")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []string
	h := httpapi.NewHandler(engine.New(p, engine.Options{}), httpapi.HandlerOptions{Review: func(d *engine.Decision, event []byte) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, d.CaseID+" "+string(event))
	}})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	for _, ev := range []string{`{"id":"e-1","type":"checkout","card_id":"c","amount":900}`, `{"id":"e-2","type":"checkout","card_id":"c","amount":5}`} {
		if code, body := call(t, "POST", srv.URL+"/v1/score", "", ev); code != http.StatusOK {
			t.Fatalf("%d %s", code, body)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	want := string(engine.AppendCaseID(nil, "e-1")) + ` {"id":"e-1","type":"checkout","card_id":"c","amount":900}`
	if len(got) != 1 || got[0] != want {
		t.Errorf("Review got %q, want %q", got, want)
	}
}

// BenchmarkReviewShare scores checkouts through the handler with one in a
// hundred sent to review, against none, each case opened in a memory case
// store by the opener's goroutine, as riskd does. It reports the process
// CPU time per decision (user + system, the opener's goroutine included),
// which a shared machine disturbs less than wall time.
func BenchmarkReviewShare(b *testing.B) {
	p, err := rules.Load(fstest.MapFS{
		"features.yaml": {Data: []byte("features:\n  - {name: card_count_1h, kind: count, key: card_id, window: 1h}\n")},
		"checkout.yaml": {Data: []byte("name: checkout\nevent_types: [checkout]\nthresholds: {step_up: 30, review: 60, block: 90}\nrules:\n  - {id: big, when: event.amount > 500, score: 60}\n  - {id: busy, when: features.card_count_1h > 3, score: 10}\n")},
	}, "p")
	if err != nil {
		b.Fatal(err)
	}
	for _, share := range []struct {
		name  string
		every int // one review every this many events; 0: none
	}{{"none", 0}, {"1pct", 100}} {
		b.Run(share.name, func(b *testing.B) {
			store := cases.NewMemory(cases.Options{})
			opener := cases.NewOpener(store, cases.OpenerOptions{Queue: 1 << 20})
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { defer close(done); opener.Run(ctx) }()
			h := httpapi.NewHandler(engine.New(p, engine.Options{}), httpapi.HandlerOptions{Review: func(d *engine.Decision, event []byte) {
				opener.Open(cases.FromDecision(d, event, time.Now()))
			}})
			var body []byte
			w := httptest.NewRecorder()
			score := func(i int) {
				amount := 20
				if share.every > 0 && i%share.every == 0 {
					amount = 900
				}
				body = fmt.Appendf(body[:0], `{"id":"%s-%d","type":"checkout","card_id":"card-%d","amount":%d}`, share.name, i, i%500, amount)
				w.Body.Reset()
				h.ServeHTTP(w, httptest.NewRequest("POST", "/v1/score", bytes.NewReader(body)))
			}
			// Warm up (pools, the store's maps), then measure; every id
			// is new.
			i := 0
			for ; i < 5000; i++ {
				score(i)
			}
			before := cpuTime()
			for b.Loop() {
				score(i)
				i++
			}
			cancel()
			<-done
			opener.Drain(context.Background())
			b.ReportMetric(float64(cpuTime()-before)/float64(b.N), "cpu-ns/decision")
		})
	}
}

// cpuTime is the process's user and system CPU time, in nanoseconds.
func cpuTime() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}
