package replay

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/riskd/riskd/engine"
	"github.com/riskd/riskd/rules"
)

// Result is a replay's outcome; it marshals as riskctl replay -json.
type Result struct {
	Events int `json:"events"`
	// Repeats are events in the window whose id came before: scored (the
	// engine answers them as the first) but counted once.
	Repeats int `json:"repeats"`
	// KnownFraud says which events in the window were left out because
	// their entity's fraud was known before them (Options.KnownFraud).
	KnownFraud      *KnownFraudResult `json:"known_fraud,omitempty"`
	Seconds         float64           `json:"seconds"`
	EventsPerSecond float64           `json:"events_per_second"`
	Live            *Summary          `json:"live"`
	Challenger      *Summary          `json:"challenger,omitempty"`
	Comparison      *Comparison       `json:"comparison,omitempty"`
	// Shadows are the challengers inside the live policy directory, each
	// against its champion.
	Shadows []*ShadowResult `json:"shadows,omitempty"`
}

// KnownFraudResult is how Options.KnownFraud was applied.
type KnownFraudResult struct {
	Field string `json:"field"`
	Delay string `json:"delay"`
	Batch string `json:"batch,omitempty"` // empty: known as they arrive
	From  string `json:"from,omitempty"`  // RFC 3339; empty: all history
	// LeftOut counts the events in the window left out, scored but not
	// counted.
	LeftOut int `json:"left_out"`
}

// ShadowResult is an in-directory challenger's verdicts on every event its
// champion scored, and how they differ from the champion's.
type ShadowResult struct {
	Ruleset    string      `json:"ruleset"`
	ShadowOf   string      `json:"shadow_of"`
	Summary    *Summary    `json:"summary"`
	Comparison *Comparison `json:"comparison"`
}

// Summary is what one policy decided over the window.
type Summary struct {
	Policy    string         `json:"policy"`
	Window    *Window        `json:"window,omitempty"`
	Scored    int            `json:"scored"`
	Unscored  int            `json:"unscored"`
	Refused   int            `json:"refused"`
	Refusals  []string       `json:"refusals,omitempty"` // the first few
	Decisions map[string]int `json:"decisions"`
	RuleHits  []RuleHits     `json:"rule_hits"`
	Scores    ScoreStats     `json:"scores"`
	Labels    *LabelMetrics  `json:"labels,omitempty"`
	// RuleErrors lists the rules that failed at run time (and so did not
	// fire), how often, with an example.
	RuleErrors []engine.RuleErrors `json:"rule_errors,omitempty"`
}

// Window is the event-time span the summary counts (RFC 3339, To
// exclusive; empty: open).
type Window struct {
	From string `json:"from,omitempty"`
	To   string `json:"to,omitempty"`
}

// RuleHits is how often one rule fired in the window and, with labels, on
// how many fraudulent events.
type RuleHits struct {
	Ruleset string `json:"ruleset"`
	Rule    string `json:"rule"`
	Hits    int    `json:"hits"`
	Fraud   int    `json:"fraud,omitempty"`
}

// ScoreStats describe the distribution of scores.
type ScoreStats struct {
	Min  int64   `json:"min"`
	P50  int64   `json:"p50"`
	P90  int64   `json:"p90"`
	P99  int64   `json:"p99"`
	Max  int64   `json:"max"`
	Mean float64 `json:"mean"`
}

// LabelMetrics measure decisions and scores against the labels.
type LabelMetrics struct {
	Fraud      int `json:"fraud"`
	Genuine    int `json:"genuine"`
	Unlabelled int `json:"unlabelled"`
	// Block counts block as the positive call; BlockOrReview counts
	// block and review (what an analyst would have caught, had every
	// review been called fraud); BlockOrStepUp counts all three.
	Block         Confusion `json:"block"`
	BlockOrReview Confusion `json:"block_or_review"`
	BlockOrStepUp Confusion `json:"block_or_step_up"`
	// ROCAUC and AveragePrecision rank events by score (ties share a rank).
	ROCAUC           float64 `json:"roc_auc"`
	AveragePrecision float64 `json:"average_precision"`
}

// Confusion is one way of calling an event fraudulent, against the labels.
type Confusion struct {
	TP        int     `json:"tp"`
	FP        int     `json:"fp"`
	FN        int     `json:"fn"`
	Precision float64 `json:"precision"`
	Recall    float64 `json:"recall"`
	F1        float64 `json:"f1"`
}

// Comparison is how a challenger's decisions differ from the live ones.
type Comparison struct {
	// Agreement[live outcome][challenger outcome] counts events.
	Agreement map[string]map[string]int `json:"agreement"`
	Changed   int                       `json:"changed"`
	Examples  []Change                  `json:"examples"`
	matrix    [rules.NumOutcomes][rules.NumOutcomes]int
}

// Change is one event whose outcome the challenger changed.
type Change struct {
	EventID         string `json:"event_id"`
	Live            string `json:"live"`
	LiveScore       int64  `json:"live_score"`
	Challenger      string `json:"challenger"`
	ChallengerScore int64  `json:"challenger_score"`
	Fraud           *bool  `json:"fraud,omitempty"`
}

func (c *Comparison) add(eventID string, live, chal *engine.Verdict, label int8, keep int) {
	c.matrix[live.Outcome][chal.Outcome]++
	if live.Outcome == chal.Outcome {
		return
	}
	c.Changed++
	if len(c.Examples) < keep {
		// Decisions are reused: their strings are only valid until the next.
		ch := Change{EventID: strings.Clone(eventID), Live: live.Outcome.String(), LiveScore: live.Score, Challenger: chal.Outcome.String(), ChallengerScore: chal.Score}
		if label >= 0 {
			f := label == 1
			ch.Fraud = &f
		}
		c.Examples = append(c.Examples, ch)
	}
}

var outcomes = rules.Outcomes[:]

func (c *Comparison) finish() {
	c.Agreement = map[string]map[string]int{}
	for _, l := range outcomes {
		c.Agreement[l.String()] = map[string]int{}
		for _, o := range outcomes {
			c.Agreement[l.String()][o.String()] = c.matrix[l][o]
		}
	}
}

func (t *tally) summary() *Summary {
	s := t.live.summary()
	s.Refused, s.Refusals = t.refused, t.refusals
	s.RuleErrors = t.engine.RuleErrors()
	return s
}

func (c *counts) summary() *Summary {
	s := c.s
	for _, o := range outcomes {
		s.Decisions[o.String()] += 0 // every outcome shows, zero or not
	}
	labelled := false
	for _, l := range c.labels {
		if l >= 0 {
			labelled = true
			break
		}
	}
	for _, rs := range c.rulesets {
		for _, r := range rs.Rules {
			s.RuleHits = append(s.RuleHits, RuleHits{Ruleset: rs.Name, Rule: r.ID, Hits: c.hits[rs.Name][r.ID], Fraud: c.fraudHits[rs.Name][r.ID]})
		}
	}
	s.Scores = scoreStats(c.scores)
	if labelled {
		s.Labels = labelMetrics(c.scores, c.labels, c.outcomes)
	}
	return s
}

func scoreStats(scores []int64) ScoreStats {
	if len(scores) == 0 {
		return ScoreStats{}
	}
	sorted := slices.Clone(scores)
	slices.Sort(sorted)
	q := func(p float64) int64 { return sorted[min(len(sorted)-1, int(p*float64(len(sorted))))] }
	var sum float64
	for _, v := range sorted {
		sum += float64(v)
	}
	return ScoreStats{Min: sorted[0], P50: q(0.5), P90: q(0.9), P99: q(0.99), Max: sorted[len(sorted)-1], Mean: sum / float64(len(sorted))}
}

func labelMetrics(scores []int64, labels []int8, outs []rules.Outcome) *LabelMetrics {
	m := &LabelMetrics{}
	type scored struct {
		score int64
		fraud bool
	}
	var ranked []scored
	for i, l := range labels {
		if l < 0 {
			m.Unlabelled++
			continue
		}
		fraud := l == 1
		if fraud {
			m.Fraud++
		} else {
			m.Genuine++
		}
		ranked = append(ranked, scored{scores[i], fraud})
		m.Block.count(outs[i] == rules.Block, fraud)
		m.BlockOrReview.count(outs[i] >= rules.Review, fraud)
		m.BlockOrStepUp.count(outs[i] >= rules.StepUp, fraud)
	}
	m.Block.finish()
	m.BlockOrReview.finish()
	m.BlockOrStepUp.finish()
	// Highest score first; each distinct score is one threshold.
	slices.SortFunc(ranked, func(a, b scored) int { return compareInt(b.score, a.score) })
	var tp, fp int
	var aucSum float64 // pairs (fraud, genuine) ranked right, ties half
	for i := 0; i < len(ranked); {
		j := i
		var gtp, gfp int
		for ; j < len(ranked) && ranked[j].score == ranked[i].score; j++ {
			if ranked[j].fraud {
				gtp++
			} else {
				gfp++
			}
		}
		// Frauds in this group outrank every genuine event below it (not
		// yet seen) and tie with the genuine ones in it.
		aucSum += float64(gtp) * (float64(m.Genuine-fp-gfp) + float64(gfp)/2)
		tp, fp = tp+gtp, fp+gfp
		if gtp > 0 && m.Fraud > 0 {
			m.AveragePrecision += float64(gtp) / float64(m.Fraud) * float64(tp) / float64(tp+fp)
		}
		i = j
	}
	if m.Fraud > 0 && m.Genuine > 0 {
		m.ROCAUC = aucSum / (float64(m.Fraud) * float64(m.Genuine))
	}
	return m
}

func (c *Confusion) count(called, fraud bool) {
	switch {
	case called && fraud:
		c.TP++
	case called:
		c.FP++
	case fraud:
		c.FN++
	}
}

func (c *Confusion) finish() {
	if c.TP+c.FP > 0 {
		c.Precision = float64(c.TP) / float64(c.TP+c.FP)
	}
	if c.TP+c.FN > 0 {
		c.Recall = float64(c.TP) / float64(c.TP+c.FN)
	}
	if c.Precision+c.Recall > 0 {
		c.F1 = 2 * c.Precision * c.Recall / (c.Precision + c.Recall)
	}
}

// WriteText writes the result for a reader.
func (r *Result) WriteText(w io.Writer) {
	fmt.Fprintf(w, "replayed %d events in %.1fs (%.0f events/s)\n", r.Events, r.Seconds, r.EventsPerSecond)
	if r.Repeats > 0 {
		fmt.Fprintf(w, "%d repeated event ids (retries, redeliveries) counted once\n", r.Repeats)
	}
	if k := r.KnownFraud; k != nil {
		from := "all history"
		if k.From != "" {
			from = "from " + orOpen(k.From)
		}
		batch := "as they arrive"
		if k.Batch != "" {
			batch = "every " + k.Batch
		}
		fmt.Fprintf(w, "left out %d events whose %s had a fraud known before them (labels known %s after the fraud, taken in %s; frauds %s)\n", k.LeftOut, k.Field, k.Delay, batch, from)
	}
	writeSummary(w, "", r.Live)
	for _, sh := range r.Shadows {
		writeSummary(w, "in-directory challenger, ", sh.Summary)
		writeComparison(w, sh.ShadowOf, sh.Ruleset, sh.Comparison)
	}
	if r.Challenger != nil {
		writeSummary(w, "challenger ", r.Challenger)
	}
	if c := r.Comparison; c != nil {
		writeComparison(w, "live "+r.Live.Policy, "challenger "+r.Challenger.Policy, c)
	}
}

func writeComparison(w io.Writer, rows, cols string, c *Comparison) {
	fmt.Fprintf(w, "\nagreement (rows: %s, columns: %s); %d events changed outcome\n", rows, cols, c.Changed)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	// The review row and column show when either side reviewed: a
	// policy without review reads as before.
	shown := []rules.Outcome{rules.Pass, rules.StepUp, rules.Block}
	for _, o := range outcomes {
		if c.matrix[rules.Review][o]+c.matrix[o][rules.Review] > 0 {
			shown = rules.Outcomes[:]
			break
		}
	}
	for _, o := range shown {
		fmt.Fprintf(tw, "\t%s", o)
	}
	fmt.Fprintln(tw, "\t")
	for _, l := range shown {
		fmt.Fprint(tw, l)
		for _, o := range shown {
			fmt.Fprintf(tw, "\t%d", c.matrix[l][o])
		}
		fmt.Fprintln(tw, "\t")
	}
	tw.Flush()
	if len(c.Examples) > 0 {
		fmt.Fprintf(w, "changed (first %d):\n", len(c.Examples))
		for _, x := range c.Examples {
			label := ""
			if x.Fraud != nil {
				label = "  genuine"
				if *x.Fraud {
					label = "  FRAUD"
				}
			}
			fmt.Fprintf(w, "  %s  %s (%d) -> %s (%d)%s\n", x.EventID, x.Live, x.LiveScore, x.Challenger, x.ChallengerScore, label)
		}
	}
}

func writeSummary(w io.Writer, prefix string, s *Summary) {
	fmt.Fprintf(w, "\n%spolicy %s", prefix, s.Policy)
	if s.Window != nil {
		fmt.Fprintf(w, ", counting events from %s to %s", orOpen(s.Window.From), orOpen(s.Window.To))
	}
	fmt.Fprintf(w, "\n  scored %d, unscored %d, refused %d\n", s.Scored, s.Unscored, s.Refused)
	for _, r := range s.Refusals {
		fmt.Fprintf(w, "    refused %s\n", r)
	}
	pct := func(n int) float64 {
		if s.Scored == 0 {
			return 0
		}
		return 100 * float64(n) / float64(s.Scored)
	}
	reviewed := s.Decisions["review"] > 0
	fmt.Fprint(w, "  decisions:")
	for i, o := range outcomes {
		if o == rules.Review && !reviewed {
			continue // a policy without review reads as before
		}
		sep := ","
		if i == 0 {
			sep = ""
		}
		fmt.Fprintf(w, "%s %s %d (%.2f%%)", sep, o, s.Decisions[o.String()], pct(s.Decisions[o.String()]))
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "  scores: min %d, p50 %d, p90 %d, p99 %d, max %d, mean %.2f\n", s.Scores.Min, s.Scores.P50, s.Scores.P90, s.Scores.P99, s.Scores.Max, s.Scores.Mean)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if s.Labels != nil {
		fmt.Fprintln(tw, "  rule\thits\t% of events\tfraud\tprecision")
	} else {
		fmt.Fprintln(tw, "  rule\thits\t% of events")
	}
	for _, h := range s.RuleHits {
		fmt.Fprintf(tw, "  %s.%s\t%d\t%.3f", h.Ruleset, h.Rule, h.Hits, pct(h.Hits))
		if s.Labels != nil {
			prec := "-"
			if h.Hits > 0 {
				prec = fmt.Sprintf("%.3f", float64(h.Fraud)/float64(h.Hits))
			}
			fmt.Fprintf(tw, "\t%d\t%s", h.Fraud, prec)
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
	WriteRuleErrors(w, "  ", s.RuleErrors)
	if l := s.Labels; l != nil {
		fmt.Fprintf(w, "  labels: %d fraud, %d genuine, %d unlabelled (fraud rate %.3f%%)\n", l.Fraud, l.Genuine, l.Unlabelled, 100*float64(l.Fraud)/max(1, float64(l.Fraud+l.Genuine)))
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  called fraud when\tprecision\trecall\tF1\tTP\tFP\tFN")
		for _, c := range []struct {
			name string
			c    Confusion
		}{{"block", l.Block}, {"block or review", l.BlockOrReview}, {"block or step_up", l.BlockOrStepUp}} {
			if c.name == "block or review" && !reviewed {
				continue
			}
			fmt.Fprintf(tw, "  %s\t%.3f\t%.3f\t%.3f\t%d\t%d\t%d\n", c.name, c.c.Precision, c.c.Recall, c.c.F1, c.c.TP, c.c.FP, c.c.FN)
		}
		tw.Flush()
		fmt.Fprintf(w, "  score: ROC AUC %.3f, average precision %.3f\n", l.ROCAUC, l.AveragePrecision)
	}
}

func orOpen(s string) string {
	if s == "" {
		return "(open)"
	}
	return strings.TrimSuffix(s, "T00:00:00Z")
}

// WriteRuleErrors lists rules that failed at run time, one per line
// after indent, with how often and an example.
func WriteRuleErrors(w io.Writer, indent string, errs []engine.RuleErrors) {
	if len(errs) == 0 {
		return
	}
	fmt.Fprintf(w, "%srules with run-time errors (they did not fire when they failed):\n", indent)
	for _, e := range errs {
		fmt.Fprintf(w, "%s  %s.%s: %d of %d evaluations (%.2f%%), e.g. event %s: %s\n", indent, e.Ruleset, e.Rule,
			e.Errors, e.Evaluations, 100*float64(e.Errors)/max(1, float64(e.Evaluations)), e.EventID, strings.ReplaceAll(e.Error, "\n", " "))
	}
}
