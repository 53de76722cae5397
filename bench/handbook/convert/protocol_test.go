package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"os"
	"testing"
	"testing/fstest"
	"time"

	"github.com/riskd/riskd/replay"
	"github.com/riskd/riskd/rules"
)

// handbookCSV is where docs/replay.md has the handbook's data set; the
// test skips when it is absent. The rule it checks is tested on generated
// history, always, in the replay package (TestKnownFraudMatchesTheProtocol).
const handbookCSV = "../../../../shared/data/handbook-transactions.csv.gz"

// TestProtocolTestSet reproduces the Fraud Detection Handbook's test set
// on the real data: training week 2018-07-25..31, a week's delay, test
// week 2018-08-08..14, customers with a fraud known by then left out. The
// handbook counts 58,264 transactions and 385 frauds.
func TestProtocolTestSet(t *testing.T) {
	f, err := os.Open(handbookCSV)
	if os.IsNotExist(err) {
		t.Skipf("%s is absent", handbookCSV)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	// The set depends neither on the policy nor on the history before the
	// training week: the smallest policy on the three weeks scores fastest
	// (rows are in time order; a date sorts as text).
	var weeks bytes.Buffer
	sc := bufio.NewScanner(zr)
	for line := 0; sc.Scan(); line++ {
		row, date := sc.Bytes(), ""
		if _, rest, ok := bytes.Cut(row, []byte(",")); ok && len(rest) >= 10 {
			date = string(rest[:10]) // TX_DATETIME's day
		}
		if line == 0 || date >= "2018-07-25" && date < "2018-08-15" {
			weeks.Write(row)
			weeks.WriteByte('\n')
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	var events bytes.Buffer
	if _, err := convert(&weeks, &events); err != nil {
		t.Fatal(err)
	}
	ms := func(s string) int64 {
		tm, err := time.Parse(time.DateOnly, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm.UnixMilli()
	}
	hist, bad, err := replay.Read(&events, "fraud")
	if err != nil || len(bad) > 0 {
		t.Fatal(err, bad)
	}
	p, err := rules.Load(fstest.MapFS{
		"features.yaml": {Data: []byte("features: []\n")},
		"checkout.yaml": {Data: []byte("name: checkout\nevent_types: [checkout]\nthresholds: {step_up: 40, block: 70}\nrules:\n  - {id: over_limit, when: event.amount > 220, score: 100}\n")},
	}, "minimal")
	if err != nil {
		t.Fatal(err)
	}
	res, err := replay.Run(context.Background(), p, nil, hist, replay.Options{
		From: ms("2018-08-08"), To: ms("2018-08-15"),
		KnownFraud: replay.KnownFraud{Field: "customer_id", Delay: ChargebackDelay, Batch: 24 * time.Hour, From: ms("2018-07-25")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if l := res.Live.Labels; l.Fraud+l.Genuine != 58264 || l.Fraud != 385 {
		t.Errorf("protocol test set: %d transactions, %d frauds; the handbook has 58264 and 385", l.Fraud+l.Genuine, l.Fraud)
	}
}
