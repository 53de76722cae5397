package outcomes

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/riskd/riskd/cases"
)

func resolved() *cases.Case {
	return &cases.Case{
		ID: "c_abc", EventID: "e-1", Type: "checkout", Decision: "review", Score: 70, Ruleset: "checkout", Version: "v1",
		Event:      json.RawMessage(`{"id":"e-1","type":"checkout","ts":1780000000000,"card_id":"card-7","account_id":"acc-1","label":"spoof","amount":950}`),
		OpenedAt:   time.UnixMilli(1780000000000).UTC(),
		Resolution: &cases.Resolution{Outcome: cases.Fraud, Note: "confirmed", Analyst: "ann", At: time.UnixMilli(1780000600000).UTC()},
	}
}

func TestLabelEvent(t *testing.T) {
	o, err := FromCase(resolved())
	if err != nil {
		t.Fatal(err)
	}
	b, err := o.LabelEvent()
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	json.Unmarshal(b, &got)
	want := map[string]any{"id": "label:review:e-1", "type": "label", "ts": 1780000600000.0, "label": "fraud", "source": "review",
		"event_id": "e-1", "event_type": "checkout", "case_id": "c_abc", "analyst": "ann", "card_id": "card-7", "account_id": "acc-1", "amount": 950.0}
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	if string(g) != string(w) {
		t.Errorf("label event\n%s\nwant\n%s", g, w)
	}
	var rec map[string]any
	json.Unmarshal(o.Record(), &rec)
	if rec["source"] != "review" || rec["label"] != "fraud" || rec["case_id"] != "c_abc" || rec["analyst"] != "ann" || rec["event"] != nil {
		t.Errorf("record %s", o.Record())
	}
	if _, err := FromCase(&cases.Case{ID: "c_x"}); err == nil {
		t.Error("an open case made an outcome")
	}
	bad := *o
	bad.Event = json.RawMessage(`[1]`)
	if _, err := bad.LabelEvent(); err == nil || !strings.Contains(err.Error(), "not a JSON object") {
		t.Errorf("an array event: %v", err)
	}
}

func TestVerify(t *testing.T) {
	secret := []byte("0123456789abcdef")
	now := time.Unix(1780000000, 0)
	body := []byte(`{"a":1}`)
	sig := Sign(secret, now.Unix(), body)
	for _, tt := range []struct {
		name, ts, sig string
		body          []byte
		ok            bool
	}{
		{"good", "1780000000", sig, body, true},
		{"tampered body", "1780000000", sig, []byte(`{"a":2}`), false},
		{"replayed later", "1779999000", Sign(secret, 1779999000, body), body, false},
		{"other secret", "1780000000", Sign([]byte("fedcba9876543210"), now.Unix(), body), body, false},
		{"bad timestamp", "soon", sig, body, false},
	} {
		if err := Verify(secret, tt.ts, tt.sig, tt.body, now, 5*time.Minute); (err == nil) != tt.ok {
			t.Errorf("%s: %v", tt.name, err)
		}
	}
}

// receiver is a TLS webhook endpoint that checks every signature and
// answers from a script of status codes (then 200).
type receiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	script []int
	bodies chan []byte
	bad    atomic.Int32
}

func newReceiver(t *testing.T, secret []byte, script ...int) *receiver {
	r := &receiver{script: script, bodies: make(chan []byte, 16)}
	r.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		if err := Verify(secret, req.Header.Get(TimestampHeader), req.Header.Get(SignatureHeader), body, time.Now(), time.Minute); err != nil {
			r.bad.Add(1)
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		r.mu.Lock()
		code := http.StatusOK
		if len(r.script) > 0 {
			code, r.script = r.script[0], r.script[1:]
		}
		r.mu.Unlock()
		w.WriteHeader(code)
		if code == http.StatusOK {
			r.bodies <- body
		}
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func startWebhook(t *testing.T, r *receiver, secret []byte, reg prometheus.Registerer, attempts int) *Webhook {
	w, err := NewWebhook(WebhookOptions{URL: r.srv.URL + "/hooks/riskd", Secret: secret, Client: r.srv.Client(),
		Backoff: time.Millisecond, MaxBackoff: 4 * time.Millisecond, MaxAttempts: attempts, Registerer: reg, Queue: 4})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return w
}

// TestWebhookRetriesAndSigns: a receiver failing twice (503, 429) gets the
// outcome on the third try, signed each time; the outcomes arrive in
// order.
func TestWebhookRetriesAndSigns(t *testing.T) {
	secret := []byte("a-signing-secret-of-32-bytes!!!!")
	r := newReceiver(t, secret, http.StatusServiceUnavailable, http.StatusTooManyRequests)
	reg := prometheus.NewRegistry()
	w := startWebhook(t, r, secret, reg, 5)
	o, _ := FromCase(resolved())
	w.Send(o.Record())
	w.Send([]byte(`{"second":true}`))
	if got := <-r.bodies; string(got) != string(o.Record()) {
		t.Errorf("received %s", got)
	}
	if got := <-r.bodies; string(got) != `{"second":true}` {
		t.Errorf("second: %s", got)
	}
	if r.bad.Load() != 0 {
		t.Errorf("%d requests with a bad signature", r.bad.Load())
	}
	if n := testutil.ToFloat64(w.retries); n != 2 {
		t.Errorf("%v retries, want 2", n)
	}
}

// TestWebhookFailuresCounted: a 400 is not retried; a receiver down for
// every attempt exhausts them; a full queue drops.
func TestWebhookFailuresCounted(t *testing.T) {
	secret := []byte("a-signing-secret-of-32-bytes!!!!")
	r := newReceiver(t, secret, http.StatusBadRequest, 500, 500, 500)
	w := startWebhook(t, r, secret, nil, 3)
	w.Send([]byte(`{"n":1}`)) // 400: refused
	w.Send([]byte(`{"n":2}`)) // 500 ×3: exhausted
	w.Send([]byte(`{"n":3}`)) // delivered
	if got := <-r.bodies; string(got) != `{"n":3}` {
		t.Errorf("delivered %s", got)
	}
	if n := testutil.ToFloat64(w.failures.WithLabelValues("refused")); n != 1 {
		t.Errorf("refused %v, want 1", n)
	}
	if n := testutil.ToFloat64(w.failures.WithLabelValues("exhausted")); n != 1 {
		t.Errorf("exhausted %v, want 1", n)
	}

	full, err := NewWebhook(WebhookOptions{URL: "https://merchant.example/hook", Secret: secret, Queue: 1})
	if err != nil {
		t.Fatal(err)
	}
	if !full.Send([]byte(`1`)) || full.Send([]byte(`2`)) {
		t.Error("a queue of one took two")
	}
	if n := testutil.ToFloat64(full.failures.WithLabelValues("queue_full")); n != 1 {
		t.Errorf("queue_full %v, want 1", n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	full.Run(ctx)
	if n := testutil.ToFloat64(full.failures.WithLabelValues("shutdown")); n != 1 {
		t.Errorf("shutdown %v, want 1", n)
	}
}

func TestNewWebhook(t *testing.T) {
	for _, tt := range []struct {
		opts WebhookOptions
		want string
	}{
		{WebhookOptions{URL: "http://merchant.example/hook", Secret: []byte("0123456789abcdef")}, "want https"},
		{WebhookOptions{URL: "merchant.example", Secret: []byte("0123456789abcdef")}, "want https"},
		{WebhookOptions{URL: "https://merchant.example/hook", Secret: []byte("short")}, "at least 16 bytes"},
	} {
		if _, err := NewWebhook(tt.opts); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: %v, want %q", tt.opts, err, tt.want)
		}
	}
}
