package engine

import (
	"strconv"
	"unicode/utf8"

	"github.com/riskd/riskd/features"
	"github.com/riskd/riskd/rules"
)

// Decision is the answer for one event. A Decision can be reused for the
// next Score to save allocations; its strings then stay valid only until
// that next Score.
type Decision struct {
	EventID string
	Type    string
	Verdict // of the live ruleset: the one returned
	// Degraded is set when some features could not be read from the store;
	// they are nil and the ruleset was evaluated with what there was.
	Degraded bool
	// Unscored is set for an event type no ruleset scores: it was recorded
	// into the features that count it and passes.
	Unscored bool
	// Retry is set when the event id was scored before, within the
	// idempotency window: the features are that first answer's and
	// nothing was recorded again. The rules ran again on them.
	Retry     bool
	ElapsedUS int64

	// Explain is filled when asked for: every feature the ruleset read and
	// every rule that did not fire.
	Explain  bool
	Features []FeatureValue
	NotFired []NotFired

	// Shadows are the verdicts recorded but not returned: every challenger
	// of the live ruleset, and the champion when a challenger decided (a
	// traffic split), on the same features.
	Shadows []Verdict

	buf   []byte              // backing store for the strings above
	lists []rules.ListVersion // backing store of the reasons' Lists

	// pending holds a scoring's scratch while its shadows wait for
	// Engine.Shadow (ScoreOptions.DeferShadow).
	pending pendingShadow
}

// ShadowPending reports whether d's shadow verdicts are still to be
// evaluated by Engine.Shadow (ScoreOptions.DeferShadow): a transport then
// sends the answer first and calls Shadow after.
func (d *Decision) ShadowPending() bool { return d.pending.s != nil }

// Verdict is what one ruleset decided.
type Verdict struct {
	Ruleset string
	Version string
	Outcome rules.Outcome
	Score   int64
	Reasons []Reason
	// StorePolicy is the ruleset's on_store_error ("fail_open" or
	// "fail_closed") when the decision is degraded.
	StorePolicy string
}

// Reason is one fired rule's share of the decision.
type Reason struct {
	Rule   string
	Score  int64
	Text   string
	Action rules.Outcome // Pass: the rule forced nothing
	// Lists are the file and mutable lists the rule read, each with the
	// version the event was evaluated against: which list, as it stood,
	// decided.
	Lists []rules.ListVersion
}

// FeatureValue is one feature as the rules saw it.
type FeatureValue struct {
	Name  string
	Value features.Value
	Bool  bool // the feature is boolean (seen)
}

// NotFired is a rule that did not fire, and the run-time error that kept
// it from firing, if any.
type NotFired struct {
	Rule  string
	Error string
}

func (d *Decision) reset() {
	buf, reasons, fv, nf, sh, ls := d.buf[:0], d.Reasons[:0], d.Features[:0], d.NotFired[:0], d.Shadows[:0], d.lists[:0]
	*d = Decision{buf: buf, lists: ls, Verdict: Verdict{Reasons: reasons}, Features: fv, NotFired: nf, Shadows: sh}
}

// addShadow appends a cleared verdict to d.Shadows, reusing the reasons
// space of an earlier decision.
func (d *Decision) addShadow() *Verdict {
	if len(d.Shadows) < cap(d.Shadows) {
		d.Shadows = d.Shadows[:len(d.Shadows)+1]
		v := &d.Shadows[len(d.Shadows)-1]
		*v = Verdict{Reasons: v.Reasons[:0]}
		return v
	}
	d.Shadows = append(d.Shadows, Verdict{})
	return &d.Shadows[len(d.Shadows)-1]
}

// keep copies s into the decision's own buffer.
func (d *Decision) keep(s string) string {
	start := len(d.buf)
	d.buf = append(d.buf, s...)
	return bstr(d.buf[start:len(d.buf):len(d.buf)])
}

// AppendJSON appends the decision in the contract's JSON format.
func (d *Decision) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"event_id":`...)
	dst = AppendJSONString(dst, d.EventID)
	dst = append(dst, `,"type":`...)
	dst = AppendJSONString(dst, d.Type)
	dst = append(dst, ',')
	dst = appendVerdict(dst, &d.Verdict)
	dst = append(dst, `,"degraded":`...)
	dst = strconv.AppendBool(dst, d.Degraded)
	if d.StorePolicy != "" {
		dst = append(dst, `,"store_policy":"`...)
		dst = append(dst, d.StorePolicy...)
		dst = append(dst, '"')
	}
	if d.Unscored {
		dst = append(dst, `,"unscored":true`...)
	}
	if d.Retry {
		dst = append(dst, `,"retry":true`...)
	}
	dst = append(dst, `,"elapsed_us":`...)
	dst = strconv.AppendInt(dst, d.ElapsedUS, 10)
	if d.Explain {
		dst = append(dst, `,"features":{`...)
		for i, f := range d.Features {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = AppendJSONString(dst, f.Name)
			dst = append(dst, ':')
			switch {
			case !f.Value.Valid:
				dst = append(dst, "null"...)
			case f.Bool:
				dst = strconv.AppendBool(dst, f.Value.Bool)
			default:
				dst = strconv.AppendFloat(dst, f.Value.Num, 'f', -1, 64)
			}
		}
		dst = append(dst, `},"not_fired":[`...)
		for i, n := range d.NotFired {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, `{"rule":`...)
			dst = AppendJSONString(dst, n.Rule)
			if n.Error != "" {
				dst = append(dst, `,"error":`...)
				dst = AppendJSONString(dst, n.Error)
			}
			dst = append(dst, '}')
		}
		dst = append(dst, ']')
	}
	if d.Explain && len(d.Shadows) > 0 {
		dst = append(dst, `,"shadow":[`...)
		for i := range d.Shadows {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, '{')
			dst = appendVerdict(dst, &d.Shadows[i])
			dst = append(dst, '}')
		}
		dst = append(dst, ']')
	}
	return append(dst, '}')
}

// AppendShadowJSON appends shadow verdict i as a decision record for the
// shadow decisions topic: the decision format of its ruleset, marked
// "shadow": true, beside what the live ruleset answered so the two compare
// without a join.
func (d *Decision) AppendShadowJSON(dst []byte, i int) []byte {
	v := &d.Shadows[i]
	dst = append(dst, `{"event_id":`...)
	dst = AppendJSONString(dst, d.EventID)
	dst = append(dst, `,"type":`...)
	dst = AppendJSONString(dst, d.Type)
	dst = append(dst, ',')
	dst = appendVerdict(dst, v)
	dst = append(dst, `,"degraded":`...)
	dst = strconv.AppendBool(dst, d.Degraded)
	if v.StorePolicy != "" {
		dst = append(dst, `,"store_policy":"`...)
		dst = append(dst, v.StorePolicy...)
		dst = append(dst, '"')
	}
	dst = append(dst, `,"shadow":true,"live_ruleset":`...)
	dst = AppendJSONString(dst, d.Ruleset)
	dst = append(dst, `,"live_decision":"`...)
	dst = append(dst, d.Outcome.String()...)
	dst = append(dst, `","live_score":`...)
	dst = strconv.AppendInt(dst, d.Score, 10)
	return append(dst, '}')
}

// appendVerdict appends a verdict's fields: decision, score, ruleset,
// version and reasons.
func appendVerdict(dst []byte, v *Verdict) []byte {
	dst = append(dst, `"decision":"`...)
	dst = append(dst, v.Outcome.String()...)
	dst = append(dst, `","score":`...)
	dst = strconv.AppendInt(dst, v.Score, 10)
	dst = append(dst, `,"ruleset":`...)
	dst = AppendJSONString(dst, v.Ruleset)
	dst = append(dst, `,"version":`...)
	dst = AppendJSONString(dst, v.Version)
	dst = append(dst, ',')
	return appendReasons(dst, v.Reasons)
}

// appendReasons appends "reasons":[...].
func appendReasons(dst []byte, reasons []Reason) []byte {
	dst = append(dst, `"reasons":[`...)
	for i, r := range reasons {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"rule":`...)
		dst = AppendJSONString(dst, r.Rule)
		dst = append(dst, `,"score":`...)
		dst = strconv.AppendInt(dst, r.Score, 10)
		dst = append(dst, `,"reason":`...)
		dst = AppendJSONString(dst, r.Text)
		if r.Action != rules.Pass {
			dst = append(dst, `,"action":"`...)
			dst = append(dst, r.Action.String()...)
			dst = append(dst, '"')
		}
		if len(r.Lists) > 0 {
			dst = append(dst, `,"lists":{`...)
			for j, l := range r.Lists {
				if j > 0 {
					dst = append(dst, ',')
				}
				dst = AppendJSONString(dst, l.Name)
				dst = append(dst, ':')
				dst = AppendJSONString(dst, l.Version)
			}
			dst = append(dst, '}')
		}
		dst = append(dst, '}')
	}
	return append(dst, ']')
}

const hexDigits = "0123456789abcdef"

// AppendJSONString appends s as a JSON string; invalid UTF-8 (events are
// untrusted) becomes U+FFFD so the output is always valid JSON. The
// transports write their error bodies with it, so that an error quoting an
// event is escaped as its decision would be.
func AppendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
