package redisstore

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// batcher shares round trips between concurrent events: each event's
// commands are built by its own goroutine, handed over whole, and sent
// with whatever other events' commands are waiting, as one pipeline
// (claims, scripts, answers; on a Cluster go-redis splits it into one
// pipeline per node, sent at once) or, on a standalone server, one
// MULTI/EXEC (a single server runs a transaction of several events as it
// would run them one after the other). Redis then reads and writes its
// socket once per batch instead of once per event, which is most of what
// a small command costs it.
//
// A few workers each hold one batch in flight, so a batch forms while
// the previous one is on the wire and an idle server sees no added delay.
//
// Measured under HTTP load on the example policy (bench/load.sh at 5,000
// requests/s, riskd, Redis and the generator on two cores), batching
// takes p99 from 22-25 ms to 9-10 ms and degraded answers from about
// half to 3-6 %: fewer system calls on both sides leave the cores to the
// work. Redis's CPU per event is the same either way.
type batcher struct {
	client redis.UniversalClient
	// timeout bounds one batch on the wire (Options.RecordTimeout):
	// callers wait only as long as their own deadline, but the batch is
	// theirs and others', and records events whose callers gave up.
	timeout time.Duration
	jobs    chan *batchJob
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

type batchJob struct {
	tx   bool
	cmds []redis.Cmder
	err  error
	done chan struct{}
}

const (
	batchWorkers = 4
	batchMax     = 64 // events per batch
)

func newBatcher(client redis.UniversalClient, timeout time.Duration) *batcher {
	b := &batcher{client: client, timeout: timeout, jobs: make(chan *batchJob, batchWorkers*batchMax)}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	for range batchWorkers {
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			b.work()
		}()
	}
	return b
}

// close stops the workers and waits for them; batches in flight end with
// an error, and callers still waiting are told the store closed.
func (b *batcher) close() {
	b.cancel()
	b.wg.Wait()
}

// start queues cmds for a shared batch (waiting, within ctx, only while
// the queue is full) and returns the job, done once they were sent and
// answered: the batch runs on the batcher's own deadline whoever waits.
func (b *batcher) start(ctx context.Context, tx bool, cmds []redis.Cmder) (*batchJob, error) {
	j := &batchJob{tx: tx, cmds: cmds, done: make(chan struct{})}
	select {
	case b.jobs <- j:
		return j, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-b.ctx.Done():
		return nil, errors.New("store closed")
	}
}

// do sends cmds in a shared batch and waits for their replies, or for
// ctx. Commands must not alias memory the caller reuses: a caller that
// gives up leaves them to run.
func (b *batcher) do(ctx context.Context, tx bool, cmds []redis.Cmder) error {
	j := &batchJob{tx: tx, cmds: cmds, done: make(chan struct{})}
	select {
	case b.jobs <- j:
	case <-ctx.Done():
		return ctx.Err()
	case <-b.ctx.Done():
		return errors.New("store closed")
	}
	select {
	case <-j.done:
		return j.err
	case <-ctx.Done():
		return ctx.Err()
	case <-b.ctx.Done():
		return errors.New("store closed")
	}
}

func (b *batcher) work() {
	var tx, plain []*batchJob
	for {
		var first *batchJob
		select {
		case first = <-b.jobs:
		case <-b.ctx.Done():
			return
		}
		tx, plain = tx[:0], plain[:0]
		add := func(j *batchJob) {
			if j.tx {
				tx = append(tx, j)
			} else {
				plain = append(plain, j)
			}
		}
		add(first)
	more:
		for len(tx)+len(plain) < batchMax {
			select {
			case j := <-b.jobs:
				add(j)
			default:
				break more
			}
		}
		b.run(tx, true)
		b.run(plain, false)
	}
}

func (b *batcher) run(jobs []*batchJob, tx bool) {
	if len(jobs) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(b.ctx, b.timeout)
	defer cancel()
	var cmds []redis.Cmder
	for _, j := range jobs {
		cmds = append(cmds, j.cmds...)
	}
	// A round trip that failed (a connection refused or broken: Redis
	// restarting, failing over) is tried again until the deadline: every
	// command sent is safe to run twice (claims and the record script
	// know their own claim, records are ZADD NX or found already, the
	// rest are reads, trims and writes of the same values). So are the
	// commands that did not run (see again) — alone, and only their jobs
	// wait for them: the others are done. What still fails at the
	// deadline fails its job.
	var err error
	backoff(ctx, func() bool {
		err = roundTrip(ctx, b.client, tx, func(pipe redis.Pipeliner) error { return pipe.BatchProcess(ctx, cmds...) })
		if err != nil {
			return false
		}
		jobs = slices.DeleteFunc(jobs, func(j *batchJob) bool {
			if slices.ContainsFunc(j.cmds, again) {
				return false
			}
			close(j.done)
			return true
		})
		cmds = cmds[:0]
		for _, j := range jobs {
			for _, c := range j.cmds {
				if tx || again(c) { // a transaction goes again whole
					cmds = append(cmds, c)
				}
			}
		}
		return len(jobs) == 0
	})
	for _, j := range jobs {
		j.err = err
		if j.err == nil {
			j.err = j.cmds[slices.IndexFunc(j.cmds, again)].Err()
		}
		close(j.done)
	}
}

// again reports whether c did not run and may be sent again: a Cluster
// refused it for the moment (refused), or its node's connection failed
// while others answered (go-redis's cluster pipeline then reports the
// first command's error, often a claim's redis.Nil, as the round trip's).
func again(c redis.Cmder) bool {
	err := c.Err()
	if err == nil || errors.Is(err, redis.Nil) {
		return false
	}
	var rerr redis.Error
	return refusedErr(err) || !errors.As(err, &rerr) && unreachable(err)
}

// roundTrip sends what fill queues as one pipeline, or one MULTI/EXEC
// (tx), and returns what failed the round trip itself: a command's own
// error (redis.Nil, say) stays with its command.
func roundTrip(ctx context.Context, client redis.UniversalClient, tx bool, fill func(redis.Pipeliner) error) error {
	var err error
	if tx {
		_, err = client.TxPipelined(ctx, fill)
	} else {
		_, err = client.Pipelined(ctx, fill)
	}
	var rerr redis.Error
	if errors.As(err, &rerr) {
		err = nil
	}
	return err
}

// backoff calls try until it reports done or ctx ends, waiting 10 ms
// after the first try, twice as long after each next, up to 200 ms.
func backoff(ctx context.Context, try func() (done bool)) {
	for wait := 10 * time.Millisecond; !try(); wait = min(2*wait, 200*time.Millisecond) {
		if !sleep(ctx, wait) {
			return
		}
	}
}

// sleep waits d, or less if ctx ends first; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
