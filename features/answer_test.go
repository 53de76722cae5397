package features

import "testing"

// TestAnswerKeepsTheBody: an answer kept with a body hash gives a retry
// its values, and flags a retry with another body as a conflict; one
// kept without (by an older riskd) matches any body.
func TestAnswerKeepsTheBody(t *testing.T) {
	f := &Feature{Name: "card_txn_count_1h", Kind: Count}
	f.hash = nameHash(f.Name)
	first := &Observation{Items: []Item{{Feature: f, Value: Value{Valid: true, Num: 3}}}, Body: [16]byte{1}}
	kept := AppendAnswer(nil, first)
	if len(kept) > AnswerSize(first) {
		t.Fatalf("answer of %d bytes, answerSize %d", len(kept), AnswerSize(first))
	}
	unhashed := AppendAnswer(nil, &Observation{Items: first.Items})
	for _, tt := range []struct {
		name     string
		ans      []byte
		body     [16]byte
		conflict bool
	}{
		{"same body", kept, [16]byte{1}, false},
		{"another body", kept, [16]byte{2}, true},
		{"no body given", kept, [16]byte{}, false},
		{"kept without a body", unhashed, [16]byte{2}, false},
	} {
		retry := &Observation{Items: []Item{{Feature: f}}, Body: tt.body}
		if err := ApplyAnswer(tt.ans, retry, make([]bool, 1)); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if retry.Conflict != tt.conflict || retry.Items[0].Value != first.Items[0].Value {
			t.Errorf("%s: conflict %v, value %+v", tt.name, retry.Conflict, retry.Items[0].Value)
		}
	}
}
