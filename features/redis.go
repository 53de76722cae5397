package features

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

//go:embed redis_observe.lua
var observeLua string

var observeScript = redis.NewScript(observeLua)

// DefaultRedisPrefix starts every key riskd writes.
const DefaultRedisPrefix = "riskd:"

// ttlMargin is added to every key's time to live beyond the longest time
// its history is needed, so a key never expires while it can still answer.
const ttlMargin = 24 * time.Hour

// RedisOptions configure a Redis store.
type RedisOptions struct {
	// Addrs: one address for a standalone server, several for a Cluster.
	Addrs []string
	// Prefix starts every key. Default DefaultRedisPrefix.
	Prefix string
	// PoolSize is the connection pool size per node; 0: go-redis's default
	// (10 per CPU).
	PoolSize int
}

// Redis keeps feature history in Redis (a standalone server or a Cluster)
// so several riskd instances share it and it survives their restarts.
//
// Each entity (a key field and its value, such as card_id=c-42) has three
// keys sharing one hash tag, so a Cluster keeps them on one slot and one
// Lua script reads and records all the entity's features atomically. An
// event's scripts go out in one pipeline: one round trip to a standalone
// server, one per node (in parallel) to a Cluster.
type Redis struct {
	client redis.UniversalClient
	prefix string
}

// NewRedis returns a store on the given nodes. It does not wait for them:
// riskd starts while Redis is away and degrades until it answers (the
// script is loaded on first use after a node is reachable).
func NewRedis(ctx context.Context, opts RedisOptions) (*Redis, error) {
	if len(opts.Addrs) == 0 {
		return nil, errors.New("redis: no address")
	}
	prefix := opts.Prefix
	if prefix == "" {
		prefix = DefaultRedisPrefix
	}
	if strings.ContainsAny(prefix, "{}") {
		return nil, fmt.Errorf("redis: prefix %q must not contain { or }: they delimit the Cluster hash tag", prefix)
	}
	client := redis.NewUniversalClient(&redis.UniversalOptions{
		Addrs:    opts.Addrs,
		PoolSize: opts.PoolSize,
		// Deadlines come from the request's context (the store budget),
		// not from fixed socket timeouts.
		ContextTimeoutEnabled: true,
		// One attempt: a retry would overrun the request's budget anyway,
		// and the engine degrades instead.
		MaxRetries: -1,
	})
	r := &Redis{client: client, prefix: prefix}
	_ = r.load(ctx) // best effort: Observe loads it again on NOSCRIPT
	return r, nil
}

// load puts the script in every node's script cache.
func (r *Redis) load(ctx context.Context) error {
	if c, ok := r.client.(*redis.ClusterClient); ok {
		return c.ForEachShard(ctx, func(ctx context.Context, shard *redis.Client) error {
			return observeScript.Load(ctx, shard).Err()
		})
	}
	return observeScript.Load(ctx, r.client).Err()
}

// Ready pings every node.
func (r *Redis) Ready(ctx context.Context) error {
	if c, ok := r.client.(*redis.ClusterClient); ok {
		return c.ForEachShard(ctx, func(ctx context.Context, shard *redis.Client) error {
			return shard.Ping(ctx).Err()
		})
	}
	return r.client.Ping(ctx).Err()
}

// Close closes the connections.
func (r *Redis) Close() error { return r.client.Close() }

// entityKeys returns the entity's log, data and summary keys. The part in
// braces is the Cluster hash tag; a key value holding "}" ends the tag
// early, identically for all three keys, so they still share a slot.
func (r *Redis) entityKeys(entity, key string) [3]string {
	base := r.prefix + "{" + entity + "=" + key + "}:"
	return [3]string{base + "log", base + "data", base + "sum"}
}

// Observe implements Store: one script call per entity, all in one
// pipeline. Items of an entity whose call failed keep a nil value and the
// error is returned, so the engine can mark the decision degraded.
func (r *Redis) Observe(ctx context.Context, obs *Observation) error {
	groups := groupByEntity(obs.Items)
	cmds, err := r.run(ctx, obs, groups)
	if isNoScript(err) {
		// A node restarted or its cache was flushed: load and try once more.
		if err := r.load(ctx); err != nil {
			return fmt.Errorf("redis: loading the script: %w", err)
		}
		cmds, err = r.run(ctx, obs, groups)
	}
	var failed error
	for g, cmd := range cmds {
		vals, cerr := cmd.StringSlice()
		if cerr == nil && len(vals) != len(groups[g]) {
			cerr = fmt.Errorf("script returned %d values for %d features", len(vals), len(groups[g]))
		}
		if cerr != nil {
			failed = cerr
			continue
		}
		for j, i := range groups[g] {
			it := &obs.Items[i]
			if it.Read {
				if it.Value, cerr = parseValue(it.Feature, vals[j]); cerr != nil {
					failed = cerr
				}
			}
		}
	}
	if failed == nil {
		failed = err
	}
	if failed != nil {
		return fmt.Errorf("redis: %w", failed)
	}
	return nil
}

func (r *Redis) run(ctx context.Context, obs *Observation, groups [][]int) ([]*redis.Cmd, error) {
	pipe := r.client.Pipeline()
	cmds := make([]*redis.Cmd, len(groups))
	keep := minDedupeHorizon.Milliseconds()
	for g, idx := range groups {
		first := obs.Items[idx[0]]
		keys := r.entityKeys(first.Feature.Entity, first.Key)
		args := make([]any, 0, 4+7*len(idx))
		ttl := minDedupeHorizon
		for _, i := range idx {
			ttl = max(ttl, obs.Items[i].Feature.Horizon())
		}
		args = append(args, obs.EventID, obs.TS, int64((ttl+ttlMargin)/time.Second), keep)
		for _, i := range idx {
			it := &obs.Items[i]
			f := it.Feature
			var window int64
			if f.Kind.Windowed() {
				window = f.Window.Milliseconds()
			}
			args = append(args, f.Name, f.Kind.String(), window, flag(it.Read), flag(it.Record),
				strconv.FormatFloat(it.Num, 'g', -1, 64), it.Of)
		}
		cmds[g] = observeScript.EvalSha(ctx, pipe, keys[:], args...)
	}
	_, err := pipe.Exec(ctx)
	return cmds, err
}

func flag(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// groupByEntity lists, per entity (Feature.Entity and Key), the indexes of
// its items, in first-appearance order.
func groupByEntity(items []Item) [][]int {
	var groups [][]int
	for i := range items {
		found := false
		for g, idx := range groups {
			first := &items[idx[0]]
			if first.Feature.Entity == items[i].Feature.Entity && first.Key == items[i].Key {
				groups[g] = append(idx, i)
				found = true
				break
			}
		}
		if !found {
			groups = append(groups, []int{i})
		}
	}
	return groups
}

func parseValue(f *Feature, s string) (Value, error) {
	switch {
	case s == "":
		return Value{}, nil
	case f.Kind.Bool():
		return Value{Valid: true, Bool: s == "1"}, nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return Value{}, fmt.Errorf("feature %s: script returned %q", f.Name, s)
	}
	return Value{Valid: true, Num: v}, nil
}

func isNoScript(err error) bool {
	return err != nil && redis.HasErrorPrefix(err, "NOSCRIPT")
}
