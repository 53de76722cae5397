package cases

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Bolt keeps cases in one local bbolt file (riskd's -data-dir): they
// survive a restart of the instance, but only that instance sees them;
// instances sharing cases use Redis.
//
// bbolt rather than SQLite: it is pure Go (no cgo, so riskd stays one
// static binary and cross-compiles), keeps everything in one file, and
// its transactions are ACID with one writer at a time, which is what
// makes a claim atomic; the queue's orders are key orders of its B+trees.
type Bolt struct {
	opts Options
	db   *bolt.DB
}

var (
	bucketCases  = []byte("cases")      // id -> Case JSON, without claim or resolution
	bucketState  = []byte("state")      // id -> boltState JSON
	bucketAge    = []byte("open_age")   // opened ms, id -> filter
	bucketScore  = []byte("open_score") // descending score, opened ms, id -> filter
	bucketExpiry = []byte("expiry")     // expiry ms, id -> nothing
	bucketMeta   = []byte("meta")       // "open" -> count of open cases
	bucketKeys   = []byte("entity")     // len(key) (2 bytes), entity key, opened ms, id -> nothing
	keyOpen      = []byte("open")
)

// boltState is what changes on a case, and what its index keys are made
// of.
type boltState struct {
	Opened     int64       `json:"opened"` // ms
	Score      int64       `json:"score"`
	Filter     []byte      `json:"filter"`
	Claim      *Claim      `json:"claim,omitempty"`
	Resolution *Resolution `json:"resolution,omitempty"`
	Keys       []string    `json:"keys,omitempty"` // the case's entity keys, indexed in bucketKeys
}

// keyPrefix is where an entity key's cases start in bucketKeys.
func keyPrefix(key string) []byte {
	return append(binary.BigEndian.AppendUint16(nil, uint16(len(key))), key...)
}

func (st *boltState) expires(ret time.Duration) int64 {
	if st.Resolution != nil {
		return st.Resolution.At.Add(ret).UnixMilli()
	}
	return st.Opened + ret.Milliseconds()
}

// OpenBolt opens (or creates) the case file at path.
func OpenBolt(path string, opts Options) (*Bolt, error) {
	opts.defaults()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("case file %s: %w (is another riskd using it?)", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketCases, bucketState, bucketAge, bucketScore, bucketExpiry, bucketMeta, bucketKeys} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("case file %s: %w", path, err)
	}
	return &Bolt{opts: opts, db: db}, nil
}

func be64(dst []byte, v int64) []byte { return binary.BigEndian.AppendUint64(dst, uint64(v)) }

// scoreKey orders by score, highest first, then oldest first.
func scoreKey(score, opened int64, id string) []byte {
	k := binary.BigEndian.AppendUint64(nil, ^(uint64(score) ^ 1<<63))
	return append(be64(k, opened), id...)
}

func ageKey(opened int64, id string) []byte { return append(be64(nil, opened), id...) }

// filterOf packs what the queue filters on: ruleset, decision and the
// rules that fired, NUL-separated, so a scan checks it without decoding.
func filterOf(c *Case) []byte {
	f := append([]byte(c.Ruleset), 0)
	f = append(f, c.Decision...)
	for _, r := range c.Reasons {
		f = append(append(f, 0), r.Rule...)
	}
	return f
}

func filterMatches(q *Query, f []byte) bool {
	i := bytes.IndexByte(f, 0)
	if i < 0 {
		return false
	}
	if q.Ruleset != "" && string(f[:i]) != q.Ruleset {
		return false
	}
	f = f[i+1:]
	i = bytes.IndexByte(f, 0)
	if i < 0 {
		i = len(f)
	}
	if q.Decision != "" && string(f[:i]) != q.Decision {
		return false
	}
	if q.Rule == "" {
		return true
	}
	for i < len(f) {
		f = f[i+1:]
		if i = bytes.IndexByte(f, 0); i < 0 {
			i = len(f)
		}
		if string(f[:i]) == q.Rule {
			return true
		}
	}
	return false
}

func getState(tx *bolt.Tx, id string) (*boltState, error) {
	v := tx.Bucket(bucketState).Get([]byte(id))
	if v == nil {
		return nil, nil
	}
	st := &boltState{}
	if err := json.Unmarshal(v, st); err != nil {
		return nil, fmt.Errorf("case %s: state: %w", id, err)
	}
	return st, nil
}

func putState(tx *bolt.Tx, id string, st *boltState) error {
	v, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return tx.Bucket(bucketState).Put([]byte(id), v)
}

func addOpen(tx *bolt.Tx, delta int64) error {
	m := tx.Bucket(bucketMeta)
	var n int64
	if v := m.Get(keyOpen); len(v) == 8 {
		n = int64(binary.BigEndian.Uint64(v))
	}
	return m.Put(keyOpen, be64(nil, n+delta))
}

// unindex takes an open case out of the queue's orders.
func unindex(tx *bolt.Tx, id string, st *boltState) error {
	if err := tx.Bucket(bucketAge).Delete(ageKey(st.Opened, id)); err != nil {
		return err
	}
	if err := tx.Bucket(bucketScore).Delete(scoreKey(st.Score, st.Opened, id)); err != nil {
		return err
	}
	return addOpen(tx, -1)
}

// remove deletes case id and everything that points at it.
func remove(tx *bolt.Tx, id string, st *boltState, ret time.Duration) error {
	if st.Resolution == nil {
		if err := unindex(tx, id, st); err != nil {
			return err
		}
	}
	if err := tx.Bucket(bucketExpiry).Delete(append(be64(nil, st.expires(ret)), id...)); err != nil {
		return err
	}
	for _, k := range st.Keys {
		if err := tx.Bucket(bucketKeys).Delete(append(be64(keyPrefix(k), st.Opened), id...)); err != nil {
			return err
		}
	}
	if err := tx.Bucket(bucketState).Delete([]byte(id)); err != nil {
		return err
	}
	return tx.Bucket(bucketCases).Delete([]byte(id))
}

// sweepLimit bounds the expired cases one opening deletes, so an opening
// after a long pause does not hold the writer long.
const sweepLimit = 64

func (b *Bolt) sweep(tx *bolt.Tx, now int64) error {
	c := tx.Bucket(bucketExpiry).Cursor()
	var due []string
	for k, _ := c.First(); k != nil && len(due) < sweepLimit && int64(binary.BigEndian.Uint64(k[:8])) <= now; k, _ = c.Next() {
		due = append(due, string(k[8:]))
	}
	for _, id := range due {
		st, err := getState(tx, id)
		if err != nil {
			return err
		}
		if st != nil {
			if err := remove(tx, id, st, b.opts.Retention); err != nil {
				return err
			}
		}
	}
	return nil
}

// Open implements Store. Expired cases are deleted as new ones open.
func (b *Bolt) Open(_ context.Context, c *Case) (bool, error) {
	if err := c.check(); err != nil {
		return false, err
	}
	cp := *c
	cp.Claim, cp.Resolution = nil, nil
	body, err := json.Marshal(&cp)
	if err != nil {
		return false, fmt.Errorf("case %s: %w", c.ID, err)
	}
	now := b.opts.Now().UnixMilli()
	opened := false
	err = b.db.Update(func(tx *bolt.Tx) error {
		if err := b.sweep(tx, now); err != nil {
			return err
		}
		old, err := getState(tx, c.ID)
		if err != nil {
			return err
		}
		if old != nil {
			if old.expires(b.opts.Retention) > now {
				return nil
			}
			if err := remove(tx, c.ID, old, b.opts.Retention); err != nil {
				return err
			}
		}
		st := &boltState{Opened: c.OpenedAt.UnixMilli(), Score: c.Score, Filter: filterOf(c), Keys: c.Keys}
		for _, k := range c.Keys {
			if err := indexKey(tx, k, st.Opened, c.ID); err != nil {
				return err
			}
		}
		for _, put := range []struct {
			bucket, k, v []byte
		}{
			{bucketCases, []byte(c.ID), body},
			{bucketAge, ageKey(st.Opened, c.ID), st.Filter},
			{bucketScore, scoreKey(st.Score, st.Opened, c.ID), st.Filter},
			{bucketExpiry, append(be64(nil, st.expires(b.opts.Retention)), c.ID...), nil},
		} {
			if err := tx.Bucket(put.bucket).Put(put.k, put.v); err != nil {
				return err
			}
		}
		if err := putState(tx, c.ID, st); err != nil {
			return err
		}
		opened = true
		return addOpen(tx, 1)
	})
	if err != nil {
		return false, fmt.Errorf("case %s: open: %w", c.ID, err)
	}
	return opened, nil
}

// live returns case id's state at now, or ErrNotFound.
func (b *Bolt) live(tx *bolt.Tx, id string, now time.Time) (*boltState, error) {
	st, err := getState(tx, id)
	if err != nil {
		return nil, err
	}
	if st == nil || st.expires(b.opts.Retention) <= now.UnixMilli() {
		return nil, ErrNotFound
	}
	if st.Claim != nil && !st.Claim.Until.After(now) {
		st.Claim = nil
	}
	return st, nil
}

func (b *Bolt) read(tx *bolt.Tx, id string, st *boltState) (*Case, error) {
	c := &Case{}
	if err := json.Unmarshal(tx.Bucket(bucketCases).Get([]byte(id)), c); err != nil {
		return nil, fmt.Errorf("case %s: %w", id, err)
	}
	c.Claim, c.Resolution = st.Claim, st.Resolution
	return c, nil
}

// Get implements Store.
func (b *Bolt) Get(_ context.Context, id string) (*Case, error) {
	var c *Case
	err := b.db.View(func(tx *bolt.Tx) error {
		st, err := b.live(tx, id, b.opts.Now())
		if err != nil {
			return err
		}
		c, err = b.read(tx, id, st)
		return err
	})
	return c, err
}

// Claim implements Store.
func (b *Bolt) Claim(_ context.Context, id, analyst string, ttl time.Duration) (Claim, error) {
	if err := checkClaim(analyst, ttl); err != nil {
		return Claim{}, err
	}
	now := b.opts.Now()
	var cl Claim
	err := b.db.Update(func(tx *bolt.Tx) error {
		st, err := b.live(tx, id, now)
		switch {
		case err != nil:
			return err
		case st.Resolution != nil:
			return ErrResolved
		case st.Claim != nil && st.Claim.Analyst != analyst:
			return &ClaimedError{Claim: *st.Claim}
		}
		cl = Claim{Analyst: analyst, Until: now.Add(ttl).UTC().Truncate(time.Millisecond)}
		st.Claim = &cl
		return putState(tx, id, st)
	})
	return cl, err
}

// Release implements Store.
func (b *Bolt) Release(_ context.Context, id, analyst string) error {
	return b.db.Update(func(tx *bolt.Tx) error {
		st, err := b.live(tx, id, b.opts.Now())
		if err != nil || st.Claim == nil || st.Claim.Analyst != analyst {
			return err
		}
		st.Claim = nil
		return putState(tx, id, st)
	})
}

// Resolve implements Store.
func (b *Bolt) Resolve(_ context.Context, id, analyst string, o Outcome, note string) (*Case, error) {
	if err := checkResolve(analyst, o, note); err != nil {
		return nil, err
	}
	now := b.opts.Now()
	var c *Case
	err := b.db.Update(func(tx *bolt.Tx) error {
		st, err := b.live(tx, id, now)
		switch {
		case err != nil:
			return err
		case st.Resolution != nil:
			return ErrResolved
		case st.Claim == nil:
			return ErrNotClaimed
		case st.Claim.Analyst != analyst:
			return &ClaimedError{Claim: *st.Claim}
		}
		if err := unindex(tx, id, st); err != nil {
			return err
		}
		exp := tx.Bucket(bucketExpiry)
		if err := exp.Delete(append(be64(nil, st.expires(b.opts.Retention)), id...)); err != nil {
			return err
		}
		st.Claim = nil
		st.Resolution = &Resolution{Outcome: o, Note: note, Analyst: analyst, At: now.UTC().Truncate(time.Millisecond)}
		if err := exp.Put(append(be64(nil, st.expires(b.opts.Retention)), id...), nil); err != nil {
			return err
		}
		if err := putState(tx, id, st); err != nil {
			return err
		}
		c, err = b.read(tx, id, st)
		return err
	})
	return c, err
}

// Queue implements Store. It walks the order's index, checking each
// entry's packed filter without decoding it, and reads only the page's
// cases: 100,000 open cases that all fail a filter take one scan of the
// index (BenchmarkQueue).
func (b *Bolt) Queue(_ context.Context, q Query) (Page, error) {
	q.defaults()
	now := b.opts.Now()
	oldest := now.UnixMilli() - b.opts.Retention.Milliseconds() // opened at or before: expired
	var p Page
	err := b.db.View(func(tx *bolt.Tx) error {
		bucket, at := bucketAge, 0
		if q.Order == ByScore {
			bucket, at = bucketScore, 8
		}
		c := tx.Bucket(bucket).Cursor()
		skip := q.Offset
		var ids []string
		for k, f := c.First(); k != nil; k, f = c.Next() {
			if int64(binary.BigEndian.Uint64(k[at:at+8])) <= oldest || !filterMatches(&q, f) {
				continue
			}
			if skip > 0 {
				skip--
				continue
			}
			if len(ids) == q.Limit {
				p.More = true
				break
			}
			ids = append(ids, string(k[at+8:]))
		}
		for _, id := range ids {
			st, err := b.live(tx, id, now)
			if err != nil {
				return err
			}
			cs, err := b.read(tx, id, st)
			if err != nil {
				return err
			}
			p.Cases = append(p.Cases, cs.Summary())
		}
		return nil
	})
	return p, err
}

// Stats implements Store.
func (b *Bolt) Stats(context.Context) (Stats, error) {
	oldest := b.opts.Now().UnixMilli() - b.opts.Retention.Milliseconds()
	var s Stats
	err := b.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get(keyOpen); len(v) == 8 {
			s.Open = int(binary.BigEndian.Uint64(v))
		}
		// Expired cases not yet swept are counted, then taken off here.
		c := tx.Bucket(bucketAge).Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			opened := int64(binary.BigEndian.Uint64(k[:8]))
			if opened > oldest {
				s.OldestOpen = time.UnixMilli(opened).UTC()
				break
			}
			s.Open--
		}
		return nil
	})
	return s, err
}

// Close implements Store.
func (b *Bolt) Close() error { return b.db.Close() }

// indexKey finds case id by entity key k, and keeps only k's MaxRelated
// latest cases findable by it.
func indexKey(tx *bolt.Tx, k string, opened int64, id string) error {
	bk := tx.Bucket(bucketKeys)
	prefix := keyPrefix(k)
	if err := bk.Put(append(be64(prefix, opened), id...), nil); err != nil {
		return err
	}
	var all [][]byte
	c := bk.Cursor()
	for key, _ := c.Seek(prefix); key != nil && bytes.HasPrefix(key, prefix); key, _ = c.Next() {
		all = append(all, bytes.Clone(key))
	}
	for _, key := range all[:max(0, len(all)-MaxRelated)] {
		if err := bk.Delete(key); err != nil {
			return err
		}
	}
	return nil
}

// Related implements Store.
func (b *Bolt) Related(ctx context.Context, keys []string, self string, limit int) ([]Summary, error) {
	var ids []string
	err := b.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketKeys).Cursor()
		for _, k := range keys {
			prefix := keyPrefix(k)
			for key, _ := c.Seek(prefix); key != nil && bytes.HasPrefix(key, prefix); key, _ = c.Next() {
				ids = append(ids, string(key[len(prefix)+8:]))
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("cases related to %v: %w", keys, err)
	}
	return related(ctx, b, ids, self, limit)
}
