package handbook_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"os"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/riskd/riskd/replay"
	"github.com/riskd/riskd/rules"
)

// exportPolicy is the directory docs/replay.md exports the training data
// with: features.yaml, train/rules-only.yaml as checkout.yaml and
// train/models.yaml, the fraud model declared without its file.
func exportPolicy(t *testing.T) *rules.Policy {
	t.Helper()
	fsys := fstest.MapFS{}
	for name, from := range map[string]string{"features.yaml": "features.yaml", "checkout.yaml": "train/rules-only.yaml", "models.yaml": "train/models.yaml"} {
		data, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		fsys[name] = &fstest.MapFile{Data: data}
	}
	p, err := rules.Load(fsys, "export")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestTrainingExport checks the export step of the training on generated
// history: the model being trained has the shipped model's inputs, no
// rule reads a model (the training data's scores are the rules' alone),
// and the export has a column for every input, derived ones computed.
func TestTrainingExport(t *testing.T) {
	p := exportPolicy(t)
	shipped := handbookPolicy(t, true).Models.Model("fraud")
	trained := p.Models.Model("fraud")
	if trained.Trained() || len(trained.Inputs) != len(shipped.Inputs) {
		t.Fatalf("train/models.yaml: %d inputs, models.yaml %d", len(trained.Inputs), len(shipped.Inputs))
	}
	for i, in := range trained.Inputs {
		if s := shipped.Inputs[i]; in.Name != s.Name || in.Expr != s.Expr {
			t.Errorf("input %d: train/models.yaml has %s %q, models.yaml %s %q", i+1, in.Name, in.Expr, s.Name, s.Expr)
		}
	}
	for _, rs := range p.Rulesets {
		if rs.Base != nil || slices.ContainsFunc(rs.Slots, func(s rules.Slot) bool { return s.Model != nil }) {
			t.Errorf("ruleset %s reads a model", rs.Name)
		}
	}

	var lines []string
	var buf []byte
	for n := range 21 * 86400 / 9 { // three weeks: the 14-day windows have an older past
		buf = handbookEvent(buf, n)
		lines = append(lines, string(buf))
	}
	events, bad, err := replay.Read(strings.NewReader(strings.Join(lines, "\n")), "")
	if err != nil || len(bad) > 0 {
		t.Fatal(err, bad)
	}
	from := events[len(events)/2].TS
	var out bytes.Buffer
	res, err := replay.Run(context.Background(), p, nil, events, replay.Options{From: from, FeaturesOut: &out})
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&out).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	head, rows := rows[0], rows[1:]
	if len(rows) != res.Live.Scored || len(rows) < 90_000 {
		t.Fatalf("%d rows for %d scored checkouts", len(rows), res.Live.Scored)
	}
	col := map[string]int{}
	for i, h := range head {
		col[h] = i
	}
	for _, in := range shipped.Inputs {
		i, ok := col[in.Name]
		if !ok {
			t.Errorf("no column %s", in.Name)
			continue
		}
		set := 0
		for _, r := range rows {
			if r[i] != "" {
				set++
			}
		}
		// The generated history has no chargeback streak old enough for
		// every feature; the derived inputs must all be computed.
		if in.Derived() && set == 0 {
			t.Errorf("%s: never computed", in.Name)
		}
	}
	for _, r := range rows {
		if strings.Contains(r[col["rules"]], "model") || r[col["type"]] != "checkout" {
			t.Fatalf("row %v", r)
		}
	}
}
