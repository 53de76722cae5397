package stream_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/riskd/riskd/engine"
	"github.com/riskd/riskd/httpapi"
	"github.com/riskd/riskd/internal/enginetest"
	"github.com/riskd/riskd/internal/kafkatest"
	"github.com/riskd/riskd/internal/metrictest"
	"github.com/riskd/riskd/stream"
)

// TestAuditStreamWritesHTTPDecisions: every decision answered over HTTP
// lands in the decisions topic, keyed by event id, holding the answer
// exactly, with the headers of the Kafka path's decisions and source: http.
func TestAuditStreamWritesHTTPDecisions(t *testing.T) {
	addrs := newBroker(t).ListenAddrs()
	reg := prometheus.NewRegistry()
	e := engine.New(enginetest.Example(t), engine.Options{Registerer: reg})
	audit := stream.NewAuditStream(stream.AuditOptions{Brokers: addrs, Registerer: reg})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { audit.Run(ctx); close(done) }()
	srv := httptest.NewServer(httpapi.NewHandler(e, httpapi.HandlerOptions{Audit: audit.Record}))
	defer srv.Close()

	const n = 40
	answers := map[string]string{}
	for i := range n {
		id := fmt.Sprintf("http-%d", i)
		body := fmt.Sprintf(`{"id":%q,"type":"checkout","ts":%d,"account_id":"acc-%d","card_id":"card-1","amount":10}`, id, 1780000000000+i*1000, i%5)
		q := ""
		if i == 7 {
			q = "?explain=1" // what is answered is what is kept, explanation included
		}
		resp, err := http.Post(srv.URL+"/v1/score"+q, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		answers[id] = strings.TrimSuffix(string(b), "\n")
	}
	// A refused event is no decision: nothing is written for it.
	resp, err := http.Post(srv.URL+"/v1/score", "application/json", strings.NewReader(`{"id":"bad"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	for _, m := range consume(t, addrs, decisionsTopic, n) {
		want, ok := answers[string(m.Key)]
		if !ok {
			t.Fatalf("a decision keyed %q, which was not answered", m.Key)
		}
		delete(answers, string(m.Key))
		if string(m.Value) != want {
			t.Errorf("%s: written %s\nanswered %s", m.Key, m.Value, want)
		}
		if got := header(m, "source") + " " + header(m, "ruleset") + " " + header(m, "version"); got != "http checkout 2026-11-25.1" {
			t.Errorf("%s: headers source, ruleset, version: %s", m.Key, got)
		}
	}
	cancel()
	<-done
	if got := kafkatest.TopicSize(t, addrs, decisionsTopic, 3); got != n {
		t.Errorf("%d decisions in the topic, want %d", got, n)
	}
	if got := metrictest.Value(t, reg, "riskd_audit_records_total", map[string]string{"result": "written"}); got != n {
		t.Errorf("written %v, want %d", got, n)
	}
	if got := metrictest.Value(t, reg, "riskd_audit_records_total", map[string]string{"result": "dropped"}); got != 0 {
		t.Errorf("dropped %v, want 0", got)
	}
}

// closedAddr is a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestAuditStreamDropsWhenFull: with the brokers away the buffer fills
// and Record drops what does not fit instead of waiting; the drops are
// counted and logged, and what could not be written by the end of the
// shutdown timeout is counted dropped too.
func TestAuditStreamDropsWhenFull(t *testing.T) {
	reg := prometheus.NewRegistry()
	var logs bytes.Buffer
	audit := stream.NewAuditStream(stream.AuditOptions{Brokers: []string{closedAddr(t)}, Buffer: 3, ShutdownTimeout: 50 * time.Millisecond,
		Registerer: reg, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	e := engine.New(enginetest.Example(t), engine.Options{})
	srv := httptest.NewServer(httpapi.NewHandler(e, httpapi.HandlerOptions{Audit: audit.Record}))
	defer srv.Close()
	// Run is not started: nothing takes from the buffer.
	for i := range 5 {
		resp, err := http.Post(srv.URL+"/v1/score", "application/json", strings.NewReader(fmt.Sprintf(`{"id":"d-%d","type":"login"}`, i)))
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 200 {
			t.Fatalf("answer %d while the audit stream is full", resp.StatusCode)
		}
		resp.Body.Close()
	}
	if got := metrictest.Value(t, reg, "riskd_audit_records_total", map[string]string{"result": "dropped"}); got != 2 {
		t.Errorf("dropped %v, want 2", got)
	}
	if got := metrictest.Value(t, reg, "riskd_audit_buffered_records", nil); got != 3 {
		t.Errorf("buffered %v, want 3", got)
	}
	// Stopped at once: the three buffered cannot reach the brokers within
	// the shutdown timeout.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	audit.Run(ctx)
	if got := metrictest.Value(t, reg, "riskd_audit_records_total", map[string]string{"result": "dropped"}); got != 5 {
		t.Errorf("dropped %v after the shutdown, want 5", got)
	}
	if got := metrictest.Value(t, reg, "riskd_audit_records_total", map[string]string{"result": "written"}); got != 0 {
		t.Errorf("written %v, want 0", got)
	}
	if !strings.Contains(logs.String(), `msg="audit stream behind: HTTP decisions dropped, not written to the decisions topic" dropped=5`) {
		t.Errorf("logs:\n%s", logs.String())
	}
}
