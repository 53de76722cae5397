package client

// Outcome is what riskd decided.
type Outcome string

// The outcomes, in increasing order of friction.
const (
	Pass   Outcome = "pass"
	StepUp Outcome = "step_up" // ask for 3-D Secure, an SMS code…
	// Review: an analyst decides. Hold the order (authorise, do not
	// capture or ship) until the case named by CaseID is resolved: approve
	// or not_fraud releases it, decline or fraud cancels it.
	Review Outcome = "review"
	Block  Outcome = "block"
)

// Decision is riskd's answer for one event, or the client's fallback when
// riskd could not answer (Fallback says which).
type Decision struct {
	EventID string  `json:"event_id"`
	Type    string  `json:"type"`
	Outcome Outcome `json:"decision"`
	// Score is the sum of the reasons' scores.
	Score int64 `json:"score"`
	// Ruleset and Version name the ruleset that decided; empty when the
	// event's type is unscored.
	Ruleset string   `json:"ruleset"`
	Version string   `json:"version"`
	Reasons []Reason `json:"reasons"`
	// CaseID names the review case of a Review decision ("c_" and 24
	// characters, the same for every retry of the event); empty otherwise.
	CaseID string `json:"case_id,omitempty"`
	// Degraded: riskd could not read some features in its budget and
	// applied StorePolicy ("fail_open" or "fail_closed").
	Degraded    bool   `json:"degraded"`
	StorePolicy string `json:"store_policy,omitempty"`
	// Unscored: no ruleset scores this type; riskd recorded the event
	// for the features that count it and passes it.
	Unscored bool `json:"unscored,omitempty"`
	// Retry: riskd had scored this ID before and answered with that
	// first answer's features, counting nothing again.
	Retry     bool  `json:"retry,omitempty"`
	ElapsedUS int64 `json:"elapsed_us"`

	// Features, NotFired and Shadow come with Explain: every feature
	// value the ruleset read (a float64, a bool, or nil when absent),
	// every rule that did not fire, and the challengers' verdicts.
	Features map[string]any `json:"features,omitempty"`
	NotFired []NotFired     `json:"not_fired,omitempty"`
	Shadow   []Verdict      `json:"shadow,omitempty"`

	// Fallback is "" for riskd's answer. When riskd could not answer and
	// Options.Fallback is set, the decision is the client's: "fail_open"
	// (Outcome Pass) or "fail_closed" (StepUp or Block), and
	// FallbackCause is the *UnavailableError that made it.
	Fallback      string `json:"-"`
	FallbackCause error  `json:"-"`
}

// Reason is one fired rule's share of a decision.
type Reason struct {
	Rule   string `json:"rule"`
	Score  int64  `json:"score"`
	Reason string `json:"reason"`
	// Action is the outcome the rule forced, whatever the score; "" when
	// it forced none.
	Action Outcome `json:"action,omitempty"`
}

// NotFired is a rule that did not fire, with the run-time error that
// stopped it, if any.
type NotFired struct {
	Rule  string `json:"rule"`
	Error string `json:"error,omitempty"`
}

// Verdict is what a challenger ruleset decided in shadow.
type Verdict struct {
	Outcome Outcome  `json:"decision"`
	Score   int64    `json:"score"`
	Ruleset string   `json:"ruleset"`
	Version string   `json:"version"`
	Reasons []Reason `json:"reasons"`
}
