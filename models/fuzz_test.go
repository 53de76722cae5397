package models

import (
	"math"
	"testing"
)

// FuzzReadXGBoost: whatever a model file holds, reading it returns a model
// or an error, and a model read is one whose walks end: every split's
// children come after it, inside the node list, and it compares an input
// the model has. Seeds: testdata/small.json and testdata/fuzz.
func FuzzReadXGBoost(f *testing.F) {
	f.Add(small(f))
	f.Add([]byte(chain(3)))
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := ReadXGBoost(data)
		if err != nil {
			return
		}
		for i, n := range e.nodes {
			if n.input >= 0 && (n.left <= int32(i) || int(n.left)+1 >= len(e.nodes) || int(n.input) >= e.inputs) {
				t.Fatalf("node %d %+v of %d: a walk could loop or leave the nodes", i, n, len(e.nodes))
			}
		}
		x := make([]float64, e.Inputs())
		for i := range x {
			x[i] = math.NaN()
		}
		e.Predict(x)
		for i := range x {
			x[i] = float64(i) - 1
		}
		e.Predict(x)
	})
}
