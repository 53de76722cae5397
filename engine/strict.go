package engine

import (
	"fmt"
	"hash/maphash"
	"math/bits"
	"strconv"
	"unicode/utf8"

	"github.com/valyala/fastjson"

	"github.com/riskd/riskd/policyfile"
)

// fastjson is lenient where JSON is not, and JSON parsers disagree on
// duplicate keys (fastjson keeps the first, most keep the last): an event
// a caller's parser reads one way must not be scored another way. So,
// after parsing, an event is held to strict JSON: no raw control
// characters inside strings, no duplicate keys in any object, and only
// finite numbers in JSON's own grammar (no NaN, Infinity, 01, .5, +1).

// strictScratch is reused between events: the keys of the objects being
// walked, the duplicate finder's table, and the visitor, made once so
// walking allocates nothing.
type strictScratch struct {
	keys  [][]byte
	table []int32 // open addressing: index+1 into the keys of one object, 0 empty
	seed  maphash.Seed
	num   []byte
	err   error
	visit func(key []byte, v *fastjson.Value)
	// compares counts key comparisons, which the test holding the check
	// linear reads.
	compares int
}

// checkStrict returns an *InputError for the first thing strict JSON
// refuses in body, parsed as v.
func checkStrict(body []byte, v *fastjson.Value, sc *strictScratch) error {
	if !utf8.Valid(body) {
		return &InputError{Msg: fmt.Sprintf("invalid JSON: invalid UTF-8 at byte %d (JSON text is UTF-8)", invalidUTF8(body))}
	}
	if msg := checkStrings(body); msg != "" {
		return &InputError{Msg: "invalid JSON: " + msg}
	}
	sc.err = nil
	if err := sc.value(v); err != nil {
		sc.err = nil
		return &InputError{Msg: err.Error()}
	}
	return nil
}

// invalidUTF8 returns the offset of the first byte of b that is not
// valid UTF-8, or -1.
func invalidUTF8(b []byte) int {
	for i := 0; i < len(b); {
		if b[i] < utf8.RuneSelf {
			i++
			continue
		}
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return -1
}

// checkStrings holds the string literals of b, which fastjson parsed, to
// what JSON allows and fastjson lets through: no raw control character,
// only JSON's escapes, and \u escapes that name characters (a UTF-16
// surrogate half alone names none, and fastjson would keep its text). It
// returns what is wrong and where, or "".
func checkStrings(b []byte) string {
	in := false
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case c == '"':
			in = !in
		case !in:
		case c < 0x20:
			return fmt.Sprintf("raw control character 0x%02x inside a string at byte %d (escape it as \\u%04x)", c, i, c)
		case c == '\\':
			if i+1 == len(b) {
				return fmt.Sprintf("escape cut short at byte %d", i)
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i++
			case 'u':
				r, ok := hex4(b, i+2)
				if !ok {
					return fmt.Sprintf("\\u at byte %d is not followed by 4 hexadecimal digits", i)
				}
				switch {
				case r >= 0xdc00 && r <= 0xdfff:
					return fmt.Sprintf("lone surrogate \\u%04x at byte %d (the second half of a UTF-16 pair, with no first half)", r, i)
				case r >= 0xd800 && r <= 0xdbff:
					if lo, ok := hex4(b, i+8); !ok || b[i+6] != '\\' || b[i+7] != 'u' || lo < 0xdc00 || lo > 0xdfff {
						return fmt.Sprintf("lone surrogate \\u%04x at byte %d (the first half of a UTF-16 pair, not followed by its second half)", r, i)
					}
					i += 6
				}
				i += 5
			default:
				return fmt.Sprintf("invalid escape %s at byte %d (JSON has \\\" \\\\ \\/ \\b \\f \\n \\r \\t and \\uXXXX)", strconv.QuoteToASCII(string(b[i:i+2])), i)
			}
		}
	}
	return ""
}

// hex4 reads the 4 hexadecimal digits at b[i:], if there are.
func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
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
		if dup := sc.duplicate(keys); dup != nil {
			return fmt.Errorf("duplicate key %s (parsers disagree on which one counts: refused)", policyfile.Quote(string(dup)))
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
			return fmt.Errorf("%s is not a JSON number", policyfile.Cut(string(sc.num)))
		}
		if f := v.GetFloat64(); f > maxFinite || f < -maxFinite {
			return fmt.Errorf("%s is not a finite number", policyfile.Cut(string(sc.num)))
		}
	}
	return nil
}

const maxFinite = 1.7976931348623157e308

// smallObject is the most keys compared pair by pair: most pairs differ
// in length or first byte, which beats hashing them.
const smallObject = 16

// duplicate returns a key that keys holds twice, or nil, in time linear
// in the keys' bytes: an object of thousands of keys compared pair by
// pair took tens of milliseconds per event.
func (sc *strictScratch) duplicate(keys [][]byte) []byte {
	if len(keys) <= smallObject {
		for i := 1; i < len(keys); i++ {
			for j := 0; j < i; j++ {
				sc.compares++
				if string(keys[i]) == string(keys[j]) {
					return keys[i]
				}
			}
		}
		return nil
	}
	size := 1 << bits.Len(uint(2*len(keys)-1)) // a power of two, at most half full
	if cap(sc.table) < size {
		sc.table = make([]int32, size)
		sc.seed = maphash.MakeSeed()
	}
	t := sc.table[:size]
	clear(t)
	mask := uint64(size - 1)
	for i, k := range keys {
		for j := maphash.Bytes(sc.seed, k) & mask; ; j = (j + 1) & mask {
			if t[j] == 0 {
				t[j] = int32(i + 1)
				break
			}
			sc.compares++
			if string(keys[t[j]-1]) == string(k) {
				return k
			}
		}
	}
	if size > maxKeptTable {
		sc.table = nil // one huge object must not pin its table in the pool
	}
	return nil
}

// maxKeptTable is the largest duplicate table kept between events.
const maxKeptTable = 1 << 12

// fieldError names the field an error is in: `field "a.b": …`. The path
// is cut as it grows from the inside out, so a deep or long-keyed one
// costs no more than its excerpt.
func fieldError(name string, err error) error {
	if fe, ok := err.(*strictField); ok {
		sep := "."
		if fe.path[0] == '[' {
			sep = ""
		}
		return &strictField{path: policyfile.Cut(policyfile.Cut(name) + sep + fe.path), err: fe.err}
	}
	return &strictField{path: policyfile.Cut(name), err: err}
}

type strictField struct {
	path string
	err  error
}

func (e *strictField) Error() string {
	return fmt.Sprintf("field %s: %v", policyfile.Quote(e.path), e.err)
}

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
