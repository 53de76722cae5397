// Package features defines the per-entity history features analysts declare
// in features.yaml, the Store contract, and the window arithmetic every
// store (packages memstore and redisstore) computes features with.
package features

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/riskd/riskd/eventschema"
	"github.com/riskd/riskd/policyfile"
)

// Kind is what a feature computes over an entity's history.
type Kind uint8

// The eight feature kinds of features.yaml.
const (
	Count     Kind = iota + 1 // events in the window
	Sum                       // sum of `field` over the window
	Avg                       // mean of `field` over the window; nil when empty
	Max                       // largest `field` in the window; nil when empty
	Distinct                  // distinct values of `of` in the window
	Age                       // seconds since the key was first seen; 0 the first time
	SinceLast                 // seconds since the key's previous event; nil the first time
	Seen                      // whether the key was seen before
)

var kindNames = map[string]Kind{
	"count": Count, "sum": Sum, "avg": Avg, "max": Max, "distinct": Distinct,
	"age": Age, "since_last": SinceLast, "seen": Seen,
}

func (k Kind) String() string {
	for n, v := range kindNames {
		if v == k {
			return n
		}
	}
	return "unknown"
}

// Windowed reports whether the kind aggregates over a sliding window.
func (k Kind) Windowed() bool { return k >= Count && k <= Distinct }

// Bool reports whether the kind yields a boolean rather than a number.
func (k Kind) Bool() bool { return k == Seen }

// DefaultRetention is how long windowless features (seen, age, since_last)
// remember a key that stopped appearing, when features.yaml does not say.
const DefaultRetention = 400 * 24 * time.Hour

// Feature is one compiled entry of features.yaml.
type Feature struct {
	Name       string
	Kind       Kind
	Key        []Path        // entity key; several paths make a composite key
	Window     time.Duration // windowed kinds only
	Retention  time.Duration // windowless kinds only
	EventTypes []string      // recorded for these event types; empty means all
	Field      Path          // sum, avg, max
	Of         Path          // distinct
	// Where is the condition an event must meet to be recorded (an expr
	// expression over event.* and lists.*, compiled by package rules);
	// empty: every event of EventTypes. WherePos is where it is written,
	// for messages.
	Where    string
	WherePos policyfile.Pos
	Line     int // line in features.yaml, for messages
	// Entity names the key's fields ("card_id", "account_id+device_id"):
	// features with the same Entity share one history record per key
	// value in the stores.
	Entity string
	// EventLog is the history the feature reads and records, shared with the
	// entity's other features that record the same event types; Slot is
	// the feature's field in it (EventLog.Nums for sum, avg and max, EventLog.Ofs
	// for distinct).
	EventLog *EventLog
	Slot     int
	// InLog is the feature's position in EventLog.Features.
	InLog int
	// hash identifies the feature by name in stored answers.
	hash uint64
}

// EventLog is one entity's history of the events of some types: what the
// features keyed by that entity and recording those types read, so an
// event is written once per log rather than once per feature. Windowed
// kinds (count, sum, avg, max, distinct) and windowless ones (seen, age,
// since_last, per retention) keep separate logs, and so do features with
// different where conditions: a log holds exactly the events its
// features record, so no store ever needs to know about conditions.
type EventLog struct {
	// Name identifies the log within its entity, stable across reloads:
	// "w:checkout,login" or "s:*:400d" (windowless, with its retention),
	// followed by ":where=" and a hash of the condition for a filtered
	// log ("w:payment:where=1f0c3a9be2d4"), so editing a condition starts
	// a new history rather than mixing events recorded under the old one.
	Name       string
	Entity     string
	EventTypes []string // empty: all
	Where      string   // the features' where condition; empty: none
	Windowless bool
	// Horizon is how far back the log is read: the widest window of its
	// features, or their retention.
	Horizon  time.Duration
	Features []*Feature
	Nums     []Path // numeric fields its records keep (sum, avg, max)
	Ofs      []Path // fields whose values distinct counts (distinct)
	// Index is the log's position in Set.Logs.
	Index int
	// First: some feature needs the start of the key's run (seen, age).
	First  bool
	fields []FieldRef // Nums and Ofs sorted by name: a record's layout
}

// FieldRef is one field a log's records keep.
type FieldRef struct {
	Name string
	Num  bool // in Nums; else in Ofs
	Slot int  // its index in Nums or Ofs
}

// FieldOrder lists the log's fields sorted by name, the order a record
// keeps them in whatever order the policy declares them.
func (l *EventLog) FieldOrder() []FieldRef { return l.fields }

// Records reports whether events of type t are recorded into f.
func (f *Feature) Records(t string) bool {
	if len(f.EventTypes) == 0 {
		return true
	}
	for _, et := range f.EventTypes {
		if et == t {
			return true
		}
	}
	return false
}

// Horizon is how far back f ever looks: history older than this, measured
// from the newest event of the key, is never read again and is evicted.
func (f *Feature) Horizon() time.Duration {
	if f.Kind.Windowed() {
		return f.Window
	}
	return f.Retention
}

// Path is an event field, possibly nested: "billing.country".
type Path struct {
	Name  string   // as written
	Parts []string // split on dots
}

// NewPath splits a dotted field name.
func NewPath(name string) Path { return Path{Name: name, Parts: strings.Split(name, ".")} }

// Value is a feature's value for one event. Valid false is nil: the event
// lacks the key, or the kind has nothing to say yet (avg of no events).
type Value struct {
	Valid bool
	Num   float64
	Bool  bool
}

// Set is a compiled features.yaml: immutable once loaded.
type Set struct {
	File     string
	Features []*Feature
	// Schema is the event schema features.yaml declares (event_fields);
	// never nil, and empty when nothing is declared.
	Schema *eventschema.Schema
	// ListsNode is features.yaml's lists: mapping, if any: lists every
	// ruleset and every where can read, which package rules compiles.
	ListsNode *yaml.Node
	Logs      []*EventLog
	byName    map[string]int
	broken    []string // names of features that failed to parse
	// unreadable: features.yaml could not be read as a list at all, so any
	// name may be one of its features.
	unreadable bool
}

// Broken reports whether name is, or may be, a feature features.yaml
// declares but could not parse; a Set with broken features is never
// served.
func (s *Set) Broken(name string) bool {
	if s.unreadable {
		return true
	}
	for _, b := range s.broken {
		if b == name {
			return true
		}
	}
	return false
}

// Index returns the position of the feature called name.
func (s *Set) Index(name string) (int, bool) {
	i, ok := s.byName[name]
	return i, ok
}

// Names lists the feature names in file order.
func (s *Set) Names() []string {
	out := make([]string, len(s.Features))
	for i, f := range s.Features {
		out[i] = f.Name
	}
	return out
}

// NewSet links features declared in Go rather than in features.yaml
// (tests, tools) into a Set, as Parse does; their names must differ.
func NewSet(fs ...*Feature) *Set {
	s := &Set{Features: fs, Schema: &eventschema.Schema{}, byName: map[string]int{}}
	for i, f := range fs {
		s.byName[f.Name] = i
	}
	s.link()
	return s
}

// link groups the features into logs, in file order.
func (s *Set) link() {
	byName := map[string]*EventLog{}
	for _, f := range s.Features {
		types := append([]string(nil), f.EventTypes...)
		sort.Strings(types)
		types = slices.Compact(types)
		name := "w:" + strings.Join(types, ",")
		if len(types) == 0 {
			name = "w:*"
		}
		if !f.Kind.Windowed() {
			name = "s" + name[1:] + ":" + policyfile.FormatDuration(f.Retention)
		}
		if f.Where != "" {
			name += ":where=" + whereHash(f.Where)
		}
		id := f.Entity + "\x00" + name
		l := byName[id]
		if l == nil {
			l = &EventLog{Name: name, Entity: f.Entity, EventTypes: f.EventTypes, Where: f.Where, Windowless: !f.Kind.Windowed(), Index: len(s.Logs)}
			byName[id] = l
			s.Logs = append(s.Logs, l)
		}
		f.InLog = len(l.Features)
		f.hash = nameHash(f.Name)
		l.Features = append(l.Features, f)
		l.Horizon = max(l.Horizon, f.Horizon())
		f.EventLog = l
		switch f.Kind {
		case Sum, Avg, Max:
			f.Slot = slot(&l.Nums, f.Field)
		case Distinct:
			f.Slot = slot(&l.Ofs, f.Of)
		case Seen, Age:
			l.First = true
		}
	}
	for _, l := range s.Logs {
		for i, p := range l.Nums {
			l.fields = append(l.fields, FieldRef{Name: p.Name, Num: true, Slot: i})
		}
		for i, p := range l.Ofs {
			l.fields = append(l.fields, FieldRef{Name: p.Name, Slot: i})
		}
		sort.Slice(l.fields, func(i, j int) bool { return l.fields[i].Name < l.fields[j].Name })
	}
}

// whereHash names a condition in its log's name: 48 bits of SHA-256 of
// its text, enough that two conditions of one entity never meet.
func whereHash(where string) string {
	h := sha256.Sum256([]byte(where))
	return hex.EncodeToString(h[:6])
}

func slot(paths *[]Path, p Path) int {
	for i, q := range *paths {
		if q.Name == p.Name {
			return i
		}
	}
	*paths = append(*paths, p)
	return len(*paths) - 1
}
