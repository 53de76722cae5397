// Command memkeys measures what the memory store holds per live key: it
// scores generated checkouts of the example policy, each with a new
// account, card and device, and reports heap bytes per key held (after a
// GC). Run with -max to see the cap evict.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"sync/atomic"

	"github.com/riskd/riskd/engine"
	"github.com/riskd/riskd/memstore"
	"github.com/riskd/riskd/rules"
	"github.com/riskd/riskd/rules/example"
)

func main() {
	events := flag.Int("events", 200000, "checkouts to score, each with new keys")
	maxKeys := flag.Int("max", 0, "the store's key cap (0: none)")
	flag.Parse()
	p, err := rules.Load(example.FS, "rules/example")
	if err != nil {
		fmt.Fprintln(os.Stderr, "memkeys:", err)
		os.Exit(1)
	}
	var evicted atomic.Int64
	store := memstore.New(memstore.Options{EventTime: true, MaxEntities: *maxKeys, OnEvict: func(n int) { evicted.Add(int64(n)) }})
	e := engine.New(p, engine.Options{Store: store})
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var d engine.Decision
	for i := range *events {
		body := fmt.Appendf(nil, `{"id":"k-%d","type":"checkout","ts":%d,"account_id":"acc-%d","card_id":"card-%d","device_id":"dev-%d","ip":"10.%d.%d.%d","amount":%d.5}`,
			i, 1780000000000+int64(i)*10, i, i, i, i>>16&255, i>>8&255, i&255, 5+i%500)
		if err := e.Score(context.Background(), body, engine.ScoreOptions{}, &d); err != nil {
			fmt.Fprintln(os.Stderr, "memkeys:", err)
			os.Exit(1)
		}
	}
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	st := store.Stats()
	heap := int64(after.HeapInuse) - int64(before.HeapInuse)
	fmt.Printf("events %d, keys held %d (evicted %d), histories %d, answers %d\n", *events, st.Entities, evicted.Load(), st.Series, st.IDs)
	fmt.Printf("heap %d MB: %.0f bytes per key held, %.0f per event\n", heap>>20, float64(heap)/float64(st.Entities), float64(heap)/float64(*events))
}
