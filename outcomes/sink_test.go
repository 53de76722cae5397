package outcomes

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseLabel(t *testing.T) {
	now := time.UnixMilli(1780000000000).UTC()
	for _, tt := range []struct {
		name, body, want string // want: the label event, or the error
	}{
		{"chargeback with keys", `{"event_id":"e-9","label":"fraud","source":"chargeback","ts":"2026-12-07T10:00:00Z","card_id":"card-7","amount":12.5}`,
			`{"amount":12.5,"card_id":"card-7","event_id":"e-9","event_type":"","id":"label:chargeback:e-9","label":"fraud","source":"chargeback","ts":1796637600000,"type":"label"}`},
		{"defaults", `{"event_id":"e-9","label":"not_fraud","ts":1780000000001}`,
			`{"event_id":"e-9","event_type":"","id":"label:api:e-9","label":"not_fraud","source":"api","ts":1780000000001,"type":"label"}`},
		{"no event id", `{"label":"fraud"}`, `field "event_id" is required`},
		{"bad label", `{"event_id":"e","label":"fruad"}`, `"fruad": want fraud`},
		{"review is the console's", `{"event_id":"e","label":"fraud","source":"review"}`, `"review" is the console's`},
		{"bad ts", `{"event_id":"e","label":"fraud","ts":"yesterday"}`, `not RFC 3339`},
		{"not an object", `[1]`, `invalid JSON object`},
		{"number id", `{"event_id":7,"label":"fraud"}`, `"event_id" must be a string`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o, err := ParseLabel([]byte(tt.body), now)
			if err != nil {
				if !strings.Contains(err.Error(), tt.want) {
					t.Errorf("error %v, want %q", err, tt.want)
				}
				return
			}
			ev, err := o.LabelEvent()
			if err != nil || string(ev) != tt.want {
				t.Errorf("label event %s (%v)\nwant %s", ev, err, tt.want)
			}
		})
	}
	if _, err := ParseLabel([]byte(`{"event_id":"`+strings.Repeat("x", MaxLabelBytes)+`"}`), now); err == nil {
		t.Error("an oversized label was read")
	}
}

func TestWithCaseAndSink(t *testing.T) {
	o, err := ParseLabel([]byte(`{"event_id":"e-1","label":"fraud","source":"psp","account_id":"acc-9"}`), time.UnixMilli(1780000000000))
	if err != nil {
		t.Fatal(err)
	}
	if err := o.WithCase(resolved()); err != nil {
		t.Fatal(err)
	}
	var recorded, published []byte
	s := &Sink{
		Record:  func(_ context.Context, ev []byte) error { recorded = ev; return nil },
		Publish: func(_ context.Context, key, rec []byte) error { published = rec; return errors.New("brokers down") },
	}
	err = s.Send(context.Background(), o)
	if err == nil || !strings.Contains(err.Error(), "decisions topic: brokers down") {
		t.Errorf("Send: %v", err)
	}
	var ev map[string]any
	json.Unmarshal(recorded, &ev)
	if ev["card_id"] != "card-7" || ev["account_id"] != "acc-9" || ev["case_id"] != "c_abc" || ev["event_type"] != "checkout" || ev["source"] != "psp" {
		t.Errorf("label event %s", recorded)
	}
	if !strings.Contains(string(published), `"source":"psp"`) {
		t.Errorf("record %s", published)
	}
}
