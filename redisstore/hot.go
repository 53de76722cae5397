package redisstore

import (
	"hash/maphash"
	"sync"

	"github.com/riskd/riskd/features"
)

// A busy key's log (a card under card testing, an IP behind credential
// stuffing) can hold thousands of records in its horizon. Reading all of
// them for every event would cost Redis a scan of the window each time,
// so the Redis store mirrors such logs in process, in the same histories
// the memory store keeps (running aggregates included), and asks Redis
// only for what is new: ZCOUNT over the mirrored range, which proves the
// mirror still matches (a late record from another instance, a trim or
// an expiry changes the count, and the log is read whole again), and
// the records at or after the mirror's newest.

// DefaultHotFrom is how many records in its horizon make a log worth
// mirroring (Options.HotFrom): below it a whole read is as cheap.
const DefaultHotFrom = 64

// hotMax bounds how many logs are mirrored at once.
const hotMax = 1024

type hotCache struct {
	mu   sync.Mutex
	logs map[string]*hotLog
}

func (c *hotCache) lookup(key string) *hotLog {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.logs[key]
}

func (c *hotCache) add(key string, h *hotLog) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.logs == nil {
		c.logs = map[string]*hotLog{}
	}
	if len(c.logs) >= hotMax {
		for k := range c.logs { // full: make room by dropping any one
			delete(c.logs, k)
			break
		}
	}
	c.logs[key] = h
}

func (c *hotCache) drop(key string, h *hotLog) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.logs[key] == h {
		delete(c.logs, key)
	}
}

// hotLog mirrors one log of one key: every record with from < ts. Its mu
// is held by the event using it from the commands it sends to the values
// it computes, so its state matches the replies.
type hotLog struct {
	mu       sync.Mutex
	key      string
	log      *features.EventLog
	from     int64
	newest   int64
	atNewest map[string]struct{} // members whose ts is newest: the next read returns them again
	all      features.History    // every record, to compare with ZCOUNT
	hists    []features.History  // per feature of the log, as log.Features
	seq      uint64
	// runningFrom: see features.Options.RunningFrom.
	runningFrom int
}

func newHotLog(key string, l *features.EventLog, from int64, runningFrom int) *hotLog {
	return &hotLog{key: key, log: l, from: from, newest: from, atNewest: map[string]struct{}{}, hists: make([]features.History, len(l.Features)), runningFrom: runningFrom}
}

// count is how many records the mirror holds.
func (h *hotLog) count() int { return len(h.all.Live()) }

// add mirrors one record, given as its member.
func (h *hotLog) add(member string, seed maphash.Seed) error {
	rec, err := parseRecord(member)
	if err != nil {
		return err
	}
	h.seq++
	p := features.Position{TS: rec.ts, Seq: h.seq}
	h.all.Insert(features.Count, features.Point{Pos: p})
	for i, f := range h.log.Features {
		if e, ok := rec.entry(f, p, seed); ok {
			h.hists[i].Insert(f.Kind, e)
		}
	}
	switch {
	case rec.ts > h.newest:
		h.newest = rec.ts
		clear(h.atNewest)
		h.atNewest[member] = struct{}{}
	case rec.ts == h.newest:
		h.atNewest[member] = struct{}{}
	}
	return nil
}

// trim drops what is at or before from.
func (h *hotLog) trim(from int64) {
	if from <= h.from {
		return
	}
	h.from = from
	h.all.TrimTo(features.Count, from)
	for i, f := range h.log.Features {
		h.hists[i].TrimTo(f.Kind, from)
	}
}

// value computes f for an event at ts, after every mirrored record.
func (h *hotLog) value(f *features.Feature, ts int64) features.Value {
	for i, g := range h.log.Features {
		if g == f {
			return h.hists[i].WindowValue(f.Kind, features.Position{TS: ts, Seq: h.seq + 1}, f.WindowFrom(ts), h.runningFrom)
		}
	}
	return features.Value{}
}
