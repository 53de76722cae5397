// Package models serves learned scores beside the rules: a policy
// directory's models.yaml names tree ensembles trained with XGBoost and the
// features or event fields each reads, and rules read their predictions.
package models

import "math"

// Ensemble is a sum of regression trees and the transform of that sum (the
// objective's): what XGBoost's gbtree booster computes. It is immutable and
// safe for concurrent use.
//
// Every tree is laid out breadth first in one slice, each node's children
// side by side after it: a walk only ever moves forward, so it ends in at
// most MaxDepth steps whatever the file held.
type Ensemble struct {
	nodes    []node
	roots    []int32
	inputs   int
	base     float32 // the margin the trees add to
	logistic bool    // the objective's transform is the sigmoid
	// Names are the inputs' names saved with the model (feature_names),
	// nil when it was trained without.
	Names []string
	// Objective is XGBoost's name for it (binary:logistic, …).
	Objective string
}

type node struct {
	// value is the split threshold, or a leaf's value.
	value float32
	// input is the input a split compares; -1 for a leaf.
	input int32
	// left is the index of the left child; the right one follows it.
	left int32
	// missingLeft: a missing input goes left (default_left).
	missingLeft bool
}

// Inputs is how many values Predict reads.
func (e *Ensemble) Inputs() int { return e.inputs }

// Predict returns the model's output for x, one value per input in order:
// a probability for a logistic objective. NaN is a missing value and goes
// where the model learnt to send it. x must hold Inputs() values.
//
// It computes as XGBoost 1.7 does, in float32: inputs are rounded to
// float32 and compared with the float32 thresholds (a value below goes
// left), the leaves are added to the base margin tree by tree in float32,
// and the sigmoid is XGBoost's own (common::Sigmoid). It does not
// allocate.
func (e *Ensemble) Predict(x []float64) float64 {
	return float64(e.transform(e.margin(x)))
}

// margin returns the base margin plus every tree's leaf for x, before the
// objective's transform: what xgboost's predict(output_margin=True) gives.
func (e *Ensemble) margin(x []float64) float32 {
	x = x[:e.inputs]
	nodes := e.nodes
	sum := e.base
	for _, i := range e.roots {
		for {
			n := &nodes[i]
			if n.input < 0 {
				sum += n.value
				break
			}
			v := x[n.input]
			switch {
			case v != v: // NaN: missing
				if n.missingLeft {
					i = n.left
				} else {
					i = n.left + 1
				}
			case float32(v) < n.value:
				i = n.left
			default:
				i = n.left + 1
			}
		}
	}
	return sum
}

func (e *Ensemble) transform(margin float32) float32 {
	if e.logistic {
		return sigmoid(margin)
	}
	return margin
}

// sigmoid is XGBoost 1.7's common::Sigmoid, operation for operation in
// float32: the exponent is capped at 88.7 so expf cannot overflow, and the
// epsilon it adds against a zero denominator vanishes next to 1.
func sigmoid(x float32) float32 {
	const eps float32 = 1e-16
	t := min(-x, 88.7)
	denom := float32(math.Exp(float64(t))) + 1 + eps
	return 1 / denom
}
