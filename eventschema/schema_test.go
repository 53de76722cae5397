package eventschema_test

import (
	"strings"
	"testing"

	"github.com/valyala/fastjson"

	"github.com/riskd/riskd/eventschema"
	"github.com/riskd/riskd/policyfile"
)

func parse(t testing.TB, src string) (*eventschema.Schema, error) {
	t.Helper()
	root, err := policyfile.Parse("features.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	es := &policyfile.Errors{File: "features.yaml"}
	s := eventschema.Parse(es, root.Content[1]) // root is the mapping: event_fields and its list
	return s, es.Err()
}

const declared = `event_fields:
  - {name: amount, type: number, required: true, event_types: [checkout]}
  - {name: amount, type: number, coerce: true, event_types: [refund]}
  - {name: currency, type: string, enum: [EUR, USD]}
  - {name: email, type: string, max_length: 5}
  - {name: qty, type: integer}
  - {name: fee, type: number, min: 0, coerce: true}
  - {name: pct, type: integer, min: 0, max: 100}
  - {name: delta, type: number, max: -1.5}
  - {name: vip, type: bool}
  - {name: seen_at, type: time}
  - {name: tags, type: list of string}
  - {name: scores, type: list of number}
  - {name: items, type: list}
  - {name: billing, type: object}
  - {name: billing.country, type: string, required: true, event_types: [checkout]}
`

// TestValidate: each broken event is refused with a message naming the
// field, what it wants and what came.
func TestValidate(t *testing.T) {
	s, err := parse(t, declared)
	if err != nil {
		t.Fatal(err)
	}
	ok := `"amount": 10, "billing": {"country": "FR"}`
	for _, tt := range []struct {
		typ, fields, want string
	}{
		{"checkout", ok, ""},
		{"checkout", `"billing": {"country": "FR"}`, `field "amount": want number, got nothing: it is required in "checkout" events`},
		{"checkout", `"amount": "950", "billing": {"country": "FR"}`, `field "amount": want number, got string "950"`},
		{"refund", `"amount": "950"`, ""},
		{"refund", `"amount": "9x"`, `field "amount": want number, got string "9x"`},
		{"refund", `"amount": "0x1p40"`, `field "amount": want number, got string "0x1p40"`}, // features would not read it
		{"refund", `"amount": "Inf"`, `field "amount": want number, got string "Inf"`},
		{"refund", `"amount": "1_000"`, `field "amount": want number, got string "1_000"`},
		{"refund", `"amount": "-12.5e3"`, ""},
		{"refund", `"amount": 1e999`, `field "amount": want number, got number 1e999`},
		{"refund", `"amount": null`, ""},
		{"login", `"amount": "950"`, ""}, // amount is not declared for login
		{"checkout", `"amount": null, "billing": {"country": "FR"}`, `field "amount": want number, got null`},
		{"checkout", ok + `, "currency": "XYZ"`, `field "currency": want one of "EUR", "USD", got string "XYZ"`},
		{"checkout", ok + `, "currency": 978`, `field "currency": want string, got number 978`},
		{"checkout", ok + `, "email": "a@b.cd"`, `field "email": want at most 5 characters, got 6`},
		{"checkout", ok + `, "email": "éééé"`, ""},
		{"checkout", ok + `, "qty": 2.5`, `field "qty": want integer, got number 2.5`},
		{"checkout", ok + `, "qty": 2.0`, ""},
		{"checkout", ok + `, "fee": 0`, ""},
		{"checkout", ok + `, "fee": -1e8`, `field "fee": want a number of at least 0, got number -1e8`},
		{"checkout", ok + `, "fee": "-0.01"`, `field "fee": want a number of at least 0, got string "-0.01"`},
		{"checkout", ok + `, "pct": 100`, ""},
		{"checkout", ok + `, "pct": 101`, `field "pct": want an integer from 0 to 100, got number 101`},
		{"checkout", ok + `, "delta": -1.5`, ""},
		{"checkout", ok + `, "delta": -1.4`, `field "delta": want a number of at most -1.5, got number -1.4`},
		{"checkout", ok + `, "vip": "yes"`, `field "vip": want bool, got string "yes"`},
		{"checkout", ok + `, "seen_at": "yesterday"`, `field "seen_at": want time (RFC 3339 text or Unix milliseconds), got string "yesterday"`},
		{"checkout", ok + `, "seen_at": 1764374400000`, ""},
		{"checkout", ok + `, "tags": ["a", 3]`, `field "tags": want list of string, got number 3 at index 1`},
		{"checkout", ok + `, "scores": [1, "2"]`, `field "scores": want list of number, got string "2" at index 1`},
		{"checkout", ok + `, "items": {}`, `field "items": want list, got object`},
		{"checkout", `"amount": 10, "billing": "FR"`, `field "billing": want object, got string "FR"`},
		{"checkout", `"amount": 10, "billing": {}`, `field "billing.country": want string, got nothing: it is required in "checkout" events`},
		{"checkout", ok + `, "currency": "` + strings.Repeat("x", 200) + `"`, `field "currency": want one of "EUR", "USD", got string "` + strings.Repeat("x", 80) + `…"`},
	} {
		ev := fastjson.MustParse(`{"id": "e", ` + tt.fields + `}`)
		err := s.Validate(ev, tt.typ)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tt.want {
			t.Errorf("%s {%s}:\n got %s\nwant %s", tt.typ, tt.fields, got, tt.want)
		}
	}
}

// TestParseErrors: a schema that cannot mean what it says is refused at
// load, positioned.
func TestParseErrors(t *testing.T) {
	for _, tt := range []struct{ decl, want string }{
		{`{name: amount, type: float}`, `features.yaml:2:26: event field "amount": unknown type "float" (string, number, integer, bool, time, object, list, list of string, list of number)`},
		{`{name: amount, type: numbr}`, `(did you mean "number"?)`},
		{`{name: amount}`, `missing required key "type"`},
		{`{name: "bad name", type: string}`, `event field name "bad name" must be a field name`},
		{`{name: ts, type: time}`, `event field "ts" is built in`},
		{`{name: qty, type: integer, enum: [a]}`, `enum applies to string fields, not to integer`},
		{`{name: s, type: string, max_length: 0}`, `max_length 0 is out of range`},
		{`{name: s, type: string, coerce: true}`, `coerce applies to number and integer fields`},
		{`{name: s, type: string, required: yes}`, `required must be true or false, got "yes"`},
		{`{name: s, type: string, enum: []}`, `enum must not be an empty list`},
		{`{name: s, type: string, colour: red}`, `unknown key "colour"`},
		{`{name: s, type: string, min: 0}`, `event field "s": min applies to number and integer fields, not to string`},
		{`{name: n, type: number, max: ten}`, `event field "n": max must be a number, got "ten"`},
		{`{name: n, type: number, min: .inf}`, `event field "n": min must be a number, got ".inf"`},
		{`{name: n, type: number, min: 5, max: 1}`, `features.yaml:2:42: event field "n": max 1 is below min 5`},
	} {
		_, err := parse(t, "event_fields:\n  - "+tt.decl+"\n")
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %v, want %q", tt.decl, err, tt.want)
		}
	}
	for _, tt := range []struct{ decls, want string }{
		{"  - {name: a, type: string}\n  - {name: a, type: number, event_types: [x]}", `features.yaml:3:5: field "a" is declared as number here and as string at line 2`},
		{"  - {name: a, type: string, event_types: [x, y]}\n  - {name: a, type: string, event_types: [y]}", `declared twice for the same event types (first at line 2)`},
	} {
		_, err := parse(t, "event_fields:\n"+tt.decls+"\n")
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %v, want %q", tt.decls, err, tt.want)
		}
	}
}

// TestLookup: a field is typed for a set of event types only when every
// one of them declares it.
func TestLookup(t *testing.T) {
	s, err := parse(t, declared)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name   string
		types  []string
		want   eventschema.Type
		ok     bool
		covers bool
	}{
		{"amount", []string{"checkout"}, eventschema.Number, true, false},
		{"amount", []string{"checkout", "refund"}, eventschema.Number, true, false},
		{"amount", []string{"checkout", "login"}, eventschema.Any, false, false},
		{"currency", []string{"login"}, eventschema.String, true, false},
		{"currency", nil, eventschema.String, true, false},
		{"billing.country", []string{"checkout"}, eventschema.String, true, true},
		{"billing.street", []string{"login"}, eventschema.Any, false, true},
		{"nothing", []string{"checkout"}, eventschema.Any, false, false},
	} {
		got, ok := s.Lookup(tt.name, tt.types)
		if got != tt.want || ok != tt.ok || s.Covers(tt.name, tt.types) != tt.covers {
			t.Errorf("%s in %v: %v %v covered %v, want %v %v %v", tt.name, tt.types, got, ok, s.Covers(tt.name, tt.types), tt.want, tt.ok, tt.covers)
		}
	}
	if f := s.Field("amount", []string{"checkout", "refund"}); f == nil || !f.Coerce {
		t.Errorf("amount for checkout and refund: %+v, want the coercing declaration", f)
	}
}

// TestValidateDoesNotAllocate: checking a conforming event costs no
// garbage on the scoring path.
func TestValidateDoesNotAllocate(t *testing.T) {
	s, err := parse(t, declared)
	if err != nil {
		t.Fatal(err)
	}
	ev := fastjson.MustParse(`{"amount": 10, "currency": "EUR", "email": "a@b", "qty": 3, "vip": true, "tags": ["a"], "billing": {"country": "FR"}, "seen_at": 1764374400000}`)
	if n := testing.AllocsPerRun(100, func() {
		if err := s.Validate(ev, "checkout"); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("%v allocations per event", n)
	}
}

// FuzzValidate: any event is accepted or refused with a message naming a
// declared field; nothing panics.
func FuzzValidate(f *testing.F) {
	s, err := parse(f, declared)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(`{"amount": 10, "billing": {"country": "FR"}}`, "checkout")
	f.Add(`{"amount": "1e400", "tags": [1]}`, "refund")
	f.Fuzz(func(t *testing.T, event, typ string) {
		ev, err := fastjson.Parse(event)
		if err != nil || ev.Type() != fastjson.TypeObject {
			return
		}
		err = s.Validate(ev, typ)
		if err == nil {
			return
		}
		e, ok := err.(*eventschema.Error)
		if !ok || s.Field(e.Field, []string{typ}) == nil && s.Field(e.Field, nil) == nil {
			t.Fatalf("%v: not about a declared field", err)
		}
	})
}
