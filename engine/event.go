package engine

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/valyala/fastjson"

	"github.com/riskd/riskd/features"
	"github.com/riskd/riskd/policyfile"
)

// InputError is an event riskd refuses: the message names the problem and
// where it is. HTTP answers it with 400 (413 for ErrTooLarge), Kafka sends
// the message to the dead-letter topic.
type InputError struct {
	Msg      string
	tooLarge bool
	conflict bool
}

func (e *InputError) Error() string { return e.Msg }

// ErrTooLarge matches (errors.Is) the InputError of an event over the size
// limit.
var ErrTooLarge = errors.New("event too large")

// ErrConflict matches (errors.Is) the InputError of an event whose id was
// scored within the idempotency window for another body. HTTP answers it
// with 409.
var ErrConflict = errors.New("event id reused for another body")

// Is makes errors.Is(err, ErrTooLarge) true for an oversized event, and
// errors.Is(err, ErrConflict) for a reused id.
func (e *InputError) Is(target error) bool {
	return target == ErrTooLarge && e.tooLarge || target == ErrConflict && e.conflict
}

// bodyHash identifies an event's body for idempotency: a retry must
// repeat it byte for byte. A cryptographic hash, so that no one can make
// another event pass for a retry of one they know.
func bodyHash(body []byte) [16]byte {
	sum := sha256.Sum256(body)
	return [16]byte(sum[:16])
}

// MaxEventBytes is the largest event Score takes (Options.MaxEventBytes).
func (e *Engine) MaxEventBytes() int { return e.maxBytes }

// ReadEvent reads an event from r into dst, up to MaxEventBytes: past
// it, it stops reading, counts the event invalid and returns ErrTooLarge,
// so a transport never holds more than the limit of a caller's body.
func (e *Engine) ReadEvent(r io.Reader, dst []byte) ([]byte, error) {
	dst, err := readLimited(r, dst, e.maxBytes)
	if errors.Is(err, ErrTooLarge) {
		e.metrics.invalidEvents.Inc()
	}
	return dst, err
}

// readLimited reads all of r into dst, failing with ErrTooLarge past limit
// bytes without reading the rest.
func readLimited(r io.Reader, dst []byte, limit int) ([]byte, error) {
	for {
		if len(dst) == cap(dst) {
			dst = append(dst, 0)[:len(dst)]
		}
		n, err := r.Read(dst[len(dst):min(cap(dst), limit+1)])
		dst = dst[:len(dst)+n]
		if len(dst) > limit {
			return dst, ErrTooLarge
		}
		if err == io.EOF {
			return dst, nil
		}
		if err != nil {
			return dst, err
		}
	}
}

// maxIDBytes bounds event ids: they are kept for idempotency, so a
// megabyte id would be a memory attack.
const maxIDBytes = 256

// maxTypeBytes bounds event types: a type is echoed in every decision,
// audit record and dead letter, and names one of the policy's rulesets.
const maxTypeBytes = 128

// maxMessageBytes bounds an InputError's message, whatever it quotes: it
// is echoed to the caller and into dead letters and logs. Longer ones keep
// their start and their end, where a parser's innermost cause is.
const maxMessageBytes = 512

// inputError returns an InputError of msg, bounded.
func inputError(msg string) *InputError { return &InputError{Msg: boundMessage(msg)} }

// boundMessage cuts the middle of a message over maxMessageBytes.
func boundMessage(msg string) string {
	if len(msg) <= maxMessageBytes {
		return msg
	}
	head, tail := maxMessageBytes/2, maxMessageBytes/2-32
	for head > 0 && !utf8.RuneStart(msg[head]) {
		head--
	}
	from := len(msg) - tail
	for from < len(msg) && !utf8.RuneStart(msg[from]) {
		from++
	}
	return fmt.Sprintf("%s … (%d bytes cut) … %s", msg[:head], from-head, msg[from:])
}

// header is what every event must carry.
type header struct {
	id, typ string // alias the parser's buffer
	ts      int64  // Unix ms
	body    []byte // the whole event, for its hash
}

// parseEvent parses body with p and validates id, type and ts. now is used
// when ts is absent.
func parseEvent(p *fastjson.Parser, body []byte, now time.Time) (*fastjson.Value, header, error) {
	v, err := p.ParseBytes(body)
	if err != nil {
		return nil, header{}, inputError("invalid JSON: " + err.Error())
	}
	if v.Type() != fastjson.TypeObject {
		return nil, header{}, &InputError{Msg: fmt.Sprintf("event must be a JSON object, got %s", v.Type())}
	}
	h := header{body: body}
	if h.id, err = requiredString(v, "id"); err != nil {
		return nil, header{}, err
	}
	if len(h.id) > maxIDBytes {
		return nil, header{}, &InputError{Msg: fmt.Sprintf("field \"id\" is %d bytes, over the limit of %d", len(h.id), maxIDBytes)}
	}
	if h.typ, err = requiredString(v, "type"); err != nil {
		return nil, header{}, err
	}
	if len(h.typ) > maxTypeBytes {
		return nil, header{}, &InputError{Msg: fmt.Sprintf("field \"type\" is %d bytes, over the limit of %d", len(h.typ), maxTypeBytes)}
	}
	if h.ts, err = parseTS(v.Get("ts"), now); err != nil {
		return nil, header{}, err
	}
	return v, h, nil
}

func requiredString(v *fastjson.Value, name string) (string, error) {
	f := v.Get(name)
	if f == nil {
		return "", &InputError{Msg: fmt.Sprintf("missing required field %q", name)}
	}
	if f.Type() != fastjson.TypeString {
		return "", &InputError{Msg: fmt.Sprintf("field %q must be a string, got %s", name, f.Type())}
	}
	b := f.GetStringBytes()
	if len(b) == 0 {
		return "", &InputError{Msg: fmt.Sprintf("field %q must not be empty", name)}
	}
	return bstr(b), nil
}

// Event times outside these bounds are typos (seconds sent as
// milliseconds, or the reverse) rather than history.
var (
	minTS = time.Date(1990, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	maxTS = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
)

func parseTS(f *fastjson.Value, now time.Time) (int64, error) {
	if f == nil || f.Type() == fastjson.TypeNull {
		return now.UnixMilli(), nil
	}
	var ms int64
	switch f.Type() {
	case fastjson.TypeString:
		s := bstr(f.GetStringBytes())
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return 0, &InputError{Msg: fmt.Sprintf("field \"ts\": %s is not an RFC 3339 time (e.g. 2026-11-21T10:15:00Z) or Unix milliseconds", policyfile.Quote(s))}
		}
		ms = t.UnixMilli()
	case fastjson.TypeNumber:
		x := f.GetFloat64()
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return 0, &InputError{Msg: "field \"ts\" is not a finite number of Unix milliseconds"}
		}
		ms = int64(x)
	default:
		return 0, &InputError{Msg: fmt.Sprintf("field \"ts\" must be an RFC 3339 string or Unix milliseconds, got %s", f.Type())}
	}
	if ms < minTS || ms > maxTS {
		return 0, &InputError{Msg: fmt.Sprintf("field \"ts\" %s is outside 1990..2200 (Unix milliseconds expected, not seconds)", time.UnixMilli(ms).UTC().Format(time.RFC3339))}
	}
	return ms, nil
}

// bstr views b as a string without copying. The string is valid only as
// long as b is not reused: the parser's buffer lives until the scratch goes
// back to its pool, and the store copies what it keeps.
//
// The rule for every alias made here: it lives only inside the call that
// made it. It never goes into a map, a metric label, a log line, an
// error, a channel or another goroutine; at those boundaries it is copied
// (string(b), strings.Clone, fmt) or replaced by a string the policy owns
// (the unscored counter's label is the policy's own type name).
func bstr(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// appendKeyPart appends one key field's value: strings as they are,
// numbers by their decimal value (appendNumberKey). ok is false for an absent, null, empty or structured
// value, which leaves the feature nil.
func appendKeyPart(dst []byte, v *fastjson.Value) ([]byte, bool) {
	return appendKey(dst, v, false)
}

// appendCompositePart is appendKeyPart for one part of a composite key:
// the separator (features.KeySep) and the escape byte are escaped, so
// parts joined by the separator never collide ("a\x1fb"+"c" against
// "a"+"b\x1fc").
func appendCompositePart(dst []byte, v *fastjson.Value) ([]byte, bool) {
	return appendKey(dst, v, true)
}

func appendKey(dst []byte, v *fastjson.Value, escape bool) ([]byte, bool) {
	if v == nil {
		return dst, false
	}
	switch v.Type() {
	case fastjson.TypeString:
		b := v.GetStringBytes()
		if len(b) == 0 {
			return dst, false
		}
		if !escape {
			return append(dst, b...), true
		}
		for _, c := range b {
			if c == keyEscape || c == features.KeySep[0] {
				dst = append(dst, keyEscape)
			}
			dst = append(dst, c)
		}
		return dst, true
	case fastjson.TypeNumber:
		start := len(dst)
		dst = v.MarshalTo(dst) // the number as written
		return appendNumberKey(dst[:start], dst[start:]), true
	case fastjson.TypeTrue, fastjson.TypeFalse:
		return v.MarshalTo(dst), true
	}
	return dst, false
}

// maxPlainNumberKey is the longest number key written out in full; past
// it, appendNumberKey writes an exponent.
const maxPlainNumberKey = 40

// appendNumberKey appends the key text of a number written as text (JSON
// grammar, which the strict check holds events to): its exact decimal
// value without exponent, sign of zero, leading or trailing zeros. So 42,
// 42.0, 4.2e1 and 420e-1 are all the key "42", as is the string "42":
// callers' encoders write one number in different ways, and a key must
// not split its history by how it was written. No float64 rounding is
// involved, so long integer ids stay distinct. A value whose plain text
// would pass maxPlainNumberKey bytes is written d.ddde±N; one with an
// exponent past a billion is kept as written. text may alias dst's spare
// capacity: it is read before dst is written past it.
func appendNumberKey(dst, text []byte) []byte {
	i, neg := 0, false
	if len(text) > 0 && text[0] == '-' {
		neg, i = true, 1
	}
	intStart := i
	for i < len(text) && '0' <= text[i] && text[i] <= '9' {
		i++
	}
	intDigits := text[intStart:i]
	var frac []byte
	if i < len(text) && text[i] == '.' {
		i++
		from := i
		for i < len(text) && '0' <= text[i] && text[i] <= '9' {
			i++
		}
		frac = text[from:i]
	}
	exp := 0
	if i < len(text) && (text[i] == 'e' || text[i] == 'E') {
		i++
		expNeg := false
		if i < len(text) && (text[i] == '+' || text[i] == '-') {
			expNeg = text[i] == '-'
			i++
		}
		for ; i < len(text) && '0' <= text[i] && text[i] <= '9'; i++ {
			if exp > 1e9 {
				return append(dst, text...)
			}
			exp = exp*10 + int(text[i]-'0')
		}
		if expNeg {
			exp = -exp
		}
	}
	if i != len(text) || len(intDigits)+len(frac) == 0 {
		return append(dst, text...) // not JSON's grammar: as written
	}
	// The digits go first to dst's end as scratch, then the key after
	// them, which is moved down over them.
	start := len(dst)
	dst = append(append(dst, intDigits...), frac...)
	e := exp - len(frac) // the value is digits × 10^e
	d := dst[start:]
	for len(d) > 0 && d[0] == '0' {
		d = d[1:]
	}
	if len(d) == 0 {
		return append(dst[:start], '0')
	}
	for d[len(d)-1] == '0' {
		d = d[:len(d)-1]
		e++
	}
	n := len(d)
	point := n + e // where the decimal point goes among the digits
	plain := n + e
	switch {
	case e >= 0:
	case point > 0:
		plain = n + 1
	default:
		plain = n + 2 - point
	}
	out := len(dst)
	if neg {
		dst = append(dst, '-')
	}
	switch {
	case plain > maxPlainNumberKey:
		dst = append(dst, d[0])
		if n > 1 {
			dst = append(append(dst, '.'), d[1:]...)
		}
		dst = strconv.AppendInt(append(dst, 'e'), int64(point-1), 10)
	case e >= 0:
		dst = append(dst, d...)
		for range e {
			dst = append(dst, '0')
		}
	case point > 0:
		dst = append(append(append(dst, d[:point]...), '.'), d[point:]...)
	default:
		dst = append(dst, '0', '.')
		for range -point {
			dst = append(dst, '0')
		}
		dst = append(dst, d...)
	}
	return dst[:start+copy(dst[start:], dst[out:])]
}

// keyEscape precedes a separator or escape byte inside a composite key's
// part.
const keyEscape = 0x1e

// micro reads a numeric field as exact micro-units: a JSON number, or a
// string holding one (payment APIs often send amounts as strings). ok is
// false for an absent or non-numeric value, which is not recorded; a
// number too large to record is an error. buf is scratch for the text.
func micro(v *fastjson.Value, buf []byte) (n int64, ok bool, _ []byte, _ error) {
	if v == nil {
		return 0, false, buf, nil
	}
	var text []byte
	switch v.Type() {
	case fastjson.TypeNumber:
		buf = v.MarshalTo(buf[:0]) // the number as written
		text = buf
	case fastjson.TypeString:
		text = v.GetStringBytes()
	default:
		return 0, false, buf, nil
	}
	n, err := features.ParseMicro(bstr(text))
	switch {
	case errors.Is(err, features.ErrTooLarge):
		return 0, false, append(buf[:0], text...), err
	case err != nil:
		return 0, false, buf, nil
	}
	return n, true, buf, nil
}

func lookup(v *fastjson.Value, p features.Path) *fastjson.Value {
	return v.Get(p.Parts...)
}

// EventTime reads the ts of a parsed event in Unix milliseconds, as Score
// does; history without event time cannot be put in order, so an absent
// ts is an error here.
func EventTime(v *fastjson.Value) (int64, error) {
	f := v.Get("ts")
	if f == nil || f.Type() == fastjson.TypeNull {
		return 0, &InputError{Msg: "missing field \"ts\": replaying history needs each event's time"}
	}
	return parseTS(f, time.Time{})
}
