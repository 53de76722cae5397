package features

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/riskd/riskd/internal/redistest"
)

// BenchmarkRedisObserve compares one pipeline of per-entity scripts (what
// Observe does: one round trip) with one script call per entity in turn
// (a round trip each), for an event touching four entities.
//
//	go test ./features -run XXX -bench RedisObserve -benchmem
func BenchmarkRedisObserve(b *testing.B) {
	srv := redistest.Start(b)
	fs := []*Feature{
		{Name: "card_count_1h", Kind: Count, Key: []Path{NewPath("card_id")}, Entity: "card_id", Window: time.Hour},
		{Name: "account_avg_30d", Kind: Avg, Key: []Path{NewPath("account_id")}, Entity: "account_id", Window: 30 * 24 * time.Hour},
		{Name: "device_accounts_24h", Kind: Distinct, Key: []Path{NewPath("device_id")}, Entity: "device_id", Window: 24 * time.Hour},
		{Name: "ip_count_1h", Kind: Count, Key: []Path{NewPath("ip")}, Entity: "ip", Window: time.Hour},
	}
	event := func(i int) *Observation {
		obs := &Observation{EventID: fmt.Sprint("e", i), TS: t0 + int64(i)*50}
		for j, f := range fs {
			obs.Items = append(obs.Items, Item{Feature: f, Key: fmt.Sprint("k", (i+j)%5000), Read: true, Record: true, Num: 10, Of: fmt.Sprint("a", i%100)})
		}
		return obs
	}
	for _, mode := range []string{"pipeline", "sequential"} {
		b.Run(mode, func(b *testing.B) {
			r, err := NewRedis(context.Background(), RedisOptions{Addrs: []string{srv.Addr()}, Prefix: "bench-" + mode + ":"})
			if err != nil {
				b.Fatal(err)
			}
			defer r.Close()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				i++
				obs := event(i)
				if mode == "pipeline" {
					if err := r.Observe(context.Background(), obs); err != nil {
						b.Fatal(err)
					}
					continue
				}
				for _, it := range obs.Items {
					one := &Observation{EventID: obs.EventID, TS: obs.TS, Items: []Item{it}}
					if err := r.Observe(context.Background(), one); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
