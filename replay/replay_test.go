package replay

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/riskd/riskd/rules"
	"github.com/riskd/riskd/rules/example"
)

func TestReadOrdersAndReports(t *testing.T) {
	in := strings.Join([]string{
		`{"id":"b","type":"checkout","ts":2000000000000,"fraud":1}`,
		``,
		`{"id":"a","type":"checkout","ts":"2033-05-18T03:33:19Z","fraud":false}`,
		`not json`,
		`{"id":"c","type":"checkout"}`,
		`{"id":"d","type":"checkout","ts":2000000000000,"fraud":"yes"}`,
		`{"id":"e","type":"checkout","ts":2000000000000}`,
	}, "\n")
	for _, gz := range []bool{false, true} {
		var r bytes.Buffer
		if gz {
			w := gzip.NewWriter(&r)
			w.Write([]byte(in))
			w.Close()
		} else {
			r.WriteString(in)
		}
		events, bad, err := Read(&r, "fraud")
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range events {
			got = append(got, fmt.Sprintf("%d:%d", e.Line, e.Label))
		}
		// a is a second earlier than b and e, which keep their input order.
		if want := "3:0 1:1 7:-1"; strings.Join(got, " ") != want {
			t.Errorf("gzip %v: events %v, want %s", gz, got, want)
		}
		var msgs []string
		for _, b := range bad {
			msgs = append(msgs, b.Error())
		}
		want := []string{
			"line 4: invalid JSON: cannot parse JSON: unexpected value found: \"not json\"; unparsed tail: \"not json\"",
			"line 5: missing field \"ts\": replaying history needs each event's time",
			"line 6: label field \"fraud\": \"yes\" is not a label: want true/false or 1/0",
		}
		if strings.Join(msgs, "\n") != strings.Join(want, "\n") {
			t.Errorf("gzip %v: refused\n%s\nwant\n%s", gz, strings.Join(msgs, "\n"), strings.Join(want, "\n"))
		}
	}
}

// TestLabelMetricsByHand checks the ranking metrics on cases worked out by
// hand (ties share a threshold, as scikit-learn counts them).
func TestLabelMetricsByHand(t *testing.T) {
	for _, c := range []struct {
		scores  []int64
		labels  []int8
		auc, ap float64
	}{
		{[]int64{3, 2, 1}, []int8{1, 0, 1}, 0.5, 0.5*1 + 0.5*2.0/3},
		{[]int64{1, 1}, []int8{1, 0}, 0.5, 0.5},
		{[]int64{9, 5, 5, 0}, []int8{1, 1, 0, 0}, (2 + 1.5) / 4, 0.5*1 + 0.5*2.0/3},
		{[]int64{0, 10}, []int8{1, 0}, 0, 0.5},
		{[]int64{10, 0, 7}, []int8{1, -1, 0}, 1, 1},
	} {
		outs := make([]rules.Outcome, len(c.scores))
		m := labelMetrics(c.scores, c.labels, outs)
		if math.Abs(m.ROCAUC-c.auc) > 1e-12 || math.Abs(m.AveragePrecision-c.ap) > 1e-12 {
			t.Errorf("scores %v labels %v: AUC %v AP %v, want %v %v", c.scores, c.labels, m.ROCAUC, m.AveragePrecision, c.auc, c.ap)
		}
	}
}

// TestLabelMetricsAgainstDefinitions compares with the textbook
// definitions, computed the slow way, on random data with many ties.
func TestLabelMetricsAgainstDefinitions(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 50; round++ {
		n := 1 + rng.IntN(300)
		scores := make([]int64, n)
		labels := make([]int8, n)
		for i := range scores {
			scores[i] = int64(rng.IntN(12))
			if rng.IntN(4) == 0 || scores[i] > 9 && rng.IntN(2) == 0 {
				labels[i] = 1
			}
		}
		m := labelMetrics(scores, labels, make([]rules.Outcome, n))
		// AUC: the chance a fraud outscores a genuine event, ties half.
		var pairs, right float64
		for i := range scores {
			for j := range scores {
				if labels[i] == 1 && labels[j] == 0 {
					pairs++
					switch {
					case scores[i] > scores[j]:
						right++
					case scores[i] == scores[j]:
						right += 0.5
					}
				}
			}
		}
		// AP: sum over thresholds of (recall gained) x precision.
		var ap, prevRecall float64
		for th := int64(11); th >= 0; th-- {
			var tp, fp, pos float64
			for i := range scores {
				if labels[i] == 1 {
					pos++
				}
				if scores[i] >= th {
					if labels[i] == 1 {
						tp++
					} else {
						fp++
					}
				}
			}
			if pos == 0 || tp+fp == 0 {
				continue
			}
			recall := tp / pos
			ap += (recall - prevRecall) * tp / (tp + fp)
			prevRecall = recall
		}
		wantAUC := 0.0
		if pairs > 0 {
			wantAUC = right / pairs
		}
		if math.Abs(m.ROCAUC-wantAUC) > 1e-9 || math.Abs(m.AveragePrecision-ap) > 1e-9 {
			t.Fatalf("round %d: AUC %v AP %v, want %v %v", round, m.ROCAUC, m.AveragePrecision, wantAUC, ap)
		}
	}
}

func policy(t *testing.T, rulesYAML string) *rules.Policy {
	t.Helper()
	p, err := rules.Load(fstest.MapFS{
		"features.yaml": {Data: []byte("features:\n  - {name: card_count_1h, kind: count, key: card_id, window: 1h}\n")},
		"checkout.yaml": {Data: []byte(rulesYAML)},
	}, "p")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestRunCountsTheWindowWithHistoryBefore: a card's third payment in an
// hour is fraud; the replay counts only the window, but the events before
// it count in the features.
func TestRunCountsTheWindowWithHistoryBefore(t *testing.T) {
	live := policy(t, `name: checkout
event_types: [checkout]
thresholds: {step_up: 50, block: 90}
rules:
  - {id: velocity, when: features.card_count_1h >= 2, score: 95}
`)
	strict := policy(t, `name: checkout
event_types: [checkout]
thresholds: {step_up: 50, block: 90}
rules:
  - {id: velocity, when: features.card_count_1h >= 1, score: 60}
`)
	var in strings.Builder
	const base = 1800000000000
	for card := 0; card < 10; card++ {
		for k := 0; k < 3; k++ {
			fmt.Fprintf(&in, `{"id":"e%d-%d","type":"checkout","ts":%d,"card_id":"c%d","fraud":%d}`+"\n", card, k, base+int64(card)*3600_000*2+int64(k)*1000, card, k/2)
		}
	}
	in.WriteString(`{"id":"cb","type":"chargeback","ts":1800000000000}` + "\n")
	// A redelivery of e5-2, kept in the history: scored, counted once.
	in.WriteString(fmt.Sprintf(`{"id":"e5-2","type":"checkout","ts":%d,"card_id":"c5","fraud":1}`, base+5*3600_000*2+2000) + "\n")
	events, bad, err := Read(strings.NewReader(in.String()), "fraud")
	if err != nil || len(bad) > 0 {
		t.Fatal(err, bad)
	}
	var out bytes.Buffer
	// Cards 0 and 1 are before the window; card 9 after it.
	res, err := Run(context.Background(), live, strict, events, Options{From: base + 4*3600_000, To: base + 18*3600_000, Out: &out})
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out.String(), "\n"); n != len(events) {
		t.Errorf("%d decisions written for %d events", n, len(events))
	}
	s := res.Live
	if res.Repeats != 1 {
		t.Errorf("%d repeats, want 1", res.Repeats)
	}
	if s.Scored != 21 || s.Unscored != 0 || s.Decisions["block"] != 7 || s.Decisions["pass"] != 14 || s.RuleHits[0].Hits != 7 || s.RuleHits[0].Fraud != 7 {
		t.Errorf("live summary %+v", s)
	}
	if l := s.Labels; l.Fraud != 7 || l.Block.Precision != 1 || l.Block.Recall != 1 || l.ROCAUC != 1 || l.AveragePrecision != 1 {
		t.Errorf("live labels %+v", l)
	}
	c := res.Challenger.Labels
	if c.BlockOrStepUp.TP != 7 || c.BlockOrStepUp.FP != 7 || c.BlockOrStepUp.Precision != 0.5 || c.Block.TP != 0 {
		t.Errorf("challenger labels %+v", c)
	}
	cmp := res.Comparison
	if cmp.Changed != 14 || cmp.Agreement["pass"]["step_up"] != 7 || cmp.Agreement["block"]["step_up"] != 7 || cmp.Agreement["pass"]["pass"] != 7 || len(cmp.Examples) != 14 {
		t.Errorf("comparison %+v", cmp)
	}
	var text strings.Builder
	res.WriteText(&text)
	for _, want := range []string{"1 repeated event ids (retries, redeliveries) counted once", "scored 21, unscored 0, refused 0", "checkout.velocity  7     33.333       7      1.000", "ROC AUC 1.000, average precision 1.000", "14 events changed outcome", "e2-1  pass (0) -> step_up (60)  genuine"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, text.String())
		}
	}
}

// TestRunInDirectoryChallengers: challengers inside the policy directory
// get their own summary and agreement with their champion, whether they
// only shadow it or decide a share of the traffic.
func TestRunInDirectoryChallengers(t *testing.T) {
	ruleset := func(head string, score int) string {
		return head + fmt.Sprintf("\nthresholds: {step_up: 50, block: 90}\nrules:\n  - {id: velocity, when: features.card_count_1h >= 2, score: %d}\n", score)
	}
	p, err := rules.Load(fstest.MapFS{
		"features.yaml": {Data: []byte("features:\n  - {name: card_count_1h, kind: count, key: card_id, window: 1h}\n")},
		"checkout.yaml": {Data: []byte(ruleset("name: checkout\nevent_types: [checkout]", 95))},
		"shadow.yaml":   {Data: []byte(ruleset("name: shadow\nshadow_of: checkout", 60))},
		"split.yaml":    {Data: []byte(ruleset("name: split\nshadow_of: checkout\ntraffic: 100%\nsplit_key: card_id", 10))},
	}, "p")
	if err != nil {
		t.Fatal(err)
	}
	var in strings.Builder
	for k := 0; k < 3; k++ {
		fmt.Fprintf(&in, `{"id":"e%d","type":"checkout","ts":%d,"card_id":"c","fraud":%d}`+"\n", k, 1800000000000+k*1000, k/2)
	}
	in.WriteString(`{"id":"nocard","type":"checkout","ts":1800000009000,"fraud":0}` + "\n")
	events, _, err := Read(strings.NewReader(in.String()), "fraud")
	if err != nil {
		t.Fatal(err)
	}
	res, err := Run(context.Background(), p, nil, events, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// The split challenger decides every event with a card; the champion
	// the one without.
	if d := res.Live.Decisions; d["pass"] != 4 || res.Live.Scored != 4 || len(res.Live.RuleHits) != 2 {
		t.Fatalf("live summary %+v", res.Live)
	}
	if len(res.Shadows) != 2 || res.Shadows[0].Ruleset != "shadow" || res.Shadows[1].Ruleset != "split" {
		t.Fatalf("shadows %+v", res.Shadows)
	}
	sh := res.Shadows[0]
	if sh.Summary.Scored != 4 || sh.Summary.Decisions["step_up"] != 1 || sh.Comparison.Agreement["block"]["step_up"] != 1 || sh.Comparison.Changed != 1 {
		t.Errorf("shadow: %+v %+v", sh.Summary, sh.Comparison)
	}
	if l := sh.Summary.Labels; l.BlockOrStepUp.TP != 1 || l.BlockOrStepUp.FP != 0 {
		t.Errorf("shadow labels %+v", l)
	}
	sp := res.Shadows[1]
	if sp.Summary.Scored != 4 || sp.Comparison.Agreement["block"]["pass"] != 1 || sp.Comparison.Agreement["pass"]["pass"] != 3 {
		t.Errorf("split: %+v %+v", sp.Summary, sp.Comparison)
	}
	var text strings.Builder
	res.WriteText(&text)
	if !strings.Contains(text.String(), "in-directory challenger, policy p: shadow (shadow_of checkout)") || !strings.Contains(text.String(), "agreement (rows: checkout, columns: split); 1 events changed outcome") {
		t.Errorf("summary:\n%s", text.String())
	}
}

// TestRunTwiceWritesIdenticalDecisions: the same history replayed twice,
// each on a fresh store, writes the same bytes — whatever the stores'
// hash seeds and housekeeping did. The history has late events, ties,
// redeliveries, chargebacks and decimal amounts, on the example policy.
func TestRunTwiceWritesIdenticalDecisions(t *testing.T) {
	p, err := rules.Load(example.FS, "rules/example")
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(7, 7))
	var in strings.Builder
	ts := int64(1_800_000_000_000)
	var sent []string
	// Enough events that the memory store sweeps idle keys (each of its 64
	// shards every 1,024 events) several times during a replay.
	for i := range 70000 {
		if len(sent) > 0 && rng.IntN(50) == 0 {
			in.WriteString(sent[rng.IntN(len(sent))]) // a redelivery
			continue
		}
		ts += rng.Int64N(40_000)
		at := ts - rng.Int64N(600_000)*int64(rng.IntN(2)) // half of them up to 10 min late
		typ := []string{"checkout", "checkout", "checkout", "login", "signup", "chargeback", "3ds_failed"}[rng.IntN(7)]
		line := fmt.Sprintf(`{"id":"e%d","type":%q,"ts":%d,"account_id":"a%d","card_id":"c%d","device_id":"d%d","ip":"10.0.0.%d","terminal_id":"t%d","amount":%d.%02d,"currency":"EUR","fraud":%d}`+"\n",
			i, typ, at, rng.IntN(300), rng.IntN(400), rng.IntN(200), rng.IntN(50), rng.IntN(30), rng.IntN(2000), rng.IntN(100), rng.IntN(2))
		sent = append(sent, line)
		in.WriteString(line)
	}
	var outs [2]bytes.Buffer
	for i := range outs {
		events, bad, err := Read(strings.NewReader(in.String()), "fraud")
		if err != nil || len(bad) > 0 {
			t.Fatal(err, bad)
		}
		if _, err := Run(context.Background(), p, nil, events, Options{Out: &outs[i]}); err != nil {
			t.Fatal(err)
		}
	}
	if outs[0].Len() == 0 || !bytes.Equal(outs[0].Bytes(), outs[1].Bytes()) {
		a, b := strings.Split(outs[0].String(), "\n"), strings.Split(outs[1].String(), "\n")
		for i := range min(len(a), len(b)) {
			if a[i] != b[i] {
				t.Fatalf("decision %d differs between two replays:\n%s\n%s", i, a[i], b[i])
			}
		}
		t.Fatalf("replays wrote %d and %d bytes", outs[0].Len(), outs[1].Len())
	}
	if !strings.Contains(outs[0].String(), `"retry":true`) {
		t.Error("no redelivery was answered as a retry")
	}
}

// TestRunWithReview: a challenger that reviews the third payment of a card
// instead of blocking it: review is counted, compared and measured as a
// call of fraud (block or review).
func TestRunWithReview(t *testing.T) {
	live := policy(t, `name: checkout
event_types: [checkout]
thresholds: {step_up: 50, block: 90}
rules:
  - {id: velocity, when: features.card_count_1h >= 2, score: 95}
`)
	reviewing := policy(t, `name: checkout
event_types: [checkout]
thresholds: {step_up: 50, review: 70}
rules:
  - {id: velocity, when: features.card_count_1h >= 2, score: 95}
`)
	var in strings.Builder
	const base = 1800000000000
	for card := 0; card < 4; card++ {
		for k := 0; k < 3; k++ {
			fmt.Fprintf(&in, `{"id":"e%d-%d","type":"checkout","ts":%d,"card_id":"c%d","fraud":%d}`+"\n", card, k, base+int64(card)*3600_000*2+int64(k)*1000, card, k/2)
		}
	}
	events, bad, err := Read(strings.NewReader(in.String()), "fraud")
	if err != nil || len(bad) > 0 {
		t.Fatal(err, bad)
	}
	res, err := Run(context.Background(), live, reviewing, events, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if d := res.Challenger.Decisions; d["review"] != 4 || d["block"] != 0 || d["pass"] != 8 {
		t.Errorf("challenger decisions %v", d)
	}
	if d := res.Live.Decisions; d["review"] != 0 || d["block"] != 4 {
		t.Errorf("live decisions %v: every outcome shows, review at 0", d)
	}
	if l := res.Challenger.Labels; l.Block.TP != 0 || l.BlockOrReview.TP != 4 || l.BlockOrReview.Precision != 1 || l.BlockOrStepUp.TP != 4 {
		t.Errorf("challenger labels %+v", l)
	}
	if a := res.Comparison.Agreement; a["block"]["review"] != 4 || a["pass"]["pass"] != 8 {
		t.Errorf("agreement %v", a)
	}
	var text strings.Builder
	res.WriteText(&text)
	for _, want := range []string{
		"decisions: pass 8 (66.67%), step_up 0 (0.00%), review 4 (33.33%), block 0 (0.00%)",
		"block or review    1.000      1.000",
		" review     0        0       0      0",
		"  block     0        0       4      0",
	} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, text.String())
		}
	}
	if strings.Contains(text.String(), "decisions: pass 8 (66.67%), step_up 0 (0.00%), block 4") == false {
		t.Errorf("a policy without review reads as before:\n%s", text.String())
	}
}
