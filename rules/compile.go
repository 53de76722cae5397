package rules

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/parser"
	"github.com/expr-lang/expr/types"
	"github.com/expr-lang/expr/vm"
	"go.yaml.in/yaml/v3"

	"github.com/riskd/riskd/features"
	"github.com/riskd/riskd/policyfile"
)

// compiler compiles the expressions of one ruleset.
//
// Expressions are written with three roots, event.x, features.x and
// lists.x. Before type checking, each access is flattened into a single
// identifier ("features.card_txn_count_1h") so the environment is one flat
// map: expr then loads every name with one map lookup (OpLoadFast) instead
// of reflecting into nested maps, and every feature has a static type.
type compiler struct {
	es       *policyfile.Errors
	features *features.Set
	lists    map[string]*List
	reads    map[int]bool
	fields   map[string]bool
}

// flattener rewrites event/features/lists member accesses into flat
// identifiers and checks the names against the policy.
type flattener struct {
	c      *compiler
	errs   []nodeError
	fields map[string]bool // event fields read
	feats  map[string]bool // features read
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
	m, ok := (*n).(*ast.MemberNode)
	if !ok {
		return
	}
	id, ok := m.Node.(*ast.IdentifierNode)
	if !ok {
		return
	}
	root, _, _ := strings.Cut(id.Value, ".")
	if root != "event" && root != "features" && root != "lists" {
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
	case "lists":
		if _, ok := v.c.lists[name]; !ok {
			names := make([]string, 0, len(v.c.lists))
			for n := range v.c.lists {
				names = append(names, n)
			}
			msg := fmt.Sprintf("unknown list %s", policyfile.Quote(name))
			if s := policyfile.Suggest(name, names); s != "" {
				msg += fmt.Sprintf(" (did you mean lists.%s?)", s)
			} else {
				msg += " (lists are declared under lists: in this ruleset)"
			}
			v.fail(m, "%s", msg)
		}
	case "event":
		if id.Value != "event" {
			delete(v.fields, strings.TrimPrefix(id.Value, "event.")) // only the full path is read
		}
		v.fields[strings.TrimPrefix(id.Value+"."+name, "event.")] = true
	}
	if root == "lists" {
		if l, ok := v.c.lists[name]; ok {
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

// compile compiles one expression found at node (a `when`, a graded
// `score` or a reason hole at offset within node's text). The returned
// program is nil when the expression has errors, which are recorded.
func (c *compiler) compile(node *yaml.Node, src string, offset int, what string, opts ...expr.Option) *vm.Program {
	if msg, at := checkShape(src); msg != "" {
		line, col := position(src, utf8.RuneCountInString(src[:at]))
		c.at(node, offset, line, col, "%s: %s", what, msg)
		return nil
	}
	return c.compileChecked(node, src, offset, what, opts...)
}

// compileChecked compiles an expression whose shape is within bounds (or,
// for a ruleset's combined program, made of expressions that are).
func (c *compiler) compileChecked(node *yaml.Node, src string, offset int, what string, opts ...expr.Option) *vm.Program {
	tree, err := parser.Parse(src)
	if err != nil {
		c.exprError(node, src, offset, what, err)
		return nil
	}
	pre := &flattener{c: c, fields: map[string]bool{}, feats: map[string]bool{}}
	ast.Walk(&tree.Node, pre)
	if len(pre.errs) > 0 {
		for _, e := range pre.errs {
			line, col := position(src, e.node.Location().From)
			c.at(node, offset, line, col, "%s: %s", what, e.msg)
		}
		return nil
	}
	env := types.Map{}
	for _, f := range c.features.Features {
		t := types.Float64
		if f.Kind.Bool() {
			t = types.Bool
		}
		env[FeatureEnvKey(f.Name)] = t
	}
	for p := range pre.fields {
		env["event."+p] = types.Any
	}
	for name := range pre.feats {
		if c.features.Broken(name) {
			env[FeatureEnvKey(name)] = types.Any // already reported in features.yaml
		}
	}
	all := append([]expr.Option{
		expr.Env(env),
		expr.Patch(&flattener{c: c, fields: map[string]bool{}, feats: map[string]bool{}}),
	}, opts...)
	prog, err := expr.Compile(src, all...)
	if err != nil {
		c.exprError(node, src, offset, what, err)
		return nil
	}
	for p := range pre.fields {
		c.fields[p] = true
	}
	for name := range pre.feats {
		if i, ok := c.features.Index(name); ok {
			c.reads[i] = true
		}
	}
	return prog
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

func (c *compiler) exprError(node *yaml.Node, src string, offset int, what string, err error) {
	var fe *file.Error
	if errors.As(err, &fe) {
		line, col := position(src, fe.From)
		if fe.Line > 0 {
			line, col = fe.Line, fe.Column
		}
		msg := fe.Message
		if strings.HasPrefix(msg, "unknown name ") {
			name := strings.TrimPrefix(msg, "unknown name ")
			switch name {
			case "event", "features", "lists":
				msg = fmt.Sprintf("%s cannot be used on its own: write %s.name", name, name)
			default:
				msg += " (expressions see event.*, features.* and lists.*)"
			}
		}
		c.at(node, offset, line, col, "%s: %s", what, msg)
		return
	}
	c.at(node, offset, 1, 0, "%s: %v", what, err)
}

// at records an error at (line, col) of an expression that starts at
// offset within node's text. Line is 1-based, col 0-based, as expr counts.
func (c *compiler) at(node *yaml.Node, offset, line, col int, format string, args ...any) {
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
	c.es.AtPos(fileLine, fileCol, format, args...)
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

func sortedInts(m map[int]bool) []int {
	out := make([]int, 0, len(m))
	for i := range m {
		out = append(out, i)
	}
	sort.Ints(out)
	return out
}
