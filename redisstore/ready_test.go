package redisstore

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/riskd/riskd/features"
	"github.com/riskd/riskd/internal/redistest"
	"github.com/riskd/riskd/internal/storetest"
)

// TestReadyWarmsEveryNode: once Ready (what /readyz asks) succeeds on a
// Cluster, every master holds enough open connections that the first
// events, arriving at once, dial none: they used to spend their budget
// dialling and handshaking (HELLO) and answer degraded while /readyz
// already said ready. A dial is counted, not timed.
func TestReadyWarmsEveryNode(t *testing.T) {
	c := redistest.StartCluster(t)
	clock := &storetest.Clock{}
	s := newRedisOpts(t, clock, Options{Addrs: c.Addrs()})
	if err := s.Ready(t.Context()); err != nil {
		t.Fatal(err)
	}
	cluster := s.client.(*redis.ClusterClient)
	conns := func() map[string]uint32 {
		var mu sync.Mutex
		m := map[string]uint32{}
		err := cluster.ForEachShard(t.Context(), func(_ context.Context, shard *redis.Client) error {
			mu.Lock()
			defer mu.Unlock()
			m[shard.Options().Addr] = shard.PoolStats().TotalConns
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	warmed := conns()
	if len(warmed) != len(c.Nodes) {
		t.Fatalf("Ready reached %d masters, want %d: %v", len(warmed), len(c.Nodes), warmed)
	}
	for addr, n := range warmed {
		if n < warmConns {
			t.Errorf("after Ready %s has %d connections open, want at least %d", addr, n, warmConns)
		}
	}
	// Two events at once, each with three entities (a connection per
	// entity on its node, the claim before), and the answers kept after:
	// at most seven connections on one node, all there already. (Without
	// the warming the events dial only when they overlap, which this
	// cannot force: the count above is what fails then.)
	set := storetest.OracleSet()
	o := storetest.NewOracle(set.Features)
	one := int64(1_000_000)
	clock.Advance(storetest.T0 + 1000)
	var events []storetest.Event
	var wants [][]features.Value
	for i := range 2 {
		e := storetest.Event{ID: fmt.Sprint("first", i), Type: "a", TS: storetest.T0 + 1000,
			Fields: map[string]string{"k": fmt.Sprint("card", i), "k2": fmt.Sprint("device", i), "of": fmt.Sprint("merchant", i)}, Amount: &one}
		events = append(events, e)
		wants = append(wants, o.Observe(e))
	}
	var wg sync.WaitGroup
	for i, e := range events {
		wg.Go(func() {
			obs := storetest.NewObservation(set.Features, e)
			if err := s.Observe(t.Context(), obs); err != nil {
				t.Errorf("event %s: %v", e.ID, err)
				return
			}
			for j, it := range obs.Items {
				if it.Value != wants[i][j] {
					t.Errorf("event %s %s: store %+v, oracle %+v", e.ID, it.Feature.Name, it.Value, wants[i][j])
				}
			}
		})
	}
	wg.Wait()
	for addr, n := range conns() {
		if n != warmed[addr] {
			t.Errorf("the first events dialled %s: %d connections open, %d after Ready", addr, n, warmed[addr])
		}
	}
}
