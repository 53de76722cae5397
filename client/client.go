// Package client calls riskd's scoring API (api/openapi.yaml) from the
// services that score synchronously: checkout, login, sign-up.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Options configure a Client. Zero values are safe.
type Options struct {
	// Timeout bounds each call, from sending the event to reading the
	// decision; the caller's context may end it sooner. Default 100ms.
	Timeout time.Duration
	// Fallback, when set, is the outcome Score and Explain answer when
	// riskd cannot (an *UnavailableError): Pass fails open, StepUp or
	// Block fail closed, and the decision says so (Decision.Fallback).
	// Default "": the error is returned. A refused event is never
	// answered with a fallback.
	Fallback Outcome
	// HTTPClient sends the requests. Default: a client of the Client's
	// own, keeping connections to riskd alive between calls.
	HTTPClient *http.Client
	// MaxIdleConns is how many idle connections the default HTTPClient
	// keeps alive: about the calls in flight at peak. Default 64.
	MaxIdleConns int
}

// DefaultTimeout is Options.Timeout's default.
const DefaultTimeout = 100 * time.Millisecond

// maxAnswerBytes bounds what is read of an answer: a decision with its
// explanation is a few KiB; more is not riskd.
const maxAnswerBytes = 4 << 20

// Client scores events with one riskd (or a load balancer in front of
// several). It is safe for concurrent use; make one and share it.
type Client struct {
	scoreURL, explainURL string
	http                 *http.Client
	timeout              time.Duration
	fallback             Outcome
}

// New returns a client of the riskd at baseURL (http://riskd:8080, or
// with a path prefix when a gateway routes to riskd).
func New(baseURL string, opts Options) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("riskd client: base URL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("riskd client: base URL %q: want http://host:port or https://host:port", baseURL)
	}
	switch opts.Fallback {
	case "", Pass, StepUp, Block:
	case Review:
		return nil, fmt.Errorf("riskd client: Fallback %q: a fallback opens no case for an analyst; want %q, %q or %q", opts.Fallback, Pass, StepUp, Block)
	default:
		return nil, fmt.Errorf("riskd client: Fallback %q: want %q, %q or %q", opts.Fallback, Pass, StepUp, Block)
	}
	c := &Client{http: opts.HTTPClient, timeout: opts.Timeout, fallback: opts.Fallback}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	if c.http == nil {
		idle := opts.MaxIdleConns
		if idle <= 0 {
			idle = 64
		}
		c.http = &http.Client{Transport: &http.Transport{
			Proxy:       http.ProxyFromEnvironment,
			DialContext: (&net.Dialer{KeepAlive: 30 * time.Second}).DialContext,
			// The default of 2 idle connections per host would make
			// concurrent calls open and close connections all the time.
			MaxIdleConns:        idle,
			MaxIdleConnsPerHost: idle,
			// Below riskd's 120s idle timeout, so the client lets a
			// connection go before riskd closes it under a request.
			IdleConnTimeout: 90 * time.Second,
		}}
	}
	base := strings.TrimSuffix(u.String(), "/")
	c.scoreURL, c.explainURL = base+"/v1/score", base+"/v1/score?explain=1"
	return c, nil
}

// Score asks riskd for the decision on ev. Its error is a *RefusedError
// (fix the event, do not retry) or, without a Fallback, an
// *UnavailableError (retry with the same ev, or decide without riskd).
func (c *Client) Score(ctx context.Context, ev Event) (Decision, error) {
	return c.call(ctx, c.scoreURL, ev)
}

// Explain is Score with the explanation: Decision.Features, NotFired and
// Shadow. riskd waits for the challengers' verdicts before answering, so
// it is slower than Score: for investigating, not for every checkout.
func (c *Client) Explain(ctx context.Context, ev Event) (Decision, error) {
	return c.call(ctx, c.explainURL, ev)
}

// Close lets the idle connections go.
func (c *Client) Close() { c.http.CloseIdleConnections() }

func (c *Client) call(ctx context.Context, url string, ev Event) (Decision, error) {
	body, err := ev.MarshalJSON()
	if err != nil {
		return Decision{}, &RefusedError{EventID: ev.ID, Message: err.Error()}
	}
	d, err := c.post(ctx, url, ev.ID, body)
	var down *UnavailableError
	if c.fallback != "" && errors.As(err, &down) {
		return c.fallbackFor(ev, down), nil
	}
	return d, err
}

func (c *Client) post(ctx context.Context, url, id string, body []byte) (Decision, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return Decision{}, &RefusedError{EventID: id, Message: err.Error()}
	}
	req.Header.Set("Content-Type", "application/json")
	// riskd keys idempotency on the event's id; the header tells
	// net/http the POST may be sent again on a connection that riskd
	// closed while it was idle.
	req.Header.Set("Idempotency-Key", id)
	resp, err := c.http.Do(req)
	if err != nil {
		return Decision{}, &UnavailableError{EventID: id, Err: err}
	}
	defer resp.Body.Close()
	// Read the whole answer so the connection can serve the next call.
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes+1))
	switch {
	case err != nil:
		return Decision{}, &UnavailableError{EventID: id, StatusCode: resp.StatusCode, Err: fmt.Errorf("reading the answer: %w", err)}
	case len(answer) > maxAnswerBytes:
		return Decision{}, &UnavailableError{EventID: id, StatusCode: resp.StatusCode, Err: fmt.Errorf("an answer over %d bytes", maxAnswerBytes)}
	case resp.StatusCode == http.StatusOK:
		var d Decision
		if err := json.Unmarshal(answer, &d); err != nil || d.Outcome == "" {
			return Decision{}, &UnavailableError{EventID: id, StatusCode: resp.StatusCode, Err: fmt.Errorf("not a decision: %.200q", answer)}
		}
		return d, nil
	case resp.StatusCode >= 400 && resp.StatusCode < 500 &&
		resp.StatusCode != http.StatusRequestTimeout && resp.StatusCode != http.StatusTooManyRequests:
		return Decision{}, &RefusedError{EventID: id, StatusCode: resp.StatusCode, Message: message(answer)}
	default:
		return Decision{}, &UnavailableError{EventID: id, StatusCode: resp.StatusCode, Err: errors.New(message(answer))}
	}
}

// message is riskd's {"error": "..."}, or the start of what a proxy in
// between answered instead.
func message(answer []byte) string {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(answer, &e) == nil && e.Error != "" {
		return e.Error
	}
	return fmt.Sprintf("%.200q", answer)
}

// FallbackRule names the reason of a fallback decision.
const FallbackRule = "riskd_unavailable"

func (c *Client) fallbackFor(ev Event, cause *UnavailableError) Decision {
	r := Reason{Rule: FallbackRule, Reason: "riskd could not answer in time; the caller's policy lets the event pass"}
	policy := "fail_open"
	if c.fallback != Pass {
		policy = "fail_closed"
		r.Action = c.fallback
		r.Reason = "riskd could not answer in time; the caller's policy asks for " + string(c.fallback)
	}
	return Decision{EventID: ev.ID, Type: ev.Type, Outcome: c.fallback, Reasons: []Reason{r}, Fallback: policy, FallbackCause: cause}
}
