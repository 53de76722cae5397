package features

import "context"

// Store keeps entity history and answers features from it. Observe is the
// whole hot-path contract: one call per event that reads every requested
// feature as it stood strictly before the event and records the event, so
// a networked store can do both in one round trip.
//
// Semantics shared by every implementation (the conformance tests hold
// them to it):
//   - history is ordered by (ts, arrival); a feature sees the events of its
//     key that come before the current one in that order and, for windowed
//     kinds, whose ts is within the window: now-window < ts <= now;
//   - an event id is recorded once; a retry is answered from the position
//     of the first delivery, so it gets the same features;
//   - what is older than a feature's horizon (window, or retention for
//     seen/age/since_last) measured from the key's newest event is evicted.
type Store interface {
	Observe(ctx context.Context, obs *Observation) error
	// Ready reports whether the store can serve (for /readyz).
	Ready(ctx context.Context) error
	Close() error
}

// Observation is one event as the store sees it. The engine reuses
// Observations between events; Key, Of and EventID may alias its buffers,
// so a store copies what it keeps.
type Observation struct {
	EventID string
	TS      int64 // event time, Unix milliseconds
	Items   []Item
}

// Item is one feature of one event.
type Item struct {
	Feature *Feature
	Key     string // the entity: key field values, joined by KeySep
	Read    bool   // some ruleset scoring this event reads the feature
	Record  bool   // the event is recorded into the feature
	Num     float64
	Of      string
	Value   Value // set by Observe when Read
}

// KeySep joins the values of a composite key. It cannot appear in a value
// that came from a JSON string without being escaped, so keys never collide.
const KeySep = "\x1f"
