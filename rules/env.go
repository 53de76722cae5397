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
	// List names the mutable list the slot holds, filled per event with
	// SetList; "" for a feature or an event field.
	List string
	// Type is the event field's declared type (eventschema.Any: undeclared, or
	// not declared for every event type the ruleset scores). Features are
	// typed by their kind.
	Type   eventschema.Type
	field  *eventschema.Field // the declaration, for coercion
	isBool bool               // a feature of a boolean kind

	typed  bool         // held in its Go type in the typed environment; else any
	kind   reflect.Kind // of that Go type, for the writes that depend on it
	offset [2]uintptr
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
	words int        // of the presence bit set
	tick  [2]uintptr // offset of the step counter's func in each type
}

// tickName is the environment's step counter, which the compiler calls
// at each iteration of a predicate (see MaxExpressionSteps). The dot keeps
// expressions from naming it: they can write no such identifier.
const tickName = "riskd.tick"

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

// newLayout builds the environment types of slots and records each slot's
// offsets in them.
func newLayout(slots []Slot) *layout {
	l := &layout{words: (len(slots) + 63) / 64}
	for env := range l.types {
		// The leading word keeps the struct from being pointer-shaped (a
		// struct of one map would be stored in an interface as the map
		// itself, and Env writes through the interface's data pointer).
		fields := []reflect.StructField{{Name: "Pad", Type: reflect.TypeFor[uint64](), Tag: `expr:"-"`},
			{Name: "Tick", Type: reflect.TypeFor[func() bool](), Tag: `expr:"` + tickName + `"`}}
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
		l.types[env] = reflect.StructOf(fields)
		l.tick[env] = l.types[env].Field(1).Offset
		for i := range slots {
			slots[i].offset[env] = l.types[env].Field(i + 2).Offset
			slots[i].kind = slots[i].goType().Kind()
			slots[i].typed = slots[i].kind != reflect.Interface
		}
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
	// The typed environment is held by value in an interface, and filled
	// through the interface's data pointer. expr fetches a field with
	// reflect and boxes it with Value.Interface, which copies (allocates)
	// a field of an addressable struct, as one behind a pointer is, but
	// points into one held by value. The values a run boxes this way live
	// only during the run: results are converted before the next fill.
	typedEnv any
	typedMem unsafe.Pointer
	// The loose environment is behind a pointer: its fields are
	// interfaces, which reflect hands out without copying.
	looseEnv any
	looseMem unsafe.Pointer
	looseSet bool // filled for this event
	present  []uint64
	snaps    []*lists.Snapshot // per slot: a mutable list's snapshot
	floats   floatArena
	strs     map[string]any
	// budget is the event's steps left, shared with the other
	// environments of the event (SetBudget) or own; steps is the
	// expression's.
	budget *Budget
	own    Budget
	steps  int
}

// eface is the layout of an empty interface.
type eface struct {
	typ, data unsafe.Pointer
}

// NewEnv returns an environment for evaluating rs.
func (rs *Ruleset) NewEnv() *Env {
	e := &Env{rs: rs, present: make([]uint64, rs.layout.words), strs: map[string]any{}}
	e.typedEnv = rs.layout.zero(typed)
	e.typedMem = (*eface)(unsafe.Pointer(&e.typedEnv)).data
	p := reflect.New(rs.layout.types[loose])
	e.looseEnv, e.looseMem = p.Interface(), p.UnsafePointer()
	tick := e.tick
	*(*func() bool)(unsafe.Add(e.typedMem, rs.layout.tick[typed])) = tick
	*(*func() bool)(unsafe.Add(e.looseMem, rs.layout.tick[loose])) = tick
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
	e.floats.n = 0
}

func (e *Env) at(i, env int) unsafe.Pointer {
	if env == typed {
		return unsafe.Add(e.typedMem, e.rs.Slots[i].offset[typed])
	}
	return unsafe.Add(e.looseMem, e.rs.Slots[i].offset[loose])
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
		*(*bool)(e.at(i, typed)) = v.Bool
	} else {
		*(*float64)(e.at(i, typed)) = v.Num
	}
	e.setPresent(i)
}

// clear zeroes typed slot i.
func (e *Env) clear(i int) {
	p := e.at(i, typed)
	switch e.rs.Slots[i].kind {
	case reflect.Float64:
		*(*float64)(p) = 0
	case reflect.Bool:
		*(*bool)(p) = false
	case reflect.String:
		*(*string)(p) = ""
	case reflect.Int:
		*(*int)(p) = 0
	case reflect.Map:
		*(*map[string]any)(p) = nil
	case reflect.Slice:
		*(*[]any)(p) = nil
	case reflect.Struct:
		*(*time.Time)(p) = time.Time{}
	}
}

// SetModel sets slot i, a model, to its prediction.
func (e *Env) SetModel(i int, p float64) {
	*(*float64)(e.at(i, typed)) = p
	e.setPresent(i)
}

// SetList sets slot i, a mutable list, to the snapshot of its values the
// event is evaluated against; a rule that fires names its version
// (ListVersions). The snapshot must not change while it is set.
func (e *Env) SetList(i int, snap *lists.Snapshot) {
	*(*func(string) bool)(e.at(i, typed)) = snap.Has
	*(*func(string) bool)(e.at(i, loose)) = snap.Has
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
		*(*any)(e.at(i, typed)) = x
		*(*any)(e.at(i, loose)) = x
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
		*(*string)(p) = bstr(v.GetStringBytes())
	case eventschema.Number, eventschema.Integer:
		x, ok := s.field.Number(v)
		if !ok {
			return
		}
		if s.Type == eventschema.Integer {
			if x != math.Trunc(x) || math.Abs(x) > 1<<53 {
				return
			}
			*(*int)(p) = int(x)
		} else {
			*(*float64)(p) = x
		}
	case eventschema.Bool:
		switch v.Type() {
		case fastjson.TypeTrue:
			*(*bool)(p) = true
		case fastjson.TypeFalse:
			*(*bool)(p) = false
		default:
			return
		}
	case eventschema.Time:
		t, ok := eventschema.ParseTime(v)
		if !ok {
			return
		}
		*(*time.Time)(p) = t
	case eventschema.Object:
		m, ok := e.toAny(v).(map[string]any)
		if !ok {
			return
		}
		*(*map[string]any)(p) = m
	default: // lists
		l, ok := e.toAny(v).([]any)
		if !ok {
			return
		}
		*(*[]any)(p) = l
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
	for i := range e.rs.Slots {
		s := &e.rs.Slots[i]
		if !s.typed || s.List != "" {
			continue // written to both when set
		}
		var x any
		if e.isPresent(i) {
			p := e.at(i, typed)
			switch s.kind {
			case reflect.Map:
				x = *(*map[string]any)(p)
			case reflect.Float64:
				x = e.floats.box(*(*float64)(p))
			case reflect.Bool:
				x = *(*bool)(p)
			case reflect.String:
				x = e.str(*(*string)(p))
			case reflect.Int:
				x = *(*int)(p)
			case reflect.Slice:
				x = *(*[]any)(p)
			default:
				x = *(*time.Time)(p)
			}
		}
		*(*any)(e.at(i, loose)) = x
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
		return e.vm.Run(p.fast, e.typedEnv)
	}
	e.fillLoose()
	return e.vm.Run(p.slow, e.looseEnv)
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
		return e.floats.box(v.GetFloat64())
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

// floatArena boxes the other numbers of one event without allocating.
//
// Boxing a float64 in an interface normally copies it to the heap. Here
// each box points at a slot of an array owned by the environment instead:
// the boxes live in the loose environment only while the event is
// evaluated (expr copies values it keeps, reasons are rendered to text),
// and the arena is reset for the next event, when every box it handed out
// has been overwritten.
type floatArena struct {
	slots [64]float64
	n     int
}

var float64Type = func() unsafe.Pointer {
	var x any = 0.5
	return (*eface)(unsafe.Pointer(&x)).typ
}()

func (a *floatArena) box(f float64) any {
	if f >= 0 && f < float64(len(smallInts)) && f == math.Trunc(f) {
		return smallInts[int(f)]
	}
	if a.n == len(a.slots) {
		return f // an event with very many numbers: the rest go to the heap
	}
	p := &a.slots[a.n]
	a.n++
	*p = f
	var v any
	e := (*eface)(unsafe.Pointer(&v))
	e.typ, e.data = float64Type, unsafe.Pointer(p)
	return v
}
