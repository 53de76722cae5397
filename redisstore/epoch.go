package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// A Redis that restarts empty (no persistence, a failover to a replica
// that had nothing, a FLUSHALL) answers every feature from empty history
// as if all were well. So the store keeps an epoch marker on each node —
// a random token under its own key — and checks it every EpochEvery: a
// marker that vanished or changed means the node's history was lost.

// epochTTL is the marker's time to live, refreshed at every check: like
// every key riskd writes, it expires once no riskd is left to refresh it.
const epochTTL = 7 * 24 * time.Hour

// defaultEpochEvery is how often markers are checked.
const defaultEpochEvery = 5 * time.Second

type epochWatch struct {
	r      *Store
	every  time.Duration
	onLost func(node string)
	keys   map[string]string // marker key -> the node it lives on
	known  map[string]string // marker key -> token last seen
	seen   atomic.Int64      // markers read: how far the watch has got
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func (r *Store) watchEpoch(every time.Duration, onLost func(node string)) {
	if every <= 0 {
		every = defaultEpochEvery
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &epochWatch{r: r, every: every, onLost: onLost, known: map[string]string{}, cancel: cancel}
	r.epoch = w
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			w.check(ctx)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

func (w *epochWatch) stop() {
	w.cancel()
	w.wg.Wait()
}

// markers finds one key per node: on a Cluster, a hash tag in a slot
// each master owns.
func (w *epochWatch) markers(ctx context.Context) (map[string]string, error) {
	c, ok := w.r.client.(*redis.ClusterClient)
	if !ok {
		return map[string]string{w.r.prefix + "epoch": "redis"}, nil
	}
	nodes := map[string]bool{}
	var mu sync.Mutex // ForEachMaster calls in parallel
	err := c.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		mu.Lock()
		nodes[m.Options().Addr] = true
		mu.Unlock()
		return nil
	})
	if err != nil {
		return nil, err
	}
	keys := map[string]string{}
	covered := map[string]bool{}
	for i := 0; len(covered) < len(nodes) && i < 10000; i++ {
		key := fmt.Sprintf("%sepoch:{e%d}", w.r.prefix, i)
		m, err := c.MasterForKey(ctx, key)
		if err != nil {
			return nil, err
		}
		if addr := m.Options().Addr; nodes[addr] && !covered[addr] {
			covered[addr] = true
			keys[key] = addr
		}
	}
	return keys, nil
}

func (w *epochWatch) check(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, w.every)
	defer cancel()
	if w.keys == nil {
		keys, err := w.markers(ctx)
		if err != nil {
			return // Redis away: Ready says so; try again next time
		}
		w.keys = keys
	}
	for key, node := range w.keys {
		token, err := w.r.client.Get(ctx, key).Result()
		switch {
		case errors.Is(err, redis.Nil):
			// No marker: a new Redis, or one that lost its data. Place
			// one (another instance may have just placed its own).
			var b [16]byte
			rand.Read(b[:])
			if err := w.r.client.SetNX(ctx, key, hex.EncodeToString(b[:]), epochTTL).Err(); err != nil {
				continue
			}
			if token, err = w.r.client.Get(ctx, key).Result(); err != nil {
				continue
			}
		case err != nil:
			continue
		default:
			w.r.client.PExpire(ctx, key, epochTTL)
		}
		if prev := w.known[key]; prev != "" && prev != token {
			w.onLost(node)
		}
		w.known[key] = token
		w.seen.Add(1)
	}
}
