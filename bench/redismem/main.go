// Command redismem scores generated checkouts through the engine on a
// Redis store and reports what Redis holds and does per event: bytes of
// memory (INFO memory), commands (INFO commandstats) and keys. It only
// talks to loopback addresses.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/riskd/riskd/engine"
	"github.com/riskd/riskd/features"
	"github.com/riskd/riskd/rules"
	"github.com/riskd/riskd/rules/example"
)

func main() {
	addr := flag.String("redis", "127.0.0.1:6379", "Redis address (loopback only); its data is flushed first")
	events := flag.Int("events", 200000, "checkouts to score")
	workers := flag.Int("workers", 8, "concurrent scorers")
	flag.Parse()
	if err := run(*addr, *events, *workers); err != nil {
		fmt.Fprintln(os.Stderr, "redismem:", err)
		os.Exit(1)
	}
}

func run(addr string, events, workers int) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("-redis: %w", err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("-redis %s: only loopback addresses", addr)
	}
	ctx := context.Background()
	admin := redis.NewClient(&redis.Options{Addr: addr})
	defer admin.Close()
	if err := admin.FlushAll(ctx).Err(); err != nil {
		return err
	}
	admin.ConfigResetStat(ctx)
	memBefore, err := info(ctx, admin, "memory", "used_memory")
	if err != nil {
		return err
	}
	p, err := rules.Load(example.FS, "rules/example")
	if err != nil {
		return err
	}
	store, err := features.NewRedis(ctx, features.RedisOptions{Addrs: []string{addr}})
	if err != nil {
		return err
	}
	defer store.Close()
	e := engine.New(p, engine.Options{Store: store, StoreTimeout: time.Second})

	start := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	degraded := 0
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var d engine.Decision
			for n := w; n < events; n += workers {
				body := fmt.Appendf(nil, `{"id":"m-%d","type":"checkout","ts":%d,"account_id":"acc-%d","card_id":"card-%d","device_id":"dev-%d","ip":"10.0.%d.%d","amount":%d.5}`,
					n, 1780000000000+int64(n)*50, n%20000, n%25000, n%15000, n%200, n%250, 5+n%500)
				if err := e.Score(ctx, body, engine.ScoreOptions{}, &d); err != nil {
					panic(err)
				}
				if d.Degraded {
					mu.Lock()
					degraded++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)

	memAfter, err := info(ctx, admin, "memory", "used_memory")
	if err != nil {
		return err
	}
	keys, err := admin.DBSize(ctx).Result()
	if err != nil {
		return err
	}
	stats, err := admin.Info(ctx, "commandstats").Result()
	if err != nil {
		return err
	}
	fmt.Printf("events             %d (%d degraded) in %v: %.0f events/s with %d workers\n", events, degraded, elapsed.Round(time.Millisecond), float64(events)/elapsed.Seconds(), workers)
	fmt.Printf("redis memory       %d bytes: %.0f bytes per event\n", memAfter-memBefore, float64(memAfter-memBefore)/float64(events))
	fmt.Printf("keys               %d (3 per entity)\n", keys)
	for _, line := range strings.Split(stats, "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "cmdstat_") {
			continue
		}
		name, rest, _ := strings.Cut(strings.TrimPrefix(line, "cmdstat_"), ":")
		calls := field(rest, "calls")
		if name == "evalsha" || name == "eval" {
			fmt.Printf("%-18s %d calls: %.2f per event, %s µs per call\n", name, calls, float64(calls)/float64(events), fieldText(rest, "usec_per_call"))
		}
	}
	return nil
}

func info(ctx context.Context, c *redis.Client, section, key string) (int64, error) {
	s, err := c.Info(ctx, section).Result()
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(s, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), key+":"); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, fmt.Errorf("INFO %s has no %s", section, key)
}

func fieldText(s, name string) string {
	for _, kv := range strings.Split(s, ",") {
		if v, ok := strings.CutPrefix(kv, name+"="); ok {
			return v
		}
	}
	return ""
}

func field(s, name string) int64 {
	v, _ := strconv.ParseInt(fieldText(s, name), 10, 64)
	return v
}
