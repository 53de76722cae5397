package stream_test

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/segmentio/kafka-go"

	"github.com/riskd/riskd/engine"
	"github.com/riskd/riskd/internal/enginetest"
)

// TestKafkaShadowTopic: shadow verdicts are written, keyed by event id,
// to the shadow decisions topic beside the live decisions.
func TestKafkaShadowTopic(t *testing.T) {
	broker := newBroker(t)
	addrs := broker.ListenAddrs()
	e := engine.New(enginetest.Challengers(t, "50%"), engine.Options{})
	stop := runConsumer(t, e, addrs)
	defer stop()
	const n = 20
	msgs := make([]kafka.Message, n)
	for i := range msgs {
		msgs[i] = kafka.Message{Key: []byte("c"), Value: fmt.Appendf(nil, `{"id":"k%d","type":"checkout","ts":%d,"card_id":"c","account_id":"acc-%d","amount":10}`, i, 1780000000000+i, i)}
	}
	produce(t, addrs, msgs...)
	live := consume(t, addrs, decisionsTopic, n)
	shadow := consume(t, addrs, decisionsTopic+".shadow", 2*n)
	liveBy := map[string]string{}
	for _, m := range live {
		liveBy[string(m.Key)] = header(m, "ruleset")
	}
	perEvent := map[string][]string{}
	for _, m := range shadow {
		var v struct {
			EventID      string `json:"event_id"`
			Ruleset      string `json:"ruleset"`
			Shadow       bool   `json:"shadow"`
			LiveRuleset  string `json:"live_ruleset"`
			LiveDecision string `json:"live_decision"`
		}
		if err := json.Unmarshal(m.Value, &v); err != nil || !v.Shadow || string(m.Key) != v.EventID || header(m, "ruleset") != v.Ruleset {
			t.Fatalf("shadow record %s (%v)", m.Value, err)
		}
		if v.LiveRuleset != liveBy[v.EventID] || v.Ruleset == v.LiveRuleset {
			t.Fatalf("shadow %s of %s: live was %s", v.Ruleset, v.EventID, liveBy[v.EventID])
		}
		perEvent[v.EventID] = append(perEvent[v.EventID], v.Ruleset)
	}
	if len(perEvent) != n {
		t.Fatalf("shadows for %d events, want %d", len(perEvent), n)
	}
}
