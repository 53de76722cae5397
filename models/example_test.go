package models_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/valyala/fastjson"

	"github.com/riskd/riskd/features"
	"github.com/riskd/riskd/models"
)

// Scoring an event with a model: its inputs from the features the store
// answered and the event's fields, missing ones NaN, into a slice kept
// for the next event.
func Example() {
	feats, _ := features.Parse("features.yaml", []byte(`features:
  - {name: card_txn_count_1h, kind: count, key: card_id, window: 1h}
  - {name: a, kind: count, key: a_id, window: 1h}
  - {name: b, kind: avg, key: a_id, field: amount, window: 1h}
  - {name: c, kind: seen, key: [a_id, card_id]}
`))
	set, err := models.Load("models.yaml", []byte(`models:
  - name: fraud
    file: fraud.json
    format: xgboost-json
    inputs: [event.amount, features.card_txn_count_1h, features.a, features.b, features.c, event.d]
`), func(name string) ([]byte, error) { return os.ReadFile(filepath.Join("testdata", name)) }, feats)
	if err != nil {
		fmt.Println(err)
		return
	}
	m := set.Model("fraud")

	// What the engine has for one event: the store's answers by feature
	// index, and the parsed event.
	answers := []features.Value{{Valid: true, Num: 7}, {Valid: true, Num: 2}, {}, {Valid: true, Bool: true}}
	event := fastjson.MustParse(`{"id":"e1","type":"checkout","amount":950,"d":"not a number"}`)

	x := make([]float64, len(m.Inputs))
	for i, in := range m.Inputs {
		if in.Feature >= 0 {
			x[i] = models.FeatureInput(answers[in.Feature], feats.Features[in.Feature].Kind.Bool())
		} else {
			x[i] = models.FieldInput(event.Get(in.Field.Parts...))
		}
	}
	fmt.Printf("%v -> model.fraud = %.4f\n", x, m.Predict(x))
	// Output: [950 7 2 NaN 1 NaN] -> model.fraud = 0.9798
}
