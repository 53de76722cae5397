package rules

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/parser"
	"github.com/expr-lang/expr/vm"
	"go.yaml.in/yaml/v3"

	"github.com/riskd/riskd/eventschema"
	"github.com/riskd/riskd/features"
	"github.com/riskd/riskd/models"
	"github.com/riskd/riskd/policyfile"
)

// compiler compiles the expressions of one ruleset.
//
// Expressions are written with three roots, event.x, features.x and
// lists.x. Each access is flattened into a single identifier
// ("features.card_txn_count_1h"), a field of the ruleset's environment
// structs (see env.go). An inline list is inlined as a constant array, a
// file list as its set (a constant map: `in` is one lookup); a mutable
// list is a field, filled per event with its current values.
//
// Compiling is in two steps: compile parses an expression and checks its
// names, noting what it reads; once every expression of the ruleset is
// known (and its event types, which a challenger takes from its champion),
// finish builds the environment and type-checks them all against it.
type compiler struct {
	es       *policyfile.Errors
	warns    *policyfile.Errors
	features *features.Set
	models   *models.Set
	lists    map[string]*List
	pending  []*pending
	// filter: the expressions are a feature's where, which reads the
	// event and lists but not features.
	filter bool
	// inputsOf: the expressions are this model's derived inputs, which
	// read the event, features and lists but no model.
	inputsOf string
	// inputs are the policy's models' compiled inputs, by model name, for
	// the model slots of a ruleset.
	inputs map[string]*ModelInputs
	// reads collects, policy-wide, the event fields read that no schema
	// checks, for load to compare (nil: not collected).
	reads *[]pathRead
}

// pathRead is an expression's read of an event field the schema does not
// know; warn reports it with a close field read elsewhere.
type pathRead struct {
	path string
	warn func(sug string)
}

// pending is an expression waiting for its environment.
type pending struct {
	prog   *program
	node   *yaml.Node
	src    string
	offset int
	what   string
	opts   []expr.Option
	feats  map[string]bool
	models map[string]bool
	fields map[string]ast.Node // event fields read, each at its first read
	lists  map[string]bool     // file and mutable lists read
	// literals are the strings the expression compares event fields
	// with, checked against the fields' enums once the types are known.
	literals []literal
}

// literal is a string an expression compares an event field with:
// event.status == "declined", event.status in ["approved", "declined"].
type literal struct {
	path, value string
	node        ast.Node
	listed      bool // a value of a declared list, which node reads
	number      bool // a number among the strings of an in's list
}

// literalFinder collects the literals of an expression whose event and
// lists names are flattened.
type literalFinder struct{ out []literal }

func (f *literalFinder) Visit(n *ast.Node) {
	b, ok := (*n).(*ast.BinaryNode)
	if !ok {
		return
	}
	field := func(n ast.Node) string {
		if id, ok := n.(*ast.IdentifierNode); ok && strings.HasPrefix(id.Value, "event.") {
			return strings.TrimPrefix(id.Value, "event.")
		}
		return ""
	}
	switch b.Operator {
	case "==", "!=":
		l, r := b.Left, b.Right
		if _, ok := l.(*ast.StringNode); ok {
			l, r = r, l
		}
		if s, ok := r.(*ast.StringNode); ok && field(l) != "" {
			f.out = append(f.out, literal{path: field(l), value: s.Value, node: s})
		}
	case "in":
		a, ok := b.Right.(*ast.ArrayNode)
		if !ok || field(b.Left) == "" {
			return
		}
		// A list of numbers only is the type checker's to refuse; a
		// number among strings it lets through.
		mixed := slices.ContainsFunc(a.Nodes, func(n ast.Node) bool { _, ok := n.(*ast.StringNode); return ok })
		for _, e := range a.Nodes {
			var l literal
			switch x := e.(type) {
			case *ast.StringNode:
				l = literal{path: field(b.Left), value: x.Value, node: x}
			case *ast.FloatNode:
				l = literal{path: field(b.Left), value: strconv.FormatFloat(x.Value, 'f', -1, 64), node: x, number: true}
			case *ast.IntegerNode:
				l = literal{path: field(b.Left), value: strconv.Itoa(x.Value), node: x, number: true}
			default:
				continue
			}
			if l.number && !mixed {
				continue
			}
			if e.Location() == (file.Location{}) {
				l.node, l.listed = a, true // a declared list: its values have no place in the expression
			}
			f.out = append(f.out, l)
		}
	}
}

// flattener rewrites event/features/lists member accesses into flat
// identifiers and checks the names against the policy.
type flattener struct {
	c      *compiler
	typed  bool // patching for the typed environment
	errs   []nodeError
	fields map[string]ast.Node // event fields read, at their first read
	count  map[string]int      // how many times each of fields is read
	feats  map[string]bool     // features read
	models map[string]bool     // models read
	lists  map[string]bool     // file and mutable lists read
}

func newFlattener(c *compiler, typed bool) *flattener {
	return &flattener{c: c, typed: typed, fields: map[string]ast.Node{}, count: map[string]int{},
		feats: map[string]bool{}, models: map[string]bool{}, lists: map[string]bool{}}
}

type nodeError struct {
	node ast.Node
	msg  string
}

func (v *flattener) fail(n ast.Node, format string, args ...any) {
	v.errs = append(v.errs, nodeError{node: n, msg: fmt.Sprintf(format, args...)})
}

func (v *flattener) Visit(n *ast.Node) {
	if b, ok := (*n).(*ast.BinaryNode); ok && b.Operator == "matches" {
		if name := dataIn(b.Right); name != "" {
			v.fail(b, "matches needs a constant pattern (a string in quotes), not one built from %s: such a pattern is compiled anew on every event, and whoever sends the event chooses how slow it is", name)
		}
		return
	}
	// A file or mutable list (its children are visited first, so it is a
	// setRef by now) is read by `in` and len() only.
	switch x := (*n).(type) {
	case *ast.BinaryNode:
		if r, ok := setRefOf(x.Right); ok && x.Operator == "in" {
			// A call of the set's func(string) bool, which expr makes
			// directly (OpCallTyped), without boxing its argument. Where
			// values may be nil (the loose twin), an absent needle is ""
			// and in no list; with a type, a needle that is not a string
			// is a load error.
			needle := x.Left
			if !v.typed {
				needle = &ast.BinaryNode{Operator: "??", Left: x.Left, Right: &ast.StringNode{Value: ""}}
			}
			ast.Patch(n, &ast.CallNode{Callee: r.callee(), Arguments: []ast.Node{needle}})
		}
		return
	case *ast.BuiltinNode:
		if r, ok := setRefOf(firstArg(x)); ok && x.Name == "len" && !r.l.Mutable {
			ast.Patch(n, &ast.IntegerNode{Value: r.l.Set.Len()})
		}
		countSteps(x)
		return
	}
	m, ok := (*n).(*ast.MemberNode)
	if !ok {
		return
	}
	id, ok := m.Node.(*ast.IdentifierNode)
	if !ok {
		return
	}
	root, _, _ := strings.Cut(id.Value, ".")
	if root != "event" && root != "features" && root != "lists" && root != "model" {
		return
	}
	if root != "event" && id.Value != root {
		return // features.x.y: left for the type checker to refuse
	}
	prop, ok := m.Property.(*ast.StringNode)
	if !ok {
		v.fail(m, "%s must be followed by a name, as in %s.name", root, root)
		return
	}
	name := prop.Value
	switch root {
	case "features":
		if v.c.filter {
			v.fail(m, "a where reads event.* and lists.*, not features: it decides whether the event is recorded, before any feature is read")
			return
		}
		if _, ok := v.c.features.Index(name); !ok && !v.c.features.Broken(name) {
			msg := fmt.Sprintf("unknown feature %s", policyfile.Quote(name))
			if s := policyfile.Suggest(name, v.c.features.Names()); s != "" {
				msg += fmt.Sprintf(" (did you mean features.%s?)", s)
			} else {
				msg += " (features are declared in features.yaml)"
			}
			v.fail(m, "%s", msg)
		}
		v.feats[name] = true
	case "model":
		if v.c.inputsOf != "" {
			v.fail(m, "an input of model %s reads event.*, features.* and lists.*, not a model's prediction", v.c.inputsOf)
			return
		}
		if v.c.filter {
			v.fail(m, "a where reads event.* and lists.*, not models: it decides whether the event is recorded, before any model is evaluated")
			return
		}
		if mod := v.c.models.Model(name); mod != nil && !mod.Trained() {
			v.fail(m, "model %s has no file yet: it is declared to be trained (riskctl replay -features-out exports its inputs); add its file to models.yaml to read it", policyfile.Quote(name))
			return
		}
		if v.c.models.Model(name) == nil {
			msg := fmt.Sprintf("unknown model %s", policyfile.Quote(name))
			if s := policyfile.Suggest(name, v.c.models.Names()); s != "" {
				msg += fmt.Sprintf(" (did you mean model.%s?)", s)
			} else {
				msg += " (models are declared in models.yaml)"
			}
			v.fail(m, "%s", msg)
		}
		v.models[name] = true
	case "lists":
		if _, ok := v.c.lists[name]; !ok {
			names := make([]string, 0, len(v.c.lists))
			for n := range v.c.lists {
				names = append(names, n)
			}
			msg := fmt.Sprintf("unknown list %s", policyfile.Quote(name))
			switch s := policyfile.Suggest(name, names); {
			case s != "":
				msg += fmt.Sprintf(" (did you mean lists.%s?)", s)
			case v.c.filter:
				msg += " (a where reads the lists declared under lists: in features.yaml)"
			default:
				msg += " (lists are declared under lists: in this ruleset or in features.yaml)"
			}
			v.fail(m, "%s", msg)
		}
	case "event":
		if id.Value != "event" {
			// event.a.b: the walk saw event.a first, as a read of its own;
			// it is the path to a.b, not a read of a, unless a is also
			// read elsewhere in the expression.
			parent := strings.TrimPrefix(id.Value, "event.")
			if v.count[parent]--; v.count[parent] == 0 {
				delete(v.fields, parent)
			}
		}
		p := strings.TrimPrefix(id.Value+"."+name, "event.")
		v.count[p]++
		if v.fields[p] == nil {
			v.fields[p] = m
		}
	}
	if root == "lists" {
		l, ok := v.c.lists[name]
		switch {
		case !ok:
		case l.Broken:
			ast.Patch(n, &ast.ArrayNode{})
		case l.Mutable, l.File != "":
			v.lists[name] = true
			ast.Patch(n, &ast.ConstantNode{Value: setRef{l}})
		default:
			ast.Patch(n, listNode(l))
		}
		return
	}
	ast.Patch(n, &ast.IdentifierNode{Value: id.Value + "." + name})
}

// dataIn returns the first name that n reads (n's children already
// flattened: event.x, features.x, a closure's #, a let variable), or ""
// when n is made of constants.
func dataIn(n ast.Node) string {
	f := &dataFinder{}
	ast.Walk(&n, f)
	return f.name
}

type dataFinder struct{ name string }

func (f *dataFinder) Visit(n *ast.Node) {
	if f.name != "" {
		return
	}
	switch x := (*n).(type) {
	case *ast.IdentifierNode:
		f.name = x.Value
	case *ast.PointerNode:
		f.name = "#" + x.Name
	}
}

// compile parses one expression found at node (a `when`, a graded
// `score` or a reason hole at offset within node's text) and checks its
// names. The returned program is compiled by finish; it is nil when the
// expression has errors, which are recorded.
func (c *compiler) compile(node *yaml.Node, src string, offset int, what string, opts ...expr.Option) *program {
	if msg, at := checkShape(src); msg != "" {
		line, col := position(src, utf8.RuneCountInString(src[:at]))
		c.at(c.es, node, offset, line, col, "%s: %s", what, msg)
		return nil
	}
	tree, err := parser.Parse(src)
	if err != nil {
		c.exprError(node, src, offset, what, err)
		return nil
	}
	pre := newFlattener(c, false)
	ast.Walk(&tree.Node, pre)
	ast.Walk(&tree.Node, &setRefFinder{f: pre})
	if len(pre.errs) > 0 {
		for _, e := range pre.errs {
			line, col := position(src, e.node.Location().From)
			c.at(c.es, node, offset, line, col, "%s: %s", what, e.msg)
		}
		return nil
	}
	lits := &literalFinder{}
	ast.Walk(&tree.Node, lits)
	p := &pending{prog: &program{}, node: node, src: src, offset: offset, what: what, opts: opts, feats: pre.feats, models: pre.models, fields: pre.fields, lists: pre.lists, literals: lits.out}
	c.pending = append(c.pending, p)
	return p.prog
}

// finish builds rs's environment from what its expressions read, typing
// event fields by the schema's declarations for types (the event types rs
// scores), and compiles every expression against it.
func (c *compiler) finish(rs *Ruleset, types []string) {
	feats := map[string]bool{}
	fields := map[string]*pending{}
	used := map[string]bool{}
	mutable := map[string]bool{}
	for _, p := range c.pending {
		for name := range p.feats {
			feats[name] = true
		}
		for name := range p.models {
			used[name] = true
		}
		for name := range p.lists {
			if c.lists[name].Mutable {
				mutable[name] = true
			}
		}
		for f := range p.fields {
			if fields[f] == nil {
				fields[f] = p
			}
		}
	}
	// A model reads its inputs' features: they are fetched with the
	// rules' own, whether or not a rule reads them.
	fetch := map[int]bool{}
	if c.models != nil {
		if rs.Base != nil {
			used[rs.Base.Model.Name] = true
		}
		for _, m := range c.models.Models {
			if mi := c.inputs[m.Name]; used[m.Name] && mi != nil {
				for _, fi := range mi.Reads() {
					fetch[fi] = true
				}
			}
		}
	}
	var slots []Slot
	for i, f := range c.features.Features {
		if feats[f.Name] {
			slots = append(slots, Slot{Name: FeatureEnvKey(f.Name), Feature: i, isBool: f.Kind.Bool()})
		}
		if feats[f.Name] || fetch[i] {
			rs.Reads = append(rs.Reads, i)
		}
	}
	var broken []string
	for name := range feats {
		if _, ok := c.features.Index(name); !ok {
			broken = append(broken, name) // reported in features.yaml; read untyped
		}
	}
	sort.Strings(broken)
	for _, name := range broken {
		slots = append(slots, Slot{Name: FeatureEnvKey(name), Feature: -1})
	}
	paths := make([]string, 0, len(fields))
	for f := range fields {
		paths = append(paths, f)
	}
	sort.Strings(paths)
	sch := c.features.Schema
	for _, path := range paths {
		s := Slot{Name: "event." + path, Feature: -1, Path: features.NewPath(path)}
		if f := sch.Field(path, types); f != nil {
			s.Type, s.field = f.Type, f
		} else if sch.Declared() && !sch.Covers(path, types) {
			p := fields[path]
			n := p.fields[path]
			line, col := position(p.src, n.Location().From)
			for_ := "for " + strings.Join(types, ", ") + " events"
			if len(types) == 0 {
				for_ = "for every event type"
			}
			switch {
			case sch.DeclaresAll(types) && !sch.Known(path, types):
				// Every event this reads is checked against the schema, which
				// declares no such field: a typo, which would never fire.
				msg := fmt.Sprintf("%s: event.%s is not declared in event_fields %s", p.what, path, for_)
				if sug := policyfile.Suggest(path, sch.Names(types)); sug != "" {
					msg += fmt.Sprintf(" (did you mean event.%s?)", sug)
				}
				c.at(c.es, p.node, p.offset, line, col, "%s", msg)
			case !eventschema.Builtin(path):
				msg := fmt.Sprintf("%s: event.%s is not declared in event_fields %s: rules read it untyped and events are not checked for it", p.what, path, for_)
				if sug := policyfile.Suggest(path, sch.Names(types)); sug != "" && !sch.Known(path, types) {
					msg += fmt.Sprintf(" (did you mean event.%s?)", sug)
				}
				c.at(c.warns, p.node, p.offset, line, col, "%s", msg)
			}
		} else if c.reads != nil && !eventschema.Builtin(path) && !sch.Known(path, nil) {
			p := fields[path]
			line, col := position(p.src, p.fields[path].Location().From)
			*c.reads = append(*c.reads, pathRead{path, func(sug string) {
				c.at(c.warns, p.node, p.offset, line, col, "%s: event.%s is read by no feature or other ruleset and not declared in event_fields (did you mean event.%s?): on events without it the expression reads nil", p.what, path, sug)
			}})
		}
		slots = append(slots, s)
	}
	c.checkLiterals(types)
	var names []string
	for name := range mutable {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		slots = append(slots, Slot{Name: "lists." + name, Feature: -1, List: name})
	}
	if c.models != nil {
		for _, m := range c.models.Models {
			if used[m.Name] {
				slots = append(slots, Slot{Name: "model." + m.Name, Feature: -1, Model: m, Inputs: c.inputs[m.Name]})
			}
		}
	}
	rs.Slots = slots
	rs.layout = newLayout(rs.Slots)
	slotOf := map[string]int{}
	for i, s := range rs.Slots {
		slotOf[s.Name] = i
	}
	for _, p := range c.pending {
		p.prog.needs = make([]uint64, rs.layout.words)
		mark := func(name string) {
			if i := slotOf[name]; rs.Slots[i].typed {
				p.prog.needs[i/64] |= 1 << (i % 64)
			}
		}
		for name := range p.feats {
			mark(FeatureEnvKey(name))
		}
		for f := range p.fields {
			mark("event." + f)
		}
		for name := range p.models {
			mark("model." + name)
		}
		for name := range p.lists {
			p.prog.lists = append(p.prog.lists, name)
			if c.lists[name].Mutable {
				mark("lists." + name)
			}
		}
		sort.Strings(p.prog.lists)
		p.prog.fast = c.compileIn(p, rs.layout.zero(typed), true)
		if p.prog.fast == nil {
			continue
		}
		if p.prog.slow = c.compileIn(p, rs.layout.zero(loose), false); p.prog.slow == nil {
			c.at(c.es, p.node, p.offset, 1, 0, "%s: compiles with typed values but not with nil ones (a riskd bug: please report it)", p.what)
		}
	}
}

// compileIn compiles p against env, recording its errors.
func (c *compiler) compileIn(p *pending, env any, typed bool) *vm.Program {
	all := append([]expr.Option{
		expr.Env(env),
		expr.Patch(newFlattener(c, typed)),
	}, p.opts...)
	prog, err := expr.Compile(p.src, all...)
	if err != nil {
		c.exprError(p.node, p.src, p.offset, p.what, err)
		return nil
	}
	return prog
}

// setRef stands, while an expression is patched, for a file or mutable
// list until `in` or len() consumes it.
type setRef struct{ l *List }

func setRefOf(n ast.Node) (setRef, bool) {
	c, ok := n.(*ast.ConstantNode)
	if !ok {
		return setRef{}, false
	}
	r, ok := c.Value.(setRef)
	return r, ok
}

// callee is the list's membership test at run time: a file list's, a
// constant; a mutable list's, a field of the environment filled per
// event from its current snapshot.
func (r setRef) callee() ast.Node {
	if r.l.Mutable {
		return &ast.IdentifierNode{Value: "lists." + r.l.Name}
	}
	return &ast.ConstantNode{Value: r.l.Set.Has}
}

// countSteps makes each iteration of a builtin's predicate a step of the
// evaluation budget (MaxExpressionSteps): its body {p} becomes
// {riskd.tick(); p}, which has p's type.
func countSteps(b *ast.BuiltinNode) {
	for _, arg := range b.Arguments {
		c, ok := arg.(*ast.PredicateNode)
		if !ok {
			continue
		}
		tick := &ast.CallNode{Callee: &ast.IdentifierNode{Value: tickName}}
		body := &ast.SequenceNode{Nodes: []ast.Node{tick, c.Node}}
		tick.SetLocation(c.Node.Location())
		body.SetLocation(c.Node.Location())
		c.Node = body
	}
}

func firstArg(b *ast.BuiltinNode) ast.Node {
	if len(b.Arguments) != 1 {
		return nil
	}
	return b.Arguments[0]
}

// setRefFinder reports the file and mutable lists used otherwise than
// by `in` or len().
type setRefFinder struct{ f *flattener }

func (s *setRefFinder) Visit(n *ast.Node) {
	if r, ok := setRefOf(*n); ok {
		name := r.l.Name
		if r.l.Mutable {
			s.f.fail(*n, "lists.%s is a mutable list, a set of strings that changes at run time: `x in lists.%s` and `x not in lists.%s` read it (only inline lists can be scanned)", name, name, name)
			return
		}
		s.f.fail(*n, "lists.%s is a file list, a set of strings: `x in lists.%s`, `x not in lists.%s` and len(lists.%s) read it (only inline lists can be scanned)", name, name, name, name)
	}
}

// listNode inlines a list as a constant array: lists are fixed for the
// life of a policy, and expr compiles `x in [constant strings]` into a set
// lookup.
func listNode(l *List) ast.Node {
	nodes := make([]ast.Node, len(l.Values))
	for i, v := range l.Values {
		switch x := v.(type) {
		case string:
			nodes[i] = &ast.StringNode{Value: x}
		case float64:
			nodes[i] = &ast.FloatNode{Value: x}
		}
	}
	return &ast.ArrayNode{Nodes: nodes}
}

// inListArgRE is expr's message for a needle of the wrong type: `in` a
// file list calls an unnamed function, a mutable list's is lists.name.
var inListArgRE = regexp.MustCompile(`^cannot use (\S+) as argument \(type string\) to call (function|lists\.\w+) *$`)

func (c *compiler) exprError(node *yaml.Node, src string, offset int, what string, err error) {
	var fe *file.Error
	if errors.As(err, &fe) {
		line, col := position(src, fe.From)
		if fe.Line > 0 {
			line, col = fe.Line, fe.Column
		}
		msg := fe.Message
		if m := inListArgRE.FindStringSubmatch(msg); m != nil {
			msg = fmt.Sprintf("`in` a file or mutable list needs a string, not %s: the list's values are strings", m[1])
		}
		if msg == `unexpected token Operator("=")` {
			// amount = 3, count => 5: one = is no operator in expr.
			msg += " (compare with ==, !=, >= or <=)"
		}
		if strings.HasPrefix(msg, "unknown name ") {
			name := strings.TrimPrefix(msg, "unknown name ")
			switch name {
			case "event", "features", "lists", "model":
				msg = fmt.Sprintf("%s cannot be used on its own: write %s.name", name, name)
			default:
				msg += " (expressions see event.*, features.*, lists.* and model.*)"
			}
		}
		c.at(c.es, node, offset, line, col, "%s: %s", what, msg)
		return
	}
	c.at(c.es, node, offset, 1, 0, "%s: %v", what, err)
}

// at records, in es, a problem at (line, col) of an expression that starts
// at offset within node's text. Line is 1-based, col 0-based, as expr
// counts.
func (c *compiler) at(es *policyfile.Errors, node *yaml.Node, offset, line, col int, format string, args ...any) {
	fileLine, fileCol := node.Line, node.Column
	switch node.Style {
	case yaml.LiteralStyle, yaml.FoldedStyle:
		// The text starts on the line after the indicator; columns inside
		// a block are relative to its indentation, which yaml.v3 does not
		// keep, so point at the line.
		fileLine += line
		fileCol = 0
	default:
		if node.Style == yaml.DoubleQuotedStyle || node.Style == yaml.SingleQuotedStyle {
			fileCol++
		}
		fileLine += line - 1
		if line == 1 {
			fileCol += offset + col
		} else {
			fileCol = col + 1
		}
	}
	if es == c.es && node.Kind == yaml.ScalarNode && node.Style == 0 && strings.HasPrefix(node.LineComment, "#") {
		// An unquoted `any(lists.l, # == 1)` ends where YAML saw a
		// comment; the error (unexpected token EOF) would not say so.
		format += " (YAML read %s as a comment, which ends the expression: put the expression in quotes)"
		args = append(args, policyfile.Quote(node.LineComment))
	}
	es.AtPos(fileLine, fileCol, format, args...)
}

// position converts a rune offset into a 1-based line and 0-based column.
func position(src string, from int) (int, int) {
	line, col, n := 1, 0, 0
	for _, r := range src {
		if n == from {
			break
		}
		if r == '\n' {
			line, col = line+1, 0
		} else {
			col++
		}
		n++
	}
	return line, col
}

// checkLiterals refuses a comparison of an event field with a string its
// declared enum does not allow: event.status == "decline" is never true,
// so a rule reading it never fires and a where records nothing. Likewise
// a declared string is never in a list as one of its numbers: the list
// [5967, "0742"] of codes holds 5967 the number, which no string equals.
func (c *compiler) checkLiterals(types []string) {
	for _, p := range c.pending {
		for _, l := range p.literals {
			f := c.features.Schema.Field(l.path, types)
			if f != nil && l.number && f.Type == eventschema.String {
				of := "the list"
				if l.listed {
					of = "the list it reads"
				}
				line, col := position(p.src, l.node.Location().From)
				c.at(c.es, p.node, p.offset, line, col, "%s: event.%s is a string and never equals %s, a number in %s: quote the list's numbers (\"%s\")", p.what, l.path, l.value, of, l.value)
				continue
			}
			if f == nil || l.number || len(f.Enum) == 0 || slices.Contains(f.Enum, l.value) {
				continue
			}
			of := ""
			if l.listed {
				of = ", a value of the list"
			}
			msg := fmt.Sprintf("%s: event.%s is never %q%s: event_fields allows %s", p.what, l.path, l.value, of, strings.Join(f.Enum, ", "))
			if sug := policyfile.Suggest(l.value, f.Enum); sug != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", sug)
			}
			line, col := position(p.src, l.node.Location().From)
			c.at(c.es, p.node, p.offset, line, col, "%s", msg)
		}
	}
}
