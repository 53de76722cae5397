package rules

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/riskd/riskd/lists"
)

// ReloaderOptions configure a Reloader.
type ReloaderOptions struct {
	// Dir is the policy directory on disk.
	Dir string
	// Read bounds each read of Dir (file sizes, symlinks, time); the
	// first load should use the same (LoadDir).
	Read DirOptions
	// Prepare, if set, receives every policy that loaded without error
	// before Apply, outside the reloader's lock: it reads what the policy
	// needs from the network (its mutable lists: lists.Registry.Fetch),
	// which compiling and applying never do.
	Prepare func(*Policy)
	// Apply receives every policy that loaded without error; it swaps it
	// in (engine.SetPolicy).
	Apply func(*Policy)
	// Registerer receives the reload metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// Logger reports reloads; nil discards.
	Logger *slog.Logger
	// Debounce coalesces a burst of file events (an editor's save, a
	// checkout of many files) into one reload. Default 250ms.
	Debounce time.Duration
}

// Reloader loads the policy directory again when it changes or when asked.
// A reload is all or nothing: a directory with any error is rejected whole
// and the previous policy keeps serving.
type Reloader struct {
	opts   ReloaderOptions
	mu     sync.Mutex // serialises reloads from the watcher and from HTTP
	digest [32]byte   // of the files last loaded
	// loads numbers the policies compiled; applied is the number of the
	// last applied. A reload whose Prepare ran while a later one applied
	// is not applied after it.
	loads, applied uint64
	// stuck is closed when a read of the directory that timed out
	// finally returns; nil when none is outstanding. At most one is: a
	// reload meanwhile fails at once rather than leave another behind.
	stuck <-chan struct{}

	// The last reload's error, apart from mu so that reading it (GET
	// /v1/rulesets) never waits for a reload.
	statusMu sync.Mutex
	lastErr  error
	errAt    time.Time

	reloads  *prometheus.CounterVec
	loadedAt prometheus.Gauge
	failing  prometheus.Gauge
}

// NewReloader returns a Reloader; tell it with Loaded which policy is
// served first.
func NewReloader(opts ReloaderOptions) *Reloader {
	if opts.Debounce <= 0 {
		opts.Debounce = 250 * time.Millisecond
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	opts.Read = opts.Read.withDefaults()
	r := &Reloader{
		opts: opts,
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "riskd_policy_reloads_total", Help: "Policy reloads by result: success, failure (the previous policy kept serving) or unchanged.",
		}, []string{"result"}),
		loadedAt: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "riskd_policy_loaded_timestamp_seconds", Help: "When the policy being served was loaded.",
		}),
		failing: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "riskd_policy_last_reload_failed", Help: "1 if the last reload was rejected (see GET /v1/rulesets), else 0.",
		}),
	}
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(r.reloads, r.loadedAt, r.failing)
	}
	return r
}

// ErrUnchanged is returned by Reload when the directory holds what was
// last loaded.
var ErrUnchanged = errors.New("policy directory unchanged")

// Loaded records that p is being served: the first load happens before
// the Reloader exists. A reload finding the files p was compiled from is
// unchanged.
func (r *Reloader) Loaded(p *Policy) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.digest = p.digest
	r.loadedAt.Set(float64(p.LoadedAt.UnixNano()) / 1e9)
}

// Reload loads the directory and applies it if it changed and is valid.
// It returns the load errors (every one, file:line:col: message), or
// ErrUnchanged. It returns within the read timeout (ReloaderOptions.Read)
// whatever the directory does.
func (r *Reloader) Reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	src, err := r.read()
	if err == nil && len(src.errs) == 0 {
		if src.digest() == r.digest {
			// What is served is on disk again: an earlier failure is over.
			r.setLastErr(nil)
			r.failing.Set(0)
			r.reloads.WithLabelValues("unchanged").Inc()
			return ErrUnchanged
		}
	}
	var p *Policy
	if err == nil {
		p, err = compile(src)
	}
	if err != nil {
		r.setLastErr(err)
		r.reloads.WithLabelValues("failure").Inc()
		r.failing.Set(1)
		r.opts.Logger.Error("policy reload rejected; the previous policy keeps serving", "dir", r.opts.Dir, "err", err.Error())
		return err
	}
	if r.opts.Prepare != nil {
		r.loads++
		n := r.loads
		// Prepare may wait on the network: another reload (or a GET
		// of the status) must not wait behind it.
		r.mu.Unlock()
		r.opts.Prepare(p)
		r.mu.Lock()
		if n < r.applied {
			return nil // a later load was applied meanwhile: it stays
		}
		r.applied = n
	}
	r.opts.Apply(p)
	r.digest = p.digest
	r.setLastErr(nil)
	r.reloads.WithLabelValues("success").Inc()
	r.failing.Set(0)
	r.loadedAt.Set(float64(p.LoadedAt.UnixNano()) / 1e9)
	names := make([]string, 0, len(p.Rulesets))
	for _, rs := range p.Rulesets {
		names = append(names, rs.Name+"@"+rs.Version+"#"+rs.Hash)
	}
	r.opts.Logger.Info("policy reloaded", "dir", r.opts.Dir, "rulesets", names)
	return nil
}

// read reads the directory within the timeout; r.mu is held.
func (r *Reloader) read() (*source, error) {
	if r.stuck != nil {
		select {
		case <-r.stuck:
			r.stuck = nil
		default:
			return nil, fmt.Errorf("%s: %w: an earlier read has not returned yet (a hung mount?)", r.opts.Dir, errReadTimeout)
		}
	}
	src, stuck, err := readWithin(r.opts.Dir, r.opts.Read)
	r.stuck = stuck
	return src, err
}

func (r *Reloader) setLastErr(err error) {
	r.statusMu.Lock()
	defer r.statusMu.Unlock()
	r.lastErr, r.errAt = err, time.Time{}
	if err != nil {
		r.errAt = time.Now()
	}
}

// LastError is the time of the last reload and its error, if it failed.
// It does not wait for a reload in progress.
func (r *Reloader) LastError() (time.Time, error) {
	r.statusMu.Lock()
	defer r.statusMu.Unlock()
	return r.errAt, r.lastErr
}

// Run watches the directory and reloads after each burst of changes, until
// ctx is done. Editors that save by writing a temporary file and renaming
// it are seen as events on the directory, which is what is watched.
func (r *Reloader) Run(ctx context.Context) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watching %s: %w", r.opts.Dir, err)
	}
	defer w.Close()
	if err := w.Add(r.opts.Dir); err != nil {
		return fmt.Errorf("watching %s: %w", r.opts.Dir, err)
	}
	// List files are in a subdirectory, which a watch on the directory
	// does not cover. It may come and go (or, in a ConfigMap, be a
	// symlink that moves): it is watched again after every change.
	watchLists := func() { w.Add(filepath.Join(r.opts.Dir, lists.Dir)) }
	watchLists()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			if ev.Op == fsnotify.Chmod {
				continue
			}
			timer.Reset(r.opts.Debounce)
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			r.opts.Logger.Warn("policy watcher", "dir", r.opts.Dir, "err", err)
		case <-timer.C:
			watchLists()
			r.Reload() // errors are recorded and logged by Reload
		}
	}
}
