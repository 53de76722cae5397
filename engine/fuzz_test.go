package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/riskd/riskd/engine"
)

// FuzzScore feeds arbitrary bodies to the whole pipeline: every input is
// either refused with an InputError or answered with valid JSON. Seeds are
// in testdata/fuzz/FuzzScore.
func FuzzScore(f *testing.F) {
	f.Add([]byte(`{"id":"e-1","type":"checkout","account_id":"a","card_id":"c","device_id":"d","amount":12.5,"ip_country":"FR","card_country":"DE"}`))
	e := engine.New(examplePolicy(f), engine.Options{})
	f.Fuzz(func(t *testing.T, body []byte) {
		var d engine.Decision
		err := e.Score(context.Background(), body, engine.ScoreOptions{Explain: true}, &d)
		if err != nil {
			var ie *engine.InputError
			if !errors.As(err, &ie) {
				t.Fatalf("error is not an InputError: %v", err)
			}
			return
		}
		out := d.AppendJSON(nil)
		if !json.Valid(out) {
			t.Fatalf("invalid JSON output for %q:\n%s", body, out)
		}
	})
}
