package redisstore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/riskd/riskd/lists"
)

// Mutable lists in Redis, shared by every riskd on it. Per list, in one
// Cluster hash slot:
//
//	<prefix>list:{<name>}:values   ZSET: value, score = expiry (Unix ms; +inf: never)
//	<prefix>list:{<name>}:version  the number of changes ever made
//	<prefix>list:{<name>}:log      STREAM of the latest changes: v, op, exp, who, at, vals
//
// A change is one transaction (WATCH on the version, then MULTI: the
// values, the version + 1, the change appended to the log). Each riskd
// keeps a snapshot of the list and, every SyncEvery, GETs the version:
// unchanged, that is all; newer, it reads the log from where it was
// (XRANGE) and applies the changes, or reads the whole list when the log
// no longer reaches back that far (trimmed) or the version went back (a
// flushed Redis). Scoring an event sends no list command at all: rules
// read the snapshot, at most SyncEvery (plus a round trip) behind.
//
// These keys have no time to live: a list holds what analysts put in it
// until they take it out (values expire by their own score). The log is
// capped at logLength changes.

// logLength caps a list's log. An instance further behind reads the whole
// list instead, which is correct, only dearer.
const logLength = 256

// ListOptions configure a registry on Redis.
type ListOptions struct {
	lists.Options
	// Addrs: one address for a standalone server, several for a Cluster.
	Addrs []string
	// Prefix starts every key, as the feature store's (-redis-prefix).
	Prefix string
}

type listStore struct {
	client redis.UniversalClient
	prefix string
}

// NewLists returns a registry whose lists live in Redis. Like the
// feature store it does not wait for Redis: Declare and Run retry until
// it answers.
func NewLists(opts ListOptions) (*lists.Registry, error) {
	if len(opts.Addrs) == 0 {
		return nil, errors.New("lists: redis: no address")
	}
	if strings.ContainsAny(opts.Prefix, "{}") {
		return nil, fmt.Errorf("lists: redis: prefix %q must not contain { or }", opts.Prefix)
	}
	client := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: opts.Addrs, ContextTimeoutEnabled: true, PoolSize: 4})
	return lists.NewRegistry(&listStore{client: client, prefix: opts.Prefix}, opts.Options), nil
}

func (s *listStore) Close() error { return s.client.Close() }

func (s *listStore) Describe() string {
	return "redis: shared by every riskd on it; a change reaches the others within " + lists.DefaultSyncEvery.String()
}

type listKeys struct{ values, version, log string }

func (s *listStore) keys(name string) listKeys {
	base := s.prefix + "list:{" + name + "}:"
	return listKeys{values: base + "values", version: base + "version", log: base + "log"}
}

func (s *listStore) Write(ctx context.Context, m *lists.Mutable, c *lists.Change, now int64) (int64, error) {
	k := s.keys(m.Name)
	var version int64
	// WATCH makes the version and the log entry agree when two instances
	// change the list at once: the loser tries again, after a random
	// pause so the losers do not collide again, until ctx (the admin
	// request's) gives up.
	for wait := time.Millisecond; ; wait = min(2*wait, 50*time.Millisecond) {
		err := s.client.Watch(ctx, func(tx *redis.Tx) error {
			v, err := tx.Get(ctx, k.version).Int64()
			if err != nil && !errors.Is(err, redis.Nil) {
				return err
			}
			version = v + 1
			_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				switch c.Op {
				case lists.Clear:
					p.Del(ctx, k.values)
				case lists.Add:
					score := math.Inf(1)
					if c.Expires > 0 {
						score = float64(c.Expires)
					}
					zs := make([]redis.Z, len(c.Values))
					for i, v := range c.Values {
						zs[i] = redis.Z{Score: score, Member: v}
					}
					p.ZAdd(ctx, k.values, zs...)
				default:
					members := make([]any, len(c.Values))
					for i, v := range c.Values {
						members[i] = v
					}
					p.ZRem(ctx, k.values, members...)
				}
				// Expired values go as changes are made: the snapshots
				// leave them out by their expiry anyway.
				p.ZRemRangeByScore(ctx, k.values, "-inf", strconv.FormatInt(now, 10))
				p.Set(ctx, k.version, version, 0)
				p.XAdd(ctx, &redis.XAddArgs{Stream: k.log, MaxLen: logLength, Approx: true, Values: []any{
					"v", version, "op", string(c.Op), "exp", c.Expires, "who", c.Who, "at", c.At, "vals", strings.Join(c.Values, "\n"),
				}})
				return nil
			})
			return err
		}, k.version)
		if !errors.Is(err, redis.TxFailedErr) {
			return version, err
		}
		t := time.NewTimer(rand.N(wait) + 1)
		select {
		case <-ctx.Done():
			t.Stop()
			return 0, fmt.Errorf("other changes to the list kept conflicting with this one: %w", ctx.Err())
		case <-t.C:
		}
	}
}

// Sync reads what changed since m's snapshot.
func (s *listStore) Sync(ctx context.Context, m *lists.Mutable, now int64) error {
	k := s.keys(m.Name)
	cur := m.Snapshot()
	v, err := s.client.Get(ctx, k.version).Int64()
	if err != nil && !errors.Is(err, redis.Nil) {
		return err
	}
	switch {
	case m.Cursor == "" || v < cur.Version:
		return s.load(ctx, m, now)
	case v == cur.Version:
		return nil
	}
	for {
		entries, err := s.client.XRangeN(ctx, k.log, "("+m.Cursor, "+", 1000).Result()
		if err != nil {
			return err
		}
		changes := make([]lists.Change, 0, len(entries))
		next := m.Snapshot().Version + 1
		for _, e := range entries {
			c, err := parseChange(e.Values)
			if err != nil {
				return fmt.Errorf("log entry %s: %w", e.ID, err)
			}
			if c.Version != next {
				// The log was trimmed past what this riskd has seen, or
				// rewritten: read the whole list.
				return s.load(ctx, m, now)
			}
			changes = append(changes, c)
			next++
		}
		if len(changes) > 0 {
			m.Apply(changes, now)
			m.Cursor = entries[len(entries)-1].ID
		}
		if len(entries) < 1000 {
			return nil
		}
	}
}

// load reads the whole list, its version and where its log ends, in one
// transaction, and publishes it.
func (s *listStore) load(ctx context.Context, m *lists.Mutable, now int64) error {
	k := s.keys(m.Name)
	var version *redis.StringCmd
	var values *redis.ZSliceCmd
	var last *redis.XMessageSliceCmd
	_, err := s.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		version = p.Get(ctx, k.version)
		values = p.ZRangeByScoreWithScores(ctx, k.values, &redis.ZRangeBy{Min: "(" + strconv.FormatInt(now, 10), Max: "+inf"})
		last = p.XRevRangeN(ctx, k.log, "+", "-", 1)
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return err
	}
	v, err := version.Int64()
	if err != nil && !errors.Is(err, redis.Nil) {
		return err
	}
	vals := make(lists.Values, len(values.Val()))
	for _, z := range values.Val() {
		exp := int64(0)
		if !math.IsInf(z.Score, 1) {
			exp = int64(z.Score)
		}
		vals[z.Member.(string)] = exp
	}
	m.Cursor = "0-0"
	if l := last.Val(); len(l) > 0 {
		m.Cursor = l[0].ID
	}
	m.Replace(vals, v, now)
	return nil
}

func parseChange(f map[string]any) (lists.Change, error) {
	str := func(k string) string { s, _ := f[k].(string); return s }
	num := func(k string) (int64, error) { return strconv.ParseInt(str(k), 10, 64) }
	var c lists.Change
	var err error
	if c.Version, err = num("v"); err != nil {
		return c, fmt.Errorf("version: %w", err)
	}
	if c.Expires, err = num("exp"); err != nil {
		return c, fmt.Errorf("expiry: %w", err)
	}
	c.At, _ = num("at")
	c.Op, c.Who = lists.Op(str("op")), str("who")
	switch c.Op {
	case lists.Add, lists.Remove:
		c.Values = strings.Split(str("vals"), "\n")
	case lists.Clear:
	default:
		return c, fmt.Errorf("unknown op %q", c.Op)
	}
	return c, nil
}
