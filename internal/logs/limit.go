package logs

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// DefaultEvery is how often a repeated warning or error is written.
const DefaultEvery = 10 * time.Second

// maxTracked bounds the lines a Limiter remembers. Past it, lines it has
// not seen yet go through unlimited: hundreds of distinct warnings within
// one interval are a different problem from one warning repeated.
const maxTracked = 1024

// Limiter is a slog.Handler that writes a warning or error at most once
// per interval for each distinct (level, message): a dependency that is
// down fails every event, and one line every ten seconds says so as well
// as thousands. The repeats it holds back are counted and the count is
// added to the next line it writes for that message ("suppressed": N), or
// written by Flush. Lines below warning always go through.
type Limiter struct {
	next  slog.Handler
	state *limitState // shared with the handlers WithAttrs and WithGroup derive
}

type limitState struct {
	every time.Duration
	now   func() time.Time
	mu    sync.Mutex
	lines map[limitKey]*limited
}

type limitKey struct {
	level slog.Level
	msg   string
}

type limited struct {
	written    time.Time    // when the line was last written
	suppressed int          // repeats held back since
	next       slog.Handler // the handler the last repeat went to, for Flush
}

// Limit wraps next; every <= 0 takes DefaultEvery.
func Limit(next slog.Handler, every time.Duration) *Limiter {
	if every <= 0 {
		every = DefaultEvery
	}
	return &Limiter{next: next, state: &limitState{every: every, now: time.Now, lines: map[limitKey]*limited{}}}
}

// Enabled implements slog.Handler.
func (l *Limiter) Enabled(ctx context.Context, level slog.Level) bool {
	return l.next.Enabled(ctx, level)
}

// WithAttrs implements slog.Handler.
func (l *Limiter) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &Limiter{next: l.next.WithAttrs(attrs), state: l.state}
}

// WithGroup implements slog.Handler.
func (l *Limiter) WithGroup(name string) slog.Handler {
	return &Limiter{next: l.next.WithGroup(name), state: l.state}
}

// Handle implements slog.Handler.
func (l *Limiter) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelWarn {
		return l.next.Handle(ctx, r)
	}
	suppressed, ok := l.state.admit(limitKey{r.Level, r.Message}, l.next)
	if !ok {
		return nil
	}
	if suppressed > 0 {
		r = r.Clone()
		r.AddAttrs(slog.Int("suppressed", suppressed))
	}
	return l.next.Handle(ctx, r)
}

// admit says whether a line goes through now, and how many of its
// repeats were held back before it.
func (s *limitState) admit(k limitKey, next slog.Handler) (int, bool) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.lines[k]
	if e == nil {
		if len(s.lines) >= maxTracked {
			s.forget(now)
		}
		if len(s.lines) < maxTracked {
			s.lines[k] = &limited{written: now}
		}
		return 0, true
	}
	if now.Sub(e.written) < s.every {
		e.suppressed++
		e.next = next
		return 0, false
	}
	n := e.suppressed
	e.written, e.suppressed, e.next = now, 0, nil
	return n, true
}

// forget drops the lines whose interval is over and that hold nothing
// back: their next occurrence would be written anyway.
func (s *limitState) forget(now time.Time) {
	for k, e := range s.lines {
		if e.suppressed == 0 && now.Sub(e.written) >= s.every {
			delete(s.lines, k)
		}
	}
}

// Flush writes, for each line with repeats held back, one more line with
// their count, so that none goes unreported when riskd stops.
func (l *Limiter) Flush(ctx context.Context) {
	type pending struct {
		k    limitKey
		n    int
		next slog.Handler
	}
	s := l.state
	now := s.now()
	var out []pending
	s.mu.Lock()
	for k, e := range s.lines {
		if e.suppressed > 0 {
			out = append(out, pending{k, e.suppressed, e.next})
			e.written, e.suppressed, e.next = now, 0, nil
		}
	}
	s.mu.Unlock()
	for _, p := range out {
		r := slog.NewRecord(now, p.k.level, p.k.msg, 0)
		r.AddAttrs(slog.Int("suppressed", p.n))
		p.next.Handle(ctx, r)
	}
}
