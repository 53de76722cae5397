package cases

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultRedisPrefix starts every case key.
const DefaultRedisPrefix = "riskd:"

// RedisOptions configure a Redis case store.
type RedisOptions struct {
	Options
	// Addrs: one address for a standalone server, several for a Cluster.
	// Ignored when Client is set.
	Addrs []string
	// Client, if set, is the connection to use: riskd's, built from -redis
	// with its TLS, credentials and Sentinel settings. Close closes it.
	Client redis.UniversalClient
	// Prefix starts every key. Default DefaultRedisPrefix.
	Prefix string
}

// Redis keeps cases in Redis, shared by every instance on it. Every key
// carries the hash tag {cases}, so on a Cluster the queue lives on one
// node and each change is one atomic script:
//
//	P{cases}:c:ID            hash: the case, its summary, claim, resolution
//	                         and expiry; PEXPIREAT its retention
//	P{cases}:open            hash: open case ID -> its queue member and indexes
//	P{cases}:q:age:DIM       sorted sets of open cases by opening time and
//	P{cases}:q:score:DIM     by score, one per filter combination DIM
//
// A case is indexed under every combination of its filters (ruleset,
// each rule that fired, decision), so any queue page is one ZRANGE with
// an offset, whatever the filters.
type Redis struct {
	opts   Options
	client redis.UniversalClient
	prefix string // "P{cases}:"
}

// NewRedis returns a store on Redis. It does not wait for Redis: a store
// down at start fails its calls until it answers (see Ready).
func NewRedis(opts RedisOptions) (*Redis, error) {
	if len(opts.Addrs) == 0 && opts.Client == nil {
		return nil, errors.New("case store: no Redis address")
	}
	opts.defaults()
	prefix := opts.Prefix
	if prefix == "" {
		prefix = DefaultRedisPrefix
	}
	if strings.ContainsAny(prefix, "{}") {
		return nil, fmt.Errorf("case store: prefix %q must not contain { or }: they delimit the Cluster hash tag", prefix)
	}
	client := opts.Client
	if client == nil {
		client = redis.NewUniversalClient(&redis.UniversalOptions{Addrs: opts.Addrs, ContextTimeoutEnabled: true})
	}
	return &Redis{opts: opts.Options, client: client, prefix: prefix + "{cases}:"}, nil
}

// Ready reports whether Redis answers.
func (r *Redis) Ready(ctx context.Context) error {
	if err := r.client.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("case store: %w", err)
	}
	return nil
}

func (r *Redis) caseKey(id string) string { return r.prefix + "c:" + id }

// member is a case's entry in the queue's sorted sets: its opening time
// first, so equal scores list oldest first.
func member(opened int64, id string) string { return fmt.Sprintf("%013d:%s", opened, id) }

// dimsOf names every filter combination case c matches.
func dimsOf(c *Case) []string {
	s, d := "s:"+c.Ruleset, "d:"+c.Decision
	dims := []string{"all", s, d, s + "|" + d}
	seen := map[string]bool{}
	for _, rs := range c.Reasons {
		if seen[rs.Rule] {
			continue
		}
		seen[rs.Rule] = true
		ru := "r:" + rs.Rule
		dims = append(dims, ru, s+"|"+ru, ru+"|"+d, s+"|"+ru+"|"+d)
	}
	return dims
}

// dimOf names the filter combination of q.
func dimOf(q *Query) string {
	var parts []string
	if q.Ruleset != "" {
		parts = append(parts, "s:"+q.Ruleset)
	}
	if q.Rule != "" {
		parts = append(parts, "r:"+q.Rule)
	}
	if q.Decision != "" {
		parts = append(parts, "d:"+q.Decision)
	}
	if len(parts) == 0 {
		return "all"
	}
	return strings.Join(parts, "|")
}

// unindexLua takes the open case whose open-hash entry is `entry` (member
// and dims, newline-separated) out of every queue index.
const unindexLua = `
local function unindex(prefix, openKey, id)
  local entry = redis.call('HGET', openKey, id)
  if not entry then return end
  local member
  for line in string.gmatch(entry, '[^\n]+') do
    if not member then
      member = line
    else
      redis.call('ZREM', prefix .. 'q:age:' .. line, member)
      redis.call('ZREM', prefix .. 'q:score:' .. line, member)
    end
  end
  redis.call('HDEL', openKey, id)
end
`

// openScript: sweep open cases past their retention (at most 64), then
// open the case unless a live one has its id.
// KEYS: case, open hash. ARGV: prefix, id, member, opened, -score,
// expiry, body, summary, dims (newline-separated), now, cutoff.
var openScript = redis.NewScript(unindexLua + `
local prefix, id = ARGV[1], ARGV[2]
local due = redis.call('ZRANGEBYSCORE', prefix .. 'q:age:all', '-inf', ARGV[11], 'LIMIT', 0, 64)
for _, m in ipairs(due) do
  local old = string.sub(m, 15)
  unindex(prefix, KEYS[2], old)
  redis.call('ZREM', prefix .. 'q:age:all', m)
  local exp = redis.call('HGET', prefix .. 'c:' .. old, 'exp')
  if exp and tonumber(exp) <= tonumber(ARGV[10]) then redis.call('DEL', prefix .. 'c:' .. old) end
end
local exp = redis.call('HGET', KEYS[1], 'exp')
if exp and tonumber(exp) > tonumber(ARGV[10]) then return 0 end
unindex(prefix, KEYS[2], id)
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'body', ARGV[7], 'sum', ARGV[8], 'exp', ARGV[6])
redis.call('PEXPIREAT', KEYS[1], ARGV[6])
local entry = ARGV[3]
for dim in string.gmatch(ARGV[9], '[^\n]+') do
  redis.call('ZADD', prefix .. 'q:age:' .. dim, ARGV[4], ARGV[3])
  redis.call('ZADD', prefix .. 'q:score:' .. dim, ARGV[5], ARGV[3])
  entry = entry .. '\n' .. dim
end
redis.call('HSET', KEYS[2], id, entry)
return 1
`)

// stateLua reads a case's state: nil when missing or expired at now.
const stateLua = `
local function state(key, now)
  local h = redis.call('HMGET', key, 'exp', 'res', 'by', 'until')
  if not h[1] or tonumber(h[1]) <= tonumber(now) then return nil end
  if h[3] and tonumber(h[4]) <= tonumber(now) then h[3] = false end
  return h
end
`

// claimScript KEYS: case. ARGV: analyst, now, until.
var claimScript = redis.NewScript(stateLua + `
local h = state(KEYS[1], ARGV[2])
if not h then return {'notfound'} end
if h[2] then return {'resolved'} end
if h[3] and h[3] ~= ARGV[1] then return {'claimed', h[3], h[4]} end
redis.call('HSET', KEYS[1], 'by', ARGV[1], 'until', ARGV[3])
return {'ok'}
`)

// releaseScript KEYS: case. ARGV: analyst, now.
var releaseScript = redis.NewScript(stateLua + `
local h = state(KEYS[1], ARGV[2])
if not h then return {'notfound'} end
if h[3] == ARGV[1] then redis.call('HDEL', KEYS[1], 'by', 'until') end
return {'ok'}
`)

// resolveScript KEYS: case, open hash. ARGV: analyst, now, resolution,
// expiry, prefix, id.
var resolveScript = redis.NewScript(stateLua + unindexLua + `
local h = state(KEYS[1], ARGV[2])
if not h then return {'notfound'} end
if h[2] then return {'resolved'} end
if h[3] and h[3] ~= ARGV[1] then return {'claimed', h[3], h[4]} end
if not h[3] then return {'notclaimed'} end
redis.call('HSET', KEYS[1], 'res', ARGV[3], 'exp', ARGV[4])
redis.call('HDEL', KEYS[1], 'by', 'until')
redis.call('PEXPIREAT', KEYS[1], ARGV[4])
unindex(ARGV[5], KEYS[2], ARGV[6])
return {'ok', redis.call('HGET', KEYS[1], 'body')}
`)

// scriptResult turns a script's status answer into an error.
func scriptResult(v any, err error) ([]any, error) {
	if err != nil {
		return nil, err
	}
	res, _ := v.([]any)
	if len(res) == 0 {
		return nil, fmt.Errorf("case store: unexpected script answer %v", v)
	}
	switch res[0] {
	case "ok":
		return res, nil
	case "notfound":
		return nil, ErrNotFound
	case "resolved":
		return nil, ErrResolved
	case "notclaimed":
		return nil, ErrNotClaimed
	case "claimed":
		by, _ := res[1].(string)
		until, _ := res[2].(string)
		ms, _ := strconv.ParseInt(until, 10, 64)
		return nil, &ClaimedError{Claim: Claim{Analyst: by, Until: time.UnixMilli(ms).UTC()}}
	}
	return nil, fmt.Errorf("case store: unexpected script answer %v", v)
}

// Open implements Store.
func (r *Redis) Open(ctx context.Context, c *Case) (bool, error) {
	if err := c.check(); err != nil {
		return false, err
	}
	cp := *c
	cp.Claim, cp.Resolution = nil, nil
	body, err := json.Marshal(&cp)
	if err != nil {
		return false, fmt.Errorf("case %s: %w", c.ID, err)
	}
	sum := cp.Summary()
	sumJSON, _ := json.Marshal(&sum)
	opened := c.OpenedAt.UnixMilli()
	now := r.opts.Now().UnixMilli()
	n, err := openScript.Run(ctx, r.client, []string{r.caseKey(c.ID), r.prefix + "open"},
		r.prefix, c.ID, member(opened, c.ID), opened, -c.Score, opened+r.opts.Retention.Milliseconds(),
		body, sumJSON, strings.Join(dimsOf(c), "\n"), now, now-r.opts.Retention.Milliseconds()).Int()
	if err != nil {
		return false, fmt.Errorf("case %s: open: %w", c.ID, err)
	}
	if n == 1 && len(c.Keys) > 0 {
		// Each entity key's latest cases, by opening time: trimmed to
		// MaxRelated and kept as long as a case (a gone one is skipped
		// when read).
		pipe := r.client.Pipeline()
		for _, k := range c.Keys {
			pipe.ZAdd(ctx, r.keyKey(k), redis.Z{Score: float64(opened), Member: c.ID})
			pipe.ZRemRangeByRank(ctx, r.keyKey(k), 0, -MaxRelated-1)
			pipe.PExpire(ctx, r.keyKey(k), r.opts.Retention)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return true, fmt.Errorf("case %s: indexing its entity keys: %w", c.ID, err)
		}
	}
	return n == 1, nil
}

// keyKey holds entity key k's latest cases.
func (r *Redis) keyKey(k string) string { return r.prefix + "e:" + k }

// Related implements Store.
func (r *Redis) Related(ctx context.Context, keys []string, self string, limit int) ([]Summary, error) {
	var ids []string
	for _, k := range keys {
		got, err := r.client.ZRevRange(ctx, r.keyKey(k), 0, MaxRelated-1).Result()
		if err != nil {
			return nil, fmt.Errorf("cases related to %s: %w", k, err)
		}
		ids = append(ids, got...)
	}
	return related(ctx, r, ids, self, limit)
}

// caseFields are the hash fields read back with a case.
var caseFields = []string{"body", "exp", "res", "by", "until"}

// decode makes a case from caseFields' values; nil when it is gone at now.
func decode(vals []any, now time.Time, body bool) (*Case, error) {
	field := func(i int) string { s, _ := vals[i].(string); return s }
	exp, err := strconv.ParseInt(field(1), 10, 64)
	if err != nil || exp <= now.UnixMilli() {
		return nil, nil
	}
	c := &Case{}
	if body {
		if err := json.Unmarshal([]byte(field(0)), c); err != nil {
			return nil, fmt.Errorf("case: %w", err)
		}
	} else {
		s := &Summary{}
		if err := json.Unmarshal([]byte(field(0)), s); err != nil {
			return nil, fmt.Errorf("case summary: %w", err)
		}
		c = &Case{ID: s.ID, EventID: s.EventID, Type: s.Type, Decision: s.Decision, Score: s.Score, Ruleset: s.Ruleset, OpenedAt: s.OpenedAt}
		for _, rule := range s.Rules {
			c.Reasons = append(c.Reasons, Reason{Rule: rule})
		}
	}
	if res := field(2); res != "" {
		c.Resolution = &Resolution{}
		if err := json.Unmarshal([]byte(res), c.Resolution); err != nil {
			return nil, fmt.Errorf("case %s: resolution: %w", c.ID, err)
		}
	} else if by := field(3); by != "" {
		ms, _ := strconv.ParseInt(field(4), 10, 64)
		if until := time.UnixMilli(ms).UTC(); until.After(now) {
			c.Claim = &Claim{Analyst: by, Until: until}
		}
	}
	return c, nil
}

// Get implements Store.
func (r *Redis) Get(ctx context.Context, id string) (*Case, error) {
	vals, err := r.client.HMGet(ctx, r.caseKey(id), caseFields...).Result()
	if err != nil {
		return nil, fmt.Errorf("case %s: %w", id, err)
	}
	c, err := decode(vals, r.opts.Now(), true)
	if err == nil && c == nil {
		err = ErrNotFound
	}
	return c, err
}

// Claim implements Store.
func (r *Redis) Claim(ctx context.Context, id, analyst string, ttl time.Duration) (Claim, error) {
	if err := checkClaim(analyst, ttl); err != nil {
		return Claim{}, err
	}
	now := r.opts.Now()
	until := now.Add(ttl).UTC().Truncate(time.Millisecond)
	_, err := scriptResult(claimScript.Run(ctx, r.client, []string{r.caseKey(id)}, analyst, now.UnixMilli(), until.UnixMilli()).Result())
	if err != nil {
		return Claim{}, err
	}
	return Claim{Analyst: analyst, Until: until}, nil
}

// Release implements Store.
func (r *Redis) Release(ctx context.Context, id, analyst string) error {
	_, err := scriptResult(releaseScript.Run(ctx, r.client, []string{r.caseKey(id)}, analyst, r.opts.Now().UnixMilli()).Result())
	return err
}

// Resolve implements Store.
func (r *Redis) Resolve(ctx context.Context, id, analyst string, o Outcome, note string) (*Case, error) {
	if err := checkResolve(analyst, o, note); err != nil {
		return nil, err
	}
	now := r.opts.Now()
	res := Resolution{Outcome: o, Note: note, Analyst: analyst, At: now.UTC().Truncate(time.Millisecond)}
	resJSON, _ := json.Marshal(&res)
	out, err := scriptResult(resolveScript.Run(ctx, r.client, []string{r.caseKey(id), r.prefix + "open"},
		analyst, now.UnixMilli(), resJSON, res.At.Add(r.opts.Retention).UnixMilli(), r.prefix, id).Result())
	if err != nil {
		return nil, err
	}
	body, _ := out[1].(string)
	c := &Case{}
	if err := json.Unmarshal([]byte(body), c); err != nil {
		return nil, fmt.Errorf("case %s: %w", id, err)
	}
	c.Resolution = &res
	return c, nil
}

// Queue implements Store: one ZRANGE of the index of q's filters, then
// the page's summaries in one round trip. Entries of cases that expired
// since are skipped (and swept by later openings).
func (r *Redis) Queue(ctx context.Context, q Query) (Page, error) {
	q.defaults()
	now := r.opts.Now()
	order := "age"
	if q.Order == ByScore {
		order = "score"
	}
	key := r.prefix + "q:" + order + ":" + dimOf(&q)
	cutoff := now.UnixMilli() - r.opts.Retention.Milliseconds()
	var p Page
	skip := q.Offset
	for start := int64(0); ; {
		// Skipping within the index is exact unless expired entries sit
		// among the first Offset; reading Limit+1 tells whether more
		// follow.
		n := int64(skip + q.Limit + 1 - len(p.Cases))
		members, err := r.client.ZRange(ctx, key, start, start+n-1).Result()
		if err != nil {
			return Page{}, fmt.Errorf("case queue: %w", err)
		}
		start += int64(len(members))
		var live []string
		for _, m := range members {
			if opened, _ := strconv.ParseInt(m[:13], 10, 64); opened > cutoff {
				live = append(live, m[14:])
			}
		}
		if skip > 0 {
			k := min(skip, len(live))
			skip -= k
			live = live[k:]
		}
		if len(live) > 0 {
			cmds, err := r.client.Pipelined(ctx, func(pipe redis.Pipeliner) error {
				for _, id := range live {
					pipe.HMGet(ctx, r.caseKey(id), "sum", "exp", "res", "by", "until")
				}
				return nil
			})
			if err != nil {
				return Page{}, fmt.Errorf("case queue: %w", err)
			}
			for _, cmd := range cmds {
				c, err := decode(cmd.(*redis.SliceCmd).Val(), now, false)
				if err != nil {
					return Page{}, err
				}
				if c == nil || c.Resolution != nil {
					continue
				}
				if len(p.Cases) == q.Limit {
					p.More = true
					return p, nil
				}
				p.Cases = append(p.Cases, c.Summary())
			}
		}
		if int64(len(members)) < n {
			return p, nil
		}
	}
}

// Stats implements Store.
func (r *Redis) Stats(ctx context.Context) (Stats, error) {
	key := r.prefix + "q:age:all"
	cutoff := "(" + strconv.FormatInt(r.opts.Now().UnixMilli()-r.opts.Retention.Milliseconds(), 10)
	var count *redis.IntCmd
	var first *redis.ZSliceCmd
	_, err := r.client.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		count = pipe.ZCount(ctx, key, cutoff, "+inf")
		first = pipe.ZRangeByScoreWithScores(ctx, key, &redis.ZRangeBy{Min: cutoff, Max: "+inf", Count: 1})
		return nil
	})
	if err != nil {
		return Stats{}, fmt.Errorf("case stats: %w", err)
	}
	s := Stats{Open: int(count.Val())}
	if z := first.Val(); len(z) > 0 {
		s.OldestOpen = time.UnixMilli(int64(z[0].Score)).UTC()
	}
	return s, nil
}

// Close implements Store.
func (r *Redis) Close() error { return r.client.Close() }
