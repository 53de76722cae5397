package redisstore

import (
	"strings"
	"sync"
	"sync/atomic"
)

// A flight is an event this instance is scoring, from its first round
// trip until its answer is kept: a retry of it arriving here meanwhile
// finds its claim and waits for the flight to land instead of judging
// by the claim's lease whether the claimer died (the claimer is alive:
// it is this very process). The lease is read on the store's clock,
// which may jump (a replay's is the events' time), so without this a
// retry right behind its first scoring could take the claim over.
type flight struct {
	id     string // its own copy: an Observation's id aliases a reused buffer
	done   chan struct{}
	once   sync.Once
	handed atomic.Bool // the answer's write (or finishLater) lands it
}

type flights struct {
	mu sync.Mutex
	m  map[string]*flight
}

// takeOff registers a flight for id, unless one is under way already
// (a retry of it, here): then it returns nil.
func (fs *flights) takeOff(id string) *flight {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.m[id] != nil {
		return nil
	}
	if fs.m == nil {
		fs.m = map[string]*flight{}
	}
	f := &flight{id: strings.Clone(id), done: make(chan struct{})}
	fs.m[f.id] = f
	return f
}

// land ends f (nil: nothing).
func (fs *flights) land(f *flight) {
	if f == nil {
		return
	}
	fs.mu.Lock()
	if fs.m[f.id] == f {
		delete(fs.m, f.id)
	}
	fs.mu.Unlock()
	f.once.Do(func() { close(f.done) })
}

// other returns id's flight when it is not own.
func (fs *flights) other(id string, own *flight) *flight {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if f := fs.m[id]; f != own {
		return f
	}
	return nil
}
