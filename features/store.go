package features

import (
	"context"
	"slices"
	"strings"
	"time"
)

// Store keeps entity history and answers features from it. Observe is the
// whole hot-path contract: one call per event that reads every requested
// feature as it stood strictly before the event and records the event, so
// a networked store can do both in one round trip.
//
// Semantics shared by every implementation (the conformance suite holds
// them to an exact oracle):
//   - history is ordered by (ts, arrival); a windowed feature sees the
//     events of its log recorded before the current one with
//     now-window < ts <= now;
//   - an event more than the lateness allowance behind its log's newest
//     event sees that log only from newest - horizon - lateness on;
//   - an event id answered within the idempotency window is not recorded
//     again and gets its first answer's values (Observation.Retry);
//   - windows and retention apply from timestamps when read: when history
//     is trimmed or expires never changes an answer.
type Store interface {
	Observe(ctx context.Context, obs *Observation) error
	// KeepDecision keeps dec, what an event id's first answer decided
	// (at most MaxDecisionBytes; the store copies it), beside that
	// answer for as long: GET /v1/decisions/{id} reads it back.
	KeepDecision(id string, dec []byte)
	// Decision returns the decision kept for id within the idempotency
	// window; nil when there is none (never scored, expired, forgotten).
	Decision(ctx context.Context, id string) ([]byte, error)
	// Ready reports whether the store can serve (for /readyz).
	Ready(ctx context.Context) error
	Close() error
}

// MaxDecisionBytes bounds the decision a store keeps per event id
// (KeepDecision): the engine cuts what it hands in to fit, so the
// decisions kept add at most this many bytes per id to the answers.
const MaxDecisionBytes = 512

// Options are what both stores share. Zero values take the defaults.
type Options struct {
	// IdempotencyWindow is how long an event id's first answer is kept
	// for its retries, on the store's clock. Default 24h.
	IdempotencyWindow time.Duration
	// Lateness is how far behind its log's newest event an event may be
	// and still see its exact window. Default DefaultLateness.
	Lateness time.Duration
	// RunningFrom is the window size (in records) from which a read in
	// order keeps a running aggregate instead of scanning the window;
	// below it a scan is as cheap. Default DefaultRunningFrom; negative:
	// always (the conformance suite holds that path to the oracle too).
	RunningFrom int
}

// DefaultIdempotencyWindow, DefaultLateness and DefaultRunningFrom are
// the Options defaults.
const (
	DefaultIdempotencyWindow = 24 * time.Hour
	DefaultLateness          = 10 * time.Minute
	DefaultRunningFrom       = 32
)

// SetDefaults replaces zero values by the defaults.
func (o *Options) SetDefaults() {
	if o.IdempotencyWindow <= 0 {
		o.IdempotencyWindow = DefaultIdempotencyWindow
	}
	if o.Lateness <= 0 {
		o.Lateness = DefaultLateness
	}
	switch {
	case o.RunningFrom == 0:
		o.RunningFrom = DefaultRunningFrom
	case o.RunningFrom < 0:
		o.RunningFrom = 0
	}
}

// TTLMargin is how long past its horizon (plus the lateness allowance)
// history is kept when no event reads it: Redis keys live that much
// longer than their newest event needs, and the memory store sweeps idle
// keys after as long on its clock. An event more than this behind the
// clock could find an idle key's history gone; nothing else depends on
// when history goes.
const TTLMargin = 24 * time.Hour

// WindowFrom is where the window of an event at ts starts: it holds the
// records with WindowFrom(ts) < their ts <= ts.
func (f *Feature) WindowFrom(ts int64) int64 { return ts - f.Window.Milliseconds() }

// ReadFrom is how far back an event at ts reads the log: no feature of
// it counts a record at or before ReadFrom(ts).
func (l *EventLog) ReadFrom(ts int64) int64 { return ts - l.Horizon.Milliseconds() }

// TrimTo is what recording an event at ts may drop from the log: records
// at or before it, which no event within the lateness allowance of this
// one reads.
func (l *EventLog) TrimTo(ts, lateness int64) int64 { return l.ReadFrom(ts) - lateness }

// Expired reports whether a log last recorded into at written (the
// store's clock) is past keeping: its horizon, the lateness allowance and
// TTLMargin ago, as a Redis key's time to live runs out. Both stores read
// such a log as absent, so whether it has been dropped yet changes no
// answer.
func (l *EventLog) Expired(written, now, lateness int64) bool {
	return written <= now-l.Horizon.Milliseconds()-lateness-TTLMargin.Milliseconds()
}

// Observation is one event as the store sees it: the logs it touches
// (Entries) and the features it reads (Items). The engine reuses
// Observations between events; Keys and values may alias its buffers, so
// a store copies what it keeps.
type Observation struct {
	EventID string
	TS      int64 // event time, Unix milliseconds
	Entries []Entry
	Items   []Item
	// Retry is set by Observe when the id was answered before: Items hold
	// that answer's values and nothing was recorded.
	Retry bool
	// Body identifies the event's content (a hash of its body; zero: not
	// given). It is kept with the answer, and a retry whose Body differs
	// sets Conflict: the id was reused for another event, which must not
	// get the first one's features (a payment API refuses an idempotency
	// key reused with other parameters the same way).
	Body     [16]byte
	Conflict bool
	nums     []numField
	ofs      []distinctField
}

// Entry is one log of one key that the event reads or is recorded into.
type Entry struct {
	EventLog *EventLog
	Key      string // the entity: key field values, joined by KeySep
	Record   bool   // the event is one of the log's types: record it
	num0     int    // this entry's values start at Observation.nums[num0]
	of0      int    // and at Observation.ofs[of0]
}

// Item is one feature the event reads.
type Item struct {
	Feature *Feature
	Entry   int   // index in Observation.Entries
	Value   Value // set by Observe
}

// numField is the event's value of one numeric field of a log (sum, avg,
// max), if it has one.
type numField struct {
	micro int64
	ok    bool
}

// distinctField is the event's value of one field a log counts distinct
// values of, if it has one.
type distinctField struct {
	val string
	ok  bool
}

// Clone is a copy of o that aliases none of its buffers (keys, ids and
// values are copied too): for a store that finishes an event after its
// caller gave up and reused o.
func (o *Observation) Clone() *Observation {
	c := &Observation{EventID: strings.Clone(o.EventID), TS: o.TS, Retry: o.Retry,
		Entries: slices.Clone(o.Entries), Items: slices.Clone(o.Items), nums: slices.Clone(o.nums), ofs: slices.Clone(o.ofs)}
	for i := range c.Entries {
		c.Entries[i].Key = strings.Clone(c.Entries[i].Key)
	}
	for i := range c.ofs {
		c.ofs[i].val = strings.Clone(c.ofs[i].val)
	}
	return c
}

// Reset empties the observation for another event, keeping its buffers.
func (o *Observation) Reset(id string, ts int64) {
	o.EventID, o.TS, o.Retry, o.Body, o.Conflict = id, ts, false, [16]byte{}, false
	o.Entries, o.Items, o.nums, o.ofs = o.Entries[:0], o.Items[:0], o.nums[:0], o.ofs[:0]
}

// AddEntry adds a log of key; its field values start absent.
func (o *Observation) AddEntry(l *EventLog, key string, record bool) int {
	o.Entries = append(o.Entries, Entry{EventLog: l, Key: key, Record: record, num0: len(o.nums), of0: len(o.ofs)})
	for range l.Nums {
		o.nums = append(o.nums, numField{})
	}
	for range l.Ofs {
		o.ofs = append(o.ofs, distinctField{})
	}
	return len(o.Entries) - 1
}

// SetNum sets entry e's numeric field slot, in micro-units.
func (o *Observation) SetNum(e, slot int, micro int64) {
	o.nums[o.Entries[e].num0+slot] = numField{micro: micro, ok: true}
}

// SetOf sets entry e's distinct field slot.
func (o *Observation) SetOf(e, slot int, v string) {
	o.ofs[o.Entries[e].of0+slot] = distinctField{val: v, ok: true}
}

// Num returns entry e's numeric field slot, if the event has it.
func (o *Observation) Num(e, slot int) (int64, bool) {
	n := o.nums[o.Entries[e].num0+slot]
	return n.micro, n.ok
}

// Of returns entry e's distinct field slot, if the event has it.
func (o *Observation) Of(e, slot int) (string, bool) {
	v := o.ofs[o.Entries[e].of0+slot]
	return v.val, v.ok
}

// AddItem asks for feature f of entry e.
func (o *Observation) AddItem(f *Feature, e int) {
	o.Items = append(o.Items, Item{Feature: f, Entry: e})
}

// KeySep joins the values of a composite key. The engine escapes it (and
// its escape byte) inside each value, so composite keys never collide.
const KeySep = "\x1f"
