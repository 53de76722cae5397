package rules

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/prometheus/client_golang/prometheus"
)

// ReloaderOptions configure a Reloader.
type ReloaderOptions struct {
	// Dir is the policy directory on disk.
	Dir string
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
	opts    ReloaderOptions
	mu      sync.Mutex // serialises reloads from the watcher and from HTTP
	digest  [32]byte   // of the files last loaded
	lastErr error
	errAt   time.Time

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

// Loaded records that p, read from the directory as it is now, is being
// served: the first load happens before the Reloader exists.
func (r *Reloader) Loaded(p *Policy) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if d, err := digestDir(r.opts.Dir); err == nil {
		r.digest = d
	}
	r.loadedAt.Set(float64(p.LoadedAt.UnixNano()) / 1e9)
}

// Reload loads the directory and applies it if it changed and is valid.
// It returns the load errors (every one, file:line:col: message), or
// ErrUnchanged.
func (r *Reloader) Reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	d, err := digestDir(r.opts.Dir)
	if err == nil && d == r.digest {
		r.reloads.WithLabelValues("unchanged").Inc()
		return ErrUnchanged
	}
	var p *Policy
	if err == nil {
		p, err = Load(os.DirFS(r.opts.Dir), r.opts.Dir)
	}
	if err != nil {
		r.lastErr, r.errAt = err, time.Now()
		r.reloads.WithLabelValues("failure").Inc()
		r.failing.Set(1)
		r.opts.Logger.Error("policy reload rejected; the previous policy keeps serving", "dir", r.opts.Dir, "err", err.Error())
		return err
	}
	r.opts.Apply(p)
	r.digest, r.lastErr, r.errAt = d, nil, time.Time{}
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

// LastError is the error of the last reload, if it failed, and its time.
func (r *Reloader) LastError() (error, time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lastErr, r.errAt
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
			r.Reload() // errors are recorded and logged by Reload
		}
	}
}

// digestDir hashes the names and contents of the directory's files, so a
// burst of events that changed nothing does not reload.
func digestDir(dir string) ([32]byte, error) {
	fsys := os.DirFS(dir)
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return [32]byte{}, err
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
	h := sha256.New()
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		data, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			return [32]byte{}, err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", e.Name(), len(data))
		h.Write(data)
	}
	var d [32]byte
	copy(d[:], h.Sum(nil))
	return d, nil
}
