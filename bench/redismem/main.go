// Command redismem scores generated checkouts through the engine on a
// Redis store (a server, or a Cluster when given several addresses) and
// reports what Redis holds and does per event: bytes of memory (INFO
// memory), CPU (INFO cpu: user + system, the figure that is stable on a
// shared machine where wall time is not), commands (INFO commandstats)
// and keys. It only talks to loopback addresses and flushes them first.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/riskd/riskd/engine"
	"github.com/riskd/riskd/redisstore"
	"github.com/riskd/riskd/rules"
	"github.com/riskd/riskd/rules/example"
)

func main() {
	addrs := flag.String("redis", "127.0.0.1:6379", "Redis address(es), comma-separated for a Cluster (loopback only); their data is flushed first")
	events := flag.Int("events", 200000, "checkouts to score")
	workers := flag.Int("workers", 32, "concurrent scorers")
	profile := flag.String("cpuprofile", "", "write riskd's side's CPU profile here")
	flag.Parse()
	if *profile != "" {
		f, err := os.Create(*profile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "redismem:", err)
			os.Exit(1)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "redismem:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	if err := run(strings.Split(*addrs, ","), *events, *workers); err != nil {
		fmt.Fprintln(os.Stderr, "redismem:", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

// node is one server's counters.
type node struct {
	addr  string
	c     *redis.Client
	mem   int64
	cpu   float64 // seconds
	calls map[string]int64
}

func (n *node) sample(ctx context.Context) error {
	var err error
	if n.mem, err = infoInt(ctx, n.c, "memory", "used_memory"); err != nil {
		return err
	}
	s, err := n.c.Info(ctx, "cpu").Result()
	if err != nil {
		return err
	}
	n.cpu = infoFloat(s, "used_cpu_user") + infoFloat(s, "used_cpu_sys")
	stats, err := n.c.Info(ctx, "commandstats").Result()
	if err != nil {
		return err
	}
	n.calls = map[string]int64{}
	for _, line := range strings.Split(stats, "\n") {
		name, rest, ok := strings.Cut(strings.TrimPrefix(strings.TrimSpace(line), "cmdstat_"), ":")
		if ok && name != "info" {
			n.calls[name] = field(rest, "calls")
		}
	}
	return nil
}

func run(addrs []string, events, workers int) error {
	ctx := context.Background()
	var nodes []*node
	for _, addr := range addrs {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return fmt.Errorf("-redis: %w", err)
		}
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return fmt.Errorf("-redis %s: only loopback addresses", addr)
		}
		c := redis.NewClient(&redis.Options{Addr: addr})
		defer c.Close()
		if err := c.FlushAll(ctx).Err(); err != nil {
			return err
		}
		c.ConfigResetStat(ctx)
		nodes = append(nodes, &node{addr: addr, c: c})
	}
	before := make([]node, len(nodes))
	for i, n := range nodes {
		if err := n.sample(ctx); err != nil {
			return err
		}
		before[i] = *n
	}
	p, err := rules.Load(example.FS, "rules/example")
	if err != nil {
		return err
	}
	store, err := redisstore.New(ctx, redisstore.Options{Addrs: addrs})
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
					n, time.Now().UnixMilli(), n%20000, n%25000, n%15000, n%200, n%250, 5+n%500)
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

	fmt.Printf("events             %d (%d degraded) in %v: %.0f events/s with %d workers\n", events, degraded, elapsed.Round(time.Millisecond), float64(events)/elapsed.Seconds(), workers)
	var mem int64
	var cpu float64
	calls := map[string]int64{}
	var keys int64
	for i, n := range nodes {
		if err := n.sample(ctx); err != nil {
			return err
		}
		k, err := n.c.DBSize(ctx).Result()
		if err != nil {
			return err
		}
		keys += k
		mem += n.mem - before[i].mem
		cpu += n.cpu - before[i].cpu
		for name, c := range n.calls {
			calls[name] += c - before[i].calls[name]
		}
		if len(nodes) > 1 {
			fmt.Printf("node %-15s cpu %.1f µs per event\n", n.addr, (n.cpu-before[i].cpu)*1e6/float64(events))
		}
	}
	fmt.Printf("redis cpu          %.1f µs per event (user+sys, all nodes)\n", cpu*1e6/float64(events))
	fmt.Printf("redis memory       %d bytes: %.0f bytes per event\n", mem, float64(mem)/float64(events))
	fmt.Printf("keys               %d\n", keys)
	names := make([]string, 0, len(calls))
	var total int64
	for name, c := range calls {
		names = append(names, name)
		total += c
	}
	sort.Slice(names, func(i, j int) bool { return calls[names[i]] > calls[names[j]] })
	fmt.Printf("commands           %.1f per event:", float64(total)/float64(events))
	for _, name := range names {
		if calls[name] > 0 {
			fmt.Printf(" %s %.2f", name, float64(calls[name])/float64(events))
		}
	}
	fmt.Println()
	return nil
}

func infoInt(ctx context.Context, c *redis.Client, section, key string) (int64, error) {
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

func infoFloat(s, key string) float64 {
	for _, line := range strings.Split(s, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), key+":"); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
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
