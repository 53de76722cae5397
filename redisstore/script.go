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
