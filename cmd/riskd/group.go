package main

import (
	"context"
	"log/slog"
	"time"
)

// component is one of riskd's long-running parts: run serves until stop
// is called (then returns nil) or it fails (an error: riskd stops).
type component struct {
	run func() error
	// stop makes run return. It may block until its part of the shutdown
	// is done, within ctx (the shutdown timeout): what is stopped after it
	// can rely on that.
	stop func(ctx context.Context) error
}

// group runs riskd's components, as Prometheus's run.Group (oklog/run)
// does, but stops them in order and within a deadline. Written here
// rather than taken from oklog/run, whose interrupts have no deadline and
// no order to rely on: the audit stream must stop only after the HTTP
// servers have finished their requests, whose decisions it writes.
type group struct {
	parts []component
}

func (g *group) add(run func() error, stop func(context.Context) error) {
	g.parts = append(g.parts, component{run: run, stop: stop})
}

// addContext adds a component that runs until its context is cancelled.
func (g *group) addContext(run func(ctx context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	g.add(func() error { return run(ctx) }, func(context.Context) error { cancel(); return nil })
}

// run starts every component and waits for the first to return (a
// signal, or a failure); then it stops them all, in the order they were
// added, within timeout, and waits for every one of them to return, even
// when a stop failed. It returns the first error a component ended with,
// else the first a stop ended with.
func (g *group) run(log *slog.Logger, timeout time.Duration) error {
	if len(g.parts) == 0 {
		return nil
	}
	done := make(chan error, len(g.parts))
	for _, c := range g.parts {
		go func() { done <- c.run() }()
	}
	err := <-done
	log.Info("shutting down", "timeout", timeout)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var stopErr error
	for _, c := range g.parts {
		if e := c.stop(ctx); e != nil && stopErr == nil {
			stopErr = e
		}
	}
	for range len(g.parts) - 1 {
		if e := <-done; e != nil && err == nil {
			err = e
		}
	}
	if err == nil {
		err = stopErr
	}
	return err
}
