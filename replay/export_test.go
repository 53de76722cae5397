package replay

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/riskd/riskd/engine"
	"github.com/riskd/riskd/httpapi"
	"github.com/riskd/riskd/memstore"
	"github.com/riskd/riskd/rules"
	"github.com/riskd/riskd/rules/example"
)

// exampleHistory generates n events in time order for the example policy:
// every event type it records, shared accounts, cards, devices and IPs so
// the features count something, fields left out so some are nil, and a
// redelivery now and then.
func exampleHistory(n int) []string {
	rng := rand.New(rand.NewPCG(15, 19))
	types := []string{"checkout", "checkout", "checkout", "login", "signup", "login_failed", "3ds_failed"}
	countries := []string{"FR", "DE", "NG", "US"}
	var lines []string
	ts := int64(1780000000000)
	for i := 0; i < n; i++ {
		ts += rng.Int64N(600_000)
		fields := []string{
			fmt.Sprintf(`"id":"e%d"`, i), fmt.Sprintf(`"type":%q`, types[rng.IntN(len(types))]), fmt.Sprintf(`"ts":%d`, ts),
			fmt.Sprintf(`"fraud":%v`, rng.IntN(8) == 0),
		}
		for _, f := range []struct{ name, value string }{
			{"account_id", fmt.Sprintf(`"a%d"`, rng.IntN(12))},
			{"card_id", fmt.Sprintf(`"c%d"`, rng.IntN(15))},
			{"device_id", fmt.Sprintf(`"d%d"`, rng.IntN(10))},
			{"ip", fmt.Sprintf(`"10.0.0.%d"`, rng.IntN(8))},
			{"email", fmt.Sprintf(`"u%d@example.com"`, rng.IntN(12))},
			{"amount", fmt.Sprintf(`%d.%02d`, rng.IntN(3000), rng.IntN(100))},
			{"currency", `"EUR"`},
			{"ip_country", fmt.Sprintf("%q", countries[rng.IntN(len(countries))])},
			{"card_country", fmt.Sprintf("%q", countries[rng.IntN(len(countries))])},
		} {
			// The example policy requires a checkout's amount; every other
			// field is absent one time in ten.
			if rng.IntN(10) > 0 || f.name == "amount" {
				fields = append(fields, fmt.Sprintf(`%q:%s`, f.name, f.value))
			}
		}
		lines = append(lines, "{"+strings.Join(fields, ",")+"}")
		if rng.IntN(40) == 0 {
			lines = append(lines, lines[len(lines)-1])
		}
	}
	return lines
}

// TestFeaturesOutEqualsExplain exports training data from a replay and
// checks every row against the answer riskd's HTTP API gives the same
// event with ?explain=1, the history before it scored the same way: each
// feature the answer lists, the event's fields, score, decision and rules
// fired. The export has every feature of the policy besides.
func TestFeaturesOutEqualsExplain(t *testing.T) {
	p, err := rules.Load(example.FS, "rules/example")
	if err != nil {
		t.Fatal(err)
	}
	lines := exampleHistory(600)
	events, bad, err := Read(strings.NewReader(strings.Join(lines, "\n")), "fraud")
	if err != nil || len(bad) > 0 {
		t.Fatal(err, bad)
	}
	from := events[100].TS // the history before it feeds the features
	var out bytes.Buffer
	res, err := Run(context.Background(), p, nil, events, Options{From: from, FeaturesOut: &out})
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&out).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	head, rows := rows[0], rows[1:]
	if len(rows) != res.Live.Scored {
		t.Fatalf("%d rows for %d scored events", len(rows), res.Live.Scored)
	}
	col := map[string]int{}
	for i, h := range head {
		col[h] = i
	}
	for _, f := range p.Features.Features {
		if _, ok := col["features."+f.Name]; !ok {
			t.Errorf("no column for feature %s", f.Name)
		}
	}
	byID := map[string][]string{}
	for _, r := range rows {
		byID[r[col["event_id"]]] = r
	}

	h := httpapi.NewHandler(engine.New(p, engine.Options{Store: memstore.New(memstore.Options{EventTime: true})}), httpapi.HandlerOptions{})
	seen := map[string]bool{}
	compared, unreadSet := 0, 0
	for _, line := range lines {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/score?explain=1", strings.NewReader(line)))
		if rec.Code != http.StatusOK {
			t.Fatalf("%s: %d %s", line, rec.Code, rec.Body)
		}
		dec := json.NewDecoder(rec.Body)
		dec.UseNumber()
		var ans struct {
			EventID  string `json:"event_id"`
			Decision string
			Score    json.Number
			Unscored bool
			Reasons  []struct{ Rule string }
			Features map[string]any
		}
		if err := dec.Decode(&ans); err != nil {
			t.Fatal(err)
		}
		first := !seen[ans.EventID]
		seen[ans.EventID] = true
		if !first {
			continue // a redelivery: exported once, as its first answer
		}
		row, exported := byID[ans.EventID]
		if want := !ans.Unscored && eventTS(t, line) >= from; exported != want {
			t.Errorf("%s: exported %v, want %v", ans.EventID, exported, want)
		}
		if !exported {
			continue
		}
		compared++
		var fired []string
		for _, r := range ans.Reasons {
			fired = append(fired, r.Rule)
		}
		for name, want := range map[string]string{"score": ans.Score.String(), "decision": ans.Decision, "rules": strings.Join(fired, " ")} {
			if got := row[col[name]]; got != want {
				t.Errorf("%s: %s %q, explain says %q", ans.EventID, name, got, want)
			}
		}
		for name, v := range ans.Features {
			want := ""
			switch v := v.(type) {
			case json.Number:
				want = v.String()
			case bool:
				want = map[bool]string{true: "1", false: "0"}[v]
			}
			if got := row[col["features."+name]]; got != want {
				t.Errorf("%s: features.%s %q, explain says %q", ans.EventID, name, got, want)
			}
		}
		var ev map[string]json.RawMessage
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatal(err)
		}
		for _, c := range head {
			if f, ok := strings.CutPrefix(c, "event."); ok {
				want := strings.Trim(string(ev[f]), `"`)
				if got := row[col[c]]; got != want {
					t.Errorf("%s: %s %q, the event has %q", ans.EventID, c, got, want)
				}
			}
			if f, ok := strings.CutPrefix(c, "features."); ok {
				if _, listed := ans.Features[f]; !listed && row[col[c]] != "" {
					unreadSet++
				}
			}
		}
	}
	if compared != len(rows) || compared < 300 {
		t.Errorf("compared %d rows of %d", compared, len(rows))
	}
	if unreadSet == 0 {
		t.Error("no row holds a value of a feature its ruleset does not read")
	}
	if want := []string{"event.amount", "event.card_country", "event.card_id", "event.currency", "event.email", "event.ip_country"}; !slices.Equal(head[len(exportHead):len(exportHead)+len(want)], want) {
		t.Errorf("event columns %v, want %v", head[len(exportHead):], want)
	}
}

func eventTS(t *testing.T, line string) int64 {
	var ev struct{ TS int64 }
	if err := json.Unmarshal([]byte(line), &ev); err != nil {
		t.Fatal(err)
	}
	return ev.TS
}
