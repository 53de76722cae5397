package outcomes

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/riskd/riskd/cases"
)

// Sink sends an outcome everywhere it goes. Each destination is
// optional.
type Sink struct {
	// Record scores and records the labelled event (LabelEvent) into the
	// feature store, so policies count it.
	Record func(ctx context.Context, event []byte) error
	// Publish writes the outcome's record to the decisions topic, keyed
	// by the event id.
	Publish func(ctx context.Context, key, record []byte) error
	// Webhook sends the record to the merchant.
	Webhook *Webhook
}

// Send records, publishes and queues o for the webhook; it returns every
// failure, having tried every destination.
func (s *Sink) Send(ctx context.Context, o *Outcome) error {
	var errs []error
	if s.Record != nil {
		ev, err := o.LabelEvent()
		if err == nil {
			err = s.Record(ctx, ev)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("recording the label: %w", err))
		}
	}
	rec := o.Record()
	if s.Publish != nil {
		if err := s.Publish(ctx, []byte(o.EventID), rec); err != nil {
			errs = append(errs, fmt.Errorf("writing to the decisions topic: %w", err))
		}
	}
	if s.Webhook != nil && !s.Webhook.Send(rec) {
		errs = append(errs, errors.New("the webhook queue is full"))
	}
	return errors.Join(errs...)
}

// MaxLabelBytes bounds a label sent to POST /v1/labels.
const MaxLabelBytes = 16 << 10

// ParseLabel reads an external label (POST /v1/labels):
//
//	{"event_id": "e-1001", "label": "fraud", "source": "chargeback",
//	 "ts": "2026-12-07T10:00:00Z", "card_id": "card-7", ...}
//
// event_id and label are required; source defaults to "api"; ts (RFC 3339
// or Unix ms) defaults to now. Every other field is a key of the original
// event (card_id, account_id…) that the labelled event carries; the
// original event of a case, if there is one, fills the rest (see
// WithCase).
func ParseLabel(body []byte, now time.Time) (*Outcome, error) {
	if len(body) > MaxLabelBytes {
		return nil, fmt.Errorf("label is %d bytes, over the limit of %d", len(body), MaxLabelBytes)
	}
	var fields map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&fields); err != nil {
		return nil, fmt.Errorf("label: invalid JSON object: %v", err)
	}
	str := func(name string) (string, error) {
		raw, ok := fields[name]
		if !ok {
			return "", nil
		}
		delete(fields, name)
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", fmt.Errorf("label: field %q must be a string", name)
		}
		return s, nil
	}
	o := &Outcome{At: now.UTC().Truncate(time.Millisecond)}
	var label string
	var err error
	if o.EventID, err = str("event_id"); err != nil {
		return nil, err
	}
	if label, err = str("label"); err != nil {
		return nil, err
	}
	if o.Source, err = str("source"); err != nil {
		return nil, err
	}
	if o.Note, err = str("note"); err != nil {
		return nil, err
	}
	if o.EventID == "" {
		return nil, errors.New(`label: field "event_id" is required: the id of the event the label is about`)
	}
	o.Label = cases.Outcome(label)
	if !o.Label.Valid() {
		return nil, fmt.Errorf("label: field \"label\" %q: want fraud, not_fraud, approve or decline", label)
	}
	if o.Source == "" {
		o.Source = "api"
	}
	if o.Source == "review" || strings.ContainsAny(o.Source, ": ") {
		return nil, fmt.Errorf("label: source %q: \"review\" is the console's; a source has no spaces or colons", o.Source)
	}
	if raw, ok := fields["ts"]; ok {
		delete(fields, "ts")
		var ms json.Number
		var s string
		switch {
		case json.Unmarshal(raw, &ms) == nil:
			v, err := ms.Int64()
			if err != nil {
				return nil, fmt.Errorf("label: ts %s is not whole Unix milliseconds", ms)
			}
			o.At = time.UnixMilli(v).UTC()
		case json.Unmarshal(raw, &s) == nil:
			t, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				return nil, fmt.Errorf("label: ts %q is not RFC 3339", s)
			}
			o.At = t.UTC().Truncate(time.Millisecond)
		default:
			return nil, errors.New("label: ts must be an RFC 3339 string or Unix milliseconds")
		}
	}
	for _, k := range []string{"id", "type", "case_id", "analyst", "event_type"} {
		delete(fields, k)
	}
	if len(fields) > 0 {
		o.Event, _ = json.Marshal(fields)
	}
	return o, nil
}

// WithCase completes an external label with the case of its event: the
// original event's keys (those the label does not give itself), type,
// ruleset and case id.
func (o *Outcome) WithCase(c *cases.Case) error {
	var orig, given map[string]json.RawMessage
	if err := json.Unmarshal(c.Event, &orig); err != nil {
		return fmt.Errorf("case %s: event: %w", c.ID, err)
	}
	if len(o.Event) > 0 {
		if err := json.Unmarshal(o.Event, &given); err != nil {
			return err
		}
	}
	for k, v := range given {
		orig[k] = v
	}
	o.Event, _ = json.Marshal(orig)
	o.Type, o.CaseID, o.Ruleset, o.Version, o.Decision, o.Score = c.Type, c.ID, c.Ruleset, c.Version, c.Decision, c.Score
	return nil
}
