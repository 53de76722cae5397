// Package eventschema holds the event schema a policy may declare in
// features.yaml (event_fields): which fields events carry, of which type,
// which are required. With a schema, an event that breaks it is refused
// naming the field, and rules are type-checked against it at load.
package eventschema

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/valyala/fastjson"
	"go.yaml.in/yaml/v3"

	"github.com/riskd/riskd/policyfile"
)

// Type is a declared field's type.
type Type uint8

// The types a field may be declared with. Any is an undeclared field's.
const (
	Any Type = iota
	String
	Number
	Integer
	Bool
	Time
	Object
	List
	ListOfString
	ListOfNumber
)

var typeNames = map[string]Type{
	"string": String, "number": Number, "integer": Integer, "bool": Bool, "time": Time,
	"object": Object, "list": List, "list of string": ListOfString, "list of number": ListOfNumber,
}

func (t Type) String() string {
	for name, tt := range typeNames {
		if tt == t {
			return name
		}
	}
	return "any"
}

// Numeric reports whether values of t are numbers.
func (t Type) Numeric() bool { return t == Number || t == Integer }

// Field is one declared event field.
type Field struct {
	Name     string   // dotted path, as rules read it after event.
	Parts    []string // Name split at the dots
	Type     Type
	Required bool
	Enum     []string // strings only; empty: any value
	MaxLen   int      // strings only, in characters; 0: no limit
	Coerce   bool     // numbers only: a string holding a number is accepted
	// Min and Max bound a number's value (inclusive), when HasMin and
	// HasMax: one negative amount would hide a card's spending from every
	// sum it enters.
	Min, Max       float64
	HasMin, HasMax bool
	// EventTypes the declaration applies to; empty: every type.
	EventTypes []string
	Line, Col  int // of the declaration

	enum map[string]struct{}
}

// Schema is a policy's event schema. The zero value, and nil, declare
// nothing: events are free-form.
type Schema struct {
	Fields []*Field
	all    []*Field            // fields of every type
	byType map[string][]*Field // for types some declaration names: all + its own
}

// Declared reports whether the schema declares any field.
func (s *Schema) Declared() bool { return s != nil && len(s.Fields) > 0 }

// For returns the fields events of type t must conform to.
func (s *Schema) For(t string) []*Field {
	if s == nil {
		return nil
	}
	if fs, ok := s.byType[t]; ok {
		return fs
	}
	return s.all
}

// Field returns the declaration of field name as events of every one of
// types carry it, or nil when some type does not declare it (or types is
// empty and it is not declared for all types): the field is then untyped
// for rules scoring those types. Declarations of one name share a type;
// one that coerces is preferred, since the events it applies to were
// checked with it.
func (s *Schema) Field(name string, types []string) *Field {
	if s == nil {
		return nil
	}
	find := func(fs []*Field) *Field {
		for _, f := range fs {
			if f.Name == name {
				return f
			}
		}
		return nil
	}
	if len(types) == 0 {
		return find(s.all)
	}
	var out *Field
	for _, t := range types {
		f := find(s.For(t))
		if f == nil {
			return nil
		}
		if out == nil || f.Coerce {
			out = f
		}
	}
	return out
}

// Lookup is Field's type: Any and false for a field not declared for
// every one of types.
func (s *Schema) Lookup(name string, types []string) (Type, bool) {
	if f := s.Field(name, types); f != nil {
		return f.Type, true
	}
	return Any, false
}

// Covers reports whether name lies inside a field declared as an object
// for every one of types: its sub-fields are free-form by declaration.
func (s *Schema) Covers(name string, types []string) bool {
	for i := strings.LastIndexByte(name, '.'); i > 0; i = strings.LastIndexByte(name[:i], '.') {
		if t, ok := s.Lookup(name[:i], types); ok && t == Object {
			return true
		}
	}
	return false
}

// DeclaresAll reports whether the schema declares fields for every one of
// types (types empty: for events of every type), so that a field it does
// not declare for them is a mistake rather than a field left free-form.
func (s *Schema) DeclaresAll(types []string) bool {
	if !s.Declared() {
		return false
	}
	if len(types) == 0 {
		return len(s.all) > 0
	}
	for _, t := range types {
		if len(s.For(t)) == 0 {
			return false
		}
	}
	return true
}

// Known reports whether events of some one of types may carry name: it is
// built in (id, type, ts), declared, or inside a declared object. types
// empty: of any type.
func (s *Schema) Known(name string, types []string) bool {
	if builtin[name] {
		return true
	}
	if len(types) == 0 {
		for _, f := range s.Fields {
			if f.Name == name || (f.Type == Object && strings.HasPrefix(name, f.Name+".")) {
				return true
			}
		}
		return false
	}
	for _, t := range types {
		if s.Field(name, []string{t}) != nil || s.Covers(name, []string{t}) {
			return true
		}
	}
	return false
}

// Names returns the names of the fields declared for some one of types
// (types empty: for any type), for a did-you-mean.
func (s *Schema) Names(types []string) []string {
	var out []string
	for _, f := range s.Fields {
		if len(types) == 0 || len(f.EventTypes) == 0 || overlap(f.EventTypes, types) {
			out = append(out, f.Name)
		}
	}
	return out
}

// Types returns the event types the declarations name, in order of first
// mention.
func (s *Schema) Types() []string {
	var out []string
	seen := map[string]bool{}
	for _, f := range s.Fields {
		for _, t := range f.EventTypes {
			if !seen[t] {
				seen[t] = true
				out = append(out, t)
			}
		}
	}
	return out
}

var pathRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$`)

// builtin are the fields every event has, checked by the engine itself.
var builtin = map[string]bool{"id": true, "type": true, "ts": true}

// Builtin reports whether name is a field every event has (id, type, ts),
// which the engine checks itself.
func Builtin(name string) bool { return builtin[name] }

// Parse reads the event_fields list of features.yaml (node), recording
// problems in es. The schema holds the well-formed declarations.
func Parse(es *policyfile.Errors, node *yaml.Node) *Schema {
	s := &Schema{byType: map[string][]*Field{}}
	if node.Kind != yaml.SequenceNode {
		es.At(node, "event_fields must be a list of field declarations (name, type, …)")
		return s
	}
	for _, n := range node.Content {
		f := parseField(es, n)
		if f == nil {
			continue
		}
		if s.conflict(es, n, f) {
			continue
		}
		s.Fields = append(s.Fields, f)
	}
	for _, f := range s.Fields {
		if len(f.EventTypes) == 0 {
			s.all = append(s.all, f)
		}
	}
	for _, f := range s.Fields {
		for _, t := range f.EventTypes {
			if _, ok := s.byType[t]; !ok {
				s.byType[t] = append([]*Field(nil), s.all...)
			}
			s.byType[t] = append(s.byType[t], f)
		}
	}
	return s
}

// conflict reports (and records) a declaration that clashes with an
// earlier one: the same field twice for an event type, or one name with
// two types (a rule reading it would not know which).
func (s *Schema) conflict(es *policyfile.Errors, n *yaml.Node, f *Field) bool {
	for _, g := range s.Fields {
		if g.Name != f.Name {
			continue
		}
		if g.Type != f.Type {
			es.AtPos(f.Line, n.Column, "field %s is declared as %s here and as %s at line %d: a field has one type in every event type", policyfile.Quote(f.Name), f.Type, g.Type, g.Line)
			return true
		}
		if overlap(g.EventTypes, f.EventTypes) {
			es.AtPos(f.Line, n.Column, "field %s is declared twice for the same event types (first at line %d)", policyfile.Quote(f.Name), g.Line)
			return true
		}
	}
	return false
}

func overlap(a, b []string) bool {
	if len(a) == 0 || len(b) == 0 {
		return true
	}
	for _, x := range a {
		for _, y := range b {
			if x == y {
				return true
			}
		}
	}
	return false
}

func parseField(es *policyfile.Errors, n *yaml.Node) *Field {
	m := policyfile.Mapping(es, n, "event field", "!name", "!type", "required", "enum", "max_length", "min", "max", "coerce", "event_types", "description")
	if m == nil {
		return nil
	}
	before := es.Len()
	f := &Field{Line: n.Line, Col: n.Column}
	if v, ok := m["name"]; ok {
		if s, ok := policyfile.String(es, v.Value, "name"); ok {
			switch {
			case !pathRE.MatchString(s):
				es.At(v.Value, "event field name %s must be a field name, e.g. amount or billing.country", policyfile.Quote(s))
			case builtin[s]:
				es.At(v.Value, "event field %s is built in (id, type and ts are checked by riskd itself); leave it out", policyfile.Quote(s))
			}
			f.Name, f.Parts = s, strings.Split(s, ".")
		}
	}
	what := "event field"
	if f.Name != "" {
		what = fmt.Sprintf("event field %s", policyfile.Quote(f.Name))
	}
	if v, ok := m["type"]; ok {
		if s, ok := policyfile.String(es, v.Value, what+": type"); ok {
			t, known := typeNames[s]
			if !known {
				names := make([]string, 0, len(typeNames))
				for name := range typeNames {
					names = append(names, name)
				}
				msg := fmt.Sprintf("%s: unknown type %s", what, policyfile.Quote(s))
				if g := policyfile.Suggest(s, names); g != "" {
					msg += fmt.Sprintf(" (did you mean %q?)", g)
				} else {
					msg += " (string, number, integer, bool, time, object, list, list of string, list of number)"
				}
				es.At(v.Value, "%s", msg)
			}
			f.Type = t
		}
	}
	if v, ok := m["required"]; ok {
		f.Required = boolean(es, v.Value, what+": required")
	}
	if v, ok := m["coerce"]; ok {
		f.Coerce = boolean(es, v.Value, what+": coerce")
		if f.Coerce && f.Type != Any && !f.Type.Numeric() {
			es.At(v.Key, "%s: coerce applies to number and integer fields (it accepts \"950\" for 950), not to %s", what, f.Type)
		}
	}
	if v, ok := m["enum"]; ok {
		if f.Type != Any && f.Type != String {
			es.At(v.Key, "%s: enum applies to string fields, not to %s", what, f.Type)
		}
		if vals, ok := policyfile.Strings(es, v.Value, what+": enum"); ok {
			f.Enum = vals
			f.enum = map[string]struct{}{}
			for _, x := range vals {
				f.enum[x] = struct{}{}
			}
		}
	}
	if v, ok := m["max_length"]; ok {
		if f.Type != Any && f.Type != String {
			es.At(v.Key, "%s: max_length applies to string fields, not to %s", what, f.Type)
		}
		if l, ok := policyfile.Int(es, v.Value, what+": max_length"); ok {
			if l < 1 || l > 1<<20 {
				es.At(v.Value, "%s: max_length %d is out of range 1..1048576", what, l)
			}
			f.MaxLen = int(l)
		}
	}
	for _, bound := range []struct {
		key string
		x   *float64
		has *bool
	}{{"min", &f.Min, &f.HasMin}, {"max", &f.Max, &f.HasMax}} {
		v, ok := m[bound.key]
		if !ok {
			continue
		}
		if f.Type != Any && !f.Type.Numeric() {
			es.At(v.Key, "%s: %s applies to number and integer fields, not to %s", what, bound.key, f.Type)
		}
		*bound.x, *bound.has = number(es, v.Value, what+": "+bound.key)
	}
	if f.HasMin && f.HasMax && f.Min > f.Max {
		es.At(m["max"].Value, "%s: max %v is below min %v", what, f.Max, f.Min)
	}
	if v, ok := m["event_types"]; ok {
		f.EventTypes, _ = policyfile.Strings(es, v.Value, what+": event_types")
	}
	if es.Len() > before {
		return nil
	}
	return f
}

// number reads a finite number scalar.
func number(es *policyfile.Errors, n *yaml.Node, what string) (float64, bool) {
	if n.Kind == yaml.ScalarNode && (n.Tag == "!!int" || n.Tag == "!!float") {
		if x, err := strconv.ParseFloat(n.Value, 64); err == nil && !math.IsInf(x, 0) {
			return x, true
		}
	}
	es.At(n, "%s must be a number, got %s", what, policyfile.Quote(n.Value))
	return 0, false
}

func boolean(es *policyfile.Errors, n *yaml.Node, what string) bool {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
		es.At(n, "%s must be true or false, got %s", what, policyfile.Quote(n.Value))
		return false
	}
	return n.Value == "true"
}

// Error is an event that breaks the schema.
type Error struct {
	Field string
	Msg   string
}

func (e *Error) Error() string { return fmt.Sprintf("field %s: %s", strconv.Quote(e.Field), e.Msg) }

// Validate checks ev, an event of type t, against the fields declared for
// t. It does not allocate unless the event is refused.
func (s *Schema) Validate(ev *fastjson.Value, t string) error {
	for _, f := range s.For(t) {
		if err := f.check(ev.Get(f.Parts...), t); err != nil {
			return err
		}
	}
	return nil
}

func (f *Field) check(v *fastjson.Value, t string) error {
	if v == nil || v.Type() == fastjson.TypeNull {
		if !f.Required {
			return nil
		}
		if v == nil {
			return &Error{f.Name, fmt.Sprintf("want %s, got nothing: it is required in %s events", f.Type, strconv.Quote(t))}
		}
		return f.want(v)
	}
	switch f.Type {
	case String:
		if v.Type() != fastjson.TypeString {
			return f.want(v)
		}
		b := v.GetStringBytes()
		if f.MaxLen > 0 && len(b) > f.MaxLen && utf8.RuneCount(b) > f.MaxLen {
			return &Error{f.Name, fmt.Sprintf("want at most %d characters, got %d", f.MaxLen, utf8.RuneCount(b))}
		}
		if f.enum != nil {
			if _, ok := f.enum[string(b)]; !ok {
				return &Error{f.Name, fmt.Sprintf("want one of %s, got %s", quoteList(f.Enum), describe(v))}
			}
		}
	case Number, Integer:
		x, ok := f.Number(v)
		if !ok || (f.Type == Integer && !isInteger(x)) {
			return f.want(v)
		}
		if f.HasMin && x < f.Min || f.HasMax && x > f.Max {
			return &Error{f.Name, fmt.Sprintf("want %s, got %s", f.bounds(), describe(v))}
		}
	case Bool:
		if tt := v.Type(); tt != fastjson.TypeTrue && tt != fastjson.TypeFalse {
			return f.want(v)
		}
	case Time:
		if _, ok := ParseTime(v); !ok {
			return &Error{f.Name, fmt.Sprintf("want time (RFC 3339 text or Unix milliseconds), got %s", describe(v))}
		}
	case Object:
		if v.Type() != fastjson.TypeObject {
			return f.want(v)
		}
	case List, ListOfString, ListOfNumber:
		if v.Type() != fastjson.TypeArray {
			return f.want(v)
		}
		if f.Type == List {
			return nil
		}
		want := fastjson.TypeString
		if f.Type == ListOfNumber {
			want = fastjson.TypeNumber
		}
		for i, x := range v.GetArray() {
			if x.Type() != want {
				return &Error{f.Name, fmt.Sprintf("want %s, got %s at index %d", f.Type, describe(x), i)}
			}
		}
	}
	return nil
}

// bounds says what Min and Max allow.
func (f *Field) bounds() string {
	num := func(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }
	what := "a number"
	if f.Type == Integer {
		what = "an integer"
	}
	switch {
	case f.HasMin && f.HasMax:
		return fmt.Sprintf("%s from %s to %s", what, num(f.Min), num(f.Max))
	case f.HasMin:
		return fmt.Sprintf("%s of at least %s", what, num(f.Min))
	}
	return fmt.Sprintf("%s of at most %s", what, num(f.Max))
}

func (f *Field) want(v *fastjson.Value) error {
	return &Error{f.Name, fmt.Sprintf("want %s, got %s", f.Type, describe(v))}
}

// Number reads a number field's value: a finite JSON number or, when the
// field coerces, a string holding a plain decimal number ("950",
// "-12.5e3"): what features take from it too, so rules and features read
// one value. Hexadecimal, "Inf", "NaN" and digit separators are refused.
func (f *Field) Number(v *fastjson.Value) (float64, bool) {
	switch v.Type() {
	case fastjson.TypeNumber:
		x := v.GetFloat64()
		return x, !math.IsInf(x, 0) && !math.IsNaN(x)
	case fastjson.TypeString:
		if !f.Coerce {
			return 0, false
		}
		b := v.GetStringBytes()
		if !decimal(b) {
			return 0, false
		}
		x, err := strconv.ParseFloat(string(b), 64)
		if err != nil || math.IsInf(x, 0) || math.IsNaN(x) {
			return 0, false
		}
		return x, true
	}
	return 0, false
}

// decimal reports whether b is made of what a decimal number is written
// with; ParseFloat then tells whether it is one.
func decimal(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !('0' <= c && c <= '9' || c == '.' || c == '-' || c == '+' || c == 'e' || c == 'E') {
			return false
		}
	}
	return true
}

// isInteger: whole and exactly representable, as a rule's int sees it.
func isInteger(x float64) bool { return x == math.Trunc(x) && math.Abs(x) <= 1<<53 }

// ParseTime reads a time field: RFC 3339 text or Unix milliseconds.
func ParseTime(v *fastjson.Value) (time.Time, bool) {
	switch v.Type() {
	case fastjson.TypeString:
		t, err := time.Parse(time.RFC3339Nano, string(v.GetStringBytes()))
		return t, err == nil
	case fastjson.TypeNumber:
		x := v.GetFloat64()
		if math.Abs(x) > 1e15 {
			return time.Time{}, false
		}
		return time.UnixMilli(int64(x)).UTC(), true
	}
	return time.Time{}, false
}

// describe names what came, for messages: its JSON type and, for
// scalars, the value, cut short.
func describe(v *fastjson.Value) string {
	switch v.Type() {
	case fastjson.TypeString:
		return "string " + policyfile.Quote(string(v.GetStringBytes()))
	case fastjson.TypeNumber:
		return "number " + policyfile.Cut(string(v.MarshalTo(nil)))
	case fastjson.TypeTrue, fastjson.TypeFalse:
		return "bool " + v.String()
	case fastjson.TypeNull:
		return "null"
	case fastjson.TypeObject:
		return "object"
	case fastjson.TypeArray:
		return "list"
	}
	return v.Type().String()
}

func quoteList(vals []string) string {
	const show = 8
	var b strings.Builder
	for i, v := range vals {
		if i == show {
			fmt.Fprintf(&b, ", … (%d more)", len(vals)-show)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(policyfile.Quote(v))
	}
	return b.String()
}
