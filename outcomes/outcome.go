// Package outcomes turns what an analyst (or a payment provider) says
// about an event into the records riskd sends on: a labelled event for
// the feature store, a record for the decisions topic, and a signed
// webhook to the merchant.
package outcomes

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/riskd/riskd/cases"
)

// LabelType is the event type of labelled events: features count them
// with event_types: [label] (and a where on event.label), as they count
// chargebacks.
const LabelType = "label"

// Outcome is what became of a reviewed or labelled event.
type Outcome struct {
	// Source says who decided: "review" for an analyst's resolution,
	// otherwise what the label's sender named (a PSP, "chargeback"...).
	Source string `json:"source"`
	// EventID and Type are the original event's.
	EventID string `json:"event_id"`
	Type    string `json:"type"`
	// Label is the verdict: approve, decline, fraud or not_fraud.
	Label cases.Outcome `json:"label"`
	// CaseID, Ruleset, Version, Decision and Score describe the review
	// case; empty for an external label on an event with no case.
	CaseID   string `json:"case_id,omitempty"`
	Ruleset  string `json:"ruleset,omitempty"`
	Version  string `json:"version,omitempty"`
	Decision string `json:"decision,omitempty"`
	Score    int64  `json:"score,omitempty"`
	// Analyst names who resolved the case (the admin token's name).
	Analyst string    `json:"analyst,omitempty"`
	Note    string    `json:"note,omitempty"`
	At      time.Time `json:"at"`
	// Event is the original event, whose keys the labelled event
	// carries; not sent on.
	Event json.RawMessage `json:"-"`
}

// FromCase is the outcome of a resolved case.
func FromCase(c *cases.Case) (*Outcome, error) {
	if c.Resolution == nil {
		return nil, fmt.Errorf("case %s is not resolved", c.ID)
	}
	r := c.Resolution
	return &Outcome{Source: "review", EventID: c.EventID, Type: c.Type, Label: r.Outcome, CaseID: c.ID, Ruleset: c.Ruleset,
		Version: c.Version, Decision: c.Decision, Score: c.Score, Analyst: r.Analyst, Note: r.Note, At: r.At, Event: c.Event}, nil
}

// Record is the outcome as the decisions topic and the webhook carry it:
// JSON, keyed (on the topic) by the event id like the decision it
// follows.
func (o *Outcome) Record() []byte {
	b, _ := json.Marshal(o) // strings, numbers and a time: cannot fail
	return b
}

// labelFields are the labelled event's own fields; the original event's
// fields of the same names are left out.
var labelFields = []string{"id", "type", "ts", "label", "source", "event_id", "event_type", "case_id", "analyst"}

// LabelEvent is the outcome as an event to score and record: type
// "label", the original event's fields (so its keys, card_id,
// account_id, device_id…, reach the same feature histories), and the
// label. Its id derives from the original's and the source, so a
// resolution recorded twice (a retry after a crash) counts once.
func (o *Outcome) LabelEvent() ([]byte, error) {
	var orig map[string]json.RawMessage
	if len(o.Event) > 0 {
		if err := json.Unmarshal(o.Event, &orig); err != nil {
			return nil, fmt.Errorf("label of event %s: the original event is not a JSON object: %w", o.EventID, err)
		}
	}
	if o.EventID == "" || !o.Label.Valid() {
		return nil, errors.New("label: needs an event id and a label (approve, decline, fraud, not_fraud)")
	}
	out := map[string]any{
		"id": "label:" + o.Source + ":" + o.EventID, "type": LabelType, "ts": o.At.UnixMilli(),
		"label": o.Label, "source": o.Source, "event_id": o.EventID, "event_type": o.Type,
	}
	if o.CaseID != "" {
		out["case_id"] = o.CaseID
	}
	if o.Analyst != "" {
		out["analyst"] = o.Analyst
	}
	for k, v := range orig {
		if !slices.Contains(labelFields, k) {
			out[k] = v
		}
	}
	return json.Marshal(out)
}
