package replay

import (
	"bufio"
	"bytes"
	"fmt"
	"io"

	"github.com/valyala/fastjson"
)

// Labels are fraud labels by event id, read from an export of the records
// riskd writes to its decisions topic for resolutions and external labels
// (`source: review`, POST /v1/labels): JSON lines with "event_id" and
// "label".
type Labels map[string]int8

// ReadLabels reads labels as JSON lines. "fraud" is 1 and "not_fraud" 0;
// "approve" and "decline" say what to do with an order, not what the
// event was, and are left out, as are lines without a "label" (the
// decisions themselves, in an export of the whole topic). An event
// labelled twice takes its later label (a chargeback after a review).
// Lines it cannot read come back as LineErrors; err is for the input.
func ReadLabels(r io.Reader) (Labels, []*LineError, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	var p fastjson.Parser
	labels := Labels{}
	var bad []*LineError
	for line := 1; sc.Scan(); line++ {
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		v, err := p.ParseBytes(b)
		if err != nil {
			bad = append(bad, &LineError{line, fmt.Errorf("invalid JSON: %w", err)})
			continue
		}
		lv := v.Get("label")
		if lv == nil {
			continue
		}
		id := v.GetStringBytes("event_id")
		if len(id) == 0 {
			bad = append(bad, &LineError{line, fmt.Errorf("a label without \"event_id\"")})
			continue
		}
		switch string(lv.GetStringBytes()) {
		case "fraud":
			labels[string(id)] = 1
		case "not_fraud":
			labels[string(id)] = 0
		case "approve", "decline":
		default:
			bad = append(bad, &LineError{line, fmt.Errorf("label %s: want fraud, not_fraud, approve or decline", lv)})
		}
	}
	if err := sc.Err(); err != nil {
		return nil, bad, err
	}
	return labels, bad, nil
}

// Apply labels the events whose id it has (over a label field read with
// them) and returns how many events it labelled.
func (l Labels) Apply(events []Event) int {
	var p fastjson.Parser
	n := 0
	for i := range events {
		v, err := p.ParseBytes(events[i].Body)
		if err != nil {
			continue
		}
		if lab, ok := l[string(v.GetStringBytes("id"))]; ok {
			events[i].Label = lab
			n++
		}
	}
	return n
}
