package engine_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/riskd/riskd/engine"
	"github.com/riskd/riskd/rules"
)

// TestRefusedInputs: what JSON forbids and fastjson lets through, and
// fields past their bounds, are refused naming the problem; every message
// stays short whatever the event quotes.
func TestRefusedInputs(t *testing.T) {
	e := engine.New(examplePolicy(t), engine.Options{})
	long := strings.Repeat("\xff", 60000)
	for _, tt := range []struct {
		name, body, want string
	}{
		{"invalid UTF-8", `{"id":"a","type":"checkout","card_id":"` + "c\xffd" + `"}`, `invalid JSON: invalid UTF-8 at byte 40 (JSON text is UTF-8)`},
		{"invalid UTF-8 in a key", `{"id":"a","type":"checkout","` + "\xc3" + `":1}`, `invalid JSON: invalid UTF-8 at byte 29 (JSON text is UTF-8)`},
		{"lone first half", `{"id":"a","type":"checkout","card_id":"\ud800"}`, `invalid JSON: lone surrogate \ud800 at byte 39 (the first half of a UTF-16 pair, not followed by its second half)`},
		{"first half then no second", `{"id":"a","type":"checkout","card_id":"\ud800\u0041"}`, `invalid JSON: lone surrogate \ud800 at byte 39 (the first half of a UTF-16 pair, not followed by its second half)`},
		{"lone second half", `{"id":"a","type":"checkout","card_id":"x\uDC00"}`, `invalid JSON: lone surrogate \udc00 at byte 40 (the second half of a UTF-16 pair, with no first half)`},
		{"short \\u", `{"id":"a","type":"checkout","card_id":"\u12"}`, `invalid JSON: \u at byte 39 is not followed by 4 hexadecimal digits`},
		{"unknown escape", `{"id":"a","type":"checkout","card_id":"\x41"}`, `invalid JSON: invalid escape "\\x" at byte 39 (JSON has \" \\ \/ \b \f \n \r \t and \uXXXX)`},
		{"type too long", `{"id":"a","type":"` + strings.Repeat("t", 129) + `"}`, `field "type" is 129 bytes, over the limit of 128`},
		{"id too long", `{"id":"` + strings.Repeat("i", 257) + `","type":"checkout"}`, `field "id" is 257 bytes, over the limit of 256`},
		{"long bad ts", `{"id":"a","type":"checkout","ts":"` + strings.Repeat("9", 60000) + `"}`, `field "ts": "` + strings.Repeat("9", 80) + `…" is not an RFC 3339 time (e.g. 2026-11-21T10:15:00Z) or Unix milliseconds`},
		{"long duplicate key", `{"id":"a","type":"checkout","` + strings.Repeat("k", 30000) + `":1,"` + strings.Repeat("k", 30000) + `":2}`, `duplicate key "` + strings.Repeat("k", 80) + `…" (parsers disagree on which one counts: refused)`},
		{"long key over a bad number", `{"id":"a","type":"checkout","` + strings.Repeat("k", 60000) + `":{"x":NaN}}`, `field "` + strings.Repeat("k", 80) + `…": NaN is not a JSON number`},
		{"long bad number", `{"id":"a","type":"checkout","n":` + strings.Repeat("0", 60000) + `}`, `field "n": ` + strings.Repeat("0", 80) + `… is not a JSON number`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := e.Score(context.Background(), []byte(tt.body), engine.ScoreOptions{}, &engine.Decision{})
			var ie *engine.InputError
			if !errors.As(err, &ie) || err.Error() != tt.want {
				t.Errorf("got %v\nwant %s", err, tt.want)
			}
		})
	}
	// Messages quoting what fastjson refuses are cut in the middle,
	// keeping the innermost cause.
	for _, tt := range []struct {
		name, body, cause string
	}{
		{"long token", `{"id":"a","type":"checkout","x":t` + long + `}`, `unexpected value found`},
		{"deep nesting", strings.Repeat(`{"a":`, 400) + `1` + strings.Repeat(`}`, 400), `too big depth for the nested JSON; it exceeds 300`},
		{"deep arrays", strings.Repeat(`[`, 400) + strings.Repeat(`]`, 400), `too big depth for the nested JSON; it exceeds 300`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := e.Score(context.Background(), []byte(tt.body), engine.ScoreOptions{}, &engine.Decision{})
			if err == nil || len(err.Error()) > 512 || !strings.Contains(err.Error(), tt.cause) || !strings.HasPrefix(err.Error(), "invalid JSON: ") {
				t.Errorf("%d bytes: %.600s", len(err.Error()), err)
			}
		})
	}
}

// TestUnicodeAccepted: escapes of real characters, pairs included, and
// raw UTF-8 are scored.
func TestUnicodeAccepted(t *testing.T) {
	e := engine.New(examplePolicy(t), engine.Options{})
	for _, body := range []string{
		`{"id":"a","type":"checkout","card_id":"\ud83d\ude00","amount":1}`,
		`{"id":"b","type":"checkout","card_id":"😀\u00e9\/\"\\\b\f\n\r\t","amount":1}`,
		`{"id":"c","type":"checkout","card_id":"\uD83D\uDE00","amount":1}`,
	} {
		if err := e.Score(context.Background(), []byte(body), engine.ScoreOptions{}, &engine.Decision{}); err != nil {
			t.Errorf("%s: %v", body, err)
		}
	}
}

// TestNumericKeysByValue: a key written as a number is keyed by its
// value, whichever way it is written, and shares its history with the
// string of its plain decimal text; other strings keep theirs.
func TestNumericKeysByValue(t *testing.T) {
	p, err := rules.Load(fstest.MapFS{
		"features.yaml": {Data: []byte("features:\n  - {name: card_count_1h, kind: count, key: card_id, window: 1h}\n")},
		"checkout.yaml": {Data: []byte("name: checkout\nevent_types: [checkout]\nthresholds: {step_up: 50, block: 90}\nrules:\n  - {id: velocity, when: features.card_count_1h >= 2, score: 60}\n")},
	}, "p")
	if err != nil {
		t.Fatal(err)
	}
	e := engine.New(p, engine.Options{})
	ts := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC).UnixMilli()
	var counts []float64
	for i, card := range []string{`42`, `"42"`, `42.0`, `4.2e1`, `420E-1`, `4.20e+1`, `"42.0"`, `12345678901234567891`, `12345678901234567892`} {
		body := `{"id":"e` + strconv.Itoa(i) + `","type":"checkout","ts":` + strconv.FormatInt(ts+int64(i), 10) + `,"card_id":` + card + `,"amount":1}`
		d := score(t, e, body)
		counts = append(counts, feature(d, "card_count_1h").Num)
	}
	want := []float64{0, 1, 2, 3, 4, 5, 0, 0, 0}
	for i := range want {
		if counts[i] != want[i] {
			t.Fatalf("card_count_1h per event: %v, want %v", counts, want)
		}
	}
}

// TestMaxPastSkew: live scoring refuses events backdated past the skew
// (each would see empty windows); within it they are scored, and without
// the option (replay, rule tests) history of any age is.
func TestMaxPastSkew(t *testing.T) {
	now := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	live := engine.New(examplePolicy(t), engine.Options{Now: clock, MaxPastSkew: 24 * time.Hour})
	replay := engine.New(examplePolicy(t), engine.Options{Now: clock})
	for _, tt := range []struct {
		ts   string
		want string
	}{
		{`"2026-11-28T09:59:59Z"`, `field "ts" 2026-11-28T09:59:59Z is 24h0m1s behind this server's clock, more than the 24h0m0s allowed`},
		{strconv.FormatInt(now.Add(-48*time.Hour).UnixMilli(), 10), `field "ts" 2026-11-27T10:00:00Z is 48h0m0s behind this server's clock, more than the 24h0m0s allowed`},
		{`"2026-11-28T10:00:00Z"`, ``},
		{`"2026-11-29T09:59:00Z"`, ``},
	} {
		body := []byte(`{"id":"p` + strings.Trim(tt.ts, `"`) + `","type":"checkout","card_id":"c","amount":1,"ts":` + tt.ts + `}`)
		err := live.Score(context.Background(), body, engine.ScoreOptions{}, &engine.Decision{})
		if got := errString(err); got != tt.want {
			t.Errorf("ts %s: %q, want %q", tt.ts, got, tt.want)
		}
		if err := replay.Score(context.Background(), body, engine.ScoreOptions{}, &engine.Decision{}); err != nil {
			t.Errorf("ts %s without the option: %v", tt.ts, err)
		}
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestReusedIDWithAnotherBody: an id scored again with the same body is
// a retry and gets its first answer; with another body (another card and
// amount: a velocity check dodged) it is refused as a conflict naming the
// id, and nothing is recorded for it.
func TestReusedIDWithAnotherBody(t *testing.T) {
	e := engine.New(examplePolicy(t), engine.Options{})
	first := `{"id":"pay-1","type":"checkout","ts":1780000000000,"card_id":"c1","account_id":"a1","amount":10}`
	other := `{"id":"pay-1","type":"checkout","ts":1780000000000,"card_id":"c2","account_id":"a1","amount":9000}`
	score(t, e, first)
	if d := score(t, e, first); !d.Retry {
		t.Errorf("the same body again: not answered as a retry")
	}
	err := e.Score(context.Background(), []byte(other), engine.ScoreOptions{}, &engine.Decision{})
	want := `event id "pay-1" was scored within the idempotency window for another event body: a retry repeats the event unchanged, a new event takes a new id`
	if !errors.Is(err, engine.ErrConflict) || errors.Is(err, engine.ErrTooLarge) || err.Error() != want {
		t.Fatalf("another body under the same id: %v\nwant %s", err, want)
	}
	// c2 was not recorded: its first checkout sees no history.
	d := score(t, e, `{"id":"pay-2","type":"checkout","ts":1780000001000,"card_id":"c2","account_id":"a2","amount":5}`)
	if v := feature(d, "card_txn_count_1h"); !v.Valid || v.Num != 0 {
		t.Errorf("card_txn_count_1h of c2 after the refused reuse: %+v, want 0", v)
	}
}
