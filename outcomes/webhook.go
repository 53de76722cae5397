package outcomes

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The webhook's headers: the signature covers the timestamp and the body,
// so a receiver that refuses old timestamps refuses replays too.
const (
	TimestampHeader = "Riskd-Timestamp" // Unix seconds
	SignatureHeader = "Riskd-Signature" // "v1=" and hex HMAC-SHA256(secret, timestamp + "." + body)
)

// Sign returns the signature header value of body sent at ts.
func Sign(secret []byte, ts int64, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(strconv.AppendInt(nil, ts, 10))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "v1=" + hex.EncodeToString(mac.Sum(nil))
}

// Verify checks a webhook as a receiver should: the signature over the
// timestamp and body, and a timestamp within tolerance of now.
func Verify(secret []byte, timestamp, signature string, body []byte, now time.Time, tolerance time.Duration) error {
	ts, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return fmt.Errorf("webhook: %s %q is not Unix seconds", TimestampHeader, timestamp)
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("webhook: timestamp %d is %v from now, more than the %v allowed", ts, d.Round(time.Second), tolerance)
	}
	if !hmac.Equal([]byte(signature), []byte(Sign(secret, ts, body))) {
		return errors.New("webhook: signature does not match the body")
	}
	return nil
}

// WebhookOptions configure a Webhook. URL and Secret are required.
type WebhookOptions struct {
	// URL receives every outcome, POSTed as JSON; it must be https.
	URL string
	// Secret signs every request.
	Secret []byte
	// Client sends the requests. Default: a client with a 10 s timeout.
	Client *http.Client
	// MaxAttempts bounds the tries of one outcome. Default 8.
	MaxAttempts int
	// Backoff is the wait after the first failed try, doubled after each
	// (with jitter) up to MaxBackoff. Defaults 500 ms and 1 min.
	Backoff, MaxBackoff time.Duration
	// Queue bounds the outcomes waiting to be sent; past it new ones are
	// dropped and counted. Default 10,000.
	Queue int
	// Registerer receives the webhook's metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// Logger receives failures; nil discards.
	Logger *slog.Logger
	// AllowHTTP accepts an http URL (tests and a receiver on localhost).
	AllowHTTP bool
}

// Webhook sends outcomes to the merchant, one at a time in order, from
// the goroutine that runs Run. An outcome is also on the decisions topic:
// the webhook is the push, the topic the record.
type Webhook struct {
	opts     WebhookOptions
	queue    chan []byte
	sent     prometheus.Counter
	failures *prometheus.CounterVec
	retries  prometheus.Counter
	pending  prometheus.GaugeFunc
	log      *slog.Logger
	now      func() time.Time
	jitter   func() float64
}

// NewWebhook checks opts and returns a webhook; Run sends.
func NewWebhook(opts WebhookOptions) (*Webhook, error) {
	u, err := url.Parse(opts.URL)
	if err != nil || u.Host == "" || (u.Scheme != "https" && !(opts.AllowHTTP && u.Scheme == "http")) {
		return nil, fmt.Errorf("webhook URL %q: want https://host/path", opts.URL)
	}
	if len(opts.Secret) < 16 {
		return nil, errors.New("webhook: the signing secret must be at least 16 bytes")
	}
	if opts.Client == nil {
		opts.Client = &http.Client{Timeout: 10 * time.Second}
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = 8
	}
	if opts.Backoff <= 0 {
		opts.Backoff = 500 * time.Millisecond
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = time.Minute
	}
	if opts.Queue <= 0 {
		opts.Queue = 10_000
	}
	w := &Webhook{opts: opts, queue: make(chan []byte, opts.Queue), log: opts.Logger, now: time.Now, jitter: rand.Float64}
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	w.sent = prometheus.NewCounter(prometheus.CounterOpts{Name: "riskd_webhook_deliveries_total", Help: "Outcomes the merchant's webhook accepted (2xx)."})
	w.failures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "riskd_webhook_failures_total",
		Help: "Outcomes never delivered to the webhook, by reason: refused (a 4xx other than 429), exhausted (every attempt failed), queue_full, shutdown.",
	}, []string{"reason"})
	w.retries = prometheus.NewCounter(prometheus.CounterOpts{Name: "riskd_webhook_retries_total", Help: "Webhook attempts that failed and were tried again."})
	w.pending = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "riskd_webhook_queue", Help: "Outcomes waiting to be sent to the webhook."},
		func() float64 { return float64(len(w.queue)) })
	for _, r := range []string{"refused", "exhausted", "queue_full", "shutdown"} {
		w.failures.WithLabelValues(r)
	}
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(w.sent, w.failures, w.retries, w.pending)
	}
	return w, nil
}

// Send queues body (an Outcome's Record) for delivery. It never blocks: a
// full queue drops body, counts and logs it, and returns false.
func (w *Webhook) Send(body []byte) bool {
	select {
	case w.queue <- body:
		return true
	default:
		w.failures.WithLabelValues("queue_full").Inc()
		w.log.Error("webhook queue full; outcome not sent (it is on the decisions topic)", "queue", w.opts.Queue)
		return false
	}
}

// Run sends queued outcomes until ctx ends; what is still queued then is
// counted as shutdown failures.
func (w *Webhook) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			if n := len(w.queue); n > 0 {
				w.failures.WithLabelValues("shutdown").Add(float64(n))
				w.log.Error("webhook outcomes not sent at shutdown (they are on the decisions topic)", "count", n)
			}
			return
		case body := <-w.queue:
			w.deliver(ctx, body)
		}
	}
}

// deliver tries body until the receiver accepts it, refuses it, or the
// attempts run out.
func (w *Webhook) deliver(ctx context.Context, body []byte) {
	wait := w.opts.Backoff
	for attempt := 1; ; attempt++ {
		retry, err := w.post(ctx, body)
		if err == nil {
			w.sent.Inc()
			return
		}
		switch {
		case ctx.Err() != nil:
			w.failures.WithLabelValues("shutdown").Inc()
			return
		case !retry:
			w.failures.WithLabelValues("refused").Inc()
			w.log.Error("webhook refused an outcome", "err", err)
			return
		case attempt == w.opts.MaxAttempts:
			w.failures.WithLabelValues("exhausted").Inc()
			w.log.Error("webhook failed; outcome given up", "attempts", attempt, "err", err)
			return
		}
		w.retries.Inc()
		w.log.Warn("webhook failed; retrying", "attempt", attempt, "err", err)
		// Full jitter on the upper half: receivers coming back are not
		// hit by every riskd at once.
		d := time.Duration(float64(wait) * (0.5 + 0.5*w.jitter()))
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			w.failures.WithLabelValues("shutdown").Inc()
			return
		case <-t.C:
		}
		wait = min(2*wait, w.opts.MaxBackoff)
	}
}

// post makes one attempt; retry says whether a failure may pass.
func (w *Webhook) post(ctx context.Context, body []byte) (retry bool, err error) {
	ts := w.now().Unix()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.opts.URL, bytes.NewReader(body))
	if err != nil {
		return false, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "riskd-webhook/1")
	req.Header.Set(TimestampHeader, strconv.FormatInt(ts, 10))
	req.Header.Set(SignatureHeader, Sign(w.opts.Secret, ts, body))
	resp, err := w.opts.Client.Do(req)
	if err != nil {
		return true, err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return false, nil
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return true, fmt.Errorf("webhook %s: %s: %s", w.opts.URL, resp.Status, strings.TrimSpace(string(msg)))
	}
	return false, fmt.Errorf("webhook %s: %s: %s", w.opts.URL, resp.Status, strings.TrimSpace(string(msg)))
}
