package rules

import (
	"fmt"
	"math"
	"reflect"
	"strconv"
	"time"
	"unsafe"

	"github.com/expr-lang/expr/vm"
	"github.com/valyala/fastjson"

	"github.com/riskd/riskd/eventschema"
	"github.com/riskd/riskd/features"
	"github.com/riskd/riskd/lists"
	"github.com/riskd/riskd/models"
)

// Slot is one value the expressions of a ruleset read: a feature or an
// event field.
type Slot struct {
	// Name is the value's name in the environment: "features.x" or
	// "event.a.b".
	Name string
	// Feature is the feature's index in Policy.Features; -1 for an event
	// field.
	Feature int
	// Path is the event field read, for an event field.
	Path features.Path
	// Model is the model whose prediction the slot holds (model.<name>),
	// nil for a feature or an event field.
	Model *models.Model
	// Inputs computes the model's inputs; nil when its inputs did not
	// compile (the policy then fails to load).
	Inputs *ModelInputs
	// List names the mutable list the slot holds, filled per event with
	// SetList; "" for a feature or an event field.
	List string
	// Type is the event field's declared type (eventschema.Any: undeclared, or
	// not declared for every event type the ruleset scores). Features are
	// typed by their kind.
	Type   eventschema.Type
	field  *eventschema.Field // the declaration, for coercion
	isBool bool               // a feature of a boolean kind

	typed bool // held in its Go type in the typed environment; else any
}

// The two environments every expression is compiled against.
//
// typed holds each feature and declared event field in its Go type
// (float64, bool, string…): expr then type-checks the rules at load
// (`event.amount > "x"` is an error) and loads a value by its field
// offset rather than a map lookup. A typed field cannot be nil, so a
// program compiled against it runs only when every typed value it reads is
// present; otherwise its twin compiled against loose, where every field is
// an any, runs and sees nil as the rules always have. Equivalence of the
// two is what TestTypedEnvMatchesMap checks.
const (
	typed = iota
	loose
)

// layout is a ruleset's environment types.
type layout struct {
	types [2]reflect.Type
	words int // of the presence bit set
}

var anyType = reflect.TypeFor[any]()

// goType is how the typed environment holds a slot.
func (s *Slot) goType() reflect.Type {
	if s.Model != nil {
		return reflect.TypeFor[float64]()
	}
	if s.List != "" {
		return reflect.TypeFor[func(string) bool]()
	}
	if s.Feature >= 0 {
		if s.isBool {
			return reflect.TypeFor[bool]()
		}
		return reflect.TypeFor[float64]()
	}
	switch s.Type {
	case eventschema.String:
		return reflect.TypeFor[string]()
	case eventschema.Number:
		return reflect.TypeFor[float64]()
	case eventschema.Integer:
		return reflect.TypeFor[int]()
	case eventschema.Bool:
		return reflect.TypeFor[bool]()
	case eventschema.Time:
		return reflect.TypeFor[time.Time]()
	case eventschema.Object:
		return reflect.TypeFor[map[string]any]()
	case eventschema.List, eventschema.ListOfString, eventschema.ListOfNumber:
		return reflect.TypeFor[[]any]()
	}
	return anyType
}

// tickName is the environment's step counter, which the compiler calls
// at each iteration of a predicate (see MaxExpressionSteps). The dot keeps
// expressions from naming it: they can write no such identifier.
const tickName = "riskd.tick"

// newLayout builds the environment types of slots: field i holds slot i,
// and the last field the step counter.
func newLayout(slots []Slot) *layout {
	l := &layout{words: (len(slots) + 63) / 64}
	for env := range l.types {
		fields := make([]reflect.StructField, 0, len(slots)+1)
		for i := range slots {
			t := anyType
			if env == typed || slots[i].List != "" {
				// A mutable list is never nil: the loose twin holds its
				// test in its type too, so expr calls it directly.
				t = slots[i].goType()
			}
			fields = append(fields, reflect.StructField{
				Name: "S" + strconv.Itoa(i), Type: t,
				Tag: reflect.StructTag(`expr:` + strconv.Quote(slots[i].Name)),
			})
		}
		fields = append(fields, reflect.StructField{Name: "Tick", Type: reflect.TypeFor[func() bool](), Tag: `expr:"` + tickName + `"`})
		l.types[env] = reflect.StructOf(fields)
	}
	for i := range slots {
		slots[i].typed = slots[i].goType() != anyType
	}
	return l
}

// zero returns a zero value of environment env, for the compiler.
func (l *layout) zero(env int) any { return reflect.New(l.types[env]).Elem().Interface() }

// Env is where one goroutine evaluates a ruleset's expressions on one
// event at a time: fill it (Reset, then SetFeature and SetField for every
// slot), then Eval and Render. It is reused from event to event and does
// not allocate on the common path.
type Env struct {
	rs *Ruleset
	vm vm.VM
	// fields holds, per environment and slot, a pointer to the slot's
	// field (*float64, *bool, *any…): the Set methods write through it.
	fields [2][]any
	// typed is the typed environment the Set methods fill. Programs run on
	// typedEnv, a copy of it taken by the first typed run after a write
	// (typedStale) and never written again: expr fetches a field with
	// reflect, whose Value.Interface copies (allocates) a field of an
	// addressable struct but points into one held by value in an
	// interface. So a run boxes values without allocating, and a value
	// expr kept past a run would still hold what that run saw.
	typed      reflect.Value
	typedEnv   any
	typedCopy  reflect.Value // of typedEnv
	typedStale bool
	// The loose environment is behind a pointer: its fields are
	// interfaces, which reflect hands out without copying.
	looseEnv any
	looseSet bool // filled for this event
	present  []uint64
	snaps    []*lists.Snapshot // per slot: a mutable list's snapshot
	strs     map[string]any
	// budget is the event's steps left, shared with the other
	// environments of the event (SetBudget) or own; steps is the
	// expression's.
	budget *Budget
	own    Budget
	steps  int
}

// NewEnv returns an environment for evaluating rs.
func (rs *Ruleset) NewEnv() *Env {
	e := &Env{rs: rs, present: make([]uint64, rs.layout.words), strs: map[string]any{}, typedStale: true}
	e.typed = reflect.New(rs.layout.types[typed]).Elem()
	p := reflect.New(rs.layout.types[loose])
	e.looseEnv = p.Interface()
	for env, v := range [2]reflect.Value{e.typed, p.Elem()} {
		e.fields[env] = make([]any, len(rs.Slots))
		for i := range rs.Slots {
			e.fields[env][i] = v.Field(i).Addr().Interface()
		}
		v.Field(len(rs.Slots)).Set(reflect.ValueOf(e.tick))
	}
	e.budget = &e.own
	e.own.Reset()
	return e
}

// SetBudget makes the environment draw its event's steps from b, shared
// with the other environments evaluating the event; the caller resets b
// for each event. Without it, each Reset gives the environment a budget
// of its own.
func (e *Env) SetBudget(b *Budget) { e.budget = b }

// tick counts one step, and stops the expression (expr's VM turns the
// panic into its error) past the expression's or the event's budget.
func (e *Env) tick() bool {
	e.steps--
	e.budget.left--
	switch {
	case e.steps < 0:
		panic(budgetError{fmt.Sprintf("more than %d steps (iterations of all, any, filter, map…) in one expression", MaxExpressionSteps)})
	case e.budget.left < 0:
		panic(budgetError{fmt.Sprintf("more than %d steps (iterations of all, any, filter, map…) for one event", MaxEventSteps)})
	}
	return true
}

// Ruleset is the ruleset the environment evaluates.
func (e *Env) Ruleset() *Ruleset { return e.rs }

// Reset prepares the environment for the next event: every slot absent,
// and its own budget (unless it shares one) full.
func (e *Env) Reset() {
	if e.budget == &e.own {
		e.own.Reset()
	}
	clear(e.present)
	e.looseSet = false
}

// at is the pointer to slot i's field in environment env, for a write:
// the typed environment's copy is then stale.
func (e *Env) at(i, env int) any {
	e.typedStale = true
	return e.fields[env][i]
}

func (e *Env) setPresent(i int) { e.present[i/64] |= 1 << (i % 64) }

func (e *Env) isPresent(i int) bool { return e.present[i/64]&(1<<(i%64)) != 0 }

// SetFeature sets slot i, a feature, to v (nil when not valid).
func (e *Env) SetFeature(i int, v features.Value) {
	if !v.Valid {
		e.clear(i)
		return
	}
	if e.rs.Slots[i].isBool {
		*e.at(i, typed).(*bool) = v.Bool
	} else {
		*e.at(i, typed).(*float64) = v.Num
	}
	e.setPresent(i)
}

// clear zeroes typed slot i.
func (e *Env) clear(i int) {
	switch p := e.at(i, typed).(type) {
	case *float64:
		*p = 0
	case *bool:
		*p = false
	case *string:
		*p = ""
	case *int:
		*p = 0
	case *map[string]any:
		*p = nil
	case *[]any:
		*p = nil
	case *time.Time:
		*p = time.Time{}
	}
}

// SetModel sets slot i, a model, to its prediction.
func (e *Env) SetModel(i int, p float64) {
	*e.at(i, typed).(*float64) = p
	e.setPresent(i)
}

// SetList sets slot i, a mutable list, to the snapshot of its values the
// event is evaluated against; a rule that fires names its version
// (ListVersions). The snapshot must not change while it is set.
func (e *Env) SetList(i int, snap *lists.Snapshot) {
	*e.at(i, typed).(*func(string) bool) = snap.Has
	*e.at(i, loose).(*func(string) bool) = snap.Has
	if e.snaps == nil {
		e.snaps = make([]*lists.Snapshot, len(e.rs.Slots))
	}
	e.snaps[i] = snap
	e.setPresent(i)
}

// SetField sets slot i, an event field, from the event's value (nil when
// absent). A declared field holds its type's Go value; a value that does
// not conform (the event was not validated against the schema) is absent.
// An undeclared field holds what the JSON holds: string, float64, bool,
// map[string]any, []any or nil.
func (e *Env) SetField(i int, v *fastjson.Value) {
	s := &e.rs.Slots[i]
	if s.List != "" {
		// Its field holds a function, not a value: writing one there
		// would corrupt the environment.
		panic("rules: SetField on " + s.Name + ", a mutable list: fill it with SetList")
	}
	if !s.typed {
		x := e.toAny(v)
		*e.at(i, typed).(*any) = x
		*e.at(i, loose).(*any) = x
		return
	}
	// An absent or non-conforming value leaves the slot absent, and zero:
	// nothing of an earlier event stays in the environment.
	e.clear(i)
	if v == nil || v.Type() == fastjson.TypeNull {
		return
	}
	p := e.at(i, typed)
	switch s.Type {
	case eventschema.String:
		if v.Type() != fastjson.TypeString {
			return
		}
		*p.(*string) = bstr(v.GetStringBytes())
	case eventschema.Number, eventschema.Integer:
		x, ok := s.field.Number(v)
		if !ok {
			return
		}
		if s.Type == eventschema.Integer {
			if x != math.Trunc(x) || math.Abs(x) > 1<<53 {
				return
			}
			*p.(*int) = int(x)
		} else {
			*p.(*float64) = x
		}
	case eventschema.Bool:
		switch v.Type() {
		case fastjson.TypeTrue:
			*p.(*bool) = true
		case fastjson.TypeFalse:
			*p.(*bool) = false
		default:
			return
		}
	case eventschema.Time:
		t, ok := eventschema.ParseTime(v)
		if !ok {
			return
		}
		*p.(*time.Time) = t
	case eventschema.Object:
		m, ok := e.toAny(v).(map[string]any)
		if !ok {
			return
		}
		*p.(*map[string]any) = m
	default: // lists
		l, ok := e.toAny(v).([]any)
		if !ok {
			return
		}
		*p.(*[]any) = l
	}
	e.setPresent(i)
}

// fillLoose copies the typed slots into the loose environment, absent
// ones as nil; untyped slots are written to both when set.
func (e *Env) fillLoose() {
	if e.looseSet {
		return
	}
	e.looseSet = true
	copied := e.typedCopied()
	for i := range e.rs.Slots {
		s := &e.rs.Slots[i]
		if !s.typed || s.List != "" {
			continue // written to both when set
		}
		var x any
		if e.isPresent(i) {
			if p, ok := e.fields[typed][i].(*string); ok {
				x = e.str(*p)
			} else {
				// Boxed by reflect as expr boxes it: pointing into the
				// copy, which no write reaches, without an allocation.
				x = copied.Field(i).Interface()
			}
		}
		*e.fields[loose][i].(*any) = x
	}
}

// program is one expression compiled against both environments.
type program struct {
	fast, slow *vm.Program
	// needs is the bit set of the typed slots the expression reads: fast
	// runs only when all of them are present.
	needs []uint64
	// lists names the file and mutable lists the expression reads.
	lists []string
}

func (e *Env) run(p *program) (any, error) {
	e.steps = MaxExpressionSteps
	if e.has(p.needs) {
		e.typedCopied()
		return e.vm.Run(p.fast, e.typedEnv)
	}
	e.fillLoose()
	return e.vm.Run(p.slow, e.looseEnv)
}

// typedCopied brings typedEnv up to date with the writes and returns it.
func (e *Env) typedCopied() reflect.Value {
	if e.typedStale {
		e.typedEnv = e.typed.Interface() // a copy
		e.typedCopy = reflect.ValueOf(e.typedEnv)
		e.typedStale = false
	}
	return e.typedCopy
}

// has reports whether every slot in the bit set needs is present.
func (e *Env) has(needs []uint64) bool {
	for w, bits := range needs {
		if bits&^e.present[w] != 0 {
			return false
		}
	}
	return true
}

// bstr views b as a string without copying: it lives as long as the
// parsed event it came from, which outlives the evaluation.
func bstr(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// toAny converts a JSON value for the loose environment. Objects and
// arrays are copied; strings go through the environment's cache.
func (e *Env) toAny(v *fastjson.Value) any {
	if v == nil {
		return nil
	}
	switch v.Type() {
	case fastjson.TypeString:
		return e.str(bstr(v.GetStringBytes()))
	case fastjson.TypeNumber:
		return boxFloat(v.GetFloat64())
	case fastjson.TypeTrue:
		return true
	case fastjson.TypeFalse:
		return false
	case fastjson.TypeObject:
		o := v.GetObject()
		m := make(map[string]any, o.Len())
		o.Visit(func(k []byte, x *fastjson.Value) { m[string(k)] = e.toAny(x) })
		return m
	case fastjson.TypeArray:
		arr := v.GetArray()
		out := make([]any, len(arr))
		for i, x := range arr {
			out[i] = e.toAny(x)
		}
		return out
	}
	return nil
}

// Strings the rules read are mostly a few short values seen again and
// again (countries, currencies, channels): they are boxed once and reused.
const (
	maxCachedString  = 32
	maxCachedStrings = 4096
)

// str boxes s, which may alias the event's bytes: what it keeps or
// returns is a copy.
func (e *Env) str(s string) any {
	if v, ok := e.strs[s]; ok {
		return v
	}
	str := string([]byte(s))
	var v any = str
	if len(s) <= maxCachedString {
		if len(e.strs) >= maxCachedStrings {
			clear(e.strs) // a high-cardinality field: start over rather than grow
		}
		e.strs[str] = v
	}
	return v
}

// smallInts holds boxed whole numbers so counts, the commonest feature
// values, enter the loose environment without an allocation.
var smallInts = func() [1024]any {
	var a [1024]any
	for i := range a {
		a[i] = float64(i)
	}
	return a
}()

// boxFloat boxes f, from smallInts when it is one of them.
func boxFloat(f float64) any {
	if f >= 0 && f < float64(len(smallInts)) && f == math.Trunc(f) {
		return smallInts[int(f)]
	}
	return f
}
