package redisstore

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/riskd/riskd/features"
)

// On a standalone server an event's claim, reads and records go in one
// round trip: a script claims the id (SET NX GET, as claim does) and,
// only if the id is new (or the claim is this very call's, sent again),
// runs the event's commands — the same ones the transaction of exec
// holds — so a retry never writes a record it would have to take back.
// Anything else (an answer to return, another instance's claim to wait
// for or take over) goes the way of claim, in further round trips.
//
// The commands travel as the script's arguments: per command, its
// number of words, then the words. Replies come back in order after a
// first element saying whose the id is.
const recordScript = `
local prev = redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX', 'GET')
if prev and prev ~= ARGV[1] then
	return {1, prev}
end
local out = {0}
local i = 3
while i <= #ARGV do
	local n = tonumber(ARGV[i])
	out[#out + 1] = redis.call(unpack(ARGV, i + 1, i + n))
	i = i + n + 1
end
return out
`

var recordScriptSHA = func() string {
	h := sha1.Sum([]byte(recordScript))
	return hex.EncodeToString(h[:])
}()

// recordCmd is the script call claiming mine on the event's id and,
// if the id is new, running cmds.
func (r *Store) recordCmd(id, mine string, cmds []redis.Cmder) *redis.SliceCmd {
	args := make([]any, 0, 6+4*len(cmds))
	args = append(args, "evalsha", recordScriptSHA, 1, r.idKey(id), mine, r.opts.IdempotencyWindow.Milliseconds())
	for _, c := range cmds {
		words := c.Args()
		args = append(args, len(words))
		args = append(args, words...)
	}
	return redis.NewSliceCmd(context.Background(), args...)
}

// recorded reads the reply of the script call sc (sent again as EVAL,
// within ctx, if the server did not have the script): whether the id was
// this call's, and if not what its key held. cmds are filled only when
// it was.
func (r *Store) recorded(ctx context.Context, sc *redis.SliceCmd, cmds []redis.Cmder) (bool, string, error) {
	if isNoScript(sc.Err()) {
		// A server that restarted, or a new one: EVAL loads the script
		// for the EVALSHAs after.
		args := slices.Clone(sc.Args())
		args[0], args[1] = "eval", recordScript
		sc = redis.NewSliceCmd(ctx, args...)
		if err := r.send(ctx, false, sc); err != nil {
			return false, "", err
		}
	}
	reply, err := sc.Result()
	if err != nil {
		return false, "", err
	}
	if len(reply) == 0 {
		return false, "", errors.New("empty reply from the record script")
	}
	if n, _ := reply[0].(int64); n != 0 {
		if len(reply) < 2 {
			return false, "", errors.New("short reply from the record script")
		}
		prev, _ := reply[1].(string)
		return false, prev, nil
	}
	if len(reply) != len(cmds)+1 {
		return false, "", fmt.Errorf("record script: %d replies for %d commands", len(reply)-1, len(cmds))
	}
	for i, c := range cmds {
		if err := fill(c, reply[i+1]); err != nil {
			return false, "", fmt.Errorf("%s: %w", c.Name(), err)
		}
	}
	return true, "", nil
}

func isNoScript(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT")
}

// fill sets c's value from v, its reply as a script returns it (RESP2
// types: integers, strings, and flat arrays even WITHSCORES).
func fill(c redis.Cmder, v any) error {
	switch c := c.(type) {
	case *redis.IntCmd:
		n, ok := v.(int64)
		if !ok {
			return fmt.Errorf("reply %T, want an integer", v)
		}
		c.SetVal(n)
	case *redis.BoolCmd:
		n, ok := v.(int64)
		if !ok {
			return fmt.Errorf("reply %T, want an integer", v)
		}
		c.SetVal(n == 1)
	case *redis.StringSliceCmd:
		ss, err := stringsOf(v)
		if err != nil {
			return err
		}
		c.SetVal(ss)
	case *redis.ZSliceCmd:
		ss, err := stringsOf(v)
		if err != nil {
			return err
		}
		if len(ss)%2 != 0 {
			return errors.New("odd reply WITHSCORES")
		}
		zs := make([]redis.Z, len(ss)/2)
		for i := range zs {
			score, err := strconv.ParseFloat(ss[2*i+1], 64)
			if err != nil {
				return fmt.Errorf("score: %w", err)
			}
			zs[i] = redis.Z{Member: ss[2*i], Score: score}
		}
		c.SetVal(zs)
	default:
		return fmt.Errorf("no reply conversion for %T", c)
	}
	return nil
}

func stringsOf(v any) ([]string, error) {
	vs, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("reply %T, want an array", v)
	}
	ss := make([]string, len(vs))
	for i, x := range vs {
		s, ok := x.(string)
		if !ok {
			return nil, fmt.Errorf("reply element %T, want a string", x)
		}
		ss[i] = s
	}
	return ss, nil
}

// On a Cluster an event's id and its entities live on different nodes,
// so no one script can claim the id and record the event. The claim
// (SET NX GET) and one entityScript call per entity go out together
// instead, one pipeline per node, and every recording is made
// idempotent where it happens: an event's record (or sighting) goes into
// a log only if the log holds none of the same event — the same id, at
// the same time, of a generation within the idempotency window (an id
// scored again after it is a new event). So a retry, a second instance
// scoring the same event at once, or one taking over a dead instance's
// claim, finds the record already there and writes nothing; the claim
// then says whose the answer is.
//
// Arguments: ARGV[1] is what every member of the event starts with (its
// id, length first), ARGV[2] the oldest generation still the event's,
// then the commands as recordScript takes them, a record's ZADD NX with
// its word count negated, and the trims and times to live that go with
// a record with it prefixed by "t": a log that holds the event already
// is left as it is, as a retry leaves it. A ZADD's reply is the member
// found in its stead, or its own; a trim left out replies 0. KEYS[1], one of the entity's keys, routes the call
// to the entity's node: its keys share a hash tag, so a slot.
const entityScript = `
local function gen(m, at)
	local v, mul = 0, 1
	for j = at, #m do
		local b = string.byte(m, j)
		v = v + (b % 128) * mul
		if b < 128 then
			if v % 2 == 0 then return v / 2 end
			return -(v + 1) / 2
		end
		mul = mul * 128
	end
	return nil
end
local prefix, oldest = ARGV[1], tonumber(ARGV[2])
local out = {}
local found = nil
local i = 3
while i <= #ARGV do
	local w = ARGV[i]
	local trim = string.sub(w, 1, 1) == 't'
	if trim then
		w = string.sub(w, 2)
	end
	local n = tonumber(w)
	if n < 0 then
		n = -n
		found = nil
		local key, score = ARGV[i + 2], ARGV[i + 4]
		for _, m in ipairs(redis.call('ZRANGEBYSCORE', key, score, score)) do
			if string.sub(m, 1, #prefix) == prefix then
				local g = gen(m, #prefix + 1)
				if g and g >= oldest then
					found = m
					break
				end
			end
		end
		if found then
			out[#out + 1] = found
		else
			out[#out + 1] = redis.call(unpack(ARGV, i + 1, i + n))
		end
	elseif trim and found then
		out[#out + 1] = 0
	else
		out[#out + 1] = redis.call(unpack(ARGV, i + 1, i + n))
	end
	i = i + n + 1
end
return out
`

var entityScriptSHA = func() string {
	h := sha1.Sum([]byte(entityScript))
	return hex.EncodeToString(h[:])
}()

// entityCall is one entity's entityScript call and the commands it runs.
type entityCall struct {
	sc      *redis.SliceCmd
	eis     []int         // the entries, in obs.Entries
	cmds    []redis.Cmder // every entry's commands, in order
	records []int         // per entry in eis: the index in cmds of its record's ZADD, or -1
	trims   []int         // the indexes in cmds of the records' trims and times to live
}

// entityCalls groups the event's entries by entity and queues each
// group's commands (gen as recordCmd's records carry, -1 to read only)
// into one entityScript call.
func (r *Store) entityCalls(ctx context.Context, obs *features.Observation, cmds []entryCmds, gen, now int64) []*entityCall {
	var calls []*entityCall
	byEntity := map[string]*entityCall{}
	for ei := range obs.Entries {
		en := &obs.Entries[ei]
		k := en.EventLog.Entity + "=" + en.Key
		call := byEntity[k]
		if call == nil {
			call = &entityCall{}
			byEntity[k] = call
			calls = append(calls, call)
		}
		col := r.client.Pipeline()
		r.queue(ctx, col, obs, ei, &cmds[ei], gen)
		queued := col.Cmds()
		rec := -1
		for i, c := range queued {
			if added := cmds[ei].added; added != nil && c == redis.Cmder(added) {
				rec = len(call.cmds) + i
			}
			if slices.Contains(cmds[ei].trims, c) {
				call.trims = append(call.trims, len(call.cmds)+i)
			}
		}
		call.eis = append(call.eis, ei)
		call.records = append(call.records, rec)
		call.cmds = append(call.cmds, queued...)
	}
	prefix := appendString(nil, obs.EventID)
	// Within the window as claim reads an answer's age: now-gen < window.
	oldest := now - r.window + 1
	for _, call := range calls {
		// Every key the script touches is declared: while its slot is
		// moving between nodes Redis then refuses the call (TRYAGAIN, sent
		// again by the batcher; or ASK to the node the keys went to)
		// rather than run it where half the entity's logs are missing.
		var keys []any
		for _, ei := range call.eis {
			if k := cmds[ei].base; !slices.Contains(keys, any(k)) {
				keys = append(keys, k)
			}
		}
		args := make([]any, 0, 6+len(keys)+4*len(call.cmds))
		args = append(args, "evalsha", entityScriptSHA, len(keys))
		args = append(args, keys...)
		args = append(args, prefix, oldest)
		recs := map[int]bool{}
		for _, i := range call.records {
			recs[i] = true
		}
		for i, c := range call.cmds {
			words := c.Args()
			switch {
			case recs[i]:
				args = append(args, -len(words))
			case slices.Contains(call.trims, i):
				args = append(args, "t"+strconv.Itoa(len(words)))
			default:
				args = append(args, len(words))
			}
			args = append(args, words...)
		}
		call.sc = redis.NewSliceCmd(context.Background(), args...)
	}
	return calls
}

// entityReplies fills the commands of calls from their replies (the
// calls sent again as EVAL, within ctx, where a node lacked the script).
// An entry whose event was found recorded already takes that record as
// its own: it is left out of what the entry reads, as its own would be.
func (r *Store) entityReplies(ctx context.Context, calls []*entityCall, cmds []entryCmds) error {
	var again []redis.Cmder
	for _, call := range calls {
		if isNoScript(call.sc.Err()) {
			args := slices.Clone(call.sc.Args())
			args[0], args[1] = "eval", entityScript
			call.sc = redis.NewSliceCmd(ctx, args...)
			again = append(again, call.sc)
		}
	}
	if len(again) > 0 {
		if err := r.send(ctx, false, again...); err != nil {
			return err
		}
	}
	for _, call := range calls {
		reply, err := call.sc.Result()
		if err != nil {
			return err
		}
		if len(reply) != len(call.cmds) {
			return fmt.Errorf("entity script: %d replies for %d commands", len(reply), len(call.cmds))
		}
		for k, ei := range call.eis {
			if i := call.records[k]; i >= 0 {
				if m, ok := reply[i].(string); ok {
					cmds[ei].member = m
					reply[i] = int64(0) // nothing added
				}
			}
		}
		for i, c := range call.cmds {
			if err := fill(c, reply[i]); err != nil {
				return fmt.Errorf("%s: %w", c.Name(), err)
			}
		}
	}
	return nil
}
