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

	"github.com/riskd/riskd/internal/redisconn"
	"github.com/riskd/riskd/lists"
)

// Mutable lists in Redis, shared by every riskd on it. Per list, in one
// Cluster hash slot:
//
//	<prefix>list:{<name>}:values   ZSET: value, score = expiry (Unix ms; +inf: never)
//	<prefix>list:{<name>}:version  the number of changes ever made
//	<prefix>list:{<name>}:log      STREAM of the latest changes: v, op, exp, who, at, vals
//	<prefix>list:{<name>}:history  a random id, made when the list is first written or re-seeded
//
// A version counts changes within one history: two instances at version
// 1 of different histories (Redis lost the list and each wrote anew) hold
// different lists, so an instance reads the whole list whenever the
// history is not its snapshot's. When Redis lost a list (FLUSHALL, a
// restart without persistence) that an instance holds a snapshot of, the
// instance writes its snapshot back under a new history (the others then
// read it whole) rather than let every instance forget the blocked cards:
// lists.ErrReseeded tells the registry, which logs it at error level and
// counts it.
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

// maxLogValueBytes bounds the values one log entry holds: a bigger change
// is logged without them (field "full"), and instances read the whole
// list instead. So the log is bounded by bytes (logLength of these), not
// only by entries: ten additions of the same 100,000 values would
// otherwise keep ten copies of them.
const maxLogValueBytes = 64 << 10

// ListOptions configure a registry on Redis.
type ListOptions struct {
	lists.Options
	// Conn says how to reach Redis, as the feature store's; without it,
	// Addrs: one address for a standalone server, several for a Cluster.
	Conn  *redisconn.Conn
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
	conn, err := connOf(opts.Conn, opts.Addrs)
	if err != nil {
		return nil, fmt.Errorf("lists: %w", err)
	}
	if strings.ContainsAny(opts.Prefix, "{}") {
		return nil, fmt.Errorf("lists: redis: prefix %q must not contain { or }", opts.Prefix)
	}
	client := conn.NewClient(func(o *redis.UniversalOptions) { o.ContextTimeoutEnabled = true; o.PoolSize = 4 })
	return lists.NewRegistry(&listStore{client: client, prefix: opts.Prefix}, opts.Options), nil
}

func (s *listStore) Close() error { return s.client.Close() }

func (s *listStore) Describe() string {
	return "redis: shared by every riskd on it; a change reaches the others within " + lists.DefaultSyncEvery.String()
}

type listKeys struct{ values, version, log, history string }

func (s *listStore) keys(name string) listKeys {
	base := s.prefix + "list:{" + name + "}:"
	return listKeys{values: base + "values", version: base + "version", log: base + "log", history: base + "history"}
}

// newHistory is a random history id.
func newHistory() string { return strconv.FormatUint(rand.Uint64(), 36) }

// lost reports whether Redis lost the list m holds a snapshot of: no
// version and no history there, where m's snapshot has changes.
func lost(m *lists.Mutable, version int64, history string) bool {
	return version == 0 && history == "" && m.Snapshot().Version > 0
}

// reseed adds to p what writes m's snapshot back as the list, under a new
// history, and returns the history.
func (s *listStore) reseed(ctx context.Context, p redis.Pipeliner, k listKeys, m *lists.Mutable, now int64) string {
	snap := m.Snapshot()
	h := newHistory()
	if len(snap.Values) > 0 {
		zs := make([]redis.Z, 0, len(snap.Values))
		for v, exp := range snap.Values {
			if exp != 0 && exp <= now {
				continue
			}
			score := math.Inf(1)
			if exp != 0 {
				score = float64(exp)
			}
			zs = append(zs, redis.Z{Score: score, Member: v})
		}
		if len(zs) > 0 {
			p.ZAdd(ctx, k.values, zs...)
		}
	}
	p.Set(ctx, k.version, snap.Version, 0)
	p.Set(ctx, k.history, h, 0)
	return h
}

func (s *listStore) Write(ctx context.Context, m *lists.Mutable, c *lists.Change, now int64) (int64, error) {
	k := s.keys(m.Name)
	var version int64
	// WATCH makes the version and the log entry agree when two instances
	// change the list at once: the loser tries again, after a random
	// pause so the losers do not collide again, until ctx (the admin
	// request's) gives up.
	for wait := time.Millisecond; ; wait = min(2*wait, 50*time.Millisecond) {
		reseeded := false
		err := s.client.Watch(ctx, func(tx *redis.Tx) error {
			v, err := tx.Get(ctx, k.version).Int64()
			if err != nil && !errors.Is(err, redis.Nil) {
				return err
			}
			h, err := tx.Get(ctx, k.history).Result()
			if err != nil && !errors.Is(err, redis.Nil) {
				return err
			}
			reseed := lost(m, v, h)
			if reseed {
				v = m.Snapshot().Version
			}
			version = v + 1
			_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				switch {
				case reseed:
					s.reseed(ctx, p, k, m, now)
					reseeded = true
				case h == "":
					p.Set(ctx, k.history, newHistory(), 0) // a new list
				}
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
				entry := []any{"v", version, "op", string(c.Op), "exp", c.Expires, "who", c.Who, "at", c.At}
				if vals := strings.Join(c.Values, "\n"); len(vals) <= maxLogValueBytes {
					entry = append(entry, "vals", vals)
				} else {
					entry = append(entry, "full", "1")
				}
				p.XAdd(ctx, &redis.XAddArgs{Stream: k.log, MaxLen: logLength, Approx: true, Values: entry})
				return nil
			})
			return err
		}, k.version, k.history)
		if !errors.Is(err, redis.TxFailedErr) {
			if err == nil && reseeded {
				return version, lists.ErrReseeded
			}
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
	var version, history *redis.StringCmd
	if _, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		version, history = p.Get(ctx, k.version), p.Get(ctx, k.history)
		return nil
	}); err != nil && !errors.Is(err, redis.Nil) {
		return err
	}
	v, err := version.Int64()
	if err != nil && !errors.Is(err, redis.Nil) {
		return err
	}
	h := history.Val()
	switch {
	case lost(m, v, h):
		return s.reseedNow(ctx, m, now)
	case m.Cursor == "" || h != m.History || v < cur.Version:
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
			if _, full := e.Values["full"]; full || c.Version != next {
				// A change too big for the log (see maxLogValueBytes), or
				// the log was trimmed past what this riskd has seen, or
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

// reseedNow writes m's snapshot back as the list, unless another
// instance wrote the list meanwhile (then it reads what that one wrote).
func (s *listStore) reseedNow(ctx context.Context, m *lists.Mutable, now int64) error {
	k := s.keys(m.Name)
	var h string
	err := s.client.Watch(ctx, func(tx *redis.Tx) error {
		v, err := tx.Get(ctx, k.version).Int64()
		if err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
		cur, err := tx.Get(ctx, k.history).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
		if !lost(m, v, cur) {
			return errWrittenMeanwhile
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			h = s.reseed(ctx, p, k, m, now)
			return nil
		})
		return err
	}, k.version, k.history)
	switch {
	case errors.Is(err, errWrittenMeanwhile), errors.Is(err, redis.TxFailedErr):
		return s.load(ctx, m, now)
	case err != nil:
		return err
	}
	m.History, m.Cursor = h, "0-0"
	return lists.ErrReseeded
}

var errWrittenMeanwhile = errors.New("the list was written meanwhile")

// load reads the whole list, its version and where its log ends, in one
// transaction, and publishes it.
func (s *listStore) load(ctx context.Context, m *lists.Mutable, now int64) error {
	k := s.keys(m.Name)
	var version, history *redis.StringCmd
	var values *redis.ZSliceCmd
	var last *redis.XMessageSliceCmd
	_, err := s.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		version, history = p.Get(ctx, k.version), p.Get(ctx, k.history)
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
	m.Cursor, m.History = "0-0", history.Val()
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
