// Package rules loads the analysts' policy directory (features.yaml and
// ruleset files) and compiles every rule once into expr programs.
package rules

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"time"

	"github.com/riskd/riskd/features"
	"github.com/riskd/riskd/models"
)

// Outcome is a decision: pass, step_up, review or block, ordered by
// severity. Review sits below block: an analyst may still let the event
// through, a block is final.
type Outcome uint8

// The outcomes, least severe first.
const (
	Pass Outcome = iota
	StepUp
	Review
	Block
)

// NumOutcomes is how many outcomes there are: arrays indexed by Outcome
// have this length.
const NumOutcomes = int(Block) + 1

// Outcomes lists every outcome, least severe first.
var Outcomes = [NumOutcomes]Outcome{Pass, StepUp, Review, Block}

func (o Outcome) String() string {
	switch o {
	case StepUp:
		return "step_up"
	case Review:
		return "review"
	case Block:
		return "block"
	}
	return "pass"
}

// ParseOutcome returns the outcome named s ("pass", "step_up", "review",
// "block").
func ParseOutcome(s string) (Outcome, bool) {
	for _, o := range Outcomes {
		if o.String() == s {
			return o, true
		}
	}
	return Pass, false
}

// NoThreshold is the threshold of a band a ruleset does not use (review
// or block left out of thresholds): no score reaches it.
const NoThreshold = math.MaxInt64

// Policy is one loaded policy directory. It is immutable: a reload builds a
// new Policy and swaps a pointer, so scoring never locks to read it.
type Policy struct {
	Dir      string
	Features *features.Set
	Models   *models.Set // models.yaml; nil without one
	// ModelInputs computes each model's inputs, in Models' order.
	ModelInputs []*ModelInputs
	Rulesets    []*Ruleset // sorted by name
	// Filters holds, per log of Features (by Log.Index), the where
	// condition its events must meet to be recorded; nil: none.
	Filters []*Filter
	// Lists are features.yaml's lists, which every ruleset and where
	// reads; a ruleset's own are in Ruleset.Lists.
	Lists map[string]*List
	// ListFiles are the list files the policy's lists read; ListBytes
	// counts every list file of the directory, read or not, against
	// DirOptions.MaxListBytes.
	ListFiles []ListFile
	ListBytes int
	// MutableLists names the mutable lists declared anywhere in the
	// policy: the admin API changes these.
	MutableLists []string
	LoadedAt     time.Time
	// Warnings are what the policy may not mean, each as file:line:col:
	// message: rules reading event fields the schema does not declare.
	Warnings []string
	byType   map[string]*Ruleset
	digest   [32]byte // of the files it was compiled from
}

// ForType returns the ruleset that scores events of type t, or nil.
func (p *Policy) ForType(t string) *Ruleset { return p.byType[t] }

// Ruleset is one compiled ruleset file.
type Ruleset struct {
	Name       string
	Version    string
	Hash       string // of the file's bytes: tells two edits apart whatever the version says
	File       string
	EventTypes []string
	// Thresholds, in order StepUp <= Review < Block; a band the ruleset
	// leaves out (review, or block when review is given) is NoThreshold.
	StepUp int64
	Review int64
	Block  int64
	// Base, when set, makes the ruleset model-first: its score starts at
	// the model's prediction at a stated scale, and the rules add to it.
	Base *Base
	// FailClosed: when features cannot be read (store down or slow), the
	// decision is at least step_up. Default: fail open, score with what
	// there is.
	FailClosed bool
	// Lists are the ruleset's own lists (features.yaml's are
	// Policy.Lists).
	Lists map[string]*List
	Rules []*Rule

	// ShadowOf names the live ruleset this one challenges; empty for a
	// live ruleset. Champion is that ruleset once loaded.
	ShadowOf string
	Champion *Ruleset
	// TrafficPPM is the share of split keys, in parts per million, for
	// which this challenger decides instead of its champion; 0: shadow
	// only. SplitKey is the event field whose value is hashed (SplitBucket).
	TrafficPPM int
	SplitKey   features.Path
	// Challengers of a live ruleset, by name.
	Challengers []*Ruleset

	// Reads lists the features (indexes into Policy.Features) that the
	// rules read, in index order; only these are fetched from the store.
	Reads []int
	// Slots are the values the rules read, features (in Reads' order) then
	// event fields: what an Env is filled with for each event.
	Slots  []Slot
	layout *layout
}

// RuleResult is what one rule did for one event.
type RuleResult struct {
	Fired bool
	Score int64 // when fired
	Err   error // why it did not fire, if it failed
}

// Eval evaluates every rule in e, filled for one event, and writes one
// result per rule into out (grown as needed), which it returns.
func (rs *Ruleset) Eval(e *Env, out []RuleResult) []RuleResult {
	out = append(out[:0], make([]RuleResult, len(rs.Rules))...)
	for i, r := range rs.Rules {
		fired, err := e.run(r.when)
		switch {
		case err != nil:
			out[i].Err = err
		case fired == true:
			out[i] = r.score(e)
		}
	}
	return out
}

// score is the result of a rule whose condition holds.
func (r *Rule) score(e *Env) RuleResult {
	if r.graded == nil {
		return RuleResult{Fired: true, Score: r.Score}
	}
	v, err := e.run(r.graded)
	if err != nil {
		return RuleResult{Err: fmt.Errorf("score: %w", err)}
	}
	f, _ := v.(float64)
	s, ok := ScoreOf(f)
	if !ok {
		return RuleResult{Err: fmt.Errorf("score: %v is not a finite number", v)}
	}
	return RuleResult{Fired: true, Score: s}
}

// Exercise runs rule i of e's ruleset as if it fired: its condition, its
// graded score and its reason (appended to dst), whatever the condition
// answers. It is what a rule can cost an event (riskctl validate -cost).
func (e *Env) Exercise(i int, dst []byte) []byte {
	r := e.rs.Rules[i]
	if e.budget == &e.own {
		e.own.Reset() // each run is one event's
	}
	e.run(r.when) // errors cost what they cost
	if r.graded != nil {
		e.run(r.graded)
	}
	return r.Reason.Render(dst, e)
}

// Rule is one compiled rule.
type Rule struct {
	ID     string
	Line   int
	Score  int64   // fixed score, when the score is not an expression
	Action Outcome // Pass: no forced action
	Reason Template
	when   *program
	graded *program // score: "expression"
	lists  []listRef
}

// ListVersion names a file or mutable list a fired rule read, and the
// version of it the event was evaluated against: the decision says which
// list, as it stood, blocked it.
type ListVersion struct {
	Name    string
	Version string
}

// listRef is a file or mutable list a rule reads: a file list's version
// is fixed, a mutable list's is its snapshot's in the slot.
type listRef struct {
	name, version string
	slot          int // mutable: its slot; -1 for a file list
}

// linkLists notes, on each rule, the file and mutable lists its
// expressions read (visible: the lists the ruleset sees).
func (rs *Ruleset) linkLists(visible map[string]*List) {
	slotOf := map[string]int{}
	for i, s := range rs.Slots {
		if s.List != "" {
			slotOf[s.List] = i
		}
	}
	for _, r := range rs.Rules {
		progs := []*program{r.when, r.graded}
		for _, p := range r.Reason.parts {
			progs = append(progs, p.prog)
		}
		seen := map[string]bool{}
		for _, p := range progs {
			if p == nil {
				continue
			}
			for _, name := range p.lists {
				if seen[name] {
					continue
				}
				seen[name] = true
				ref := listRef{name: name, slot: -1}
				if l := visible[name]; l.Mutable {
					ref.slot = slotOf[name]
				} else {
					ref.version = l.Version
				}
				r.lists = append(r.lists, ref)
			}
		}
		sort.Slice(r.lists, func(i, j int) bool { return r.lists[i].name < r.lists[j].name })
	}
}

// ListVersions appends to dst the file and mutable lists rule i reads,
// each with the version the event in e was evaluated against.
func (e *Env) ListVersions(dst []ListVersion, i int) []ListVersion {
	for _, ref := range e.rs.Rules[i].lists {
		v := ref.version
		if ref.slot >= 0 && e.snaps != nil && e.snaps[ref.slot] != nil {
			v = e.snaps[ref.slot].VersionText
		}
		dst = append(dst, ListVersion{Name: ref.name, Version: v})
	}
	return dst
}

// Outcome applies the thresholds to a score.
func (rs *Ruleset) Outcome(score int64) Outcome {
	switch {
	case score >= rs.Block:
		return Block
	case score >= rs.Review:
		return Review
	case score >= rs.StepUp:
		return StepUp
	}
	return Pass
}

// FeatureEnvKey is the expression-environment name of a feature.
func FeatureEnvKey(name string) string { return "features." + name }

// ScoreOf converts a graded score's result into the whole points the
// decision carries: rounding each rule's share keeps the attribution exact
// (the reasons add up to the score with no float residue).
func ScoreOf(v float64) (int64, bool) {
	if math.IsNaN(v) || math.IsInf(v, 0) || math.Abs(v) > 1e12 {
		return 0, false
	}
	return int64(math.Round(v)), true
}

// formatNumber writes a number the way a reason reads best: whole numbers
// without a decimal point, others with at most two decimals.
func formatNumber(dst []byte, v float64) []byte {
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		return strconv.AppendInt(dst, int64(v), 10)
	}
	r := math.Round(v*100) / 100
	return strconv.AppendFloat(dst, r, 'f', -1, 64)
}

// SplitBuckets is the resolution of a traffic split: a key falls in one of
// a million buckets, and a challenger with traffic p% owns p*10,000 of them.
const SplitBuckets = 1_000_000

// SplitBucket places a split key's value in [0, SplitBuckets): FNV-1a (64
// bit) of "field=value", modulo SplitBuckets. It depends on nothing but
// the field name and the value, so a key stays on its side across restarts,
// instances and other rulesets' edits; mixing in the field name keeps
// splits on different fields independent.
func SplitBucket(field, value string) int {
	const offset, prime = 14695981039346656037, 1099511628211
	h := uint64(offset)
	for i := 0; i < len(field); i++ {
		h = (h ^ uint64(field[i])) * prime
	}
	h = (h ^ '=') * prime
	for i := 0; i < len(value); i++ {
		h = (h ^ uint64(value[i])) * prime
	}
	return int(h % SplitBuckets)
}

// Live returns which of rs (a live ruleset) and its challengers decides an
// event whose split keys have the given buckets: challengers with traffic
// own consecutive ranges of buckets in name order (so two splits on the
// same field never overlap). bucket reports a challenger's bucket, false
// when the event has no value for its split key: it then stays with rs.
func (rs *Ruleset) Live(bucket func(c *Ruleset) (int, bool)) *Ruleset {
	lo := 0
	for _, c := range rs.Challengers {
		if c.TrafficPPM == 0 {
			continue
		}
		hi := lo + c.TrafficPPM
		if b, ok := bucket(c); ok && b >= lo && b < hi {
			return c
		}
		lo = hi
	}
	return rs
}
