package replay

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"github.com/riskd/riskd/rules"
)

// handbookLike generates n checkouts shaped like the Fraud Detection
// Handbook's (5,000 customers, 10,000 terminals, ~10,000 a day, 1% fraud)
// and a chargeback a week after each fraud.
func handbookLike(n int) []Event {
	rng := rand.New(rand.NewPCG(3, 4))
	const start, gap = 1522540800000, 8640 // ms between checkouts: 10,000 a day
	var in strings.Builder
	var chargebacks []string
	cbAt := []int64{}
	for i := range n {
		ts := int64(start + i*gap)
		for len(cbAt) > 0 && cbAt[0] <= ts {
			in.WriteString(chargebacks[0])
			chargebacks, cbAt = chargebacks[1:], cbAt[1:]
		}
		cust, term := rng.IntN(5000), rng.IntN(10000)
		amount := 5 + rng.Float64()*100
		fraud := 0
		if rng.IntN(100) == 0 {
			fraud, amount = 1, amount*5
			chargebacks = append(chargebacks, fmt.Sprintf(`{"id":"cb-%d","type":"chargeback","ts":%d,"customer_id":"c-%d","terminal_id":"t-%d","amount":%.2f}`+"\n", i, ts+7*86400000, cust, term, amount))
			cbAt = append(cbAt, ts+7*86400000)
		}
		fmt.Fprintf(&in, `{"id":"tx-%d","type":"checkout","ts":%d,"customer_id":"c-%d","terminal_id":"t-%d","amount":%.2f,"fraud":%d}`+"\n", i, ts, cust, term, amount, fraud)
	}
	events, bad, err := Read(strings.NewReader(in.String()), "fraud")
	if err != nil || len(bad) > 0 {
		panic(fmt.Sprint(err, bad))
	}
	return events
}

// BenchmarkReplay replays 200,000 generated handbook-like events with the
// bench/handbook policy, one core: ns/op is per replay, events/s the rate.
//
//	go test ./replay -run '^$' -bench Replay -benchmem
func BenchmarkReplay(b *testing.B) {
	p, err := rules.Load(os.DirFS("../bench/handbook"), "bench/handbook")
	if err != nil {
		b.Fatal(err)
	}
	n := 200000
	if testing.Short() {
		n = 2000 // CI's run of every benchmark once: does it run
	}
	events := handbookLike(n)
	b.ReportAllocs()
	for b.Loop() {
		res, err := Run(context.Background(), p, nil, events, Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(res.EventsPerSecond, "events/s")
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(events)), "ns/event")
}
