package stream_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/riskd/riskd/engine"
	"github.com/riskd/riskd/httpapi"
	"github.com/riskd/riskd/internal/metrictest"
	"github.com/riskd/riskd/internal/poll"
	"github.com/riskd/riskd/rules"
	"github.com/riskd/riskd/stream"
)

// echoPolicy's rules each repeat the event's note in their reason: a
// decision on an event with a 1 KB note is over 3 KB.
func echoPolicy(t *testing.T) *rules.Policy {
	t.Helper()
	var rs strings.Builder
	rs.WriteString("name: checkout\nevent_types: [checkout]\nthresholds: {step_up: 50, block: 90}\nrules:\n")
	for i := range 3 {
		fmt.Fprintf(&rs, "  - {id: echo%d, when: 'event.note != \"\"', score: 1, reason: \"note {{event.note}}\"}\n", i)
	}
	p, err := rules.Load(fstest.MapFS{
		"features.yaml": {Data: []byte("features:\n  - {name: card_count_1h, kind: count, key: card_id, window: 1h}\n")},
		"checkout.yaml": {Data: []byte(rs.String())},
	}, "p")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestKafkaOversizedDecisionDoesNotHoldThePartition: a decision over the
// brokers' message limit (each byte of its event fits) is replaced by its
// id and the error, and the events after it on its partition are decided.
func TestKafkaOversizedDecisionDoesNotHoldThePartition(t *testing.T) {
	broker := newBroker(t, kfake.BrokerConfigs(map[string]string{"message.max.bytes": "2048"}))
	addrs := broker.ListenAddrs()
	reg := prometheus.NewRegistry()
	e := engine.New(echoPolicy(t), engine.Options{})
	defer runConsumerWith(t, e, stream.KafkaOptions{Brokers: addrs, BatchSize: 50, Registerer: reg})()
	big := `{"id":"big","type":"checkout","card_id":"c","note":"` + strings.Repeat("n", 1000) + `"}`
	produce(t, addrs, kafka.Message{Key: []byte("k"), Value: []byte(big)})
	var after []kafka.Message
	for i := range 10 {
		after = append(after, kafka.Message{Key: []byte("k"), Value: fmt.Appendf(nil, `{"id":"after-%d","type":"checkout","card_id":"c","note":"n"}`, i)})
	}
	produce(t, addrs, after...)
	var replaced kafka.Message
	for _, m := range consume(t, addrs, decisionsTopic, 11) {
		if string(m.Key) == "big" {
			replaced = m
		}
	}
	var got struct {
		EventID   string `json:"event_id"`
		Error     string `json:"error"`
		Truncated bool   `json:"truncated"`
	}
	if err := json.Unmarshal(replaced.Value, &got); err != nil || got.EventID != "big" || !got.Truncated ||
		!strings.Contains(got.Error, "over the brokers' message size limit") || header(replaced, "truncated") != "true" || header(replaced, "source") != "kafka" {
		t.Errorf("the oversized decision was written as %s (%v), headers %v", replaced.Value, err, replaced.Headers)
	}
	if v := metrictest.Value(t, reg, "riskd_kafka_oversized_messages_total", map[string]string{"topic": decisionsTopic, "result": "replaced"}); v != 1 {
		t.Errorf("replaced %v, want 1", v)
	}
}

// TestAuditStreamOversizedDecision: over HTTP, a decision over the
// brokers' message limit is written as its id and the error, and the
// stream goes on writing the decisions after it.
func TestAuditStreamOversizedDecision(t *testing.T) {
	addrs := newBroker(t, kfake.BrokerConfigs(map[string]string{"message.max.bytes": "2048"})).ListenAddrs()
	reg := prometheus.NewRegistry()
	e := engine.New(echoPolicy(t), engine.Options{})
	audit := stream.NewAuditStream(stream.AuditOptions{Brokers: addrs, Registerer: reg})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { audit.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	srv := httptest.NewServer(httpapi.NewHandler(e, httpapi.HandlerOptions{Audit: audit.Record}))
	defer srv.Close()
	post := func(body string) {
		resp, err := http.Post(srv.URL+"/v1/score", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d", body, resp.StatusCode)
		}
	}
	post(`{"id":"big","type":"checkout","card_id":"c","note":"` + strings.Repeat("n", 1000) + `"}`)
	for i := range 20 {
		post(fmt.Sprintf(`{"id":"after-%d","type":"checkout","card_id":"c","note":"n"}`, i))
	}
	keys := map[string]string{}
	for _, m := range consume(t, addrs, decisionsTopic, 21) {
		keys[string(m.Key)] = header(m, "truncated")
	}
	if len(keys) != 21 || keys["big"] != "true" || keys["after-19"] != "" {
		t.Errorf("decisions written: %v", keys)
	}
	poll.Until(t, "the audit metrics", func() bool {
		return metrictest.Value(t, reg, "riskd_audit_records_total", map[string]string{"result": "written"}) == 21 &&
			metrictest.Value(t, reg, "riskd_audit_records_total", map[string]string{"result": "replaced"}) == 1
	})
}
