// Package cases keeps the review cases analysts work through: what a
// review decision saw, who holds a case, and how it was resolved, in
// Redis, in a local bbolt file or in memory behind one Store contract.
package cases

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/riskd/riskd/engine"
	"github.com/riskd/riskd/rules"
)

// DefaultRetention is how long a case is kept after it was opened or,
// once resolved, after its resolution. The outcomes themselves go to the
// decisions topic, which keeps them as long as it is configured to.
const DefaultRetention = 30 * 24 * time.Hour

// MaxNoteBytes bounds a resolution's note.
const MaxNoteBytes = 4 << 10

// Case is one review decision as an analyst needs it: the event, what the
// rules saw (every feature the ruleset read, model scores, the rules that
// fired with their points, reasons and list versions), the ruleset that
// decided, and the case's state.
type Case struct {
	ID       string          `json:"id"`
	EventID  string          `json:"event_id"`
	Type     string          `json:"type"`
	Event    json.RawMessage `json:"event"`
	Decision string          `json:"decision"`
	Score    int64           `json:"score"`
	Ruleset  string          `json:"ruleset"`
	Version  string          `json:"version"`
	Reasons  []Reason        `json:"reasons"`
	Features []Feature       `json:"features"`
	Models   []Model         `json:"models,omitempty"`
	Degraded bool            `json:"degraded,omitempty"`
	OpenedAt time.Time       `json:"opened_at"`
	// Keys are the event's entity keys (EntityKeys): the case is found
	// by them among the cases of the same card, account or device.
	Keys []string `json:"keys,omitempty"`

	// Claim is the analyst holding the case, if the claim has not
	// expired; Resolution is set once the case is resolved.
	Claim      *Claim      `json:"claim,omitempty"`
	Resolution *Resolution `json:"resolution,omitempty"`
}

// Reason is one fired rule's share of the decision.
type Reason struct {
	Rule   string            `json:"rule"`
	Score  int64             `json:"score"`
	Reason string            `json:"reason"`
	Action string            `json:"action,omitempty"`
	Lists  map[string]string `json:"lists,omitempty"` // list name -> version read
}

// Feature is one feature value as the rules saw it: a float64, a bool,
// or nil when the event had no key or history for it.
type Feature struct {
	Name  string `json:"name"`
	Value any    `json:"value"`
}

// Model is one model's prediction.
type Model struct {
	Name  string  `json:"name"`
	Score float64 `json:"score"`
}

// Claim is an analyst's hold on a case, until it expires.
type Claim struct {
	Analyst string    `json:"analyst"`
	Until   time.Time `json:"until"`
}

// Outcome is an analyst's verdict on a case.
type Outcome string

// The outcomes of a case. Approve and decline say what to do with the
// order; fraud and not_fraud also say what the event was, and become
// labels a policy can count.
const (
	Approve  Outcome = "approve"
	Decline  Outcome = "decline"
	Fraud    Outcome = "fraud"
	NotFraud Outcome = "not_fraud"
)

// Outcomes lists every outcome.
var Outcomes = []Outcome{Approve, Decline, Fraud, NotFraud}

// Valid reports whether o is one of Outcomes.
func (o Outcome) Valid() bool {
	for _, x := range Outcomes {
		if o == x {
			return true
		}
	}
	return false
}

// Resolution is how a case was closed, once.
type Resolution struct {
	Outcome Outcome   `json:"outcome"`
	Note    string    `json:"note,omitempty"`
	Analyst string    `json:"analyst"`
	At      time.Time `json:"at"`
}

// Summary is a case as the queue lists it.
type Summary struct {
	ID       string    `json:"id"`
	EventID  string    `json:"event_id"`
	Type     string    `json:"type"`
	Decision string    `json:"decision"`
	Score    int64     `json:"score"`
	Ruleset  string    `json:"ruleset"`
	Rules    []string  `json:"rules"` // the rules that fired
	OpenedAt time.Time `json:"opened_at"`
	Claim    *Claim    `json:"claim,omitempty"`
	// Resolution is filled by Store.Related only (the queue lists open
	// cases).
	Resolution *Resolution `json:"resolution,omitempty"`
}

// Summary returns c's queue line.
func (c *Case) Summary() Summary {
	s := Summary{ID: c.ID, EventID: c.EventID, Type: c.Type, Decision: c.Decision, Score: c.Score, Ruleset: c.Ruleset, OpenedAt: c.OpenedAt, Claim: c.Claim}
	for _, r := range c.Reasons {
		s.Rules = append(s.Rules, r.Rule)
	}
	return s
}

// Order is how the queue is sorted.
type Order string

// Queue orders: oldest first, or highest score first (ties oldest first).
const (
	ByAge   Order = "age"
	ByScore Order = "score"
)

// Query selects a page of open cases. Empty filters match every case.
type Query struct {
	Ruleset  string
	Rule     string // a rule that fired
	Decision string
	Order    Order // default ByAge
	Offset   int
	Limit    int // default 50, at most MaxLimit
}

// MaxLimit bounds a page.
const MaxLimit = 500

func (q *Query) defaults() {
	if q.Order == "" {
		q.Order = ByAge
	}
	if q.Limit <= 0 {
		q.Limit = 50
	}
	q.Limit = min(q.Limit, MaxLimit)
	q.Offset = max(q.Offset, 0)
}

func (q *Query) matches(ruleset, decision string, fired []string) bool {
	if q.Ruleset != "" && ruleset != q.Ruleset || q.Decision != "" && decision != q.Decision {
		return false
	}
	if q.Rule == "" {
		return true
	}
	for _, r := range fired {
		if r == q.Rule {
			return true
		}
	}
	return false
}

// Page is one page of the queue.
type Page struct {
	Cases []Summary `json:"cases"`
	// More says a later page has cases.
	More bool `json:"more"`
}

// Stats describe the open queue.
type Stats struct {
	Open int
	// OldestOpen is when the oldest open case was opened; zero when none
	// is open.
	OldestOpen time.Time
}

// Store keeps cases. Every implementation passes the same conformance
// suite (store_test.go).
type Store interface {
	// Open stores a new open case. A case with c.ID already stored, open
	// or resolved, is left as it is and Open reports false: a retried
	// event opens its case once.
	Open(ctx context.Context, c *Case) (bool, error)
	// Get returns the case with its current claim and resolution, or
	// ErrNotFound.
	Get(ctx context.Context, id string) (*Case, error)
	// Claim gives the case to analyst until ttl from now, or extends the
	// analyst's own claim. It fails with a *ClaimedError when another
	// analyst's claim has not expired, ErrResolved or ErrNotFound.
	Claim(ctx context.Context, id, analyst string, ttl time.Duration) (Claim, error)
	// Release gives up analyst's claim; releasing a claim analyst does
	// not hold does nothing.
	Release(ctx context.Context, id, analyst string) error
	// Resolve closes the case, once, for the analyst holding its claim:
	// ErrNotClaimed without a live claim of the analyst's, a
	// *ClaimedError when another analyst holds it, ErrResolved when it
	// was resolved before. It returns the resolved case.
	Resolve(ctx context.Context, id, analyst string, o Outcome, note string) (*Case, error)
	// Queue lists open cases.
	Queue(ctx context.Context, q Query) (Page, error)
	// Stats counts the open cases.
	Stats(ctx context.Context) (Stats, error)
	// Related lists the latest cases, open or resolved, that share one of
	// keys (Case.Keys), newest first, without case self: at most limit,
	// from the MaxRelated latest of each key.
	Related(ctx context.Context, keys []string, self string, limit int) ([]Summary, error)
	// Close releases the store's resources.
	Close() error
}

// Errors callers branch on.
var (
	ErrNotFound   = errors.New("no such case (never opened, or past its retention)")
	ErrResolved   = errors.New("case already resolved")
	ErrNotClaimed = errors.New("claim the case before resolving it (a claim expires)")
	ErrClaimed    = errors.New("case claimed by another analyst")
)

// ClaimedError says who holds a case; it matches ErrClaimed.
type ClaimedError struct{ Claim Claim }

func (e *ClaimedError) Error() string {
	return fmt.Sprintf("case claimed by %s until %s", e.Claim.Analyst, e.Claim.Until.UTC().Format(time.RFC3339))
}

// Is makes errors.Is(err, ErrClaimed) hold.
func (e *ClaimedError) Is(target error) bool { return target == ErrClaimed }

// checkResolve refuses what no store should record.
func checkResolve(analyst string, o Outcome, note string) error {
	if analyst == "" {
		return errors.New("resolve: no analyst named")
	}
	if !o.Valid() {
		return fmt.Errorf("resolve: outcome %q: want approve, decline, fraud or not_fraud", o)
	}
	if len(note) > MaxNoteBytes || !utf8.ValidString(note) {
		return fmt.Errorf("resolve: the note must be UTF-8 text of at most %d bytes", MaxNoteBytes)
	}
	return nil
}

func checkClaim(analyst string, ttl time.Duration) error {
	if analyst == "" {
		return errors.New("claim: no analyst named")
	}
	if ttl <= 0 {
		return fmt.Errorf("claim: expiry %v must be positive", ttl)
	}
	return nil
}

// FromDecision makes the case of a review decision on event (its bytes as
// received), opened at now. It copies what it keeps: d and event may be
// reused once it returns.
func FromDecision(d *engine.Decision, event []byte, now time.Time) *Case {
	c := &Case{
		ID: strings.Clone(d.CaseID), EventID: strings.Clone(d.EventID), Type: strings.Clone(d.Type),
		Event:    json.RawMessage(append([]byte(nil), event...)),
		Decision: d.Outcome.String(), Score: d.Score, Ruleset: strings.Clone(d.Ruleset), Version: strings.Clone(d.Version),
		Degraded: d.Degraded, OpenedAt: now.UTC().Truncate(time.Millisecond),
		Reasons: make([]Reason, 0, len(d.Reasons)), Features: make([]Feature, 0, len(d.Features)),
	}
	if !json.Valid(c.Event) {
		// Scored events are valid JSON; keep the case readable whatever
		// a caller passes.
		c.Event, _ = json.Marshal(string(event))
	}
	for _, r := range d.Reasons {
		cr := Reason{Rule: strings.Clone(r.Rule), Score: r.Score, Reason: strings.Clone(r.Text)}
		if r.Action != rules.Pass {
			cr.Action = r.Action.String()
		}
		for _, l := range r.Lists {
			if cr.Lists == nil {
				cr.Lists = map[string]string{}
			}
			cr.Lists[strings.Clone(l.Name)] = strings.Clone(l.Version)
		}
		c.Reasons = append(c.Reasons, cr)
	}
	for _, f := range d.Features {
		var v any
		switch {
		case !f.Value.Valid:
		case f.Bool:
			v = f.Value.Bool
		default:
			v = f.Value.Num
		}
		c.Features = append(c.Features, Feature{Name: strings.Clone(f.Name), Value: v})
	}
	for _, m := range d.Models {
		c.Models = append(c.Models, Model{Name: strings.Clone(m.Model.Name), Score: m.Score})
	}
	return c
}

// check refuses a case no store should open.
func (c *Case) check() error {
	if c.ID == "" || c.EventID == "" {
		return errors.New("open: a case needs an id and an event id")
	}
	if c.OpenedAt.IsZero() {
		return errors.New("open: a case needs its opening time")
	}
	return nil
}
