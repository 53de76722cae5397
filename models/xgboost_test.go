package models

import (
	"encoding/csv"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestMatchesXGBoost holds the evaluator to xgboost 1.7.4's own predict
// (models/testdata/train.py) on thousands of rows, missing values, split
// thresholds and values a hair from them included: the margin (the sum
// of the trees) must be the same float32, and the prediction too but for
// the last bit, where glibc's expf and Go's correctly rounded exp may part.
func TestMatchesXGBoost(t *testing.T) {
	for _, tc := range []struct {
		model, expected string
		objective       string
		names           bool
	}{
		{"fraud.json", "fraud_expected.csv", "binary:logistic", true},
		{"amount.json", "amount_expected.csv", "reg:squarederror", false},
	} {
		t.Run(tc.model, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", tc.model))
			if err != nil {
				t.Fatal(err)
			}
			e, err := ReadXGBoost(data)
			if err != nil {
				t.Fatal(err)
			}
			if e.Objective != tc.objective || (e.Names != nil) != tc.names {
				t.Errorf("objective %s, names %v", e.Objective, e.Names)
			}
			f, err := os.Open(filepath.Join("testdata", tc.expected))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			rows, err := csv.NewReader(f).ReadAll()
			if err != nil {
				t.Fatal(err)
			}
			if len(rows[0]) != e.Inputs()+2 {
				t.Fatalf("%d columns for %d inputs", len(rows[0]), e.Inputs())
			}
			x := make([]float64, e.Inputs())
			missing, apart, most := 0, 0, 0
			for i, row := range rows[1:] {
				for j := range x {
					if row[j] == "" {
						x[j] = math.NaN()
						missing++
						continue
					}
					if x[j], err = strconv.ParseFloat(row[j], 64); err != nil {
						t.Fatal(err)
					}
				}
				wantMargin, wantPred := parse32(t, row[len(x)]), parse32(t, row[len(x)+1])
				if got := e.margin(x); got != wantMargin {
					t.Errorf("row %d %v: margin %v, xgboost %v", i+2, row[:len(x)], got, wantMargin)
				}
				got := float32(e.Predict(x))
				if d := ulps(got, wantPred); d > maxULPs {
					t.Errorf("row %d %v: prediction %v, xgboost %v: %d float32 steps apart", i+2, row[:len(x)], got, wantPred, d)
				} else if d > 0 {
					apart++
					most = max(most, d)
				}
			}
			if missing == 0 || len(rows) < 2000 {
				t.Errorf("%d rows, %d missing values: the fixture tests too little", len(rows)-1, missing)
			}
			t.Logf("%d rows, %d missing values, %d predictions apart, by at most %d float32 steps", len(rows)-1, missing, apart, most)
		})
	}
}

// maxULPs is how far apart, in float32 steps, a prediction may be from
// xgboost's: the margins are equal, but glibc's expf is not correctly
// rounded (0.502 ULP at worst) where Go's exp, rounded to float32, is; one
// step in the exponential may become two in 1/(1+e).
const maxULPs = 2

// ulps counts the float32 values from a to b (same sign).
func ulps(a, b float32) int {
	d := int64(math.Float32bits(a)) - int64(math.Float32bits(b))
	if d < 0 {
		d = -d
	}
	return int(d)
}

func parse32(t *testing.T, s string) float32 {
	t.Helper()
	v, err := strconv.ParseFloat(s, 32)
	if err != nil {
		t.Fatal(err)
	}
	return float32(v)
}

func small(t testing.TB) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "small.json"))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestSmallModelByHand walks testdata/small.json's two trees by hand
// (xgboost agrees: see the margins it printed for these rows).
func TestSmallModelByHand(t *testing.T) {
	e, err := ReadXGBoost(small(t))
	if err != nil {
		t.Fatal(err)
	}
	nan := math.NaN()
	for _, tc := range []struct {
		x      []float64
		margin float32
	}{
		{[]float64{nan, 0}, -0.1875},       // x0 missing: default_left
		{[]float64{5, 0}, -0.1875},         // below 10.5: left
		{[]float64{20, 0.4}, 0.1875},       // right, then x1 below 0.5: left
		{[]float64{20, 0.5}, 0.8125},       // on the threshold: right
		{[]float64{20, nan}, 0.8125},       // x1 missing: default right
		{[]float64{10.5, 1}, 0.8125},       // on the root's threshold: right
		{[]float64{10.4999999, 1}, 0.8125}, // rounds to float32 10.5: right
	} {
		if got := e.margin(tc.x); got != tc.margin {
			t.Errorf("%v: margin %v, want %v", tc.x, got, tc.margin)
		}
		if got, want := e.Predict(tc.x), float64(sigmoid(tc.margin)); got != want {
			t.Errorf("%v: prediction %v, want %v", tc.x, got, want)
		}
	}
}

// TestReadXGBoostRefuses feeds the reader broken and hostile models: each
// is refused with a message naming the problem, none crashes or hangs.
func TestReadXGBoostRefuses(t *testing.T) {
	good := string(small(t))
	edit := func(old, new string) string {
		if !strings.Contains(good, old) {
			t.Fatalf("small.json lacks %q", old)
		}
		return strings.Replace(good, old, new, 1)
	}
	for _, tc := range []struct {
		name, model, want string
	}{
		{"not JSON", "{", "not an XGBoost JSON model: unexpected end of JSON input"},
		{"trailing data", good + "}", "not an XGBoost JSON model: invalid character '}' after top-level value"},
		{"a number where a list is", edit(`"left_children": [1, -1, 3, -1, -1]`, `"left_children": 7`), "not an XGBoost JSON model: json: cannot unmarshal number into Go struct field"},
		{"a child index past int32", edit(`"left_children": [1, -1, 3, -1, -1]`, `"left_children": [99999999999, -1, 3, -1, -1]`), "cannot unmarshal number 99999999999"},
		{"version 3", edit(`"version": [1, 7, 4]`, `"version": [3, 0, 0]`), "version [3 0 0]: this reader knows the JSON models of XGBoost 1.x and 2.x"},
		{"no version", edit(`"version": [1, 7, 4]`, `"version": []`), "version []"},
		{"dart", edit(`"name": "gbtree"`, `"name": "dart"`), `booster "dart": only gbtree models are read`},
		{"multi-class", edit(`"name": "binary:logistic"`, `"name": "multi:softprob"`), `objective "multi:softprob"`},
		{"num_class", edit(`"num_class": "0"`, `"num_class": "3"`), `num_class "3": one output only`},
		{"num_target", edit(`"num_target": "1"`, `"num_target": "2"`), `num_target "2": one output only`},
		{"vector leaves", edit(`"size_leaf_vector": "0"}`, `"size_leaf_vector": "2"}`), `size_leaf_vector "2"`},
		{"num_feature zero", strings.ReplaceAll(good, `"num_feature": "2"`, `"num_feature": "0"`), `num_feature "0": want a whole number from 1 to 4096`},
		{"num_feature huge", strings.ReplaceAll(good, `"num_feature": "2"`, `"num_feature": "99999999"`), `num_feature "99999999"`},
		{"feature_names short", edit(`"feature_names": []`, `"feature_names": ["a"]`), "1 feature_names for num_feature 2"},
		{"num_trees", edit(`"num_trees": "2"`, `"num_trees": "3"`), `num_trees "3", but 2 trees`},
		{"tree_info", edit(`"tree_info": [0, 0]`, `"tree_info": [0]`), "tree_info has 1 items for 2 trees"},
		{"second output", edit(`"tree_info": [0, 0]`, `"tree_info": [0, 1]`), "tree 1 is for output 1"},
		{"base_score", edit(`"base_score": "5E-1"`, `"base_score": "x"`), `base_score "x" is not a number`},
		{"base_score NaN", edit(`"base_score": "5E-1"`, `"base_score": "NaN"`), `base_score "NaN" is not a number`},
		{"base_score not a probability", edit(`"base_score": "5E-1"`, `"base_score": "1.5"`), "base_score 1.5: a probability"},
		{"num_nodes", edit(`"num_nodes": "5"`, `"num_nodes": "6"`), "tree 0: num_nodes 6, but left_children 5"},
		{"split_conditions short", edit(`"split_conditions": [10.5, -0.25, 0.5, 0.125, 0.75]`, `"split_conditions": [10.5]`), "split_conditions 1"},
		{"default_left not a flag", edit(`"default_left": [1, 0, 0, 0, 0]`, `"default_left": [1, 0, 2, 0, 0]`), "default_left item 2: want 0 or 1"},
		{"categorical", edit(`"categories": [], "categories_nodes"`, `"categories": [1], "categories_nodes"`), "tree 0: categorical splits are not read"},
		{"split_type", edit(`"split_type": [0, 0, 0, 0, 0]`, `"split_type": [0, 0, 1, 0, 0]`), "tree 0: node 2: split_type 1"},
		{"a cycle to the root", edit(`"left_children": [1, -1, 3, -1, -1]`, `"left_children": [1, -1, 0, -1, -1]`), "tree 0: node 2: child 0 is reached twice: not a tree"},
		{"a shared child", edit(`"left_children": [1, -1, 3, -1, -1]`, `"left_children": [1, -1, 4, -1, -1]`), "tree 0: node 2: child 4 is reached twice"},
		{"a node its own child", edit(`"left_children": [1, -1, 3, -1, -1]`, `"left_children": [1, -1, 2, -1, -1]`), "tree 0: node 2: child 2 is reached twice"},
		{"one child", edit(`"left_children": [1, -1, 3, -1, -1]`, `"left_children": [1, -1, -1, -1, -1]`), "tree 0: node 2: children -1 and 4: want both -1"},
		{"child out of range", edit(`"right_children": [2, -1, 4, -1, -1]`, `"right_children": [2, -1, 5, -1, -1]`), "node 2: children 3 and 5"},
		{"split index out of range", edit(`"split_indices": [0, 0, 1, 0, 0]`, `"split_indices": [0, 0, 2, 0, 0]`), "tree 0: node 2: split_indices 2: the model has 2 inputs"},
		{"negative split index", edit(`"split_indices": [0, 0, 1, 0, 0]`, `"split_indices": [-1, 0, 1, 0, 0]`), "node 0: split_indices -1"},
		{"threshold beyond float32", edit(`"split_conditions": [10.5,`, `"split_conditions": [1e39,`), "node 0: split_conditions 1e+39 is not a float32 number"},
		{"leaf beyond float32", edit(`"split_conditions": [0.0625]`, `"split_conditions": [-1e300]`), "tree 1: node 0: split_conditions -1e+300"},
		{"NaN", edit(`"split_conditions": [0.0625]`, `"split_conditions": [NaN]`), "not an XGBoost JSON model: invalid character 'N'"},
		{"too deep", chain(MaxDepth + 1), "tree 0: deeper than 64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadXGBoost([]byte(tc.model))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
	if _, err := ReadXGBoost(make([]byte, MaxFileBytes+1)); err == nil || err.Error() != "67108865 bytes, over the 67108864 a model may have" {
		t.Errorf("a file over the bound: %v", err)
	}
	// Nodes no walk reaches (XGBoost's deleted ones) are left out.
	e, err := ReadXGBoost([]byte(edit(`"left_children": [1, -1, 3, -1, -1], "right_children": [2, -1, 4, -1, -1]`, `"left_children": [1, -1, -1, -1, -1], "right_children": [2, -1, -1, -1, -1]`)))
	if err != nil || len(e.nodes) != 4 || e.margin([]float64{20, 0}) != 0.5625 {
		t.Errorf("unreachable nodes: %v", err)
	}
	if _, err := ReadXGBoost([]byte(chain(MaxDepth))); err != nil {
		t.Errorf("a tree %d deep: %v", MaxDepth, err)
	}
}

// chain is a model whose one tree is a chain of depth splits, each with a
// leaf on its left.
func chain(depth int) string {
	n := 2*depth + 1
	var left, right, idx, cond, def []string
	for i := 0; i < n; i++ {
		if i%2 == 0 && i < n-1 {
			left, right = append(left, strconv.Itoa(i+1)), append(right, strconv.Itoa(i+2))
		} else {
			left, right = append(left, "-1"), append(right, "-1")
		}
		idx, cond, def = append(idx, "0"), append(cond, "1.5"), append(def, "0")
	}
	j := func(s []string) string { return "[" + strings.Join(s, ",") + "]" }
	return `{"version":[1,7,4],"learner":{"feature_names":[],"gradient_booster":{"name":"gbtree","model":{"gbtree_model_param":{"num_trees":"1","size_leaf_vector":"0"},"tree_info":[0],"trees":[` +
		`{"tree_param":{"num_nodes":"` + strconv.Itoa(n) + `","size_leaf_vector":"0"},"left_children":` + j(left) + `,"right_children":` + j(right) +
		`,"split_indices":` + j(idx) + `,"split_conditions":` + j(cond) + `,"default_left":` + j(def) + `,"split_type":[],"categories":[]}]}},` +
		`"learner_model_param":{"base_score":"5E-1","num_class":"0","num_feature":"1","num_target":"1"},"objective":{"name":"reg:squarederror"}}}`
}
