package engine

import (
	"crypto/sha256"
	"encoding/base32"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/riskd/riskd/features"
	"github.com/riskd/riskd/models"
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

	// CaseID names the review case of a review decision (AppendCaseID);
	// empty for the other outcomes.
	CaseID string

	// Explain is filled when asked for: every feature the ruleset read and
	// every rule that did not fire. Features are also filled for a review
	// decision, whose case holds them, though its answer leaves them out.
	Explain  bool
	Features []FeatureValue
	NotFired []NotFired
	// Models are the models the live ruleset evaluated, each with its
	// inputs and prediction (with ScoreOptions.AllFeatures, every model
	// of the policy).
	Models []ModelValue

	// Shadows are the verdicts recorded but not returned: every challenger
	// of the live ruleset, and the champion when a challenger decided (a
	// traffic split), on the same features.
	Shadows []Verdict

	buf   []byte              // backing store for the strings above
	lists []rules.ListVersion // backing store of the reasons' Lists
	kept  []byte              // AppendKept's output, handed to the store

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

// ModelValue is one model's prediction for the event and the inputs it
// read, as riskd computed them.
type ModelValue struct {
	Model *models.Model
	// Score is the prediction; NaN for a model declared without its file
	// (training data: only its inputs are known).
	Score float64
	// Inputs are in the model's order (Model.Inputs names them); NaN is
	// missing.
	Inputs []float64
}

// explained reports whether d.Models has m.
func (d *Decision) explained(m *models.Model) bool {
	for i := range d.Models {
		if d.Models[i].Model == m {
			return true
		}
	}
	return false
}

// addModel appends m's inputs to the explanation (copied: in is reused).
func (d *Decision) addModel(m *models.Model, in []float64) *ModelValue {
	d.Models = append(d.Models, ModelValue{Model: m, Score: math.NaN(), Inputs: slices.Clone(in)})
	return &d.Models[len(d.Models)-1]
}

// appendBaseReason writes the reason of a model-first ruleset's base.
func appendBaseReason(dst []byte, b *rules.Base, p float64, points int64) []byte {
	dst = append(dst, "model "...)
	dst = append(dst, b.Model.Name...)
	dst = append(dst, " gives "...)
	dst = strconv.AppendFloat(dst, p, 'f', 4, 64)
	dst = append(dst, ": "...)
	dst = strconv.AppendInt(dst, points, 10)
	dst = append(dst, " of "...)
	dst = strconv.AppendInt(dst, b.Scale, 10)
	return append(dst, " points"...)
}

// NotFired is a rule that did not fire, and the run-time error that kept
// it from firing, if any.
type NotFired struct {
	Rule  string
	Error string
}

func (d *Decision) reset() {
	buf, reasons, fv, nf, sh, ls, ms := d.buf[:0], d.Reasons[:0], d.Features[:0], d.NotFired[:0], d.Shadows[:0], d.lists[:0], d.Models[:0]
	*d = Decision{buf: buf, lists: ls, kept: d.kept[:0], Verdict: Verdict{Reasons: reasons}, Features: fv, NotFired: nf, Shadows: sh, Models: ms}
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
	if d.CaseID != "" {
		dst = append(dst, `,"case_id":"`...)
		dst = append(dst, d.CaseID...)
		dst = append(dst, '"')
	}
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
		if len(d.Models) > 0 {
			dst = appendModels(dst, d.Models)
		}
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

// AppendKept appends what the feature store keeps of the decision for
// GET /v1/decisions/{id}: a JSON object of the answer's fields but the
// event id (the store's key) and elapsed_us, at most
// features.MaxDecisionBytes long. When the whole does not fit, the
// reasons lose their texts and lists and then, last first, whole reasons
// ("truncated": true says so); a type or ruleset too long to fit at all
// is left out too.
func (d *Decision) AppendKept(dst []byte) []byte {
	start := len(dst)
	if dst = d.appendKept(dst, len(d.Reasons), true, true); len(dst)-start <= features.MaxDecisionBytes {
		return dst
	}
	for n := len(d.Reasons); n >= 0; n-- {
		if dst = d.appendKept(dst[:start], n, false, true); len(dst)-start <= features.MaxDecisionBytes {
			return dst
		}
	}
	return d.appendKept(dst[:start], 0, false, false)
}

// appendKept appends the kept decision with its first n reasons, whole
// or not, and with its names (type, ruleset, version) or not.
func (d *Decision) appendKept(dst []byte, n int, whole, names bool) []byte {
	if names {
		dst = append(dst, `{"type":`...)
		dst = AppendJSONString(dst, d.Type)
		dst = append(dst, `,"ruleset":`...)
		dst = AppendJSONString(dst, d.Ruleset)
		dst = append(dst, `,"version":`...)
		dst = AppendJSONString(dst, d.Version)
		dst = append(dst, `,"decision":"`...)
	} else {
		dst = append(dst, `{"decision":"`...)
	}
	dst = append(dst, d.Outcome.String()...)
	dst = append(dst, `","score":`...)
	dst = strconv.AppendInt(dst, d.Score, 10)
	dst = append(dst, ',')
	if whole {
		dst = appendReasons(dst, d.Reasons[:n])
	} else {
		dst = append(dst, `"reasons":[`...)
		for i, r := range d.Reasons[:n] {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, `{"rule":`...)
			dst = AppendJSONString(dst, r.Rule)
			dst = append(dst, `,"score":`...)
			dst = strconv.AppendInt(dst, r.Score, 10)
			if r.Action != rules.Pass {
				dst = append(dst, `,"action":"`...)
				dst = append(dst, r.Action.String()...)
				dst = append(dst, '"')
			}
			dst = append(dst, '}')
		}
		dst = append(dst, ']')
	}
	if d.CaseID != "" {
		dst = append(dst, `,"case_id":"`...)
		dst = append(dst, d.CaseID...)
		dst = append(dst, '"')
	}
	dst = append(dst, `,"degraded":`...)
	dst = strconv.AppendBool(dst, d.Degraded)
	if d.Unscored {
		dst = append(dst, `,"unscored":true`...)
	}
	if !whole || !names {
		dst = append(dst, `,"truncated":true`...)
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

// appendModels appends ,"models":{name: {"score": p, "inputs": {...}}}:
// a missing input (NaN) is null, and so is the score of a model declared
// without its file.
func appendModels(dst []byte, ms []ModelValue) []byte {
	dst = append(dst, `,"models":{`...)
	for i, m := range ms {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = AppendJSONString(dst, m.Model.Name)
		dst = append(dst, `:{"score":`...)
		dst = appendJSONFloat(dst, m.Score)
		dst = append(dst, `,"inputs":{`...)
		for j, x := range m.Inputs {
			if j > 0 {
				dst = append(dst, ',')
			}
			dst = AppendJSONString(dst, m.Model.Inputs[j].Name)
			dst = append(dst, ':')
			dst = appendJSONFloat(dst, x)
		}
		dst = append(dst, "}}"...)
	}
	return append(dst, '}')
}

// appendJSONFloat appends x in the shortest form that reads back exactly,
// null when it is not a number.
func appendJSONFloat(dst []byte, x float64) []byte {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return append(dst, "null"...)
	}
	return strconv.AppendFloat(dst, x, 'g', -1, 64)
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

// caseEncoding spells case ids: lower case, no padding, safe in a URL
// path and a Redis key.
var caseEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// AppendCaseID appends the case id of a review decision on event id:
// "c_" and 24 characters of SHA-256(id). It depends on the id alone, so a
// retry, a redelivery or another instance scoring the same event names
// the same case and the case store opens it once; hashing gives a fixed
// form whatever an event id holds (slashes, spaces, 200 bytes).
func AppendCaseID(dst []byte, eventID string) []byte {
	sum := sha256.Sum256([]byte(eventID))
	dst = append(dst, "c_"...)
	return caseEncoding.AppendEncode(dst, sum[:15])
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
