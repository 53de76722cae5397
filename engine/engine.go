// Package engine scores events: event → features → rules → decision. The
// transports, httpapi (HTTP) and stream (Kafka), are packages of their own
// around one Engine, so that the scorer links neither net/http's server
// nor kafka-go (riskctl replay and ruletest score without them).
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fastjson"

	"github.com/riskd/riskd/features"
	"github.com/riskd/riskd/lists"
	"github.com/riskd/riskd/memstore"
	"github.com/riskd/riskd/models"
	"github.com/riskd/riskd/policyfile"
	"github.com/riskd/riskd/rules"
)

// DefaultMaxEventBytes is the default size limit of one event.
const DefaultMaxEventBytes = 64 << 10

// Options configure an Engine. The zero value of each field is safe.
type Options struct {
	// Store keeps feature history. Default: a new in-memory store.
	Store features.Store
	// Registerer receives the engine's metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// MaxEventBytes limits one event. Default DefaultMaxEventBytes.
	MaxEventBytes int
	// Now is the clock for events without ts. Default time.Now.
	Now func() time.Time
	// MaxFutureSkew refuses events whose ts is more than this ahead of
	// Now: one event stamped years ahead would otherwise sit in history
	// ahead of every other. Zero: no limit (replays keep history's times).
	MaxFutureSkew time.Duration
	// MaxPastSkew refuses events whose ts is more than this behind Now:
	// events backdated past the features' windows would each see empty
	// windows and dodge velocity. Zero: no limit (replays and rule tests
	// score history).
	MaxPastSkew time.Duration
	// StoreTimeout bounds the feature store call of one event; past it the
	// decision is made without the missing features and marked degraded.
	// Zero: the caller's context alone bounds it.
	StoreTimeout time.Duration
	// Logger receives what the engine reports on its own: feature store
	// failures and rules failing at run time; nil discards. A store failure
	// logs for every event it hits, so give it a rate-limited handler
	// (internal/logs).
	Logger *slog.Logger
	// Lists holds the mutable lists rules read. Default: a new in-memory
	// registry, not synced (riskctl's tests and replays: the lists are
	// empty unless changed through it). The engine declares a policy's
	// lists in it; the caller fetches them first (lists.Registry.Fetch),
	// so that compiling a policy does no I/O.
	Lists *lists.Registry
}

// Engine scores events against the current policy. It is safe for
// concurrent use.
type Engine struct {
	store    features.Store
	timeout  time.Duration
	skew     time.Duration
	pastSkew time.Duration
	metrics  *metrics
	maxBytes int
	now      func() time.Time
	log      *slog.Logger
	lists    *lists.Registry
	current  atomic.Pointer[compiled]
}

// New returns an engine serving policy p.
func New(p *rules.Policy, opts Options) *Engine {
	e := &Engine{store: opts.Store, maxBytes: opts.MaxEventBytes, now: opts.Now, timeout: opts.StoreTimeout, skew: opts.MaxFutureSkew, pastSkew: opts.MaxPastSkew}
	if e.store == nil {
		e.store = memstore.New(memstore.Options{})
	}
	if e.maxBytes <= 0 {
		e.maxBytes = DefaultMaxEventBytes
	}
	if e.now == nil {
		e.now = time.Now
	}
	e.log = opts.Logger
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	e.lists = opts.Lists
	if e.lists == nil {
		e.lists = lists.NewMemory(lists.Options{})
	}
	e.metrics = newMetrics(opts.Registerer)
	e.current.Store(e.compile(p))
	return e
}

// SetPolicy swaps in a new policy. Events being scored finish on the one
// they started with; every decision names the version that made it.
func (e *Engine) SetPolicy(p *rules.Policy) { e.current.Store(e.compile(p)) }

// Policy returns the policy being served.
func (e *Engine) Policy() *rules.Policy { return e.current.Load().policy }

// Store returns the feature store: the HTTP API's readiness falls back to
// it when it is given no dependencies.
func (e *Engine) Store() features.Store { return e.store }

// Lists returns the registry of mutable lists the list API changes.
func (e *Engine) Lists() *lists.Registry { return e.lists }

// compiled is a policy prepared for scoring: metric children resolved and
// a pool of scratch space sized for it.
type compiled struct {
	policy   *rules.Policy
	rulesets map[*rules.Ruleset]*prepared
	// recorded maps the event types some feature records to the policy's
	// own copy of the name: metric labels must never alias an event's
	// bytes (the parser reuses them), and are bounded to these and "other".
	recorded map[string]string
	// whereErrors: per log (Log.Index), the counters of its features'
	// where errors; nil for a log without a condition.
	whereErrors [][]prometheus.Counter
	// filterLists: per log, the mutable list each slot of its condition
	// holds (nil for an event field).
	filterLists [][]*lists.Mutable
	// modelLists: per model (ModelInputs.Index), the mutable list each
	// slot of its derived inputs' environment holds.
	modelLists [][]*lists.Mutable
	pool       sync.Pool
}

// prepared is a ruleset's share of compiled: its metric children and, for
// a live ruleset, what its challengers add.
type prepared struct {
	outcomes       [rules.NumOutcomes]prometheus.Counter
	shadowOutcomes [rules.NumOutcomes]prometheus.Counter
	hits           []prometheus.Counter
	errors         []prometheus.Counter
	// reads: the features a live ruleset and its challengers read, each
	// once; they are fetched in one store call and shared.
	reads []int
	// unread: the features this ruleset does not read, which
	// ScoreOptions.AllFeatures adds to the explanation.
	unread []int
	// agreement[champion outcome][challenger outcome], on a challenger.
	agreement [rules.NumOutcomes][rules.NumOutcomes]prometheus.Counter
	health    *rulesetHealth
	// lists: the mutable list each slot holds (nil for the others).
	lists []*lists.Mutable
}

func (e *Engine) compile(p *rules.Policy) *compiled {
	c := &compiled{policy: p, rulesets: map[*rules.Ruleset]*prepared{}, recorded: map[string]string{}}
	for _, f := range p.Features.Features {
		for _, t := range f.EventTypes {
			c.recorded[t] = t
		}
	}
	// No I/O here: whoever loads the policy fetches its lists first
	// (lists.Registry.Fetch).
	e.lists.Declare(p.MutableLists)
	c.whereErrors = make([][]prometheus.Counter, len(p.Filters))
	c.filterLists = make([][]*lists.Mutable, len(p.Filters))
	for li, f := range p.Filters {
		if f == nil {
			continue
		}
		for _, name := range f.Features {
			c.whereErrors[li] = append(c.whereErrors[li], e.metrics.whereErrors.WithLabelValues(name))
		}
		c.filterLists[li] = e.bindLists(f.Slots())
	}
	c.modelLists = make([][]*lists.Mutable, len(p.ModelInputs))
	for i, mi := range p.ModelInputs {
		c.modelLists[i] = e.bindLists(mi.Slots())
	}
	outcomes := rules.Outcomes[:]
	for _, rs := range p.Rulesets {
		pr := &prepared{health: newRulesetHealth(rs)}
		for _, o := range outcomes {
			pr.outcomes[o] = e.metrics.decisions.WithLabelValues(rs.Name, o.String())
			pr.shadowOutcomes[o] = e.metrics.shadowDecisions.WithLabelValues(rs.Name, o.String())
		}
		for _, r := range rs.Rules {
			pr.hits = append(pr.hits, e.metrics.ruleHits.WithLabelValues(rs.Name, r.ID))
			pr.errors = append(pr.errors, e.metrics.ruleErrors.WithLabelValues(rs.Name, r.ID))
		}
		if rs.Champion != nil {
			for _, co := range outcomes {
				for _, o := range outcomes {
					pr.agreement[co][o] = e.metrics.agreement.WithLabelValues(rs.Champion.Name, rs.Name, co.String(), o.String())
				}
			}
		}
		read := make([]bool, len(p.Features.Features))
		for _, fi := range rs.Reads {
			read[fi] = true
		}
		for fi, r := range read {
			if !r {
				pr.unread = append(pr.unread, fi)
			}
		}
		pr.lists = e.bindLists(rs.Slots)
		pr.reads = rs.Reads
		if len(rs.Challengers) > 0 {
			seen := map[int]bool{}
			pr.reads = nil
			for _, r := range append([]*rules.Ruleset{rs}, rs.Challengers...) {
				for _, fi := range r.Reads {
					if !seen[fi] {
						seen[fi] = true
						pr.reads = append(pr.reads, fi)
					}
				}
			}
		}
		c.rulesets[rs] = pr
	}
	c.pool.New = func() any { return c.newScratch() }
	return c
}

// bindLists finds the mutable list of each list slot.
func (e *Engine) bindLists(slots []rules.Slot) []*lists.Mutable {
	out := make([]*lists.Mutable, len(slots))
	for i, s := range slots {
		if s.List != "" {
			out[i] = e.lists.List(s.List)
		}
	}
	return out
}

// StoreUnavailableRule names the reason added when a fail_closed ruleset
// could not read its features.
const StoreUnavailableRule = "store_unavailable"

const storeUnavailableReason = "risk history could not be read in time; this ruleset fails closed and asks for verification"

// scratch is the per-goroutine working space of one Score: reused through
// the policy's pool so the hot path does not allocate it.
type scratch struct {
	parser  fastjson.Parser
	ev      *fastjson.Value // the event being scored, in parser
	envs    map[*rules.Ruleset]*rules.Env
	minute  int64 // Unix minute the event is scored in, for rule health
	modelIn []float64
	// liveModels are the live ruleset's predictions, kept for the case a
	// review decision opens (the explanation keeps its own, with inputs).
	liveModels []ModelValue
	obs        features.Observation
	itemOf     []int  // feature index -> index in obs.Items, -1 if none
	reads      []bool // feature index -> the ruleset reads it
	entryOf    []int  // log index -> index in obs.Entries, or noEntryYet, keyAbsent, filteredOut
	// filterEnvs: per log, where its condition is evaluated (made on
	// first use).
	filterEnvs []*rules.Env
	// modelEnvs: per model, where its derived inputs are computed (made
	// on first use).
	modelEnvs []*rules.Env
	numBuf    []byte
	strict    strictScratch
	budget    rules.Budget // the event's evaluation steps, shared by its envs
	keyBuf    []byte
	splitBuf  []byte
	results   []rules.RuleResult
}

// What scratch.entryOf holds for a log that has no entry in the
// observation (entries are numbered from 0).
const (
	noEntryYet  = -1 - iota // no feature of the log was met yet
	keyAbsent               // the event lacks the log's key: its features are nil
	filteredOut             // the log's where refused the event, and no feature of it is read
)

func (c *compiled) newScratch() *scratch {
	n := len(c.policy.Features.Features)
	return &scratch{envs: map[*rules.Ruleset]*rules.Env{}, itemOf: make([]int, n), reads: make([]bool, n),
		entryOf: make([]int, len(c.policy.Features.Logs)), filterEnvs: make([]*rules.Env, len(c.policy.Features.Logs)),
		modelEnvs: make([]*rules.Env, len(c.policy.ModelInputs))}
}

// ScoreOptions ask for more than the decision.
type ScoreOptions struct {
	Explain bool
	// DeferShadow leaves the challengers' evaluation to Engine.Shadow, so
	// the live answer can be sent before it. Without it Score evaluates
	// them before returning.
	DeferShadow bool
	// StoreTimeout, when positive, replaces the engine's store budget for
	// this call: the Kafka path waits longer than a synchronous caller can.
	StoreTimeout time.Duration
	// AllFeatures reads every feature of the policy, not only those the
	// ruleset reads, and with Explain lists them all (those the live
	// ruleset reads first, as Explain alone does): training data for a
	// model wants features no rule reads yet, answered as in serving.
	AllFeatures bool
}

// pendingShadow is a scoring whose shadow verdicts are still to come.
type pendingShadow struct {
	c    *compiled
	s    *scratch
	live *rules.Ruleset
}

// Score parses one event, enriches it with features, evaluates the
// ruleset for its type and fills d. It returns an *InputError for an event
// it refuses; store failures do not fail the call, they mark d degraded.
//
// When the live ruleset has challengers, a split may make one of them
// decide (d names the ruleset that did); the others, and the champion, are
// evaluated on the same features into d.Shadows, now or, with DeferShadow,
// when Engine.Shadow is called.
func (e *Engine) Score(ctx context.Context, body []byte, opts ScoreOptions, d *Decision) error {
	start := time.Now()
	d.reset()
	if len(body) > e.maxBytes {
		e.metrics.invalidEvents.Inc()
		return &InputError{Msg: fmt.Sprintf("event is %d bytes, over the limit of %d bytes", len(body), e.maxBytes), tooLarge: true}
	}
	c := e.current.Load()
	s := c.pool.Get().(*scratch)
	now := e.now()
	s.minute = now.Unix() / 60
	s.budget.Reset()
	ev, h, err := parseEvent(&s.parser, body, now)
	if err == nil {
		err = checkStrict(body, ev, &s.strict)
	}
	if err == nil {
		if verr := c.policy.Features.Schema.Validate(ev, h.typ); verr != nil {
			err = inputError(verr.Error())
		}
	}
	if err == nil && e.skew > 0 && h.ts > now.Add(e.skew).UnixMilli() {
		err = &InputError{Msg: fmt.Sprintf("field \"ts\" %s is %v ahead of this server's clock, more than the %v allowed",
			time.UnixMilli(h.ts).UTC().Format(time.RFC3339Nano), time.Duration(h.ts-now.UnixMilli())*time.Millisecond, e.skew)}
	}
	if err == nil && e.pastSkew > 0 && h.ts < now.Add(-e.pastSkew).UnixMilli() {
		err = &InputError{Msg: fmt.Sprintf("field \"ts\" %s is %v behind this server's clock, more than the %v allowed",
			time.UnixMilli(h.ts).UTC().Format(time.RFC3339Nano), time.Duration(now.UnixMilli()-h.ts)*time.Millisecond, e.pastSkew)}
	}
	if err != nil {
		c.pool.Put(s)
		e.metrics.invalidEvents.Inc()
		return err
	}
	s.ev = ev
	d.EventID, d.Type = d.keep(h.id), d.keep(h.typ)
	d.Explain = opts.Explain
	rs := c.policy.ForType(h.typ)

	if err := e.observe(ctx, c, s, ev, h, rs, d, opts.StoreTimeout, opts.AllFeatures); err != nil {
		c.pool.Put(s)
		e.metrics.invalidEvents.Inc()
		return err
	}
	if rs == nil {
		d.Unscored = true
		label, ok := c.recorded[h.typ]
		if !ok {
			label = "other"
		}
		e.metrics.unscored.WithLabelValues(label).Inc()
	} else {
		live := rs
		if len(rs.Challengers) > 0 {
			live = rs.Live(func(ch *rules.Ruleset) (int, bool) {
				var ok bool
				s.splitBuf, ok = appendKeyPart(s.splitBuf[:0], lookup(ev, ch.SplitKey))
				return rules.SplitBucket(ch.SplitKey.Name, bstr(s.splitBuf)), ok
			})
		}
		e.evaluate(c, s, live, d, &d.Verdict)
		if d.Outcome == rules.Review {
			start := len(d.buf)
			d.buf = AppendCaseID(d.buf, d.EventID)
			d.CaseID = bstr(d.buf[start:len(d.buf):len(d.buf)])
		}
		if opts.AllFeatures && d.Explain {
			fs := c.policy.Features.Features
			for _, fi := range c.rulesets[live].unread {
				d.Features = append(d.Features, FeatureValue{Name: fs[fi].Name, Value: s.feature(fi), Bool: fs[fi].Kind.Bool()})
			}
			// Every model too, read or not (training data), from the
			// same features.
			for _, mi := range c.policy.ModelInputs {
				if !d.explained(mi.Model) {
					s.modelIn = e.modelInputs(c, s, mi, s.modelIn[:0])
					mv := d.addModel(mi.Model, s.modelIn)
					if mi.Model.Trained() {
						mv.Score = mi.Model.Predict(s.modelIn)
					}
				}
			}
		}
		if len(rs.Challengers) > 0 {
			d.pending = pendingShadow{c: c, s: s, live: live} // the shadows need s
			s = nil
		}
	}
	if !d.Retry && !d.Degraded {
		// The first answer's decision is kept beside its features, for
		// GET /v1/decisions/{id}; a retry's is not what was first given,
		// and a degraded one's store is failing (no answer was kept).
		d.kept = d.AppendKept(d.kept[:0])
		e.store.KeepDecision(d.EventID, d.kept)
	}
	if s != nil {
		c.pool.Put(s)
	}
	elapsed := time.Since(start)
	d.ElapsedUS = elapsed.Microseconds()
	e.metrics.scoreLatency.Observe(elapsed.Seconds())
	if !opts.DeferShadow {
		e.Shadow(d)
	}
	return nil
}

// Decision returns the decision event id was first given, as GET
// /v1/decisions/{id} answers it: the JSON the store kept beside the first
// answer (Decision.AppendKept) with the event id first; nil when none is
// kept (never scored, or longer ago than the idempotency window).
func (e *Engine) Decision(ctx context.Context, id string) ([]byte, error) {
	kept, err := e.store.Decision(ctx, id)
	if err != nil || len(kept) < 2 || kept[0] != '{' {
		return nil, err
	}
	out := AppendJSONString(append(make([]byte, 0, len(id)+len(kept)+16), `{"event_id":`...), id)
	return append(append(out, ','), kept[1:]...), nil
}

// Shadow evaluates the shadow verdicts Score left pending in d (see
// ScoreOptions.DeferShadow), records them in the metrics and fills
// d.Shadows. It does nothing when none are pending.
func (e *Engine) Shadow(d *Decision) {
	p := d.pending
	if p.s == nil {
		return
	}
	start := time.Now()
	d.pending = pendingShadow{}
	champ := p.live
	if champ.Champion != nil {
		champ = champ.Champion
	}
	var champOutcome rules.Outcome
	if champ == p.live {
		champOutcome = d.Outcome
	} else {
		champOutcome = e.evaluate(p.c, p.s, champ, d, d.addShadow())
	}
	for _, ch := range champ.Challengers {
		outcome := d.Outcome
		if ch != p.live {
			outcome = e.evaluate(p.c, p.s, ch, d, d.addShadow())
		}
		p.c.rulesets[ch].agreement[champOutcome][outcome].Inc()
	}
	p.c.pool.Put(p.s)
	e.metrics.shadowLatency.Observe(time.Since(start).Seconds())
}

// observe builds the store's view of the event (which logs it touches
// under which keys, which features it reads) and makes the one store call.
// It returns an *InputError for a field the store cannot record.
func (e *Engine) observe(ctx context.Context, c *compiled, s *scratch, ev *fastjson.Value, h header, rs *rules.Ruleset, d *Decision, timeout time.Duration, all bool) error {
	set := c.policy.Features
	switch {
	case rs != nil && all:
		for fi := range s.reads {
			s.reads[fi] = true
		}
	case rs != nil:
		for _, fi := range c.rulesets[rs].reads {
			s.reads[fi] = true
		}
	}
	s.obs.Reset(h.id, h.ts)
	s.keyBuf = s.keyBuf[:0]
	for li := range s.entryOf {
		s.entryOf[li] = noEntryYet
	}
	var bad error
	for fi, f := range set.Features {
		s.itemOf[fi] = -1
		read, record := s.reads[fi], f.Records(h.typ)
		s.reads[fi] = false
		if !read && !record {
			continue
		}
		li := f.EventLog.Index
		ei := s.entryOf[li]
		if ei == keyAbsent {
			continue
		}
		if ei < 0 {
			start := len(s.keyBuf)
			ok := true
			if len(f.Key) == 1 {
				s.keyBuf, ok = appendKeyPart(s.keyBuf, lookup(ev, f.Key[0]))
			}
			for k := 0; k < len(f.Key) && len(f.Key) > 1; k++ {
				if k > 0 {
					s.keyBuf = append(s.keyBuf, features.KeySep...)
				}
				if s.keyBuf, ok = appendCompositePart(s.keyBuf, lookup(ev, f.Key[k])); !ok {
					break
				}
			}
			if !ok {
				// No key: the log's features stay nil and nothing is
				// recorded into it.
				s.keyBuf = s.keyBuf[:start]
				s.entryOf[li] = keyAbsent
				continue
			}
			// A filtered log records the event only when its condition
			// holds, asked once per event; reading it is unaffected.
			if record && c.policy.Filters[li] != nil {
				record = ei != filteredOut && e.where(c, s, li)
			}
			if !read && !record {
				s.keyBuf = s.keyBuf[:start]
				s.entryOf[li] = filteredOut
				continue
			}
			ei = s.obs.AddEntry(f.EventLog, bstr(s.keyBuf[start:len(s.keyBuf):len(s.keyBuf)]), record)
			s.entryOf[li] = ei
			if record {
				if err := e.fields(s, ev, ei, f.EventLog); err != nil && bad == nil {
					bad = err
				}
			}
		}
		if read {
			s.itemOf[fi] = len(s.obs.Items)
			s.obs.AddItem(f, ei)
		}
	}
	if bad != nil {
		return bad
	}
	if len(s.obs.Entries) == 0 {
		return nil
	}
	start := time.Now()
	if timeout <= 0 {
		timeout = e.timeout
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	s.obs.Body = bodyHash(h.body)
	err := e.store.Observe(ctx, &s.obs)
	e.metrics.storeLatency.Observe(time.Since(start).Seconds())
	if s.obs.Conflict {
		return &InputError{Msg: fmt.Sprintf("event id %q was scored within the idempotency window for another event body: a retry repeats the event unchanged, a new event takes a new id", h.id), conflict: true}
	}
	if err != nil {
		// The store left nil whatever it could not read; score with the
		// rest and say so.
		e.metrics.storeErrors.Inc()
		if errors.Is(err, context.DeadlineExceeded) {
			e.metrics.storeTimeouts.Inc()
		}
		e.log.Warn("feature store failed; the decision is degraded", "err", err)
		d.Degraded = true
	}
	d.Retry = s.obs.Retry
	return nil
}

// where evaluates the condition of log li on the event in s. An error
// (a missing field compared with a number, say) counts against the log's
// features and the event is not recorded.
func (e *Engine) where(c *compiled, s *scratch, li int) bool {
	f := c.policy.Filters[li]
	env := s.filterEnvs[li]
	if env == nil {
		env = f.NewEnv()
		env.SetBudget(&s.budget)
		s.filterEnvs[li] = env
	}
	env.Reset()
	for i, slot := range f.Slots() {
		if m := c.filterLists[li][i]; m != nil {
			env.SetList(i, m.Snapshot())
			continue
		}
		env.SetField(i, lookup(s.ev, slot.Path))
	}
	ok, err := f.Eval(env)
	if err != nil {
		for _, m := range c.whereErrors[li] {
			m.Inc()
		}
	}
	return ok
}

// fields sets the values entry ei records: the log's numeric fields as
// exact micro-units and its distinct fields as key parts.
func (e *Engine) fields(s *scratch, ev *fastjson.Value, ei int, l *features.EventLog) error {
	for slot, p := range l.Nums {
		n, ok, buf, err := micro(lookup(ev, p), s.numBuf)
		s.numBuf = buf
		if err != nil {
			return &InputError{Msg: fmt.Sprintf("field %q: %s: %v", p.Name, policyfile.Cut(string(buf)), err)}
		}
		if ok {
			s.obs.SetNum(ei, slot, n)
		}
	}
	for slot, p := range l.Ofs {
		start := len(s.keyBuf)
		var ok bool
		if s.keyBuf, ok = appendKeyPart(s.keyBuf, lookup(ev, p)); ok {
			s.obs.SetOf(ei, slot, bstr(s.keyBuf[start:len(s.keyBuf):len(s.keyBuf)]))
		}
	}
	return nil
}

// modelInputs appends to dst the inputs of the model mi computes, for the
// event and features in s, in the order it was trained on: features and
// event fields as models.FeatureInput and models.FieldInput read them,
// derived inputs computed in their own environment (NaN for missing).
func (e *Engine) modelInputs(c *compiled, s *scratch, mi *rules.ModelInputs, dst []float64) []float64 {
	fs := c.policy.Features.Features
	var env *rules.Env
	if slots := mi.Slots(); len(slots) > 0 {
		env = s.modelEnvs[mi.Index]
		if env == nil {
			env = mi.NewEnv()
			s.modelEnvs[mi.Index] = env
		}
		env.Reset()
		for i, slot := range slots {
			switch {
			case c.modelLists[mi.Index][i] != nil:
				env.SetList(i, c.modelLists[mi.Index][i].Snapshot())
			case slot.Feature < 0:
				env.SetField(i, lookup(s.ev, slot.Path))
			default:
				env.SetFeature(i, s.feature(slot.Feature))
			}
		}
	}
	for i, in := range mi.Model.Inputs {
		var x float64
		switch {
		case in.Derived():
			x = mi.Derived(i, env)
		case in.Feature >= 0:
			x = models.FeatureInput(s.feature(in.Feature), fs[in.Feature].Kind.Bool())
		default:
			x = models.FieldInput(lookup(s.ev, in.Field))
		}
		dst = append(dst, x)
	}
	return dst
}

// feature is feature fi's value for the event: nil when not read or not
// answered.
func (s *scratch) feature(fi int) features.Value {
	if it := s.itemOf[fi]; it >= 0 {
		return s.obs.Items[it].Value
	}
	return features.Value{}
}

// evaluate runs every rule of rs on the event and features in s and fills
// v, which is d's live verdict or one of its shadows, and returns v's
// outcome. The live verdict also fills d's explanation.
func (e *Engine) evaluate(c *compiled, s *scratch, rs *rules.Ruleset, d *Decision, v *Verdict) rules.Outcome {
	pr := c.rulesets[rs]
	fs := c.policy.Features.Features
	live := v == &d.Verdict
	explain := live && d.Explain
	env := s.envs[rs]
	if env == nil {
		env = rs.NewEnv()
		env.SetBudget(&s.budget)
		s.envs[rs] = env
	}
	if live {
		s.liveModels = s.liveModels[:0]
	}
	env.Reset()
	var base float64
	for i, slot := range rs.Slots {
		if m := pr.lists[i]; m != nil {
			env.SetList(i, m.Snapshot())
			continue
		}
		switch {
		case slot.Model != nil:
			// Evaluated only for rulesets that read it, once the features
			// are in.
			s.modelIn = e.modelInputs(c, s, slot.Inputs, s.modelIn[:0])
			p := slot.Model.Predict(s.modelIn)
			env.SetModel(i, p)
			if rs.Base != nil && i == rs.Base.Slot() {
				base = p
			}
			if explain && !d.explained(slot.Model) {
				d.addModel(slot.Model, s.modelIn).Score = p
			} else if live && !explain {
				s.liveModels = append(s.liveModels, ModelValue{Model: slot.Model, Score: p})
			}
		case slot.Feature < 0:
			env.SetField(i, lookup(s.ev, slot.Path))
		default:
			env.SetFeature(i, s.feature(slot.Feature))
		}
	}
	if explain {
		for _, fi := range rs.Reads {
			f := fs[fi]
			d.Features = append(d.Features, FeatureValue{Name: f.Name, Value: s.feature(fi), Bool: f.Kind.Bool()})
		}
	}
	v.Ruleset, v.Version = rs.Name, rs.Version
	forced := rules.Pass
	if b := rs.Base; b != nil {
		// The model's share of the score, first among the reasons so
		// that they still add up to it.
		points := b.Points(base)
		start := len(d.buf)
		d.buf = appendBaseReason(d.buf, b, base, points)
		v.Reasons = append(v.Reasons, Reason{Rule: b.Rule, Score: points, Text: bstr(d.buf[start:len(d.buf):len(d.buf)])})
		v.Score += points
	}
	s.results = rs.Eval(env, s.results)
	pr.health.tick(s.minute, rs, e.log)
	for i, r := range rs.Rules {
		res := s.results[i]
		if res.Err != nil {
			pr.errors[i].Inc()
			pr.health.failed(i, res.Err, d.EventID)
		}
		if !res.Fired {
			if explain {
				nf := NotFired{Rule: r.ID}
				if res.Err != nil {
					nf.Error = d.keep(res.Err.Error())
				}
				d.NotFired = append(d.NotFired, nf)
			}
			continue
		}
		pr.hits[i].Inc()
		start := len(d.buf)
		d.buf = r.Reason.Render(d.buf, env)
		reason := Reason{Rule: r.ID, Score: res.Score, Text: bstr(d.buf[start:len(d.buf):len(d.buf)]), Action: r.Action}
		n := len(d.lists)
		d.lists = env.ListVersions(d.lists, i)
		reason.Lists = d.lists[n:len(d.lists):len(d.lists)]
		v.Reasons = append(v.Reasons, reason)
		v.Score += res.Score
		forced = max(forced, r.Action)
	}
	v.Outcome = max(rs.Outcome(v.Score), forced)
	if live && !explain && v.Outcome == rules.Review {
		// A case holds every feature the ruleset read: the analyst sees
		// what the rules saw.
		for _, fi := range rs.Reads {
			f := fs[fi]
			d.Features = append(d.Features, FeatureValue{Name: f.Name, Value: s.feature(fi), Bool: f.Kind.Bool()})
		}
		d.Models = append(d.Models, s.liveModels...)
	}
	if d.Degraded {
		v.StorePolicy = "fail_open"
		if rs.FailClosed {
			v.StorePolicy = "fail_closed"
			if v.Outcome < rules.StepUp {
				v.Outcome = rules.StepUp
				v.Reasons = append(v.Reasons, Reason{Rule: StoreUnavailableRule, Text: storeUnavailableReason, Action: rules.StepUp})
			}
		}
	}
	if live {
		pr.outcomes[v.Outcome].Inc()
	} else {
		pr.shadowOutcomes[v.Outcome].Inc()
	}
	return v.Outcome
}
