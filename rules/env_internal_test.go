package rules

import (
	"context"
	"fmt"
	"io/fs"
	"maps"
	"math"
	"math/rand/v2"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/types"
	"github.com/expr-lang/expr/vm"
	"github.com/valyala/fastjson"
	"go.yaml.in/yaml/v3"

	"github.com/riskd/riskd/eventschema"
	"github.com/riskd/riskd/features"
	"github.com/riskd/riskd/lists"
	"github.com/riskd/riskd/policyfile"
	"github.com/riskd/riskd/rules/example"
)

// typedFeatures declares a schema and features of every kind for the
// equivalence test's own ruleset.
const typedFeatures = `event_fields:
  - {name: card_id, type: string}
  - {name: account_id, type: string}
  - {name: device_id, type: string}
  - {name: amount, type: number, required: true, event_types: [checkout]}
  - {name: amount, type: number, coerce: true, event_types: [refund]}
  - {name: currency, type: string, enum: [EUR, USD, GBP]}
  - {name: ip_country, type: string}
  - {name: qty, type: integer}
  - {name: vip, type: bool}
  - {name: tags, type: list of string}
  - {name: created, type: time}
  - {name: billing, type: object}
  - {name: free, type: object}   # its sub-fields are read untyped
  - {name: loose, type: object}
features:
  - {name: n_1h, kind: count, key: card_id, window: 1h}
  - {name: sum_24h, kind: sum, key: card_id, field: amount, window: 24h}
  - {name: avg_30d, kind: avg, key: account_id, field: amount, window: 30d}
  - {name: seen, kind: seen, key: [account_id, device_id]}
  - {name: age_s, kind: age, key: account_id}
`

// typedRules exercises what rules do with typed and untyped values, nil
// ones included: arithmetic, comparisons, ?? and nil checks, lists,
// strings, closures, ternaries, time.
const typedRules = `name: typed
event_types: [checkout, refund]
thresholds: {step_up: 50, block: 90}
lists:
  bad: [NG, RU]
  amounts: [10, 20.5]
rules:
  - {id: r01, when: "features.n_1h >= 3", score: 10}
  - {id: r02, when: "features.n_1h + event.amount > 100", score: 10}
  - {id: r03, when: "(features.avg_30d ?? 0) * 5 < event.amount", score: "min(40, event.amount / 10)"}
  - {id: r04, when: "features.avg_30d != nil && event.amount > 5 * features.avg_30d", score: 1}
  - {id: r05, when: "features.seen == false", score: 1}
  - {id: r06, when: "!features.seen", score: 1}
  - {id: r07, when: "event.ip_country in lists.bad", score: 1}
  - {id: r08, when: "event.currency == 'EUR' && event.amount in lists.amounts", score: 1}
  - {id: r09, when: "event.qty % 2 == 1 || event.qty > 10", score: 1}
  - {id: r10, when: "event.vip", score: -5}
  - {id: r11, when: "len(event.tags) > 1 && any(event.tags, # startsWith 'x')", score: 1}
  - {id: r12, when: "'promo' in event.tags", score: 1}
  - {id: r13, when: "event.created < date('2026-06-01T00:00:00Z')", score: 1}
  - {id: r14, when: "event.billing.country != event.ip_country", score: 1}
  - {id: r15, when: "event.free.untyped > 3", score: 1}
  - {id: r16, when: "event.free.untyped == 'x' || event.loose.other ?? false", score: 1}
  - {id: r17, when: "lower(event.ip_country ?? '') matches '^n'", score: 1}
  - {id: r18, when: "features.age_s < 600 && (features.sum_24h ?? 0) > 50", score: "features.sum_24h / 10"}
  - {id: r19, when: "let x = features.n_1h * 2; x > event.qty", score: 1}
  - {id: r20, when: "event.amount > 0 ? features.n_1h > 1 : features.seen", score: 1}
  - {id: r21, when: "event.qty / 4 > 1.5", score: 1}
  - {id: r22, when: "event.free.untyped in lists.bad", score: 1}
  - {id: r23, when: "features.sum_24h == nil", score: 1}
  - {id: r24, when: "event.ip_country == nil || event.currency == nil", score: 1}
`

// loadedCase is a policy and the sources of its rules, for evaluating them
// the old way.
type loadedCase struct {
	name   string
	p      *Policy
	whens  map[string]map[string]string // ruleset -> rule -> when
	graded map[string]map[string]string // ruleset -> rule -> score expression
}

func loadCase(t testing.TB, name string, fsys fs.FS) loadedCase {
	t.Helper()
	p, err := Load(fsys, name)
	if err != nil {
		t.Fatal(err)
	}
	lc := loadedCase{name: name, p: p, whens: map[string]map[string]string{}, graded: map[string]map[string]string{}}
	for _, rs := range p.Rulesets {
		data, err := fs.ReadFile(fsys, strings.TrimPrefix(rs.File, name+"/"))
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Rules []struct {
				ID    string `yaml:"id"`
				When  string `yaml:"when"`
				Score any    `yaml:"score"`
			} `yaml:"rules"`
		}
		if err := yaml.Unmarshal(data, &doc); err != nil {
			t.Fatal(err)
		}
		lc.whens[rs.Name], lc.graded[rs.Name] = map[string]string{}, map[string]string{}
		for _, r := range doc.Rules {
			lc.whens[rs.Name][r.ID] = r.When
			if s, ok := r.Score.(string); ok {
				lc.graded[rs.Name][r.ID] = s
			}
		}
	}
	return lc
}

func equivalenceCases(t testing.TB) []loadedCase {
	return []loadedCase{
		loadCase(t, "example", example.FS),
		loadCase(t, "typed", fstest.MapFS{
			"features.yaml": {Data: []byte(typedFeatures)},
			"typed.yaml":    {Data: []byte(typedRules)},
		}),
	}
}

// mapEval is the evaluation riskd had before typed environments: each
// expression compiled against a map of flattened names, features typed by
// kind and event fields untyped, run on a map holding nil for absent
// values.
type mapEval struct {
	whens, graded []*vm.Program
	scores        []int64 // fixed scores
}

func newMapEval(t testing.TB, lc loadedCase, rs *Ruleset) *mapEval {
	env := types.Map{tickName: types.TypeOf(func() bool { return true })}
	for _, f := range lc.p.Features.Features {
		env[FeatureEnvKey(f.Name)] = types.Float64
		if f.Kind.Bool() {
			env[FeatureEnvKey(f.Name)] = types.Bool
		}
	}
	for _, s := range rs.Slots {
		if s.Feature < 0 {
			env[s.Name] = types.Any
		}
	}
	visible := maps.Clone(lc.p.Lists)
	maps.Copy(visible, rs.Lists)
	c := &compiler{es: &policyfile.Errors{}, features: lc.p.Features, lists: visible}
	compile := func(src string, opt expr.Option) *vm.Program {
		prog, err := expr.Compile(src, expr.Env(env), opt,
			expr.Patch(newFlattener(c, false)))
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		return prog
	}
	m := &mapEval{}
	for _, r := range rs.Rules {
		m.whens = append(m.whens, compile(lc.whens[rs.Name][r.ID], expr.AsBool()))
		var g *vm.Program
		if src, ok := lc.graded[rs.Name][r.ID]; ok {
			g = compile(src, expr.AsFloat64())
		}
		m.graded = append(m.graded, g)
		m.scores = append(m.scores, r.Score)
	}
	return m
}

// looseMap reads e's loose environment as the map mapEval runs on.
func looseMap(e *Env) map[string]any {
	e.fillLoose()
	v := reflect.ValueOf(e.looseEnv).Elem()
	out := map[string]any{tickName: e.tick}
	for i, s := range e.rs.Slots {
		out[s.Name] = v.Field(i).Interface()
	}
	return out
}

func (m *mapEval) eval(env map[string]any) []RuleResult {
	var machine vm.VM
	out := make([]RuleResult, len(m.whens))
	for i, w := range m.whens {
		fired, err := machine.Run(w, env)
		switch {
		case err != nil:
			out[i].Err = err
		case fired == true && m.graded[i] == nil:
			out[i] = RuleResult{Fired: true, Score: m.scores[i]}
		case fired == true:
			v, err := machine.Run(m.graded[i], env)
			if err != nil {
				out[i].Err = err
				continue
			}
			s, ok := ScoreOf(v.(float64))
			out[i] = RuleResult{Fired: ok, Score: s}
			if !ok {
				out[i].Err = fmt.Errorf("not finite")
			}
		}
	}
	return out
}

// input is one generated event and its feature values.
type input struct {
	feats map[string]features.Value
	event string
}

// genInput makes an event and features for rs from rng: each feature
// absent one time in five; declared fields of their type or absent;
// undeclared ones of any JSON type.
func genInput(rng *rand.Rand, p *Policy, rs *Ruleset) input {
	num := func() float64 {
		switch rng.IntN(6) {
		case 0:
			return 0
		case 1:
			return -float64(rng.IntN(50))
		case 2:
			return math.Round(rng.Float64()*20000) / 100
		}
		return float64(rng.IntN(12))
	}
	in := input{feats: map[string]features.Value{}}
	for _, fi := range rs.Reads {
		f := p.Features.Features[fi]
		if rng.IntN(5) == 0 {
			continue
		}
		if f.Kind.Bool() {
			in.feats[f.Name] = features.Value{Valid: true, Bool: rng.IntN(2) == 0}
		} else {
			in.feats[f.Name] = features.Value{Valid: true, Num: num()}
		}
	}
	anyValue := func() string {
		switch rng.IntN(7) {
		case 0:
			return strconv.Quote([]string{"x", "NG", "FR", "nice", ""}[rng.IntN(5)])
		case 1:
			return strconv.FormatFloat(num(), 'f', -1, 64)
		case 2:
			return "true"
		case 3:
			return "null"
		case 4:
			return `{"country":"FR"}`
		case 5:
			return `["x1","promo"]`
		}
		return "false"
	}
	obj := map[string]string{}
	for _, s := range rs.Slots {
		if s.Feature >= 0 || s.List != "" || rng.IntN(6) == 0 {
			continue
		}
		top := s.Path.Parts[0]
		var v string
		switch s.Type {
		case eventschema.String:
			v = strconv.Quote([]string{"EUR", "USD", "NG", "FR", "RU", "nz"}[rng.IntN(6)])
		case eventschema.Number:
			v = strconv.FormatFloat(num(), 'f', -1, 64)
		case eventschema.Integer:
			v = strconv.Itoa(rng.IntN(25) - 3)
		case eventschema.Bool:
			v = strconv.FormatBool(rng.IntN(2) == 0)
		case eventschema.Time:
			v = strconv.Quote([]string{"2026-01-02T03:04:05Z", "2026-11-29T00:00:00+01:00"}[rng.IntN(2)])
		case eventschema.ListOfString:
			v = []string{`[]`, `["x1"]`, `["promo","y"]`, `["xa","xb","c"]`}[rng.IntN(4)]
		default:
			v = anyValue()
		}
		if len(s.Path.Parts) > 1 {
			v = fmt.Sprintf(`{%q:%s}`, s.Path.Parts[1], v)
		}
		obj[top] = v
	}
	var b strings.Builder
	b.WriteString(`{"id":"e","type":"checkout"`)
	for k, v := range obj {
		fmt.Fprintf(&b, ",%q:%s", k, v)
	}
	b.WriteString("}")
	in.event = b.String()
	return in
}

// fill sets every slot of e from in.
func fill(t testing.TB, e *Env, p *fastjson.Parser, in input) {
	ev, err := p.Parse(in.event)
	if err != nil {
		t.Fatalf("%s: %v", in.event, err)
	}
	e.Reset()
	for i, s := range e.rs.Slots {
		switch {
		case s.List != "":
			e.SetList(i, testListSnapshot(t, s.List))
		case s.Feature >= 0:
			e.SetFeature(i, in.feats[strings.TrimPrefix(s.Name, "features.")])
		default:
			e.SetField(i, ev.Get(s.Path.Parts...))
		}
	}
}

// testListSnapshot is a mutable list holding NG and FR, values the
// generated events have.
func testListSnapshot(t testing.TB, name string) *lists.Snapshot {
	r := lists.NewMemory(lists.Options{})
	r.Declare([]string{name})
	if _, err := r.Add(context.Background(), name, []string{"NG", "FR"}, 0, "test"); err != nil {
		t.Fatal(err)
	}
	return r.List(name).Snapshot()
}

func sameResults(a, b []RuleResult) bool {
	for i := range a {
		if a[i].Fired != b[i].Fired || a[i].Score != b[i].Score || (a[i].Err == nil) != (b[i].Err == nil) {
			return false
		}
	}
	return len(a) == len(b)
}

// TestTypedEnvMatchesMap: the typed environment (a fast program on typed
// values when all are present, its loose twin otherwise) fires, scores and
// fails exactly the rules that the map environment riskd used before does,
// on generated inputs with absent features and fields of every type.
func TestTypedEnvMatchesMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var parser fastjson.Parser
	runs := map[string]int{}
	for _, lc := range equivalenceCases(t) {
		for _, rs := range lc.p.Rulesets {
			old := newMapEval(t, lc, rs)
			e := rs.NewEnv()
			var got []RuleResult
			for range 20000 / len(lc.p.Rulesets) {
				in := genInput(rng, lc.p, rs)
				fill(t, e, &parser, in)
				got = rs.Eval(e, got)
				want := old.eval(looseMap(e))
				if !sameResults(got, want) {
					for i := range got {
						if got[i].Fired != want[i].Fired || got[i].Score != want[i].Score || (got[i].Err == nil) != (want[i].Err == nil) {
							t.Fatalf("%s/%s rule %s on %s %v: typed %+v, map %+v", lc.name, rs.Name, rs.Rules[i].ID, in.event, in.feats, got[i], want[i])
						}
					}
				}
				for i, r := range got {
					switch {
					case r.Err != nil:
						runs["error"]++
					case r.Fired:
						runs["fired"]++
					default:
						runs["quiet"]++
					}
					if e.has(rs.Rules[i].when.needs) {
						runs["fast"]++
					} else {
						runs["slow"]++
					}
				}
			}
		}
	}
	// The inputs reach every path: a test that never runs one proves
	// nothing about it.
	for _, k := range []string{"error", "fired", "quiet", "fast", "slow"} {
		if runs[k] < 1000 {
			t.Errorf("only %d rule runs %s: %v", runs[k], k, runs)
		}
	}
}

// FuzzTypedEnv: any event and feature values give the same results in the
// typed and the map environment.
func FuzzTypedEnv(f *testing.F) {
	f.Add(uint64(1), uint64(2))
	f.Add(uint64(99), uint64(7))
	cases := equivalenceCases(f)
	f.Fuzz(func(t *testing.T, seed1, seed2 uint64) {
		rng := rand.New(rand.NewPCG(seed1, seed2))
		var parser fastjson.Parser
		for _, lc := range cases {
			for _, rs := range lc.p.Rulesets {
				old := newMapEval(t, lc, rs)
				e := rs.NewEnv()
				in := genInput(rng, lc.p, rs)
				fill(t, e, &parser, in)
				got := rs.Eval(e, nil)
				if want := old.eval(looseMap(e)); !sameResults(got, want) {
					t.Fatalf("%s/%s on %s %v: typed %+v, map %+v", lc.name, rs.Name, in.event, in.feats, got, want)
				}
			}
		}
	})
}

// TestEnvValuesOutliveTheirRun: a value a run hands out (a result, or one
// expr keeps) is not changed by the next events' writes, on either
// environment: the typed one runs on a copy no write reaches, and the
// loose one boxes from that copy.
func TestEnvValuesOutliveTheirRun(t *testing.T) {
	p, err := Load(fstest.MapFS{
		"features.yaml": {Data: []byte("event_fields:\n  - {name: note, type: string}\n  - {name: card_id, type: string}\n  - {name: amount, type: number}\nfeatures:\n  - {name: sum_1h, kind: sum, key: card_id, field: amount, window: 1h}\n")},
		"r.yaml": {Data: []byte("name: r\nevent_types: [checkout]\nthresholds: {step_up: 50, block: 90}\nrules:\n" +
			"  - {id: typed, when: \"true\", score: 1, reason: \"{{features.sum_1h}}\"}\n" +
			"  - {id: loose, when: \"true\", score: 1, reason: \"{{event.note ?? features.sum_1h}}\"}\n")},
	}, "p")
	if err != nil {
		t.Fatal(err)
	}
	rs := p.ForType("checkout")
	env := rs.NewEnv()
	// event.note is absent: the loose twin of the second rule's hole runs.
	fill := func(x float64) {
		env.Reset()
		for i, s := range rs.Slots {
			if s.Feature >= 0 {
				env.SetFeature(i, features.Value{Valid: true, Num: x})
			} else {
				env.SetField(i, nil)
			}
		}
	}
	// A reason hole runs with expr.AsAny: it returns the boxed value.
	hole := func(ri int) any {
		v, err := env.run(rs.Rules[ri].Reason.parts[0].prog)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	fill(1.25)
	kept := []any{hole(0), hole(1)}
	for _, x := range []float64{2.25, 3.5} {
		fill(x)
		if got := []any{hole(0), hole(1)}; !reflect.DeepEqual(got, []any{x, x}) {
			t.Fatalf("event with %v: got %v", x, got)
		}
	}
	if want := []any{1.25, 1.25}; !reflect.DeepEqual(kept, want) {
		t.Errorf("values kept from a run (typed, loose) became %v, want %v", kept, want)
	}
}
