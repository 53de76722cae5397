package replay

import (
	"time"

	"github.com/valyala/fastjson"

	"github.com/riskd/riskd/features"
)

// KnownFraud describes when a fraud becomes known, so that the events of
// an entity (a card, a customer) already known to be defrauded can be left
// out of the counts. A team blocks such an entity outright; counting its
// later events flatters any policy that remembers chargebacks. This is the
// Fraud Detection Handbook's evaluation protocol: with Field customer_id,
// Delay 7 days, Batch 24h and From the start of its training week, the
// events left are its test set.
type KnownFraud struct {
	// Field is the event field naming the entity (dots for nested
	// fields); "" leaves nothing out.
	Field string
	// Delay is how long after a fraudulent event its label arrives (a
	// chargeback).
	Delay time.Duration
	// Batch is how often arrived labels are taken in: at every multiple of
	// Batch since the Unix epoch (24h: each UTC midnight), a label that
	// arrived before it is known from then on. 0: a label is known the
	// moment after it arrives.
	Batch time.Duration
	// From (Unix ms) is the first event time whose frauds become known; 0:
	// all of the history. The handbook's protocol knows only the frauds of
	// its training week onwards.
	From int64
}

// knownFraud follows, in event-time order, which entities have a fraud
// known, and from when.
type knownFraud struct {
	KnownFraud
	path   features.Path
	parser fastjson.Parser
	// knownAt is, per entity, the first event time at which one of its
	// frauds is known. Events come in time order and the time a fraud is
	// known grows with its own, so the first fraud seen sets it for good.
	knownAt map[string]int64
	key     []byte
}

func newKnownFraud(k KnownFraud) *knownFraud {
	if k.Field == "" {
		return nil
	}
	return &knownFraud{KnownFraud: k, path: features.NewPath(k.Field), knownAt: map[string]int64{}}
}

// see reports whether ev's entity had a fraud known before ev, then notes
// ev's own label. ev comes after every event seen before it in time.
func (k *knownFraud) see(ev *Event) bool {
	v, err := k.parser.ParseBytes(ev.Body)
	if err != nil {
		return false // Read let it through, so it parsed once; the engine says what is wrong
	}
	var ok bool
	if k.key, ok = appendEntity(k.key[:0], v.Get(k.path.Parts...)); !ok {
		return false // no entity: nothing to know about it
	}
	at, seen := k.knownAt[string(k.key)]
	known := seen && ev.TS >= at
	if ev.Label == 1 && ev.TS >= k.From && !seen {
		k.knownAt[string(k.key)] = k.arrival(ev.TS)
	}
	return known
}

// arrival is the first event time at which a fraud at ts is known.
func (k *knownFraud) arrival(ts int64) int64 {
	arrived := ts + k.Delay.Milliseconds()
	b := k.Batch.Milliseconds()
	if b <= 0 {
		return arrived + 1
	}
	// The first batch strictly after the label arrived (floor, so events
	// before 1970 are batched alike).
	q := arrived / b
	if arrived%b < 0 {
		q--
	}
	return (q + 1) * b
}

// appendEntity appends the value naming an entity: a string's text, a
// number as written, a boolean; false for anything else (absent, null, an
// empty string, an object), which names no entity.
func appendEntity(dst []byte, v *fastjson.Value) ([]byte, bool) {
	if v == nil {
		return dst, false
	}
	switch v.Type() {
	case fastjson.TypeString:
		b := v.GetStringBytes()
		// A type byte keeps the string "1" apart from the number 1.
		return append(append(dst, 's'), b...), len(b) > 0
	case fastjson.TypeNumber, fastjson.TypeTrue, fastjson.TypeFalse:
		return v.MarshalTo(append(dst, 'n')), true
	}
	return dst, false
}
