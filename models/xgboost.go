package models

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
)

// Bounds on what a model file may hold. A model comes from a training
// job, not from an analyst's hand, and is read by a server that must not
// fall over a bad one: whatever the file says is checked before it is
// believed.
const (
	// MaxFileBytes is the largest model file read: a few hundred trees of
	// depth 8 take a few MiB of JSON.
	MaxFileBytes = 64 << 20
	// MaxDepth bounds a tree's depth, and so the steps one prediction
	// takes per tree. XGBoost's default is 6.
	MaxDepth = 64
	// MaxInputs bounds how many values a model reads.
	MaxInputs = 4096
)

// xgbModel is the part of XGBoost's JSON model (Booster.save_model with a
// .json name; doc/model.schema in XGBoost's sources) a prediction needs.
// Fields this reader does not use (loss_changes, sum_hessian, parents,
// attributes) are ignored.
type xgbModel struct {
	Version []int `json:"version"`
	Learner struct {
		FeatureNames []string `json:"feature_names"`
		Booster      struct {
			Name  string `json:"name"`
			Model struct {
				Param struct {
					NumTrees       string `json:"num_trees"`
					SizeLeafVector string `json:"size_leaf_vector"`
				} `json:"gbtree_model_param"`
				TreeInfo []int     `json:"tree_info"`
				Trees    []xgbTree `json:"trees"`
			} `json:"model"`
		} `json:"gradient_booster"`
		Param struct {
			BaseScore  string `json:"base_score"`
			NumClass   string `json:"num_class"`
			NumFeature string `json:"num_feature"`
			NumTarget  string `json:"num_target"`
		} `json:"learner_model_param"`
		Objective struct {
			Name string `json:"name"`
		} `json:"objective"`
	} `json:"learner"`
}

type xgbTree struct {
	Param struct {
		NumNodes       string `json:"num_nodes"`
		SizeLeafVector string `json:"size_leaf_vector"`
	} `json:"tree_param"`
	Left            []int32   `json:"left_children"`
	Right           []int32   `json:"right_children"`
	SplitIndices    []int32   `json:"split_indices"`
	SplitConditions []float64 `json:"split_conditions"`
	DefaultLeft     []flag    `json:"default_left"`
	SplitType       []int     `json:"split_type"`
	Categories      []int     `json:"categories"`
}

// flag is default_left's item: 0 or 1 in XGBoost 1.x, true or false in
// some writers.
type flag bool

func (f *flag) UnmarshalJSON(b []byte) error {
	switch string(b) {
	case "0", "false":
		*f = false
	case "1", "true":
		*f = true
	default:
		return fmt.Errorf("default_left item %s: want 0 or 1", cut(b))
	}
	return nil
}

// The objectives read, by how their output is made from the margin. For a
// logistic one, base_score is a probability and the trees add to its
// logit; for a squared error, it is the margin itself.
var objectives = map[string]bool{ // name -> logistic
	"binary:logistic":  true,
	"reg:logistic":     true,
	"binary:logitraw":  false,
	"reg:squarederror": false,
}

// ReadXGBoost reads a model saved by XGBoost as JSON
// (booster.save_model("m.json")) with its gbtree booster: one output
// (binary classification or regression), numerical splits. data is
// untrusted: its size, every index, every tree's shape and depth and every
// number are checked, and nothing in it sets how deep a recursion goes.
func ReadXGBoost(data []byte) (*Ensemble, error) {
	if len(data) > MaxFileBytes {
		return nil, fmt.Errorf("%d bytes, over the %d a model may have", len(data), MaxFileBytes)
	}
	var m xgbModel
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("not an XGBoost JSON model: %w", err)
	}
	l := &m.Learner
	if len(m.Version) == 0 || m.Version[0] < 1 || m.Version[0] > 2 {
		return nil, fmt.Errorf("version %v: this reader knows the JSON models of XGBoost 1.x and 2.x (save_model with a .json name)", m.Version)
	}
	if l.Booster.Name != "gbtree" {
		return nil, fmt.Errorf("booster %q: only gbtree models are read (not dart or gblinear)", l.Booster.Name)
	}
	logistic, ok := objectives[l.Objective.Name]
	if !ok {
		return nil, fmt.Errorf("objective %q: read are binary:logistic, reg:logistic, binary:logitraw and reg:squarederror", l.Objective.Name)
	}
	if n, err := param(l.Param.NumClass, "num_class", 0, math.MaxInt32); err != nil || n > 1 {
		return nil, fmt.Errorf("num_class %q: one output only, not a multi-class model", l.Param.NumClass)
	}
	if n, err := param(l.Param.NumTarget, "num_target", 0, math.MaxInt32); err != nil || n > 1 {
		return nil, fmt.Errorf("num_target %q: one output only", l.Param.NumTarget)
	}
	if n, err := param(l.Booster.Model.Param.SizeLeafVector, "size_leaf_vector", 0, math.MaxInt32); err != nil || n != 0 {
		return nil, fmt.Errorf("size_leaf_vector %q: vector leaves are not read", l.Booster.Model.Param.SizeLeafVector)
	}
	inputs, err := param(l.Param.NumFeature, "num_feature", 1, MaxInputs)
	if err != nil {
		return nil, err
	}
	if len(l.FeatureNames) != 0 && len(l.FeatureNames) != inputs {
		return nil, fmt.Errorf("%d feature_names for num_feature %d", len(l.FeatureNames), inputs)
	}
	trees := l.Booster.Model.Trees
	if n, err := param(l.Booster.Model.Param.NumTrees, "num_trees", 0, math.MaxInt32); err != nil || n != len(trees) {
		return nil, fmt.Errorf("num_trees %q, but %d trees", l.Booster.Model.Param.NumTrees, len(trees))
	}
	if len(l.Booster.Model.TreeInfo) != len(trees) {
		return nil, fmt.Errorf("tree_info has %d items for %d trees", len(l.Booster.Model.TreeInfo), len(trees))
	}
	for i, g := range l.Booster.Model.TreeInfo {
		if g != 0 {
			return nil, fmt.Errorf("tree %d is for output %d: one output only", i, g)
		}
	}
	base, err := strconv.ParseFloat(l.Param.BaseScore, 32)
	if err != nil || math.IsNaN(base) || math.IsInf(base, 0) {
		return nil, fmt.Errorf("base_score %q is not a number", cut([]byte(l.Param.BaseScore)))
	}
	e := &Ensemble{inputs: inputs, logistic: logistic, Objective: l.Objective.Name, base: float32(base)}
	if logistic || l.Objective.Name == "binary:logitraw" {
		if base <= 0 || base >= 1 {
			return nil, fmt.Errorf("base_score %v: a probability, between 0 and 1, for %s", base, l.Objective.Name)
		}
		e.base = logit(float32(base))
	}
	if len(l.FeatureNames) > 0 {
		e.Names = l.FeatureNames
	}
	for i := range trees {
		if err := e.addTree(&trees[i]); err != nil {
			return nil, fmt.Errorf("tree %d: %w", i, err)
		}
	}
	return e, nil
}

// logit is XGBoost's ProbToMargin for logistic objectives, in float32:
// -logf(1/p - 1).
func logit(p float32) float32 {
	return -float32(math.Log(float64(1/p - 1)))
}

// param reads one of XGBoost's parameters, which it saves as strings.
func param(s, name string, lo, hi int) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("%s %q: want a whole number from %d to %d", name, cut([]byte(s)), lo, hi)
	}
	return n, nil
}

// addTree checks one tree and appends it, laid out breadth first.
func (e *Ensemble) addTree(t *xgbTree) error {
	n, err := param(t.Param.NumNodes, "num_nodes", 1, math.MaxInt32)
	if err != nil {
		return err
	}
	if len(t.Left) != n || len(t.Right) != n || len(t.SplitIndices) != n || len(t.SplitConditions) != n || len(t.DefaultLeft) != n {
		return fmt.Errorf("num_nodes %d, but left_children %d, right_children %d, split_indices %d, split_conditions %d, default_left %d",
			n, len(t.Left), len(t.Right), len(t.SplitIndices), len(t.SplitConditions), len(t.DefaultLeft))
	}
	if v, err := param(t.Param.SizeLeafVector, "size_leaf_vector", 0, math.MaxInt32); err != nil || v != 0 {
		return fmt.Errorf("size_leaf_vector %q: vector leaves are not read", t.Param.SizeLeafVector)
	}
	if len(t.Categories) > 0 {
		return errors.New("categorical splits are not read")
	}
	for i, st := range t.SplitType {
		if st != 0 {
			return fmt.Errorf("node %d: split_type %d: only numerical splits are read", i, st)
		}
	}
	if len(e.nodes)+n > math.MaxInt32 {
		return errors.New("too many nodes")
	}
	// Breadth first from the root: place[old] is a node's new index, -1
	// until reached. A node reached twice (a cycle, or two parents) is
	// refused; nodes never reached (XGBoost's deleted ones) are left out.
	place := make([]int32, n)
	for i := range place {
		place[i] = -1
	}
	first := int32(len(e.nodes))
	e.roots = append(e.roots, first)
	place[0] = first
	e.nodes = append(e.nodes, node{})
	queue := []int32{0}
	depth := []int{0} // of queue's nodes
	for q := 0; q < len(queue); q++ {
		old := queue[q]
		at := place[old]
		v := t.SplitConditions[old]
		if math.IsNaN(v) || math.IsInf(v, 0) || math.Abs(v) > math.MaxFloat32 {
			return fmt.Errorf("node %d: split_conditions %v is not a float32 number", old, v)
		}
		l, r := t.Left[old], t.Right[old]
		if l == -1 && r == -1 {
			e.nodes[at] = node{value: float32(v), input: -1}
			continue
		}
		if l < 0 || r < 0 || int(l) >= n || int(r) >= n {
			return fmt.Errorf("node %d: children %d and %d: want both -1 (a leaf) or both nodes of the tree's %d", old, l, r, n)
		}
		if depth[q]+1 > MaxDepth {
			return fmt.Errorf("deeper than %d", MaxDepth)
		}
		in := t.SplitIndices[old]
		if in < 0 || int(in) >= e.inputs {
			return fmt.Errorf("node %d: split_indices %d: the model has %d inputs", old, in, e.inputs)
		}
		for _, c := range []int32{l, r} {
			if place[c] >= 0 || l == r {
				return fmt.Errorf("node %d: child %d is reached twice: not a tree", old, c)
			}
		}
		left := int32(len(e.nodes))
		place[l], place[r] = left, left+1
		e.nodes = append(e.nodes, node{}, node{})
		queue = append(queue, l, r)
		depth = append(depth, depth[q]+1, depth[q]+1)
		e.nodes[at] = node{value: float32(v), input: in, left: left, missingLeft: bool(t.DefaultLeft[old])}
	}
	return nil
}

// cut shortens what a message quotes of a file.
func cut(b []byte) string {
	if len(b) > 40 {
		return string(b[:40]) + "…"
	}
	return string(b)
}
