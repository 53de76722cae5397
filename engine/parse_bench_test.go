package engine

import (
	"testing"
	"time"

	"github.com/valyala/fastjson"
)

// BenchmarkParseEvent is the parse and validation of one checkout event.
func BenchmarkParseEvent(b *testing.B) {
	body := []byte(`{"id":"e-0000000001","type":"checkout","ts":"2026-11-20T10:00:00Z","account_id":"acc-000001","card_id":"card-000001","device_id":"dev-000001","ip":"10.1.2.3","amount":125.40,"currency":"EUR","ip_country":"FR","card_country":"FR"}`)
	var p fastjson.Parser
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := parseEvent(&p, body, now); err != nil {
			b.Fatal(err)
		}
	}
}
