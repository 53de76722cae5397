package replay_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/riskd/riskd/replay"
)

// TestLabelsJoinByEventID: labels from an export of the decisions topic
// (decisions, resolutions, external labels) join the events by id; a
// later label wins, approve/decline and decisions label nothing, and a
// bad line is named.
func TestLabelsJoinByEventID(t *testing.T) {
	export := `{"event_id":"e1","type":"checkout","decision":"review","score":70}
{"source":"review","event_id":"e1","type":"checkout","label":"not_fraud","case_id":"c_x","analyst":"ann"}
{"source":"chargeback","event_id":"e1","label":"fraud"}
{"source":"review","event_id":"e2","label":"not_fraud"}
{"source":"review","event_id":"e3","label":"approve"}
{"source":"api","label":"fraud"}
{"source":"api","event_id":"e4","label":"fruad"}
not json
`
	labels, bad, err := replay.ReadLabels(strings.NewReader(export))
	if err != nil {
		t.Fatal(err)
	}
	var msgs []string
	for _, e := range bad {
		msgs = append(msgs, e.Error())
	}
	if got := strings.Join(msgs, "\n"); got != "line 6: a label without \"event_id\"\nline 7: label \"fruad\": want fraud, not_fraud, approve or decline\nline 8: invalid JSON: cannot parse JSON: unexpected value found: \"not json\"; unparsed tail: \"not json\"" {
		t.Errorf("bad lines:\n%s", got)
	}
	events, badEvents, err := replay.Read(strings.NewReader(`{"id":"e1","type":"checkout","ts":1780000000001}
{"id":"e2","type":"checkout","ts":1780000000002,"is_fraud":true}
{"id":"e3","type":"checkout","ts":1780000000003}
{"id":"e5","type":"checkout","ts":1780000000004}
`), "is_fraud")
	if err != nil || len(badEvents) > 0 {
		t.Fatal(err, badEvents)
	}
	if n := labels.Apply(events); n != 2 {
		t.Errorf("labelled %d events, want 2", n)
	}
	var got []int8
	for _, e := range events {
		got = append(got, e.Label)
	}
	if want := []int8{1, 0, -1, -1}; !slices.Equal(got, want) {
		t.Errorf("labels %v, want %v", got, want)
	}
}
