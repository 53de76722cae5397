package redisstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/riskd/riskd/features"
	"github.com/riskd/riskd/internal/redisconn"
)

// DefaultPrefix starts every key riskd writes. The key layout's
// version follows it ("riskd:v2:"), so a new layout never reads an old
// one's keys: they expire on their own.
const DefaultPrefix = "riskd:"

const layoutVersion = "v2:"

// claimLease is how long an instance may take to answer an event id it
// claimed before another may take the claim over: past it the claimer is
// presumed dead. The claim keeps the generation its records are written
// with, so the one that takes over writes the very same members and
// nothing is counted twice.
const claimLease = 3 * time.Second

// An id key holds a claim ('p', generation, deadline) or the first answer
// ('a', when given, values).
const (
	claimMark  = 'p'
	answerMark = 'a'
)

// Options configure a Redis store.
type Options struct {
	features.Options
	// Conn says how to reach Redis as riskd's flags do: URLs, Sentinel,
	// TLS, credentials. Without it, Addrs: one address for a standalone
	// server, several for a Cluster.
	Conn  *redisconn.Conn
	Addrs []string
	// Prefix starts every key. Default DefaultPrefix.
	Prefix string
	// PoolSize is the connection pool size per node; 0: go-redis's default
	// (10 per CPU).
	PoolSize int
	// Now is the store's clock, which ages answers. Default time.Now;
	// tests replaying history pass its event time.
	Now func() time.Time
	// OnHistoryLost, if set, is called (from the store's own goroutine)
	// when a node is found to have lost its data: its epoch marker
	// vanished or changed. Checked every EpochEvery (default 5s).
	OnHistoryLost func(node string)
	EpochEvery    time.Duration
	// RecordTimeout bounds what the store writes after an event's answer
	// (its answer kept for retries), tried again until then: the store's
	// own deadline, not the request's. Default DefaultRecordTimeout.
	RecordTimeout time.Duration
	// OnError, if set, is told of every failed write made after an
	// answer (from the store's own goroutines): nothing fails silently.
	OnError func(error)
	// Backlog and BacklogBytes bound the events kept while Redis does
	// not answer (past RecordTimeout), recorded in timestamp order when
	// it does. Defaults DefaultBacklog and DefaultBacklogBytes.
	Backlog      int
	BacklogBytes int64
	// Registerer receives the store's metric
	// riskd_redis_history_lost_total, counted when OnHistoryLost is
	// called; nil registers nothing.
	Registerer prometheus.Registerer
	// HotFrom is how many records in its horizon make a log worth
	// mirroring in process (see hotLog). Default DefaultHotFrom; tests
	// set 1 to hold mirrors to the oracle on every log.
	HotFrom int
}

// Store keeps feature history in Redis (a standalone server or a Cluster)
// so several riskd instances share it and it survives their restarts.
// Every event is native commands (on a standalone server run by one small
// script, see recordScript), and the features are computed here by the
// same code as the memory store's.
//
// Keys, all with a time to live:
//
//	<prefix>v2:{<entity>=<key>}:w:<types>      ZSET of records: score ts, member id+generation+ts+fields
//	<prefix>v2:{<entity>=<key>}:s:<types>:<r>  ZSET of the latest sightings: score ts, member id+generation;
//	                                           and the run's first, member "f", score 2^52+ts
//	<prefix>v2:id:<event id>                   the event's first answer (or a claim on it)
//	<prefix>v2:dec:<event id>                  what that answer decided (KeepDecision)
//
// On a standalone server a new event is one round trip: claim its id
// (SET NX GET) and, the id being new, record and read the event's logs,
// in one script call shared with other events' (see batcher). On a
// Cluster it is two: the claim, then one MULTI/EXEC per entity, to its
// node, in parallel. A retry finds its answer where it would claim and
// writes nothing. The answer is kept (SET PX) after it is given (see
// writer). An entity's keys share a Cluster hash tag, so its logs are
// read and recorded atomically: the event's own record is added first
// (ZADD NX, so a claim taken over from a dead instance adds nothing) and
// left out of what is read. What an event writes runs on the store's own
// deadline (Options.RecordTimeout), so an event whose caller gave up is
// still recorded.
type Store struct {
	client   redis.UniversalClient
	conn     *redisconn.Conn // says where client connects, without passwords
	cluster  bool
	prefix   string
	opts     features.Options
	lateness int64
	window   int64 // idempotency window, ms
	now      func() time.Time
	seed     maphash.Seed
	bufs     sync.Pool
	batch    *batcher
	epoch    *epochWatch
	hot      hotCache
	hotFrom  int
	writer   *writer
	// background finishes events whose callers gave up (finishLater).
	background    sync.WaitGroup
	recordTimeout time.Duration
	onError       func(error)
	poolSize      int // connections per node
	backlog       *backlog
	flights       flights
}

// DefaultRecordTimeout is Options.RecordTimeout's default.
const DefaultRecordTimeout = 2 * time.Second

// New returns a store on the given nodes. It does not wait for them:
// riskd starts while Redis is away and degrades until it answers.
func New(ctx context.Context, opts Options) (*Store, error) {
	conn, err := connOf(opts.Conn, opts.Addrs)
	if err != nil {
		return nil, err
	}
	opts.SetDefaults()
	if opts.RecordTimeout <= 0 {
		opts.RecordTimeout = DefaultRecordTimeout
	}
	prefix := opts.Prefix
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if strings.ContainsAny(prefix, "{}") {
		return nil, fmt.Errorf("redis: prefix %q must not contain { or }: they delimit the Cluster hash tag", prefix)
	}
	poolSize := 10 * runtime.GOMAXPROCS(0) // go-redis's default
	client := conn.NewClient(func(o *redis.UniversalOptions) {
		if opts.PoolSize > 0 {
			o.PoolSize = opts.PoolSize
		}
		if o.PoolSize > 0 {
			poolSize = o.PoolSize
		}
		// Deadlines come from the request's context (the store budget),
		// or the store's own for what outlives the request; the socket
		// timeouts (3 s by default, and they cap a context's) only bound
		// what has no deadline of its own.
		o.ContextTimeoutEnabled = true
		o.ReadTimeout = max(opts.RecordTimeout, 3*time.Second)
		o.WriteTimeout = max(opts.RecordTimeout, 3*time.Second)
		// One attempt: a retry would overrun the request's budget anyway,
		// and the engine degrades (HTTP) or retries the event (Kafka).
		o.MaxRetries = -1
	})
	_, cluster := client.(*redis.ClusterClient)
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.HotFrom <= 0 {
		opts.HotFrom = DefaultHotFrom
	}
	r := &Store{client: client, conn: conn, cluster: cluster, prefix: prefix + layoutVersion, opts: opts.Options, now: opts.Now,
		lateness: opts.Lateness.Milliseconds(), window: opts.IdempotencyWindow.Milliseconds(), seed: maphash.MakeSeed(), hotFrom: opts.HotFrom,
		recordTimeout: opts.RecordTimeout, onError: opts.OnError, poolSize: poolSize}
	r.batch = newBatcher(client, opts.RecordTimeout)
	r.writer = newWriter(client, opts.RecordTimeout, opts.OnError)
	if opts.Backlog <= 0 {
		opts.Backlog = DefaultBacklog
	}
	if opts.BacklogBytes <= 0 {
		opts.BacklogBytes = DefaultBacklogBytes
	}
	r.backlog = newBacklog(r, opts.Backlog, opts.BacklogBytes, opts.Registerer)
	if opts.OnHistoryLost != nil || opts.Registerer != nil {
		lost := prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "riskd_redis_history_lost_total",
			Help: "Times a Redis node was found to have lost its data (its epoch marker vanished or changed): features read from it started over.",
		}, []string{"node"})
		if opts.Registerer != nil {
			opts.Registerer.MustRegister(lost)
		}
		r.watchEpoch(opts.EpochEvery, func(node string) {
			lost.WithLabelValues(node).Inc()
			if opts.OnHistoryLost != nil {
				opts.OnHistoryLost(node)
			}
		})
	}
	return r, nil
}

// Ready pings every node (every master of a Cluster), and leaves each
// with warmConns open connections, so the first events after /readyz
// says ready find their connections dialled and handshaken instead of
// spending their budget on it. Its error says where riskd connects
// (without the password) and what to check.
func (r *Store) Ready(ctx context.Context) error {
	if c, ok := r.client.(*redis.ClusterClient); ok {
		return r.conn.Explain(c.ForEachShard(ctx, func(ctx context.Context, shard *redis.Client) error {
			return r.warm(ctx, shard)
		}))
	}
	return r.conn.Explain(r.warm(ctx, r.client))
}

// warmConns is how many connections Ready keeps open to each node: the
// events an instance has waiting on one node at once when it starts
// under load (each takes one per entity on that node, plus its claim).
const warmConns = 8

// warm pings c, on warmConns connections held at once when its pool
// holds fewer (at start, or after an outage closed them): each taken
// from the pool, dialled if none is idle, and all put back after. One
// after another: go-redis's dedicated connections race when they first
// connect at once.
func (r *Store) warm(ctx context.Context, c redis.UniversalClient) error {
	n := min(warmConns, r.poolSize)
	node, ok := c.(*redis.Client)
	if !ok || int(c.PoolStats().TotalConns) >= n {
		return c.Ping(ctx).Err()
	}
	var err error
	for range n {
		cn := node.Conn()
		defer cn.Close()
		if err = cn.Ping(ctx).Err(); err != nil {
			break
		}
	}
	return err
}

// connOf is conn, or else the Conn of bare addresses.
func connOf(conn *redisconn.Conn, addrs []string) (*redisconn.Conn, error) {
	if conn != nil {
		return conn, nil
	}
	c, err := redisconn.Parse(redisconn.Options{Addrs: addrs})
	if err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	return c, nil
}

// Close stops the epoch watch, sends the writes left for after answers,
// stops the batcher, then closes the connections.
func (r *Store) Close() error {
	if r.epoch != nil {
		r.epoch.stop()
	}
	// The backlog stops first (it starts recordings of its own); what
	// the recordings under way give it after is counted as dropped.
	r.backlog.close()
	r.background.Wait()
	r.writer.close()
	r.batch.close()
	return r.client.Close()
}

// send runs cmds through the batcher, but for a Cluster's transaction
// (tx), which holds one slot and goes as a round trip of its own. It
// fails when the round trip did; each command keeps its own reply or
// error.
func (r *Store) send(ctx context.Context, tx bool, cmds ...redis.Cmder) error {
	if !tx || !r.cluster {
		return r.batch.do(ctx, tx, cmds)
	}
	// A Cluster changing under an event refuses its commands for a
	// moment: TRYAGAIN while a slot is resharded, for an entity whose
	// keys are split between the two nodes until the rest follow (longer
	// than go-redis's few redirects wait); CLUSTERDOWN from a node that
	// saw the cluster fail for a few milliseconds during a manual
	// failover (go-redis gives up a transaction at once when a command
	// is refused as it is queued). Given up, the event would be lost:
	// its claim taken, nothing recorded. Refused commands ran nothing (a
	// transaction with one refused runs none), and every command the
	// store sends is safe to run twice (see batcher.run): they are sent
	// again until ctx ends.
	var err error
	backoff(ctx, func() bool {
		err = roundTrip(ctx, r.client, tx, func(pipe redis.Pipeliner) error { return pipe.BatchProcess(ctx, cmds...) })
		return err != nil || !slices.ContainsFunc(cmds, refused)
	})
	return err
}

// refused reports whether a Cluster refused c for now, without running
// it (refusedErr: its error says so): TRYAGAIN, CLUSTERDOWN, or a redirection go-redis stopped following
// (a slot moving back and forth between the two nodes of a reshard
// outlasts its few redirects).
func refused(c redis.Cmder) bool { return refusedErr(c.Err()) }

func refusedErr(err error) bool {
	_, moved := redis.IsMovedError(err)
	_, ask := redis.IsAskError(err)
	return redis.IsTryAgainError(err) || redis.IsClusterDownError(err) || moved || ask
}

// firstErr is the first error among cmds other than redis.Nil (an
// absent key, which callers read as such).
func firstErr(cmds []redis.Cmder) error {
	for _, c := range cmds {
		if err := c.Err(); err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
	}
	return nil
}

// entityKey is the common start of an entity's keys. The part in braces
// is the Cluster hash tag; a key value holding "}" ends the tag early,
// identically for all the entity's keys, so they still share a slot.
func (r *Store) entityKey(entity, key string) string {
	return r.prefix + "{" + entity + "=" + key + "}:"
}

// entryCmds are the replies one entry's commands will fill.
type entryCmds struct {
	member  string                // the event's record (windowed, recorded)
	records *redis.StringSliceCmd // windowed: members from the horizon on
	hot     *hotLog               // windowed: the mirror used, locked
	added   *redis.IntCmd         // the event's ZADD (record or sighting)
	// sighting: added is a windowless log's, which adds the run's first
	// with the sighting when the log has none.
	sighting bool
	trims    []redis.Cmder         // what goes with the record: trims, time to live
	count    *redis.IntCmd         // hot: records in the mirrored range
	oldest   *redis.ZSliceCmd      // hot: the oldest of them
	tail     *redis.StringSliceCmd // hot: members from the mirror's newest on
	all      *redis.StringSliceCmd // an old event's: every record, for when the log was last written
	base     string
	now      int64            // the store's clock for this event
	counts   []*redis.IntCmd  // windowed, count-only reads: per item
	latest   *redis.ZSliceCmd // windowless: the sightings and the run's first
}

// Observe implements Store: claim the event's id (or find its answer),
// read and record every entry, and compute the items; the answer is kept
// for retries after Observe returns (keepLater). On a standalone server a
// new id's claim, reads and records are one round trip (recordAtOnce),
// on a Cluster too (one pipeline per node). A retry within the
// idempotency window reads its answer and writes nothing (on a Cluster,
// takes back what it wrote: see acrossNodes).
func (r *Store) Observe(ctx context.Context, obs *features.Observation) error {
	err := r.observe(ctx, obs)
	if err != nil && !errors.Is(err, errRecordedLater) && !errors.Is(err, errScoredElsewhere) && unreachable(err) {
		// Neither recorded nor being recorded: Redis is away.
		r.backlog.add(obs.Clone(), err)
	}
	return err
}

// errRecordedLater: the caller gave up, and the event is recorded on the
// store's own deadline (or kept in the backlog).
var errRecordedLater = errors.New("it is recorded all the same")

// unreachable reports whether err says Redis did not answer (rather than
// refused the event): the event is worth keeping until it does.
func unreachable(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.EOF) || refusedErr(err) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET)
}

// later keeps in the backlog an event whose recording failed after its
// caller gave up, when Redis did not answer; other failures are reported.
func (r *Store) later(obs *features.Observation, err error) {
	if unreachable(err) {
		r.backlog.add(obs, err)
		return
	}
	r.fail(fmt.Errorf("redis: recording %q after its request gave up: %w", obs.EventID, err))
}

func (r *Store) observe(ctx context.Context, obs *features.Observation) error {
	now := r.now().UnixMilli()
	cmds := make([]entryCmds, len(obs.Entries))
	f := r.flights.takeOff(obs.EventID)
	defer func() {
		if f != nil && !f.handed.Load() {
			r.flights.land(f)
		}
	}()
	// What the id key held, the first round trip having found it taken;
	// what a retry recorded there that it must take back (a Cluster's).
	var undo []redis.Cmder
	done, prev, err := r.recordAtOnce(ctx, obs, cmds, now, f, &undo)
	if err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	if done {
		return nil
	}
	clear(cmds)
	gen, ans, err := r.claim(ctx, obs.EventID, now, &prev, f)
	if err != nil {
		return fmt.Errorf("redis: event %q: %w", obs.EventID, err)
	}
	if ans != nil {
		obs.Retry = true
		missing := make([]bool, len(obs.Items))
		if err := features.ApplyAnswer(ans, obs, missing); err != nil {
			return fmt.Errorf("redis: event %q: %w", obs.EventID, err)
		}
		// What the first round trip recorded is taken back before the
		// answer: the next event must not count it.
		if len(undo) > 0 {
			if err := r.send(ctx, false, undo...); err != nil {
				r.takeBack(obs.EventID, undo)
				return fmt.Errorf("redis: event %q: taking back what a retry recorded: %w", obs.EventID, err)
			}
			if err := firstErr(undo); err != nil {
				return fmt.Errorf("redis: event %q: taking back what a retry recorded: %w", obs.EventID, err)
			}
		}
		if !slices.Contains(missing, true) {
			return nil
		}
		// Features the first answer did not read (a newer policy's) are
		// read as of now, without recording anything.
		defer unlockHot(cmds)
		if err := r.exec(ctx, obs, cmds, -1, now); err != nil {
			return fmt.Errorf("redis: %w", err)
		}
		if err := r.checkHot(ctx, obs, cmds); err != nil {
			return fmt.Errorf("redis: %w", err)
		}
		_, err := r.values(obs, cmds, missing)
		return err
	}
	fixups, err := r.record(ctx, obs, cmds, gen, now)
	if err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	if err := r.keepLater(ctx, obs, fixups, now, f); err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	return nil
}

// recordAtOnce claims a new id and reads and records the event in one
// round trip, and computes its items. When the id was not new it
// returns what its key held, having recorded nothing. If ctx ends first
// the event is recorded all the same, its items computed and its answer
// kept for its retries, on the store's own deadline (finishLater).
func (r *Store) recordAtOnce(ctx context.Context, obs *features.Observation, cmds []entryCmds, now int64, f *flight, undo *[]redis.Cmder) (done bool, prev string, err error) {
	for i := range cmds {
		cmds[i].now = now
	}
	r.lockHot(obs, cmds)
	mine := string(appendNonce(appendClaim(nil, now, now+claimLease.Milliseconds())))
	var sent []redis.Cmder
	var settle settleFunc
	if r.cluster {
		sent, settle = r.acrossNodes(ctx, obs, cmds, mine, now, f, undo)
	} else {
		sent, settle = r.inOneScript(ctx, obs, cmds, mine, now)
	}
	j, err := r.batch.start(ctx, false, sent)
	if err != nil {
		unlockHot(cmds)
		return false, "", err
	}
	select {
	case <-j.done:
	case <-ctx.Done():
		if f != nil {
			f.handed.Store(true)
		}
		r.finishLater(obs.Clone(), cmds, j, settle, now, f, undo)
		return false, "", fmt.Errorf("event %q: %w (%w)", obs.EventID, ctx.Err(), errRecordedLater)
	}
	defer unlockHot(cmds)
	return r.finish(ctx, obs, cmds, j, settle, now, f)
}

// settleFunc reads the replies of recordAtOnce's round trip (within
// ctx, for what must be sent again) for the event id: whether the id was
// this call's, and if not what its key held. id is passed, not kept: the
// caller's observation's aliases a buffer reused once Observe returns.
type settleFunc func(ctx context.Context, id string) (ours bool, prev string, err error)

// inOneScript is a standalone server's recordAtOnce: one recordScript
// call, which records only when the id is new.
func (r *Store) inOneScript(ctx context.Context, obs *features.Observation, cmds []entryCmds, mine string, now int64) ([]redis.Cmder, settleFunc) {
	col := r.client.Pipeline()
	for ei := range obs.Entries {
		r.queue(ctx, col, obs, ei, &cmds[ei], now)
	}
	queued := col.Cmds()
	sc := r.recordCmd(obs.EventID, mine, queued)
	return []redis.Cmder{sc}, func(ctx context.Context, _ string) (bool, string, error) { return r.recorded(ctx, sc, queued) }
}

// acrossNodes is a Cluster's recordAtOnce: the claim and one
// entityScript call per entity, sent together (one pipeline per node),
// each recording only what its log lacks of the event. When the id was
// already answered, by a scoring that began long enough before this call
// that its scripts ran before this one's, what this one recorded all
// the same (in a log the first scoring did not record in: a newer
// policy's, one trimmed since, an id reused for another event) is to be
// taken back (undo), as a retry records nothing. Otherwise it is kept:
// the other call may have found it and counted it as its own.
func (r *Store) acrossNodes(ctx context.Context, obs *features.Observation, cmds []entryCmds, mine string, now int64, f *flight, undo *[]redis.Cmder) ([]redis.Cmder, settleFunc) {
	claim := redis.NewStringCmd(context.Background(), "set", r.idKey(obs.EventID), mine, "px", r.window, "nx", "get")
	calls := r.entityCalls(ctx, obs, cmds, now, now)
	sent := make([]redis.Cmder, 0, 1+len(calls))
	sent = append(sent, claim)
	for _, call := range calls {
		sent = append(sent, call.sc)
	}
	return sent, func(ctx context.Context, id string) (bool, string, error) {
		prev, err := claim.Result()
		switch {
		case errors.Is(err, redis.Nil):
			prev = mine
		case err != nil:
			return false, "", fmt.Errorf("claiming its id: %w", err)
		}
		if err := r.entityReplies(ctx, calls, cmds); err != nil {
			return false, "", err
		}
		if prev == mine {
			return true, "", nil
		}
		// What was recorded is the event's whoever's the id turns out to
		// be: only a retry takes it back (undo), and only when its first
		// scoring began so long before that its scripts had run before
		// this call's: otherwise it may have found this call's record
		// and counted it as its own. Where the id is this call's to take,
		// it is taken here: recording again in a second round trip would
		// read the logs after this one's trims.
		kind, a, b, _, perr := parseIDValue(prev)
		switch {
		case perr == nil && kind == answerMark && now-a < r.window:
			if now-a >= max(claimLease, r.recordTimeout).Milliseconds() {
				*undo = undoCmds(cmds)
			}
			return false, prev, nil
		case perr != nil, kind == answerMark:
			// Unreadable, or answered longer ago than the window: new
			// again.
			ok, err := r.replace(ctx, r.idKey(id), prev, mine)
			return ok, prev, err
		case now >= b && r.flights.other(id, f) == nil:
			// The claimer is presumed dead (it is not this process):
			// what it recorded was found, not recorded twice.
			ok, err := r.replace(ctx, r.idKey(id), prev, string(appendClaim(nil, a, now+claimLease.Milliseconds())))
			return ok, prev, err
		}
		return false, prev, nil
	}
}

// undoCmds remove what entityCalls added for an event: its records,
// and a run's first sighting it wrote with its own. A retry adds a
// record where its first scoring's was trimmed since (its sighting
// pushed out of the latest kept, its record past the log's horizon),
// where a newer policy added a log, or for an id reused for another
// body: rare, and taken back before the retry's answer, in a second
// round trip.
func undoCmds(cmds []entryCmds) []redis.Cmder {
	var undo []redis.Cmder
	for ei := range cmds {
		c := &cmds[ei]
		if c.added == nil || c.added.Val() == 0 {
			continue
		}
		members := []any{c.member}
		if c.sighting && c.added.Val() == 2 {
			members = append(members, firstMember)
		}
		undo = append(undo, redis.NewIntCmd(context.Background(), append([]any{"zrem", c.base}, members...)...))
	}
	return undo
}

// takeBack sends undo after the answer, with the answers kept: for a
// caller that gave up, or a round trip that failed.
func (r *Store) takeBack(id string, undo []redis.Cmder) {
	if len(undo) > 0 {
		r.writer.later(undo, "taking back what a retry of "+strconv.Quote(id)+" recorded", nil)
	}
}

// finish computes the items once the round trip is answered, and leaves
// the answer to keep.
func (r *Store) finish(ctx context.Context, obs *features.Observation, cmds []entryCmds, j *batchJob, settle settleFunc, now int64, f *flight) (bool, string, error) {
	if j.err != nil {
		return false, "", j.err
	}
	ours, prev, err := settle(ctx, obs.EventID)
	if err != nil || !ours {
		return false, prev, err
	}
	if err := r.checkHot(ctx, obs, cmds); err != nil {
		return false, "", err
	}
	fixups, err := r.values(obs, cmds, nil)
	if err != nil {
		return false, "", err
	}
	return true, "", r.keepLater(ctx, obs, fixups, now, f)
}

// finishLater finishes, on the store's own deadline, an event whose
// caller gave up while its round trip was under way: obs is the
// caller's observation copied, cmds's mirrors stay locked until then. An
// id found taken is left to its owner.
func (r *Store) finishLater(obs *features.Observation, cmds []entryCmds, j *batchJob, settle settleFunc, now int64, f *flight, undo *[]redis.Cmder) {
	r.background.Add(1)
	go func() {
		defer r.background.Done()
		defer unlockHot(cmds)
		ctx, cancel := context.WithTimeout(context.Background(), r.recordTimeout)
		defer cancel()
		select {
		case <-j.done:
		case <-ctx.Done():
			r.flights.land(f)
			r.later(obs, ctx.Err())
			return
		}
		ours, _, err := r.finish(ctx, obs, cmds, j, settle, now, f)
		if !ours || err != nil {
			r.flights.land(f)
		}
		r.takeBack(obs.EventID, *undo)
		if err != nil {
			r.later(obs, err)
		}
	}()
}

// fail reports an error of the store's own goroutines.
func (r *Store) fail(err error) {
	if r.onError != nil {
		r.onError(err)
	}
}

// keepLater keeps the event's answer for its retries after the answer:
// batched with other events' writes, on the store's own deadline. Until
// it is kept a retry finds the claim and waits for it (claim). A run's
// start that moves, and the removal of what an expired log held, are
// written first, before the answer: the key's next event must see them.
func (r *Store) keepLater(ctx context.Context, obs *features.Observation, fixups []fixup, now int64, f *flight) error {
	if len(fixups) > 0 {
		col := r.client.Pipeline()
		for _, f := range fixups {
			en := &obs.Entries[f.entry]
			key := r.entityKey(en.EventLog.Entity, en.Key) + en.EventLog.Name
			if len(f.stale) > 0 {
				members := make([]any, len(f.stale))
				for i, m := range f.stale {
					members[i] = m
				}
				col.ZRem(ctx, key, members...)
				continue
			}
			if f.revive {
				// The log was past keeping: what it held before this
				// event is gone, as the memory store starts such a log
				// over.
				col.ZRemRangeByScore(ctx, key, "-inf", "("+strconv.FormatInt(obs.TS, 10))
			}
			// XX: never create a key (and one without a TTL) that
			// expired meanwhile.
			args := redis.ZAddArgs{XX: true, LT: f.lower, Members: []redis.Z{{Score: firstOffset + float64(obs.TS), Member: firstMember}}}
			col.ZAddArgs(ctx, key, args)
		}
		sent := col.Cmds()
		err := r.send(ctx, false, sent...)
		if err == nil {
			err = firstErr(sent)
		}
		if err != nil {
			return fmt.Errorf("moving the start of a run or clearing an expired log: %w", err)
		}
	}
	buf, _ := r.bufs.Get().(*[]byte)
	if buf == nil {
		buf = new([]byte)
	}
	*buf = features.AppendAnswer(binary.AppendVarint(append((*buf)[:0], answerMark), now), obs)
	set := redis.NewStatusCmd(context.Background(), "set", r.idKey(obs.EventID), string(*buf), "px", r.opts.IdempotencyWindow.Milliseconds())
	r.bufs.Put(buf)
	var landed func()
	if f != nil {
		f.handed.Store(true)
		landed = func() { r.flights.land(f) }
	}
	r.writer.later([]redis.Cmder{set}, "keeping the answer of "+strconv.Quote(obs.EventID), landed)
	return nil
}

// record reads and records the event's entries and computes its items.
func (r *Store) record(ctx context.Context, obs *features.Observation, cmds []entryCmds, gen, now int64) ([]fixup, error) {
	defer unlockHot(cmds)
	if err := r.exec(ctx, obs, cmds, gen, now); err != nil {
		return nil, err
	}
	if err := r.checkHot(ctx, obs, cmds); err != nil {
		return nil, err
	}
	return r.values(obs, cmds, nil)
}

// claim makes the id this call's to score, with the generation its
// records carry, or returns the id's answer. A claim another instance
// holds is waited for until it is answered or its lease runs out.
// known, if not nil, is what the id key was just found to hold, so the
// first attempt is not sent again.
func (r *Store) claim(ctx context.Context, id string, now int64, known *string, own *flight) (gen int64, ans []byte, err error) {
	key := r.idKey(id)
	wait := 500 * time.Microsecond
	for {
		mine := string(appendNonce(appendClaim(nil, now, now+claimLease.Milliseconds())))
		var prev string
		if known != nil {
			prev, known = *known, nil
		} else {
			cmd := redis.NewStringCmd(ctx, "set", key, mine, "px", r.opts.IdempotencyWindow.Milliseconds(), "nx", "get")
			if err := r.send(ctx, false, cmd); err != nil {
				return 0, nil, fmt.Errorf("claiming its id: %w", err)
			}
			var err error
			prev, err = cmd.Result()
			switch {
			case errors.Is(err, redis.Nil):
				return now, nil, nil // ours: SET NX wrote the claim
			case err != nil:
				return 0, nil, fmt.Errorf("claiming its id: %w", err)
			}
		}
		kind, a, b, ans, perr := parseIDValue(prev)
		if o := r.flights.other(id, own); o != nil && perr == nil && kind == claimMark && prev != mine {
			// Scored by this very process: alive, whatever its lease
			// says. Its answer is kept when it lands.
			select {
			case <-ctx.Done():
				return 0, nil, fmt.Errorf("%w: %w", errScoredElsewhere, ctx.Err())
			case <-o.done:
			}
			now = r.now().UnixMilli()
			continue
		}
		switch {
		case prev == mine:
			return now, nil, nil // ours: the claim was sent again after a failed round trip
		case perr == nil && kind == answerMark && now-a < r.window:
			return 0, ans, nil
		case perr != nil, kind == answerMark:
			// Unreadable, or answered longer ago than the window (and not
			// yet expired by Redis's own clock): the id is new again.
			if ok, err := r.replace(ctx, key, prev, mine); err != nil || ok {
				return now, nil, err
			}
			// Someone else replaced it first: look again.
		case now >= b:
			// The claimer is presumed dead: take over its generation, so
			// what it may have written is written again, not twice.
			take := string(appendClaim(nil, a, now+claimLease.Milliseconds()))
			if ok, err := r.replace(ctx, key, prev, take); err != nil || ok {
				return a, nil, err
			}
		default:
			// Another instance is scoring it: wait for its answer.
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return 0, nil, fmt.Errorf("%w: %w", errScoredElsewhere, ctx.Err())
			case <-t.C:
			}
			wait = min(2*wait, 10*time.Millisecond)
		}
		now = r.now().UnixMilli()
	}
}

// errScoredElsewhere: the id is claimed by a call still scoring it (here
// or on another instance), which records it; its answer was not kept in
// time.
var errScoredElsewhere = errors.New("another call is scoring it")

// replace sets key to next if it still holds prev (WATCH/MULTI: a
// compare-and-set), and reports whether it did.
func (r *Store) replace(ctx context.Context, key, prev, next string) (bool, error) {
	err := r.client.Watch(ctx, func(tx *redis.Tx) error {
		cur, err := tx.Get(ctx, key).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
		if cur != prev {
			return redis.TxFailedErr
		}
		_, err = tx.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
			pipe.Set(ctx, key, next, r.opts.IdempotencyWindow)
			return nil
		})
		return err
	}, key)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, redis.TxFailedErr):
		return false, nil
	}
	return false, fmt.Errorf("claiming its id: %w", err)
}

// appendNonce makes a claim this call's alone: another instance claiming
// in the same millisecond writes other bytes, so claimAndRecord, finding
// its very claim, knows it as its own (a round trip sent again).
func appendNonce(dst []byte) []byte {
	return binary.LittleEndian.AppendUint64(dst, rand.Uint64())
}

func appendClaim(dst []byte, gen, deadline int64) []byte {
	dst = append(dst, claimMark)
	dst = binary.AppendVarint(dst, gen)
	return binary.AppendVarint(dst, deadline)
}

// parseIDValue reads an id key: a claim (generation a, deadline b) or an
// answer (given at a, values ans).
func parseIDValue(v string) (kind byte, a, b int64, ans []byte, err error) {
	if len(v) == 0 || (v[0] != claimMark && v[0] != answerMark) {
		return 0, 0, 0, nil, errors.New("unexpected value in its id key")
	}
	buf := []byte(v[1:])
	a, k := binary.Varint(buf)
	if k <= 0 {
		return 0, 0, 0, nil, features.ErrBadAnswer
	}
	buf = buf[k:]
	if v[0] == answerMark {
		return answerMark, a, 0, buf, nil
	}
	b, k = binary.Varint(buf)
	if k <= 0 {
		return 0, 0, 0, nil, features.ErrBadAnswer
	}
	return claimMark, a, b, nil, nil
}

func (r *Store) idKey(id string) string { return r.prefix + "id:" + id }

func (r *Store) decisionKey(id string) string { return r.prefix + "dec:" + id }

// KeepDecision implements Store: SET PX beside the answer, sent by the
// writer after the answer as the answer is. The value is the store's
// clock when kept (a varint, as the answer's) and dec: the decision ages
// on the store's clock as its answer does.
func (r *Store) KeepDecision(id string, dec []byte) {
	dec = dec[:min(len(dec), features.MaxDecisionBytes)]
	v := append(binary.AppendVarint(make([]byte, 0, binary.MaxVarintLen64+len(dec)), r.now().UnixMilli()), dec...)
	set := redis.NewStatusCmd(context.Background(), "set", r.decisionKey(id), v, "px", r.opts.IdempotencyWindow.Milliseconds())
	r.writer.later([]redis.Cmder{set}, "keeping the decision of "+strconv.Quote(id), nil)
}

// Decision implements Store: one GET.
func (r *Store) Decision(ctx context.Context, id string) ([]byte, error) {
	v, err := r.client.Get(ctx, r.decisionKey(id)).Bytes()
	switch {
	case errors.Is(err, redis.Nil):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("redis: reading the decision of %q: %w", id, err)
	}
	at, k := binary.Varint(v)
	if k <= 0 {
		return nil, fmt.Errorf("redis: reading the decision of %q: %w", id, features.ErrBadAnswer)
	}
	if r.now().UnixMilli()-at >= r.window {
		return nil, nil
	}
	return v[k:], nil
}

// exec sends every entry's transaction and waits for them. gen < 0
// reads without recording.
func (r *Store) exec(ctx context.Context, obs *features.Observation, cmds []entryCmds, gen, now int64) error {
	for i := range cmds {
		cmds[i].now = now
	}
	r.lockHot(obs, cmds)
	if !r.cluster {
		col := r.client.Pipeline()
		for ei := range obs.Entries {
			r.queue(ctx, col, obs, ei, &cmds[ei], gen)
		}
		all := col.Cmds()
		if err := r.send(ctx, true, all...); err != nil {
			return err
		}
		return firstErr(all)
	}
	if gen >= 0 {
		// Recording: one entityScript call per entity, each node's in one
		// pipeline shared with other events'.
		calls := r.entityCalls(ctx, obs, cmds, gen, now)
		scs := make([]redis.Cmder, len(calls))
		for i, call := range calls {
			scs[i] = call.sc
		}
		if err := r.send(ctx, false, scs...); err != nil {
			return err
		}
		return r.entityReplies(ctx, calls, cmds)
	}
	// Reading: a Cluster transaction holds one slot: one per entity, in
	// parallel.
	groups := map[string][]int{}
	for ei := range obs.Entries {
		en := &obs.Entries[ei]
		k := en.EventLog.Entity + "=" + en.Key
		groups[k] = append(groups[k], ei)
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(groups))
	for _, eis := range groups {
		col := r.client.Pipeline()
		for _, ei := range eis {
			r.queue(ctx, col, obs, ei, &cmds[ei], gen)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			all := col.Cmds()
			err := r.send(ctx, true, all...)
			if err == nil {
				err = firstErr(all)
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// rangeRead reports whether entry ei's reads need its records, not
// only counts.
func rangeRead(obs *features.Observation, ei int) bool {
	for i := range obs.Items {
		if it := &obs.Items[i]; it.Entry == ei && it.Feature.Kind != features.Count {
			return true
		}
	}
	return false
}

// lockHot finds the mirrors of the entries that read records and locks
// them. A mirror that does not reach back to the event's horizon is not
// used, nor one another event holds.
func (r *Store) lockHot(obs *features.Observation, cmds []entryCmds) {
	var hot []int
	for ei := range obs.Entries {
		en := &obs.Entries[ei]
		cmds[ei].base = r.entityKey(en.EventLog.Entity, en.Key) + en.EventLog.Name
		if en.EventLog.Windowless || !rangeRead(obs, ei) {
			continue
		}
		if h := r.hot.lookup(cmds[ei].base); h != nil {
			cmds[ei].hot = h
			hot = append(hot, ei)
		}
	}
	for _, ei := range hot {
		c := &cmds[ei]
		// A mirror another event is using is not waited for (that
		// would be a round trip, past this event's budget): read whole.
		if !c.hot.mu.TryLock() {
			c.hot = nil
			continue
		}
		l := obs.Entries[ei].EventLog
		if c.hot.log != l || l.ReadFrom(obs.TS) < c.hot.from || r.old(obs, c) {
			c.hot.mu.Unlock()
			c.hot = nil
		}
	}
}

// old reports whether the event is so far behind the store's clock that
// a log it reads may be past keeping (expired): only then must the log's
// newest record be asked for, to leave an expired log out as the memory
// store does (and as Redis would once the key's TTL ran out).
func (r *Store) old(obs *features.Observation, c *entryCmds) bool {
	return obs.TS < c.now-r.lateness-features.TTLMargin.Milliseconds()
}

// unlockHot releases what lockHot locked.
func unlockHot(cmds []entryCmds) {
	for i := range cmds {
		if cmds[i].hot != nil {
			cmds[i].hot.mu.Unlock()
			cmds[i].hot = nil
		}
	}
}

// checkHot verifies each mirror against its ZCOUNT; a stale one is
// dropped and its log read whole in a second round trip.
func (r *Store) checkHot(ctx context.Context, obs *features.Observation, cmds []entryCmds) error {
	var stale []redis.Cmder
	for ei := range cmds {
		c := &cmds[ei]
		if c.hot == nil {
			continue
		}
		want := int64(c.hot.count())
		if c.added != nil && c.added.Val() == 1 && obs.TS <= c.hot.newest {
			want++ // the event's own record, in the mirrored range
		}
		// Redis only ever removes a log's oldest records (trims) or all
		// of it (expiry): the same count and the same oldest time prove
		// nothing was added and removed in between.
		oldest := c.oldest.Val()
		same := c.count.Val() == want
		if live := c.hot.all.Live(); same && len(live) > 0 {
			first := live[0].Pos.TS
			if c.added != nil && c.added.Val() == 1 {
				first = min(first, obs.TS)
			}
			same = len(oldest) > 0 && int64(oldest[0].Score) == first
		}
		if same {
			continue
		}
		r.hot.drop(c.base, c.hot)
		c.hot.mu.Unlock()
		c.hot = nil
		c.records = redis.NewStringSliceCmd(ctx, "zrangebyscore", c.base, "("+strconv.FormatInt(obs.Entries[ei].EventLog.ReadFrom(obs.TS), 10), "+inf")
		stale = append(stale, c.records)
	}
	if len(stale) == 0 {
		return nil
	}
	if err := r.send(ctx, false, stale...); err != nil {
		return err
	}
	return firstErr(stale)
}

// queue adds entry ei's commands: its record first, then its reads, then
// its trims and times to live.
func (r *Store) queue(ctx context.Context, pipe redis.Pipeliner, obs *features.Observation, ei int, c *entryCmds, gen int64) {
	en := &obs.Entries[ei]
	record := en.Record && gen >= 0
	l := en.EventLog
	base := c.base
	ts := strconv.FormatInt(obs.TS, 10)
	reads := false
	for i := range obs.Items {
		reads = reads || obs.Items[i].Entry == ei
	}
	if l.Windowless {
		// The latest sightings, and the run's first one under a score
		// above any time (firstOffset), so trimming by rank keeps it.
		if record {
			// One ZADD NX for the sighting and, when the key has none
			// (a new key or a new run), the run's first.
			c.member = sightingMember(obs.EventID, gen)
			zs := []redis.Z{{Score: float64(obs.TS), Member: c.member}}
			if l.First {
				zs = append(zs, redis.Z{Score: firstOffset + float64(obs.TS), Member: firstMember})
			}
			c.added, c.sighting = pipe.ZAddNX(ctx, base, zs...), true
		}
		if reads || (record && l.First) {
			c.latest = pipe.ZRangeWithScores(ctx, base, 0, -1)
		}
		if record {
			keep := features.SightingsKept
			if l.First {
				keep++
			}
			c.trims = append(c.trims[:0], pipe.ZRemRangeByRank(ctx, base, 0, int64(-keep-1)),
				pipe.PExpire(ctx, base, l.Horizon+r.opts.Lateness+features.TTLMargin))
		}
		return
	}
	if record {
		c.member = appendRecord(nil, obs, ei, gen)
		c.added = pipe.ZAddNX(ctx, base, redis.Z{Score: float64(obs.TS), Member: c.member})
	}
	if reads && r.old(obs, c) {
		c.all = pipe.ZRange(ctx, base, 0, -1)
	}
	switch {
	case !reads:
	case c.hot != nil:
		from := "(" + strconv.FormatInt(c.hot.from, 10)
		c.count = pipe.ZCount(ctx, base, from, strconv.FormatInt(c.hot.newest, 10))
		c.oldest = pipe.ZRangeByScoreWithScores(ctx, base, &redis.ZRangeBy{Min: from, Max: "+inf", Count: 1})
		c.tail = pipe.ZRangeByScore(ctx, base, &redis.ZRangeBy{Min: strconv.FormatInt(c.hot.newest, 10), Max: "+inf"})
	case rangeRead(obs, ei):
		// From the horizon on, newer records too: what a mirror starts from.
		c.records = pipe.ZRangeByScore(ctx, base, &redis.ZRangeBy{Min: "(" + strconv.FormatInt(l.ReadFrom(obs.TS), 10), Max: "+inf"})
	default:
		c.counts = make([]*redis.IntCmd, len(obs.Items))
		for i := range obs.Items {
			if it := &obs.Items[i]; it.Entry == ei {
				c.counts[i] = pipe.ZCount(ctx, base, "("+strconv.FormatInt(it.Feature.WindowFrom(obs.TS), 10), ts)
			}
		}
	}
	if record {
		// What no event within the lateness allowance can see: the
		// memory store trims the same (features.EventLog.TrimTo), so when
		// this runs changes no answer.
		c.trims = append(c.trims[:0], pipe.ZRemRangeByScore(ctx, base, "-inf", strconv.FormatInt(l.TrimTo(obs.TS, r.lateness), 10)),
			pipe.PExpire(ctx, base, l.Horizon+r.opts.Lateness+features.TTLMargin))
	}
}

// fixup moves a windowless log's run start to the event: it starts a new
// run, or (lower) extends the run back. For a windowed log, it removes
// the records (stale) of a log the event found past keeping and recorded
// into.
type fixup struct {
	entry  int
	lower  bool
	revive bool     // the log was past keeping: clear its older sightings
	stale  []string // windowed: the log's records from before it expired
}

// values computes the items (those marked in only, if not nil) from the
// replies and returns the entries whose run's first sighting must move.
func (r *Store) values(obs *features.Observation, cmds []entryCmds, only []bool) ([]fixup, error) {
	var fixups []fixup
	var sc scratch
	for ei := range obs.Entries {
		if obs.Entries[ei].EventLog.Windowless {
			f, move, err := r.sightingValues(obs, ei, &cmds[ei], only, &sc)
			if err != nil {
				return nil, err
			}
			if move {
				fixups = append(fixups, f)
			}
			continue
		}
		stale, err := r.windowValues(obs, ei, &cmds[ei], only, &sc)
		if err != nil {
			return nil, err
		}
		if len(stale) > 0 {
			fixups = append(fixups, fixup{entry: ei, stale: stale})
		}
	}
	return fixups, nil
}

// scratch is what values reuses from one entry to the next.
type scratch struct {
	points []features.Point
	recs   []record
}

// at is the event's position among the records read: after every record
// of its millisecond, since its own is left out of what is read.
func at(obs *features.Observation) features.Position {
	return features.Position{TS: obs.TS, Seq: 1}
}

// setItems gives entry ei's items (those marked in only) their value.
func setItems(obs *features.Observation, ei int, only []bool, value func(f *features.Feature) features.Value) {
	for i := range obs.Items {
		if it := &obs.Items[i]; it.Entry == ei && (only == nil || only[i]) {
			it.Value = value(it.Feature)
		}
	}
}

// sightingValues computes a windowless entry's items from the key's
// latest sightings and the start of its run, as the memory store does
// from its history, and says whether (and how) the run's start moves.
func (r *Store) sightingValues(obs *features.Observation, ei int, c *entryCmds, only []bool, sc *scratch) (fixup, bool, error) {
	l, p := obs.Entries[ei].EventLog, at(obs)
	retention := l.Horizon.Milliseconds()
	var pred, first features.Position
	hasPred, hasFirst, gone := false, false, false
	if c.latest != nil {
		zs, err := c.latest.Result()
		if err != nil {
			return fixup{}, false, err
		}
		// The sightings other than the event's own, in score order, and
		// when the log was last written (the newest generation).
		sc.points = sc.points[:0]
		written := int64(math.MinInt64)
		for _, z := range zs {
			m, _ := z.Member.(string)
			switch m {
			case firstMember:
				first, hasFirst = features.Position{TS: int64(z.Score - firstOffset)}, true
			case c.member:
			default:
				sc.points = append(sc.points, features.Point{Pos: features.Position{TS: int64(z.Score)}})
				if gen, err := recordGen(m); err == nil {
					written = max(written, gen)
				}
			}
		}
		pred, hasPred = features.LatestBefore(sc.points, p)
		others := len(sc.points) > 0
		if c.member != "" && !others && first.TS == obs.TS {
			// The key's only sighting is this event's: the first it
			// shows was just written with it.
			hasFirst = false
		}
		if others && l.Expired(written, c.now, r.lateness) {
			hasPred, hasFirst = false, false // past keeping: as if gone
			gone = true
		}
	}
	setItems(obs, ei, only, func(f *features.Feature) features.Value {
		return features.SightingValue(f.Kind, p, pred, hasPred, first, hasFirst, retention)
	})
	switch {
	case c.member == "" || !l.First:
	case gone:
		return fixup{entry: ei, revive: true}, true, nil // the run starts over here
	case hasFirst && features.StartsRun(p, pred, hasPred, first, hasFirst, retention):
		// Earlier than the start: only ever lower it (LT), so concurrent
		// late events settle on the earliest.
		return fixup{entry: ei, lower: p.Before(first)}, true, nil
	}
	return fixup{}, false, nil
}

// windowValues computes a windowed entry's items from what was read: a
// count per item, the mirror, or the log's records from the horizon on.
// It returns the records to remove from a log past keeping that the
// event recorded into (see expired).
func (r *Store) windowValues(obs *features.Observation, ei int, c *entryCmds, only []bool, sc *scratch) ([]string, error) {
	l := obs.Entries[ei].EventLog
	if c.all != nil {
		expired, err := r.expired(l, c)
		if err != nil {
			return nil, err
		}
		if expired {
			// Past keeping: as if gone, whatever Redis holds.
			setItems(obs, ei, only, func(f *features.Feature) features.Value { return features.Aggregate(f.Kind, nil) })
			if c.member == "" {
				return nil, nil
			}
			// Recorded into, the log starts over with the event's record,
			// as the memory store's does: what it held before is gone.
			// Left there, it would be read as the log's again, the new
			// record's generation making the log look written since.
			var stale []string
			for _, m := range c.all.Val() {
				if m != c.member {
					stale = append(stale, m)
				}
			}
			return stale, nil
		}
	}
	switch {
	case c.counts != nil:
		own := int64(0)
		if c.member != "" {
			own = 1 // the event's own record, added before the reads
		}
		for i, cmd := range c.counts {
			if cmd == nil || (only != nil && !only[i]) {
				continue
			}
			n, err := cmd.Result()
			if err != nil {
				return nil, err
			}
			obs.Items[i].Value = features.Value{Valid: true, Num: float64(n - own)}
		}
		return nil, nil
	case c.hot != nil:
		return nil, r.hotValues(obs, ei, c, only)
	case c.records == nil:
		return nil, nil
	}
	members, err := c.records.Result()
	if err != nil {
		return nil, err
	}
	sc.recs = sc.recs[:0]
	for _, m := range members {
		if m == c.member {
			continue
		}
		rec, err := parseRecord(m)
		if err != nil {
			continue // not one of ours, or damaged: it cannot be counted
		}
		sc.recs = append(sc.recs, rec) // in score order: by time
	}
	p := at(obs)
	setItems(obs, ei, only, func(f *features.Feature) features.Value {
		sc.points = sc.points[:0]
		for _, rec := range sc.recs {
			if e, ok := rec.entry(f, features.Position{TS: rec.ts}, r.seed); ok {
				sc.points = append(sc.points, e)
			}
		}
		return features.Window(f.Kind, sc.points, p, f.WindowFrom(obs.TS))
	})
	if len(members) >= r.hotFrom && only == nil {
		// Busy: mirror it for the next events.
		h := newHotLog(c.base, l, l.ReadFrom(obs.TS), r.opts.RunningFrom)
		ok := true
		for _, m := range members {
			ok = ok && h.add(m, r.seed) == nil
		}
		if ok { // a damaged record: no mirror, read it whole
			r.hot.add(c.base, h)
		}
	}
	return nil, nil
}

// expired reports whether the log an old event reads (c.all: its every
// record) is past keeping, by its newest record's generation.
func (r *Store) expired(l *features.EventLog, c *entryCmds) (bool, error) {
	members, err := c.all.Result()
	if err != nil {
		return false, err
	}
	written, any := int64(math.MinInt64), false
	for _, m := range members {
		if m == c.member {
			continue
		}
		if gen, err := recordGen(m); err == nil {
			written, any = max(written, gen), true
		}
	}
	return any && l.Expired(written, c.now, r.lateness), nil
}

// hotValues computes entry ei's items from its mirror and the records
// new to it, then mirrors those and the event's own.
func (r *Store) hotValues(obs *features.Observation, ei int, c *entryCmds, only []bool) error {
	h, l := c.hot, obs.Entries[ei].EventLog
	tail, err := c.tail.Result()
	if err != nil {
		return err
	}
	ownMirrored := has(h.atNewest, c.member)
	for _, m := range tail {
		if has(h.atNewest, m) || m == c.member {
			continue
		}
		if err := h.add(m, r.seed); err != nil {
			r.hot.drop(c.base, h)
			return fmt.Errorf("%s of %q: %w", l.Name, obs.Entries[ei].Key, err)
		}
	}
	for i := range obs.Items {
		if it := &obs.Items[i]; it.Entry == ei && (only == nil || only[i]) {
			it.Value = h.value(it.Feature, obs.TS)
		}
	}
	if c.member != "" && !ownMirrored {
		if err := h.add(c.member, r.seed); err != nil {
			return err
		}
	}
	h.trim(l.ReadFrom(obs.TS))
	return nil
}

func has(m map[string]struct{}, k string) bool {
	_, ok := m[k]
	return ok
}

// A record is one event in a windowed log, as its ZSET member:
//
//	uvarint len(id), id, varint generation, varint ts, then per field (sorted by name):
//	uvarint len(name), name, 'n' varint micro-units | 's' uvarint len, bytes
//
// It is a function of the event alone, so a retry writes the same member.
type record struct {
	ts     int64
	fields string // the encoded fields
}

func appendRecord(dst []byte, obs *features.Observation, ei int, gen int64) string {
	en := &obs.Entries[ei]
	dst = binary.AppendUvarint(dst, uint64(len(obs.EventID)))
	dst = append(dst, obs.EventID...)
	dst = binary.AppendVarint(dst, gen)
	dst = binary.AppendVarint(dst, obs.TS)
	for _, fr := range en.EventLog.FieldOrder() {
		if fr.Num {
			n, ok := obs.Num(ei, fr.Slot)
			if !ok {
				continue
			}
			dst = appendString(dst, fr.Name)
			dst = append(dst, 'n')
			dst = binary.AppendVarint(dst, n)
		} else {
			v, ok := obs.Of(ei, fr.Slot)
			if !ok {
				continue
			}
			dst = appendString(dst, fr.Name)
			dst = append(dst, 's')
			dst = appendString(dst, v)
		}
	}
	return string(dst)
}

// A windowless log keeps the start of the key's run as a member of its
// sightings ZSET, scored past any event time so ranks put it last.
const (
	firstMember = "f"
	firstOffset = 1 << 52
)

// sightingMember is a sighting's member: the id and its generation.
func sightingMember(id string, gen int64) string {
	return string(binary.AppendVarint(appendString(nil, id), gen))
}

// recordGen reads the generation of a member, a record's or a
// sighting's (both start with the id and the generation): the store's
// clock when its event was first claimed, so the newest of a log's is
// when it was last written.
func recordGen(m string) (int64, error) {
	b := []byte(m)
	n, k := binary.Uvarint(b)
	if k <= 0 || uint64(len(b)-k) < n {
		return 0, errBadRecord
	}
	gen, k2 := binary.Varint(b[k+int(n):])
	if k2 <= 0 {
		return 0, errBadRecord
	}
	return gen, nil
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

var errBadRecord = errors.New("corrupt record")

func parseRecord(m string) (record, error) {
	b := []byte(m)
	n, k := binary.Uvarint(b)
	if k <= 0 || uint64(len(b)-k) < n {
		return record{}, errBadRecord
	}
	b = b[k+int(n):]
	if _, k = binary.Varint(b); k <= 0 {
		return record{}, errBadRecord
	}
	b = b[k:]
	ts, k := binary.Varint(b)
	if k <= 0 {
		return record{}, errBadRecord
	}
	return record{ts: ts, fields: m[len(m)-len(b)+k:]}, nil
}

// field finds a field's encoded value: its tag byte and what follows.
func (r record) field(name string) (byte, string, bool) {
	s := r.fields
	for len(s) > 0 {
		n, k := binary.Uvarint([]byte(s[:min(len(s), binary.MaxVarintLen64)]))
		if k <= 0 || n >= uint64(len(s)-k) { // the name and its tag byte
			return 0, "", false
		}
		fname := s[k : k+int(n)]
		s = s[k+int(n):]
		tag := s[0]
		s = s[1:]
		var val string
		switch tag {
		case 'n':
			_, k := binary.Varint([]byte(s[:min(len(s), binary.MaxVarintLen64)]))
			if k <= 0 {
				return 0, "", false
			}
			val, s = s[:k], s[k:]
		case 's':
			n, k := binary.Uvarint([]byte(s[:min(len(s), binary.MaxVarintLen64)]))
			if k <= 0 || uint64(len(s)-k) < n {
				return 0, "", false
			}
			val, s = s[k:k+int(n)], s[k+int(n):]
		default:
			return 0, "", false
		}
		if fname == name {
			return tag, val, true
		}
	}
	return 0, "", false
}

// entry is the record as feature f of its log counts it at p; false when
// the record lacks f's field (the event was not recorded for f).
func (r record) entry(f *features.Feature, p features.Position, seed maphash.Seed) (features.Point, bool) {
	e := features.Point{Pos: p}
	switch f.Kind {
	case features.Sum, features.Avg, features.Max:
		n, ok := r.num(f.EventLog.Nums[f.Slot].Name)
		if !ok {
			return e, false
		}
		e.Num = n
	case features.Distinct:
		v, ok := r.str(f.EventLog.Ofs[f.Slot].Name)
		if !ok {
			return e, false
		}
		e.Of = maphash.String(seed, v)
	}
	return e, true
}

func (r record) num(name string) (int64, bool) {
	tag, v, ok := r.field(name)
	if !ok || tag != 'n' {
		return 0, false
	}
	n, _ := binary.Varint([]byte(v))
	return n, true
}

func (r record) str(name string) (string, bool) {
	tag, v, ok := r.field(name)
	return v, ok && tag == 's'
}
