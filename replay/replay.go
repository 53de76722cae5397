// Package replay runs a policy over recorded history: events in event-time
// order through the same engine riskd runs, on a fresh in-memory store, and
// a summary of what it decided and, with fraud labels, how well.
package replay

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"slices"
	"time"

	"github.com/valyala/fastjson"

	"github.com/riskd/riskd/engine"
	"github.com/riskd/riskd/memstore"
	"github.com/riskd/riskd/policyfile"
	"github.com/riskd/riskd/rules"
)

// Event is one recorded event, ready to replay.
type Event struct {
	Line  int // in the input, for messages
	TS    int64
	Label int8 // 1 fraud, 0 genuine, -1 unlabelled
	Body  []byte
	// Dup marks a repeat of an earlier event's id (a retry or a
	// redelivery kept in the history): it is scored, and the engine
	// answers it as the first, but the summaries count the event once.
	Dup bool
	id  [2]uint64 // hash of the id, to find repeats
}

// LineError is an input line that cannot be replayed.
type LineError struct {
	Line int
	Err  error
}

func (e *LineError) Error() string { return fmt.Sprintf("line %d: %v", e.Line, e.Err) }

// Read reads events as JSON lines (gzip-compressed when they start with
// gzip's magic bytes) and returns them in event-time order, ties in input
// order, repeats of an id marked Dup. Lines it cannot replay (not an event, no ts, a label that is not
// a boolean or 0/1) come back as LineErrors; err is for the input itself.
// label names the event field holding the fraud label; "" reads none.
func Read(r io.Reader, label string) (events []Event, bad []*LineError, err error) {
	br := bufio.NewReaderSize(r, 1<<20)
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("gzip: %w", err)
		}
		defer zr.Close()
		br = bufio.NewReaderSize(zr, 1<<20)
	}
	sc := bufio.NewScanner(br)
	sc.Buffer(make([]byte, 0, 64<<10), engine.DefaultMaxEventBytes+1)
	var p fastjson.Parser
	seed1, seed2 := maphash.MakeSeed(), maphash.MakeSeed()
	// One arena for all bodies: a million small allocations would cost
	// more than the replay itself.
	var arena []byte
	sorted := true
	for line := 1; sc.Scan(); line++ {
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		v, err := p.ParseBytes(b)
		if err != nil {
			bad = append(bad, &LineError{line, fmt.Errorf("invalid JSON: %w", err)})
			continue
		}
		ts, err := engine.EventTime(v)
		if err != nil {
			bad = append(bad, &LineError{line, err})
			continue
		}
		ev := Event{Line: line, TS: ts, Label: -1}
		if id := v.GetStringBytes("id"); id != nil {
			ev.id = [2]uint64{maphash.Bytes(seed1, id), maphash.Bytes(seed2, id)}
		}
		if label != "" {
			if ev.Label, err = readLabel(v.Get(label)); err != nil {
				bad = append(bad, &LineError{line, fmt.Errorf("label field %q: %w", label, err)})
				continue
			}
		}
		if len(arena)+len(b) > cap(arena) {
			arena = make([]byte, 0, max(4<<20, len(b)))
		}
		start := len(arena)
		arena = append(arena, b...)
		ev.Body = arena[start:len(arena):len(arena)]
		if n := len(events); n > 0 && ts < events[n-1].TS {
			sorted = false
		}
		events = append(events, ev)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			err = fmt.Errorf("a line is over the %d-byte event limit", engine.DefaultMaxEventBytes)
		}
		return nil, nil, err
	}
	if !sorted {
		slices.SortStableFunc(events, func(a, b Event) int { return compareInt(a.TS, b.TS) })
	}
	// Two ids would have to collide on 128 bits to be taken for one.
	seen := make(map[[2]uint64]struct{}, len(events))
	for i := range events {
		if _, dup := seen[events[i].id]; dup && events[i].id != ([2]uint64{}) {
			events[i].Dup = true
		}
		seen[events[i].id] = struct{}{}
	}
	return events, bad, nil
}

func compareInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// readLabel accepts true/false, 1/0 and their strings; absent or null is
// unlabelled.
func readLabel(v *fastjson.Value) (int8, error) {
	if v == nil || v.Type() == fastjson.TypeNull {
		return -1, nil
	}
	switch v.Type() {
	case fastjson.TypeTrue:
		return 1, nil
	case fastjson.TypeFalse:
		return 0, nil
	case fastjson.TypeNumber:
		switch v.GetFloat64() {
		case 1:
			return 1, nil
		case 0:
			return 0, nil
		}
	case fastjson.TypeString:
		switch string(v.GetStringBytes()) {
		case "1", "true":
			return 1, nil
		case "0", "false":
			return 0, nil
		}
	}
	return 0, fmt.Errorf("%s is not a label: want true/false or 1/0", v)
}

// Options shape a replay.
type Options struct {
	// From and To (Unix ms, To exclusive; 0: open) bound the events the
	// summary counts. Every event is scored, so the history before From
	// feeds the features of the events in the window.
	From, To int64
	// Out receives the live policy's decisions as JSON lines; nil: none.
	Out io.Writer
	// Progress receives a line every ProgressEvery (default 2s); nil: none.
	Progress      io.Writer
	ProgressEvery time.Duration
	// MaxChanged bounds the changed events listed in the comparison
	// (default 20; all are counted).
	MaxChanged int
	// KnownFraud, with a Field, leaves out of the counts the events whose
	// entity already had a fraud known before them. They are still scored.
	KnownFraud KnownFraud
	// FeaturesOut receives training data as CSV: for every counted event
	// the live policy scored, every feature as the engine answered it, the
	// event fields its rules read, its label and decision; nil: none.
	FeaturesOut io.Writer
}

// Run replays events with policy p and, when challenger is not nil, with
// challenger beside it, each on its own fresh in-memory store.
func Run(ctx context.Context, p, challenger *rules.Policy, events []Event, opts Options) (*Result, error) {
	if opts.ProgressEvery <= 0 {
		opts.ProgressEvery = 2 * time.Second
	}
	if opts.MaxChanged <= 0 {
		opts.MaxChanged = 20
	}
	live := newTally(p, opts)
	var chal *tally
	res := &Result{Events: len(events)}
	if challenger != nil {
		chal = newTally(challenger, opts)
		res.Comparison = &Comparison{}
	}
	known := newKnownFraud(opts.KnownFraud)
	if known != nil {
		res.KnownFraud = &KnownFraudResult{Field: known.Field, Delay: "0s"}
		if known.Delay > 0 {
			res.KnownFraud.Delay = policyfile.FormatDuration(known.Delay)
		}
		if known.Batch > 0 {
			res.KnownFraud.Batch = policyfile.FormatDuration(known.Batch)
		}
		if known.From != 0 {
			res.KnownFraud.From = time.UnixMilli(known.From).UTC().Format(time.RFC3339)
		}
	}
	var out *bufio.Writer
	if opts.Out != nil {
		out = bufio.NewWriterSize(opts.Out, 1<<20)
	}
	var export *featureWriter
	if opts.FeaturesOut != nil {
		var err error
		if export, err = newFeatureWriter(opts.FeaturesOut, p); err != nil {
			return nil, err
		}
		live.scoreOpts = engine.ScoreOptions{Explain: true, AllFeatures: true}
	}
	var d, dc engine.Decision
	var buf []byte
	start := time.Now()
	nextProgress := start.Add(opts.ProgressEvery)
	for i := range events {
		ev := &events[i]
		if i&1023 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			if now := time.Now(); opts.Progress != nil && now.After(nextProgress) {
				el := now.Sub(start).Seconds()
				fmt.Fprintf(opts.Progress, "replay: %d of %d events (%.0f%%), %.0f events/s, %s in event time\n",
					i, len(events), 100*float64(i)/float64(len(events)), float64(i)/el, time.UnixMilli(ev.TS).UTC().Format("2006-01-02"))
				nextProgress = now.Add(opts.ProgressEvery)
			}
		}
		in := (opts.From == 0 || ev.TS >= opts.From) && (opts.To == 0 || ev.TS < opts.To)
		if in && ev.Dup {
			res.Repeats++
			in = false
		}
		if known != nil && known.see(ev) && in {
			res.KnownFraud.LeftOut++
			in = false
		}
		okLive := live.score(ev, in, &d)
		if export != nil && okLive && in && !d.Unscored {
			if err := export.write(ev, &d); err != nil {
				return nil, err
			}
		}
		if out != nil && okLive {
			// Engine time says nothing about history and differs run to
			// run; without it a replay's decisions are the same bytes
			// every time.
			d.ElapsedUS = 0
			buf = append(d.AppendJSON(buf[:0]), '\n')
			if _, err := out.Write(buf); err != nil {
				return nil, fmt.Errorf("writing decisions: %w", err)
			}
		}
		if chal == nil {
			continue
		}
		if okChal := chal.score(ev, in, &dc); okLive && okChal && in && !d.Unscored && !dc.Unscored {
			res.Comparison.add(d.EventID, &d.Verdict, &dc.Verdict, ev.Label, opts.MaxChanged)
		}
	}
	elapsed := time.Since(start)
	if export != nil {
		if err := export.flush(); err != nil {
			return nil, err
		}
	}
	if out != nil {
		if err := out.Flush(); err != nil {
			return nil, fmt.Errorf("writing decisions: %w", err)
		}
	}
	res.Seconds = elapsed.Seconds()
	if elapsed > 0 {
		res.EventsPerSecond = float64(len(events)) / elapsed.Seconds()
		if chal != nil {
			res.EventsPerSecond *= 2 // each event was scored twice
		}
	}
	res.Live = live.summary()
	for _, rs := range p.Rulesets {
		if st := live.shadows[rs.Name]; st != nil {
			st.cmp.finish()
			res.Shadows = append(res.Shadows, &ShadowResult{Ruleset: rs.Name, ShadowOf: rs.ShadowOf, Summary: st.counts.summary(), Comparison: st.cmp})
		}
	}
	if chal != nil {
		res.Challenger = chal.summary()
		res.Comparison.finish()
	}
	return res, nil
}

// tally scores with one policy and counts what its summaries need: the
// decisions it returns and the verdicts of its in-directory challengers.
type tally struct {
	policy   *rules.Policy
	engine   *engine.Engine
	live     *counts
	refused  int
	refusals []string
	shadows  map[string]*shadowTally // by challenger name
	opts     Options
	// scoreOpts: the live policy's tally explains every feature when
	// features are exported.
	scoreOpts engine.ScoreOptions
}

// shadowTally follows one in-directory challenger against its champion.
type shadowTally struct {
	ruleset *rules.Ruleset
	counts  *counts
	cmp     *Comparison
}

func newTally(p *rules.Policy, opts Options) *tally {
	t := &tally{
		policy:  p,
		engine:  engine.New(p, engine.Options{Store: memstore.New(memstore.Options{EventTime: true})}),
		shadows: map[string]*shadowTally{},
		opts:    opts,
	}
	var live []*rules.Ruleset // the rulesets that can decide
	for _, rs := range p.Rulesets {
		if rs.ShadowOf == "" || rs.TrafficPPM > 0 {
			live = append(live, rs)
		}
		if rs.ShadowOf != "" {
			t.shadows[rs.Name] = &shadowTally{ruleset: rs, cmp: &Comparison{},
				counts: newCounts(fmt.Sprintf("%s: %s (shadow_of %s)", p.Dir, rs.Name, rs.ShadowOf), []*rules.Ruleset{rs}, opts)}
		}
	}
	t.live = newCounts(p.Dir, live, opts)
	return t
}

// score scores one event into d and counts it when in the window; false
// when the engine refused it.
func (t *tally) score(ev *Event, in bool, d *engine.Decision) bool {
	if err := t.engine.Score(context.Background(), ev.Body, t.scoreOpts, d); err != nil {
		t.refused++
		if len(t.refusals) < 20 {
			t.refusals = append(t.refusals, (&LineError{ev.Line, err}).Error())
		}
		return false
	}
	if !in {
		return true
	}
	if d.Unscored {
		t.live.s.Unscored++
		return true
	}
	t.live.add(&d.Verdict, ev.Label)
	if len(d.Shadows) == 0 {
		return true
	}
	champ := t.policy.ForType(d.Type)
	champVerdict := verdictOf(d, champ.Name)
	for _, c := range champ.Challengers {
		st, v := t.shadows[c.Name], verdictOf(d, c.Name)
		if v == nil || champVerdict == nil {
			continue // the engine evaluates every challenger; this is no such event
		}
		st.counts.add(v, ev.Label)
		st.cmp.add(d.EventID, champVerdict, v, ev.Label, t.opts.MaxChanged)
	}
	return true
}

// verdictOf finds what ruleset name decided for d, live or in shadow;
// nil if it did not evaluate d.
func verdictOf(d *engine.Decision, name string) *engine.Verdict {
	if d.Ruleset == name {
		return &d.Verdict
	}
	for i := range d.Shadows {
		if d.Shadows[i].Ruleset == name {
			return &d.Shadows[i]
		}
	}
	return nil
}

// counts gathers the verdicts one summary is made of.
type counts struct {
	s         *Summary
	rulesets  []*rules.Ruleset // whose rules the summary lists
	hits      map[string]map[string]int
	fraudHits map[string]map[string]int // hits on events labelled fraud
	scores    []int64
	labels    []int8
	outcomes  []rules.Outcome
}

func newCounts(name string, rulesets []*rules.Ruleset, opts Options) *counts {
	c := &counts{
		s:         &Summary{Policy: name, Decisions: map[string]int{}},
		rulesets:  rulesets,
		hits:      map[string]map[string]int{},
		fraudHits: map[string]map[string]int{},
	}
	if opts.From != 0 || opts.To != 0 {
		c.s.Window = &Window{}
		if opts.From != 0 {
			c.s.Window.From = time.UnixMilli(opts.From).UTC().Format(time.RFC3339)
		}
		if opts.To != 0 {
			c.s.Window.To = time.UnixMilli(opts.To).UTC().Format(time.RFC3339)
		}
	}
	for _, rs := range rulesets {
		c.hits[rs.Name] = map[string]int{}
		c.fraudHits[rs.Name] = map[string]int{}
	}
	return c
}

func (c *counts) add(v *engine.Verdict, label int8) {
	c.s.Scored++
	c.s.Decisions[v.Outcome.String()]++
	hits, fraudHits := c.hits[v.Ruleset], c.fraudHits[v.Ruleset]
	for _, r := range v.Reasons {
		hits[r.Rule]++
		if label == 1 {
			fraudHits[r.Rule]++
		}
	}
	c.scores = append(c.scores, v.Score)
	c.labels = append(c.labels, label)
	c.outcomes = append(c.outcomes, v.Outcome)
}
