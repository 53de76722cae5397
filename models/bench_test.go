package models

import (
	"math"
	"os"
	"path/filepath"
	"testing"
)

func fraudModel(tb testing.TB) *Ensemble {
	tb.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "fraud.json"))
	if err != nil {
		tb.Fatal(err)
	}
	e, err := ReadXGBoost(data)
	if err != nil {
		tb.Fatal(err)
	}
	return e
}

// TestPredictDoesNotAllocate: Predict runs on every event a rule reads a
// model for.
func TestPredictDoesNotAllocate(t *testing.T) {
	e := fraudModel(t)
	x := []float64{120.5, 3, math.NaN(), 0.2, -1.1, 0.4}
	if n := testing.AllocsPerRun(100, func() { e.Predict(x) }); n != 0 {
		t.Errorf("Predict allocates %v times", n)
	}
}

// BenchmarkPredict: the test classifier, 40 trees of depth 5 on 6 inputs
// (the size of a first fraud model), one row with a missing value.
func BenchmarkPredict(b *testing.B) {
	e := fraudModel(b)
	x := []float64{120.5, 3, math.NaN(), 0.2, -1.1, 0.4}
	b.ReportAllocs()
	for b.Loop() {
		e.Predict(x)
	}
}
