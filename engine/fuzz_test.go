package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/riskd/riskd/engine"
	"github.com/riskd/riskd/internal/enginetest"
)

// FuzzScore feeds arbitrary bodies to the whole pipeline: every input is
// either refused with an InputError or answered with valid JSON. Seeds are
// in testdata/fuzz/FuzzScore.
func FuzzScore(f *testing.F) {
	f.Add([]byte(`{"id":"e-1","type":"checkout","account_id":"a","card_id":"c","device_id":"d","amount":12.5,"ip_country":"FR","card_country":"DE"}`))
	e := engine.New(examplePolicy(f), engine.Options{})
	// The same pipeline with challengers: one in shadow, one deciding half
	// the accounts.
	challenged := engine.New(enginetest.Challengers(f, "50%"), engine.Options{})
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, e := range []*engine.Engine{e, challenged} {
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
			for i, v := range append([]engine.Verdict{d.Verdict}, d.Shadows...) {
				var sum int64
				for _, r := range v.Reasons {
					sum += r.Score
				}
				if sum != v.Score {
					t.Fatalf("verdict %d of %q: reasons add up to %d, score %d", i, body, sum, v.Score)
				}
				if i > 0 && !json.Valid(d.AppendShadowJSON(nil, i-1)) {
					t.Fatalf("invalid shadow JSON for %q", body)
				}
			}
		}
	})
}
