package redisstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// writer sends the writes an event leaves for after its answer (the
// answer kept for retries, a run's start moved): batched across events,
// one pipeline per batch (per node on a Cluster, where go-redis splits
// it), on the store's own deadline, tried again until that deadline when
// the round trip fails. Nobody waits for them; a failure is reported to
// OnError.
type writer struct {
	client  redis.UniversalClient
	timeout time.Duration
	onError func(error)
	jobs    chan writeJob
	stop    context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

type writeJob struct {
	cmds  []redis.Cmder
	what  string // for errors: "keeping the answer of \"e-1\""
	after func() // if set, called once the job was sent (or failed)
}

const writerWorkers = 2

// writeLinger is how long a worker waits, after a batch's first write,
// for more to join it. Nobody waits for these writes, and a round trip
// costs Redis about as much CPU as the writes it carries (its read(2) and
// write(2) are most of a small command's cost): at 2,000 events/s a batch
// of one answer per event made the answers half of Redis's round trips.
// A retry arriving within it finds the claim and waits for the answer.
const writeLinger = 2 * time.Millisecond

func newWriter(client redis.UniversalClient, timeout time.Duration, onError func(error)) *writer {
	w := &writer{client: client, timeout: timeout, onError: onError, jobs: make(chan writeJob, writerWorkers*batchMax)}
	w.stop, w.cancel = context.WithCancel(context.Background())
	for range writerWorkers {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			w.work()
		}()
	}
	return w
}

// later queues cmds; it waits only while the queue is full. after, if
// not nil, is called once they were sent or failed.
func (w *writer) later(cmds []redis.Cmder, what string, after func()) {
	select {
	case w.jobs <- writeJob{cmds: cmds, what: what, after: after}:
	case <-w.stop.Done():
		w.fail(what, errors.New("store closed"))
		if after != nil {
			after()
		}
	}
}

// close sends what is queued (within the timeout) and stops the workers.
func (w *writer) close() {
	w.cancel()
	w.wg.Wait()
}

func (w *writer) work() {
	var batch []writeJob
	for {
		batch = batch[:0]
		select {
		case j := <-w.jobs:
			batch = append(batch, j)
		case <-w.stop.Done():
			// Closing: what is still queued goes out first.
			for {
				select {
				case j := <-w.jobs:
					batch = append(batch, j)
					continue
				default:
				}
				break
			}
			if len(batch) > 0 {
				w.send(batch)
			}
			return
		}
		linger := time.NewTimer(writeLinger)
	more:
		for len(batch) < batchMax {
			select {
			case j := <-w.jobs:
				batch = append(batch, j)
			case <-linger.C:
				break more
			case <-w.stop.Done():
				break more // what is left is sent by the closing round
			}
		}
		linger.Stop()
		w.send(batch)
	}
}

// send writes the batch, again after a failed round trip, until the
// deadline; each command keeps its own error.
func (w *writer) send(batch []writeJob) {
	ctx, cancel := context.WithTimeout(context.Background(), w.timeout)
	defer cancel()
	var err error
	backoff(ctx, func() bool {
		err = roundTrip(ctx, w.client, false, func(pipe redis.Pipeliner) error {
			for _, j := range batch {
				if err := pipe.BatchProcess(ctx, j.cmds...); err != nil {
					return err
				}
			}
			return nil
		})
		return err == nil
	})
	for _, j := range batch {
		jerr := err
		if jerr == nil {
			jerr = firstErr(j.cmds)
		}
		if jerr != nil {
			w.fail(j.what, jerr)
		}
		if j.after != nil {
			j.after()
		}
	}
}

func (w *writer) fail(what string, err error) {
	if w.onError != nil {
		w.onError(fmt.Errorf("redis: %s: %w", what, err))
	}
}
