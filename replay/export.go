package replay

import (
	"encoding/csv"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/valyala/fastjson"

	"github.com/riskd/riskd/engine"
	"github.com/riskd/riskd/features"
	"github.com/riskd/riskd/rules"
)

// featureWriter writes training data: one CSV row per counted event a
// ruleset scored, holding every feature of the policy as the engine
// answered it for that event (the same Score call riskd serves with, so
// nothing comes from the event's future and nothing is computed twice),
// the event fields the rules read, and what the live ruleset decided.
//
// Columns are named as rules name them (event.amount,
// features.card_txn_count_1h) so a model trained on the file lists its
// inputs under the same names. A nil value is an empty cell, a boolean is
// 1 or 0, a number is written as it was read (an event's) or in the
// shortest form that reads back exactly (a feature's).
type featureWriter struct {
	w        *csv.Writer
	fields   []features.Path // the live rulesets' and the models' event fields, by name
	column   map[string]int  // feature name -> its column
	firstFea int             // column of the first feature
	derived  map[string]int  // derived model input name -> its column
	row      []string
	parser   fastjson.Parser
	buf      []byte
}

// The columns before the event fields.
var exportHead = []string{"event_id", "ts", "type", "ruleset", "label", "score", "decision", "rules"}

func newFeatureWriter(w io.Writer, p *rules.Policy) (*featureWriter, error) {
	fw := &featureWriter{w: csv.NewWriter(w), column: map[string]int{}, derived: map[string]int{}}
	seen := map[string]bool{}
	for _, m := range p.Models.All() {
		for _, in := range m.Inputs {
			if in.Feature < 0 && !in.Derived() && !seen[in.Field.Name] {
				seen[in.Field.Name] = true
				fw.fields = append(fw.fields, in.Field)
			}
		}
	}
	for _, rs := range p.Rulesets {
		if rs.ShadowOf != "" && rs.TrafficPPM == 0 {
			continue // never decides
		}
		for _, f := range rs.Slots {
			if f.Feature < 0 && f.Model == nil && f.List == "" && !seen[f.Path.Name] {
				seen[f.Path.Name] = true
				fw.fields = append(fw.fields, f.Path)
			}
		}
	}
	slices.SortFunc(fw.fields, func(a, b features.Path) int { return strings.Compare(a.Name, b.Name) })
	head := slices.Clone(exportHead)
	for _, f := range fw.fields {
		head = append(head, "event."+f.Name)
	}
	fw.firstFea = len(head)
	for _, f := range p.Features.Features {
		fw.column[f.Name] = len(head)
		head = append(head, rules.FeatureEnvKey(f.Name))
	}
	for _, m := range p.Models.All() {
		for _, in := range m.Inputs {
			if in.Derived() {
				fw.derived[in.Name] = len(head)
				head = append(head, in.Name)
			}
		}
	}
	fw.row = make([]string, len(head))
	if err := fw.w.Write(head); err != nil {
		return nil, fmt.Errorf("writing features: %w", err)
	}
	return fw, nil
}

// write writes ev's row from d, a decision scored with Explain and
// AllFeatures.
func (fw *featureWriter) write(ev *Event, d *engine.Decision) error {
	r := fw.row
	r[0], r[1], r[2], r[3] = d.EventID, strconv.FormatInt(ev.TS, 10), d.Type, d.Ruleset
	switch ev.Label {
	case 1:
		r[4] = "1"
	case 0:
		r[4] = "0"
	default:
		r[4] = ""
	}
	r[5], r[6] = strconv.FormatInt(d.Score, 10), d.Outcome.String()
	ids := make([]string, len(d.Reasons))
	for i, x := range d.Reasons {
		ids[i] = x.Rule
	}
	r[7] = strings.Join(ids, " ")
	v, err := fw.parser.ParseBytes(ev.Body)
	if err != nil {
		return fmt.Errorf("line %d: %w", ev.Line, err) // the engine scored it, so it parses
	}
	for i, f := range fw.fields {
		r[len(exportHead)+i] = fw.eventValue(v.Get(f.Parts...))
	}
	for i := fw.firstFea; i < len(r); i++ {
		r[i] = ""
	}
	for _, f := range d.Features {
		i, ok := fw.column[f.Name]
		switch {
		case !ok || !f.Value.Valid:
		case f.Bool && f.Value.Bool:
			r[i] = "1"
		case f.Bool:
			r[i] = "0"
		default:
			r[i] = strconv.FormatFloat(f.Value.Num, 'f', -1, 64)
		}
	}
	for _, m := range d.Models {
		for j, in := range m.Model.Inputs {
			if i, ok := fw.derived[in.Name]; ok && !math.IsNaN(m.Inputs[j]) {
				r[i] = strconv.FormatFloat(m.Inputs[j], 'g', -1, 64)
			}
		}
	}
	if err := fw.w.Write(r); err != nil {
		return fmt.Errorf("writing features: %w", err)
	}
	return nil
}

func (fw *featureWriter) eventValue(v *fastjson.Value) string {
	if v == nil {
		return ""
	}
	switch v.Type() {
	case fastjson.TypeNull:
		return ""
	case fastjson.TypeString:
		return string(v.GetStringBytes())
	case fastjson.TypeTrue:
		return "1"
	case fastjson.TypeFalse:
		return "0"
	}
	fw.buf = v.MarshalTo(fw.buf[:0]) // a number as written, an object or array as JSON
	return string(fw.buf)
}

func (fw *featureWriter) flush() error {
	fw.w.Flush()
	if err := fw.w.Error(); err != nil {
		return fmt.Errorf("writing features: %w", err)
	}
	return nil
}
