package engine

import (
	"errors"
	"fmt"
	"io"
	"math"
	"time"
	"unsafe"

	"github.com/valyala/fastjson"

	"github.com/riskd/riskd/features"
)

// InputError is an event riskd refuses: the message names the problem and
// where it is. HTTP answers it with 400 (413 for ErrTooLarge), Kafka sends
// the message to the dead-letter topic.
type InputError struct {
	Msg      string
	tooLarge bool
}

func (e *InputError) Error() string { return e.Msg }

// ErrTooLarge matches (errors.Is) the InputError of an event over the size
// limit.
var ErrTooLarge = errors.New("event too large")

// Is makes errors.Is(err, ErrTooLarge) true for an oversized event.
func (e *InputError) Is(target error) bool { return target == ErrTooLarge && e.tooLarge }

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

// header is what every event must carry.
type header struct {
	id, typ string // alias the parser's buffer
	ts      int64  // Unix ms
}

// parseEvent parses body with p and validates id, type and ts. now is used
// when ts is absent.
func parseEvent(p *fastjson.Parser, body []byte, now time.Time) (*fastjson.Value, header, error) {
	v, err := p.ParseBytes(body)
	if err != nil {
		return nil, header{}, &InputError{Msg: "invalid JSON: " + err.Error()}
	}
	if v.Type() != fastjson.TypeObject {
		return nil, header{}, &InputError{Msg: fmt.Sprintf("event must be a JSON object, got %s", v.Type())}
	}
	var h header
	if h.id, err = requiredString(v, "id"); err != nil {
		return nil, header{}, err
	}
	if len(h.id) > maxIDBytes {
		return nil, header{}, &InputError{Msg: fmt.Sprintf("field \"id\" is %d bytes, over the limit of %d", len(h.id), maxIDBytes)}
	}
	if h.typ, err = requiredString(v, "type"); err != nil {
		return nil, header{}, err
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
			return 0, &InputError{Msg: fmt.Sprintf("field \"ts\": %q is not an RFC 3339 time (e.g. 2026-11-21T10:15:00Z) or Unix milliseconds", s)}
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
// numbers as written. ok is false for an absent, null, empty or structured
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
		return v.MarshalTo(dst), true
	case fastjson.TypeTrue, fastjson.TypeFalse:
		return v.MarshalTo(dst), true
	}
	return dst, false
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
