package rules_test

import (
	"strings"
	"testing"
	"testing/fstest"

	"github.com/riskd/riskd/rules"
)

// TestSplitBucketIsFixed pins the split hash: changing it would move keys
// from one side of every running experiment to the other. The values were
// computed independently (FNV-1a 64 of "account_id=<value>", mod 10^6).
func TestSplitBucketIsFixed(t *testing.T) {
	for value, want := range map[string]int{"acc-1": 880750, "acc-2": 252539, "42": 906197} {
		if got := rules.SplitBucket("account_id", value); got != want {
			t.Errorf("SplitBucket(account_id, %q) = %d, want %d", value, got, want)
		}
	}
}

// TestLiveRanges: challengers with traffic own consecutive bucket ranges
// in name order; shadow-only challengers own none; a missing key stays
// with the champion.
func TestLiveRanges(t *testing.T) {
	ch := func(name, traffic string) string {
		s := "name: " + name + "\nshadow_of: live\nthresholds: {step_up: 1, block: 2}\nrules: [{id: a, when: 'true', score: 1}]\n"
		if traffic != "" {
			s += "traffic: " + traffic + "\nsplit_key: account_id\n"
		}
		return s
	}
	p, err := rules.Load(fstest.MapFS{
		"features.yaml": {Data: []byte("features: []\n")},
		"live.yaml":     {Data: []byte("name: live\nevent_types: [checkout]\nthresholds: {step_up: 1, block: 2}\nrules: [{id: a, when: 'true', score: 1}]\n")},
		"b.yaml":        {Data: []byte(ch("b", "25%"))},
		"a.yaml":        {Data: []byte(ch("a", "0.5%"))},
		"c.yaml":        {Data: []byte(ch("c", ""))},
	}, "p")
	if err != nil {
		t.Fatal(err)
	}
	live := p.ForType("checkout")
	var names []string
	for _, c := range live.Challengers {
		names = append(names, c.Name)
	}
	if live.Name != "live" || strings.Join(names, ",") != "a,b,c" {
		t.Fatalf("live %s, challengers %v", live.Name, names)
	}
	for _, c := range []struct {
		bucket int
		ok     bool
		want   string
	}{
		{0, true, "a"}, {4999, true, "a"}, {5000, true, "b"}, {254999, true, "b"}, {255000, true, "live"}, {999999, true, "live"}, {0, false, "live"},
	} {
		got := live.Live(func(*rules.Ruleset) (int, bool) { return c.bucket, c.ok })
		if got.Name != c.want {
			t.Errorf("bucket %d (key present %v): %s, want %s", c.bucket, c.ok, got.Name, c.want)
		}
	}
}

func TestTrafficShares(t *testing.T) {
	for traffic, want := range map[string]string{
		"5%":       "",
		"0.0001%":  "",
		"100%":     "",
		" 12.5 %":  "",
		"0%":       "traffic: 0% is out of range",
		"101%":     "traffic: 101% is out of range",
		"5":        `traffic: "5" must be a percentage, e.g. 5%`,
		"five%":    `traffic: "five%" must be a percentage, e.g. 5%`,
		"0.00005%": "finer than the split's resolution",
		"[5%]":     "must be a percentage",
		"\"NaN%\"": "must be a percentage",
		"\"-1%\"":  "out of range",
	} {
		_, err := rules.Load(fstest.MapFS{
			"features.yaml": {Data: []byte("features: []\n")},
			"live.yaml":     {Data: []byte("name: live\nevent_types: [checkout]\nthresholds: {step_up: 1, block: 2}\nrules: [{id: a, when: 'true', score: 1}]\n")},
			"x.yaml":        {Data: []byte("name: x\nshadow_of: live\ntraffic: " + traffic + "\nsplit_key: account_id\nthresholds: {step_up: 1, block: 2}\nrules: [{id: a, when: 'true', score: 1}]\n")},
		}, "p")
		switch {
		case want == "" && err != nil:
			t.Errorf("traffic %s: %v", traffic, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("traffic %s: %v, want %q", traffic, err, want)
		}
	}
}
