package redisstore

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/redis/go-redis/v9"

	"github.com/riskd/riskd/features"
	"github.com/riskd/riskd/internal/redistest"
	"github.com/riskd/riskd/memstore"
)

// redisCPU is the server's CPU time so far (user + system, seconds): its
// growth over a run, divided by the events, is Redis's cost per event,
// steady on a shared machine where wall time is not.
func redisCPU(b *testing.B, addr string) float64 {
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	s, err := c.Info(context.Background(), "cpu").Result()
	if err != nil {
		b.Fatal(err)
	}
	var total float64
	for _, line := range strings.Split(s, "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(line), ":")
		if k == "used_cpu_user" || k == "used_cpu_sys" {
			f, _ := strconv.ParseFloat(v, 64)
			total += f
		}
	}
	return total
}

// BenchmarkHotKey scores events of one key whose hour window already holds
// n events (a card under a card-testing attack, an IP behind a credential
// stuffing run), reading and recording a count and a sum: how a store's
// cost grows with the history a single read covers.
//
//	go test ./redisstore -run XXX -bench HotKey -benchmem
func BenchmarkHotKey(b *testing.B) {
	srv := redistest.Start(b)
	count := &features.Feature{Name: "ip_count_1h", Kind: features.Count, Key: []features.Path{features.NewPath("ip")}, Entity: "ip", Window: time.Hour}
	sum := &features.Feature{Name: "ip_amount_1h", Kind: features.Sum, Key: []features.Path{features.NewPath("ip")}, Entity: "ip", Window: time.Hour, Field: features.NewPath("amount")}
	features.NewSet(count, sum)
	// ties is how many events share each millisecond: 100 is a burst from
	// a producer that stamps whole seconds.
	for _, c := range []struct{ n, ties int }{{100, 1}, {1000, 1}, {5000, 1}, {1000, 100}} {
		n := c.n
		name := fmt.Sprintf("window=%d", n)
		if c.ties > 1 {
			name += fmt.Sprintf(",ties=%d", c.ties)
		}
		for _, store := range []string{"memory", "redis"} {
			b.Run(store+"/"+name, func(b *testing.B) {
				var s features.Store = memstore.New(memstore.Options{})
				if store == "redis" {
					r, err := New(context.Background(), Options{Addrs: []string{srv.Addr()}, Prefix: "hot:" + name + ":"})
					if err != nil {
						b.Fatal(err)
					}
					defer r.Close()
					s = r
				}
				// Events are spaced so the window holds n of them, from an
				// hour ago on: current enough that the Redis store does not
				// read them as long past (see Store.old).
				gap := time.Hour.Milliseconds() / int64(n)
				base := time.Now().Add(-time.Hour).UnixMilli()
				obs := &features.Observation{}
				var id []byte
				i := 0
				step := func() {
					i++
					id = strconv.AppendInt(append(id[:0], 'e'), int64(i), 10)
					// Stores copy what they keep.
					obs.Reset(unsafe.String(unsafe.SliceData(id), len(id)), base+int64(i/c.ties*c.ties)*gap)
					e := obs.AddEntry(count.EventLog, "10.0.0.1", true)
					obs.SetNum(e, 0, 1_000_000)
					obs.AddItem(count, e)
					obs.AddItem(sum, e)
					if err := s.Observe(context.Background(), obs); err != nil {
						b.Fatal(err)
					}
					if v := obs.Items[0].Value; i > n+c.ties && v.Num < float64(n-c.ties) {
						b.Fatalf("count %v, want about %d", v.Num, n)
					}
				}
				for range n + 10 {
					step()
				}
				b.ReportAllocs()
				b.ResetTimer()
				cpu := redisCPU(b, srv.Addr())
				for b.Loop() {
					step()
				}
				if store == "redis" {
					b.ReportMetric((redisCPU(b, srv.Addr())-cpu)*1e6/float64(b.N), "redis-µs/op")
				}
			})
		}
	}
}
