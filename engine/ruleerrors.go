package engine

import (
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/riskd/riskd/policyfile"
	"github.com/riskd/riskd/rules"
)

// A rule that fails at run time does not fire, and under fail_open that is
// an evasion: whoever controls a field's type switches the rule off. The
// errors are counted per rule (riskd_rule_errors_total); a rule failing on
// more than ruleErrorShare of its evaluations over a minute is also
// logged, at most once a minute, with an example, and shown in
// /v1/rulesets.
const ruleErrorShare = 0.01

// rulesetHealth counts a ruleset's evaluations and its rules' errors.
// Counters only grow; a minute's figures are differences between marks
// taken when the minute turns, by the first evaluation of the next one.
type rulesetHealth struct {
	evals  atomic.Int64
	minute atomic.Int64 // Unix minute of the window being counted
	rules  []ruleHealth

	mu        sync.Mutex // held while a minute is reviewed
	evalsMark int64
}

type ruleHealth struct {
	errs      atomic.Int64
	sampled   atomic.Bool // this minute's example is taken
	mu        sync.Mutex
	sample    string // an error of this minute, and its event
	sampleID  string
	errsMark  int64
	lastShown RuleErrors // the last minute with errors
}

// RuleErrors is what a rule's run-time errors look like: over a minute in
// /v1/rulesets, since start in RuleErrors reports.
type RuleErrors struct {
	Ruleset     string `json:"ruleset,omitempty"`
	Rule        string `json:"rule"`
	Evaluations int64  `json:"evaluations"`
	Errors      int64  `json:"errors"`
	Error       string `json:"example_error,omitempty"`
	EventID     string `json:"example_event_id,omitempty"`
	Minute      string `json:"minute,omitempty"`
}

func newRulesetHealth(rs *rules.Ruleset) *rulesetHealth {
	return &rulesetHealth{rules: make([]ruleHealth, len(rs.Rules))}
}

// failed records that rule i failed on event id.
func (h *rulesetHealth) failed(i int, err error, id string) {
	r := &h.rules[i]
	r.errs.Add(1)
	if r.sampled.CompareAndSwap(false, true) {
		// expr's message is the error, then the expression with a caret
		// under the failing spot: the first line says what failed.
		msg, _, _ := strings.Cut(err.Error(), "\n")
		msg = policyfile.Cut(msg)
		r.mu.Lock()
		r.sample, r.sampleID = msg, strings.Clone(id)
		r.mu.Unlock()
	}
}

// tick counts one evaluation in minute m, reviewing the previous minute
// when m is a new one.
func (h *rulesetHealth) tick(m int64, rs *rules.Ruleset, log *slog.Logger) {
	if old := h.minute.Load(); old != m && h.minute.CompareAndSwap(old, m) && old != 0 {
		h.review(old, rs, log)
	}
	h.evals.Add(1)
}

func (h *rulesetHealth) review(minute int64, rs *rules.Ruleset, log *slog.Logger) {
	h.mu.Lock()
	defer h.mu.Unlock()
	evals := h.evals.Load()
	window := evals - h.evalsMark
	h.evalsMark = evals
	at := time.Unix(minute*60, 0).UTC().Format(time.RFC3339)
	for i := range h.rules {
		r := &h.rules[i]
		errs := r.errs.Load()
		n := errs - r.errsMark
		r.errsMark = errs
		if n == 0 {
			continue
		}
		r.mu.Lock()
		report := RuleErrors{Rule: rs.Rules[i].ID, Evaluations: window, Errors: n, Error: r.sample, EventID: r.sampleID, Minute: at}
		r.lastShown = report
		r.mu.Unlock()
		r.sampled.Store(false)
		if float64(n) > ruleErrorShare*float64(window) {
			log.Warn("rule fails at run time and does not fire", "ruleset", rs.Name, "rule", report.Rule,
				"errors", n, "evaluations", window, "minute", at, "example_error", report.Error, "example_event_id", report.EventID)
		}
	}
}

// lastMinutes returns the rules' last minute with errors.
func (h *rulesetHealth) lastMinutes() []RuleErrors {
	var out []RuleErrors
	for i := range h.rules {
		r := &h.rules[i]
		r.mu.Lock()
		if r.lastShown.Errors > 0 {
			out = append(out, r.lastShown)
		}
		r.mu.Unlock()
	}
	return out
}

// RecentRuleErrors returns, for each rule of rs that failed at run time,
// its last minute with errors (GET /v1/rulesets shows them); nil when rs
// is no longer served (a reload swapped the policy meanwhile).
func (e *Engine) RecentRuleErrors(rs *rules.Ruleset) []RuleErrors {
	p, ok := e.current.Load().rulesets[rs]
	if !ok {
		return nil
	}
	return p.health.lastMinutes()
}

// RuleErrors reports every rule of the current policy that failed at run
// time since the policy was loaded: how often, out of how many
// evaluations, with an example. riskctl replay and test print it.
func (e *Engine) RuleErrors() []RuleErrors {
	c := e.current.Load()
	var out []RuleErrors
	for _, rs := range c.policy.Rulesets {
		h := c.rulesets[rs].health
		for i := range h.rules {
			r := &h.rules[i]
			n := r.errs.Load()
			if n == 0 {
				continue
			}
			r.mu.Lock()
			report := RuleErrors{Ruleset: rs.Name, Rule: rs.Rules[i].ID, Evaluations: h.evals.Load(), Errors: n, Error: r.sample, EventID: r.sampleID}
			if report.Error == "" {
				report.Error, report.EventID = r.lastShown.Error, r.lastShown.EventID
			}
			r.mu.Unlock()
			out = append(out, report)
		}
	}
	return out
}
