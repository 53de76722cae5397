package lists

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
)

// Limits on what a change may hold: values are identifiers (card
// fingerprints, e-mail addresses, device ids), not documents.
const (
	MaxValueBytes      = 512
	MaxValuesPerChange = 100_000
)

// DefaultSyncEvery is how often a registry brings its lists up to date:
// from the store (Redis: one GET a list, and the new changes when there
// are any) and past expiries. A value added on another instance, or
// expired, is seen within it.
const DefaultSyncEvery = 250 * time.Millisecond

// DefaultMaxValues bounds a mutable list: a few million card
// fingerprints is a big block list; past it a list is a data set, not a
// list analysts keep.
const DefaultMaxValues = 5_000_000

// Options configure a Registry. Zero values are safe.
type Options struct {
	// MaxValues bounds each list: an addition that would take it past
	// is refused (ErrBadChange). Default DefaultMaxValues.
	MaxValues int
	// SyncEvery: see DefaultSyncEvery.
	SyncEvery time.Duration
	// Now is the clock values expire by. Default time.Now.
	Now func() time.Time
	// Registerer receives the lists' metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// Logger records every change (who, when, what) and sync failures;
	// nil discards.
	Logger *slog.Logger
}

// Registry holds the mutable lists of one riskd: their current snapshots,
// which events read, and the way changes reach them from its store.
type Registry struct {
	store Store
	opts  Options

	mu       sync.Mutex
	lists    map[string]*Mutable
	declared map[string]bool

	changes    *prometheus.CounterVec
	syncErrors *prometheus.CounterVec
	reseeded   *prometheus.CounterVec
	size       *prometheus.GaugeVec

	errMu   sync.Mutex
	errLast map[string]time.Time // per list: the last sync failure logged
}

// Store is where a registry's lists live: process memory, or Redis
// shared by every instance (package redisstore).
type Store interface {
	// Write makes c durable and returns its version (c.Version is 0).
	Write(ctx context.Context, m *Mutable, c *Change, now int64) (int64, error)
	// Sync brings m up to date with what the store holds, through
	// m.Apply or m.Replace. It is called with m locked against other
	// writes and syncs.
	//
	// Sync and Write return ErrReseeded, having done their work, when
	// the store had lost the list m holds a snapshot of and they wrote
	// the snapshot back.
	Sync(ctx context.Context, m *Mutable, now int64) error
	// Describe says where the lists live, for /v1/rulesets.
	Describe() string
	Close() error
}

// NewMemory returns a registry whose lists live in this process alone:
// lost on restart and not shared with other instances.
func NewMemory(opts Options) *Registry { return NewRegistry(memoryStore{}, opts) }

// NewRegistry returns a registry whose lists live in s.
func NewRegistry(s Store, opts Options) *Registry {
	if opts.SyncEvery <= 0 {
		opts.SyncEvery = DefaultSyncEvery
	}
	if opts.MaxValues <= 0 {
		opts.MaxValues = DefaultMaxValues
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	r := &Registry{store: s, opts: opts, lists: map[string]*Mutable{}, declared: map[string]bool{}, errLast: map[string]time.Time{},
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "riskd_list_changes_total", Help: "Changes made to mutable lists through this riskd's admin API, by list and op (add, remove: values; clear: 1 a change).",
		}, []string{"list", "op"}),
		reseeded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "riskd_list_reseeded_total", Help: "Mutable lists the store had lost (Redis flushed, or restarted empty) that this riskd wrote back from its last snapshot, by list.",
		}, []string{"list"}),
		syncErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "riskd_list_sync_errors_total", Help: "Failed attempts to bring a mutable list up to date from its store (it keeps its last values meanwhile), by list.",
		}, []string{"list"}),
		size: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "riskd_list_values", Help: "Values a mutable list holds, as this riskd sees it, by list.",
		}, []string{"list"}),
	}
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(r.changes, r.syncErrors, r.reseeded, r.size)
	}
	return r
}

// Describe says where the registry's lists live.
func (r *Registry) Describe() string { return r.store.Describe() }

// Close releases the store's connections.
func (r *Registry) Close() error { return r.store.Close() }

// Fetch reads from the store the lists among names this registry has
// never held, so a policy declaring them is not served with an empty copy
// of a list the store holds: call it before the policy is compiled
// (Declare), within ctx. One that fails is empty until Run, once the
// policy declares it, brings it up to date.
func (r *Registry) Fetch(ctx context.Context, names []string) error {
	r.mu.Lock()
	var fresh []*Mutable
	for _, n := range names {
		if r.lists[n] == nil {
			m := newMutable(n)
			r.lists[n] = m
			fresh = append(fresh, m)
		}
	}
	r.mu.Unlock()
	var errs []error
	for _, m := range fresh {
		if err := r.sync(ctx, m); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Declare makes names the lists the policy declares: the only ones
// changes are accepted for, and those Run keeps up to date. It does no
// I/O (see Fetch). Lists no longer declared keep their values for a
// policy that declares them again.
func (r *Registry) Declare(names []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	clear(r.declared)
	for _, n := range names {
		r.declared[n] = true
		if r.lists[n] == nil {
			r.lists[n] = newMutable(n)
		}
		r.reseeded.WithLabelValues(n) // at 0 from the start: an alert compares with it
	}
}

// ErrReseeded: see Store.
var ErrReseeded = errors.New("the store had lost the list: written back from this riskd's snapshot")

// checkReseeded logs and counts a re-seed err reports, and returns err
// without it.
func (r *Registry) checkReseeded(m *Mutable, err error) error {
	if !errors.Is(err, ErrReseeded) {
		return err
	}
	r.reseeded.WithLabelValues(m.Name).Inc()
	snap := m.Snapshot()
	r.opts.Logger.Error("mutable list lost from its store (Redis flushed, or restarted empty): written back from this riskd's last snapshot",
		"list", m.Name, "values", snap.Len(), "version", snap.Version, "store", r.store.Describe())
	return nil
}

// List returns the list called name, made empty if it was never declared.
// The engine binds a policy's lists once, when it is swapped in.
func (r *Registry) List(name string) *Mutable {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.lists[name]
	if m == nil {
		m = newMutable(name)
		r.lists[name] = m
	}
	return m
}

// ErrUnknownList is returned for a change to a list the policy does not
// declare mutable.
var ErrUnknownList = errors.New("no such mutable list")

// ErrBadChange is returned for a change that is not well formed.
var ErrBadChange = errors.New("bad change")

// Declared returns the declared list called name, or ErrUnknownList.
func (r *Registry) Declared(name string) (*Mutable, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.declared[name] {
		names := make([]string, 0, len(r.declared))
		for n := range r.declared {
			names = append(names, n)
		}
		sort.Strings(names)
		if len(names) == 0 {
			return nil, fmt.Errorf("%w %q: the policy declares none (declare one under lists:, e.g. %s: {mutable: true})", ErrUnknownList, name, name)
		}
		return nil, fmt.Errorf("%w %q (the policy declares %s)", ErrUnknownList, name, strings.Join(names, ", "))
	}
	return r.lists[name], nil
}

// Add adds values to the declared list name, each expiring after ttl (0:
// never), on behalf of who, and returns the change with its version. The
// list this riskd reads has the change when Add returns.
func (r *Registry) Add(ctx context.Context, name string, values []string, ttl time.Duration, who string) (*Change, error) {
	if ttl < 0 {
		return nil, fmt.Errorf("%w: ttl %v is negative", ErrBadChange, ttl)
	}
	m, err := r.Declared(name)
	if err != nil {
		return nil, err
	}
	snap := m.Snapshot()
	grown := snap.Len()
	for _, v := range values {
		if _, ok := snap.Values[v]; !ok {
			grown++
		}
	}
	if grown > r.opts.MaxValues {
		return nil, fmt.Errorf("%w: list %s holds %d values; with these it would hold %d, more than the %d a list may (-list-max-values)", ErrBadChange, name, snap.Len(), grown, r.opts.MaxValues)
	}
	c := &Change{Op: Add, Values: values, Who: who}
	return r.change(ctx, name, c, ttl)
}

// ErrNotInList is returned for a removal of values none of which the
// list holds: nothing changes, the version stays.
var ErrNotInList = errors.New("no such value in the list")

// Remove removes values from the declared list name on behalf of who.
// Values the list does not hold are left out of the change; when it
// holds none of them, nothing is written and the error is ErrNotInList.
func (r *Registry) Remove(ctx context.Context, name string, values []string, who string) (*Change, error) {
	m, err := r.Declared(name)
	if err != nil {
		return nil, err
	}
	if err := checkValues(values); err != nil {
		return nil, err
	}
	// Up to date first: a value added on another instance a moment ago
	// is there to remove.
	if err := r.sync(ctx, m); err != nil {
		return nil, err
	}
	snap := m.Snapshot()
	present := make([]string, 0, len(values))
	for _, v := range values {
		if _, ok := snap.Values[v]; ok {
			present = append(present, v)
		}
	}
	if len(present) == 0 {
		if len(values) == 1 {
			return nil, fmt.Errorf("list %s: value %q: %w (version %d)", name, cut(values[0]), ErrNotInList, snap.Version)
		}
		return nil, fmt.Errorf("list %s: none of the %d values: %w (version %d)", name, len(values), ErrNotInList, snap.Version)
	}
	return r.change(ctx, name, &Change{Op: Remove, Values: slices.Compact(slices.Sorted(slices.Values(present))), Who: who}, 0)
}

// Clear removes every value of the declared list name on behalf of who.
func (r *Registry) Clear(ctx context.Context, name string, who string) (*Change, error) {
	return r.change(ctx, name, &Change{Op: Clear, Who: who}, 0)
}

func (r *Registry) change(ctx context.Context, name string, c *Change, ttl time.Duration) (*Change, error) {
	m, err := r.Declared(name)
	if err != nil {
		return nil, err
	}
	if c.Op != Clear {
		if err := checkValues(c.Values); err != nil {
			return nil, err
		}
	}
	now := r.opts.Now()
	c.At = now.UnixMilli()
	if ttl > 0 {
		c.Expires = now.Add(ttl).UnixMilli()
	}
	v, err := r.store.Write(ctx, m, c, c.At)
	if err = r.checkReseeded(m, err); err != nil {
		return nil, fmt.Errorf("list %s: %s: %w", name, c.Op, err)
	}
	c.Version = v
	r.changes.WithLabelValues(name, string(c.Op)).Add(float64(max(len(c.Values), 1)))
	shown := c.Values[:min(len(c.Values), 10)]
	attrs := []any{"list", name, "op", string(c.Op), "values", len(c.Values), "first_values", shown}
	if c.Op == Add {
		attrs = append(attrs, "expires", expiry(c.Expires))
	}
	r.opts.Logger.Info("list changed", append(attrs, "by", c.Who, "at", now.UTC().Format(time.RFC3339Nano), "version", v)...)
	// This riskd sees its own change at once: the next event is scored
	// with it, and a GET right after the change shows it.
	if err := r.sync(ctx, m); err != nil {
		return c, fmt.Errorf("list %s: the change (version %d) is stored, but this riskd could not read it back yet: %w", name, v, err)
	}
	return c, nil
}

func expiry(ms int64) string {
	if ms == 0 {
		return "never"
	}
	return time.UnixMilli(ms).UTC().Format(time.RFC3339)
}

func checkValues(vs []string) error {
	if len(vs) == 0 {
		return fmt.Errorf("%w: no values", ErrBadChange)
	}
	if len(vs) > MaxValuesPerChange {
		return fmt.Errorf("%w: %d values, more than the %d a change may hold", ErrBadChange, len(vs), MaxValuesPerChange)
	}
	for i, v := range vs {
		switch {
		case v == "":
			return fmt.Errorf("%w: value %d is empty", ErrBadChange, i)
		case len(v) > MaxValueBytes:
			return fmt.Errorf("%w: value %d is %d bytes, more than %d", ErrBadChange, i, len(v), MaxValueBytes)
		case !utf8.ValidString(v) || strings.ContainsAny(v, "\n\r\x00"):
			return fmt.Errorf("%w: value %d is not a single line of UTF-8 text", ErrBadChange, i)
		}
	}
	return nil
}

// Sync brings the list called name up to date with the store now, not
// at Run's next tick: for a caller that must see a change made on
// another instance at once.
func (r *Registry) Sync(ctx context.Context, name string) error {
	return r.sync(ctx, r.List(name))
}

// sync brings m up to date and past its expiries.
func (r *Registry) sync(ctx context.Context, m *Mutable) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := r.opts.Now().UnixMilli()
	err := r.checkReseeded(m, r.store.Sync(ctx, m, now))
	m.expire(now)
	r.size.WithLabelValues(m.Name).Set(float64(m.Snapshot().Len()))
	if err != nil {
		r.syncErrors.WithLabelValues(m.Name).Inc()
		return fmt.Errorf("list %s: %w", m.Name, err)
	}
	return nil
}

// Run keeps the declared lists up to date, every SyncEvery, until ctx is
// done. A list that cannot be synced keeps the values it has; the failure
// is counted and logged at most once a minute a list.
func (r *Registry) Run(ctx context.Context) {
	t := time.NewTicker(r.opts.SyncEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		r.mu.Lock()
		var ms []*Mutable
		for n := range r.declared {
			ms = append(ms, r.lists[n])
		}
		r.mu.Unlock()
		for _, m := range ms {
			sctx, cancel := context.WithTimeout(ctx, max(r.opts.SyncEvery, time.Second))
			err := r.sync(sctx, m)
			cancel()
			if err != nil && ctx.Err() == nil {
				r.logSyncError(m.Name, err)
			}
		}
	}
}

func (r *Registry) logSyncError(name string, err error) {
	r.errMu.Lock()
	defer r.errMu.Unlock()
	if now := time.Now(); now.Sub(r.errLast[name]) >= time.Minute {
		r.errLast[name] = now
		r.opts.Logger.Warn("mutable list could not be brought up to date; it keeps its last values", "list", name, "err", err)
	}
}

// memoryStore keeps lists in the registry's own snapshots.
type memoryStore struct{}

func (memoryStore) Write(_ context.Context, m *Mutable, c *Change, now int64) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c.Version = m.Snapshot().Version + 1
	m.Apply([]Change{*c}, now)
	return c.Version, nil
}

func (memoryStore) Sync(context.Context, *Mutable, int64) error { return nil }

func (memoryStore) Close() error { return nil }

func (memoryStore) Describe() string {
	return "memory: this riskd's own, lost on restart and not shared with other instances (start riskd with -redis to share them)"
}
