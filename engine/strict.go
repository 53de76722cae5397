package engine

import (
	"fmt"
	"strconv"

	"github.com/valyala/fastjson"
)

// fastjson is lenient where JSON is not, and JSON parsers disagree on
// duplicate keys (fastjson keeps the first, most keep the last): an event
// a caller's parser reads one way must not be scored another way. So,
// after parsing, an event is held to strict JSON: no raw control
// characters inside strings, no duplicate keys in any object, and only
// finite numbers in JSON's own grammar (no NaN, Infinity, 01, .5, +1).

// strictScratch is reused between events: the keys of the objects being
// walked, and the visitor, made once so walking allocates nothing.
type strictScratch struct {
	keys  [][]byte
	num   []byte
	err   error
	visit func(key []byte, v *fastjson.Value)
}

// checkStrict returns an *InputError for the first thing strict JSON
// refuses in body, parsed as v.
func checkStrict(body []byte, v *fastjson.Value, sc *strictScratch) error {
	if i, c := rawControl(body); i >= 0 {
		return &InputError{Msg: fmt.Sprintf("invalid JSON: raw control character 0x%02x inside a string at byte %d (escape it as \\u%04x)", c, i, c)}
	}
	sc.err = nil
	if err := sc.value(v); err != nil {
		sc.err = nil
		return &InputError{Msg: err.Error()}
	}
	return nil
}

// rawControl finds a byte below 0x20 inside a string literal.
func rawControl(b []byte) (int, byte) {
	in, esc := false, false
	for i, c := range b {
		switch {
		case esc:
			esc = false
		case in && c == '\\':
			esc = true
		case c == '"':
			in = !in
		case in && c < 0x20:
			return i, c
		}
	}
	return -1, 0
}

func (sc *strictScratch) value(v *fastjson.Value) error {
	switch v.Type() {
	case fastjson.TypeObject:
		if sc.visit == nil {
			sc.visit = func(key []byte, child *fastjson.Value) {
				if sc.err != nil {
					return
				}
				sc.keys = append(sc.keys, key)
				if err := sc.value(child); err != nil {
					sc.err = fieldError(string(key), err)
				}
			}
		}
		o, _ := v.Object()
		start := len(sc.keys)
		o.Visit(sc.visit)
		keys := sc.keys[start:]
		sc.keys = sc.keys[:start]
		if err := sc.err; err != nil {
			return err
		}
		// Events have a few dozen keys at most: comparing pairs (most
		// differ in length or first byte) beats hashing them.
		for i := 1; i < len(keys); i++ {
			for j := 0; j < i; j++ {
				if string(keys[i]) == string(keys[j]) {
					return fmt.Errorf("duplicate key %q (parsers disagree on which one counts: refused)", keys[i])
				}
			}
		}
	case fastjson.TypeArray:
		a, _ := v.Array()
		for i, child := range a {
			if err := sc.value(child); err != nil {
				return fieldError("["+strconv.Itoa(i)+"]", err)
			}
		}
	case fastjson.TypeNumber:
		sc.num = v.MarshalTo(sc.num[:0])
		if !jsonNumber(sc.num) {
			return fmt.Errorf("%s is not a JSON number", string(sc.num))
		}
		if f := v.GetFloat64(); f > maxFinite || f < -maxFinite {
			return fmt.Errorf("%s is not a finite number", string(sc.num))
		}
	}
	return nil
}

const maxFinite = 1.7976931348623157e308

// fieldError names the field an error is in: `field "a.b": …`.
func fieldError(name string, err error) error {
	if fe, ok := err.(*strictField); ok {
		sep := "."
		if fe.path[0] == '[' {
			sep = ""
		}
		return &strictField{path: name + sep + fe.path, err: fe.err}
	}
	return &strictField{path: name, err: err}
}

type strictField struct {
	path string
	err  error
}

func (e *strictField) Error() string { return fmt.Sprintf("field %q: %v", e.path, e.err) }

// jsonNumber reports whether b is a number in JSON's grammar:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func jsonNumber(b []byte) bool {
	i := 0
	if i < len(b) && b[i] == '-' {
		i++
	}
	digits := func() int {
		n := 0
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
			n++
		}
		return n
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case digits() == 0:
		return false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(b)
}
