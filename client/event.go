package client

import (
	"encoding/json"
	"fmt"
	"time"
)

// Event is what riskd scores: a checkout, a login, a sign-up…
type Event struct {
	// ID identifies the event and is its idempotency key: a retry sends
	// the same ID, and riskd answers it as it did the first time without
	// counting it again.
	ID string
	// Type selects the ruleset: "checkout", "login", "signup", …
	Type string
	// TS is when the event happened; zero: when riskd receives it.
	TS time.Time
	// Fields are the other fields, as the policy's features and rules
	// read them: "account_id", "card_id", "amount", "ip_country"…; nested
	// objects are maps. An amount may be a json.Number to send its exact
	// decimal text. "id", "type" and "ts" are set by the fields above.
	Fields map[string]any
}

// MarshalJSON writes the event as riskd reads it: one object with id,
// type, ts and the fields.
func (e Event) MarshalJSON() ([]byte, error) {
	if e.ID == "" || e.Type == "" {
		return nil, fmt.Errorf("an event needs an ID and a Type (got ID %q, Type %q)", e.ID, e.Type)
	}
	for _, k := range []string{"id", "type", "ts"} {
		if _, ok := e.Fields[k]; ok {
			return nil, fmt.Errorf("client.Event's Fields holds %q: set its ID, Type and TS instead", k)
		}
	}
	head := struct {
		ID   string `json:"id"`
		Type string `json:"type"`
		TS   string `json:"ts,omitempty"`
	}{ID: e.ID, Type: e.Type}
	if !e.TS.IsZero() {
		head.TS = e.TS.UTC().Format(time.RFC3339Nano)
	}
	out, err := json.Marshal(head)
	if err != nil || len(e.Fields) == 0 {
		return out, err
	}
	rest, err := json.Marshal(e.Fields)
	if err != nil {
		return nil, fmt.Errorf("event %s: %w", e.ID, err)
	}
	// Splice the fields' object into the head's: {"id":…,"type":…,"k":…}.
	return append(append(out[:len(out)-1], ','), rest[1:]...), nil
}
