package rules

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// hangReads makes every read of a directory wait until the returned
// function is called, as a read on a hung mount would; entered receives a
// value each time a read starts.
func hangReads(t *testing.T) (entered <-chan struct{}, release func()) {
	in := make(chan struct{}, 16)
	gate := make(chan struct{})
	readDirFunc = func(dir string, opts DirOptions) (*source, error) {
		in <- struct{}{}
		<-gate
		return readDir(dir, opts)
	}
	released := false
	release = func() {
		if !released {
			released = true
			close(gate)
		}
	}
	t.Cleanup(release)
	return in, release
}

func writeTestPolicy(t *testing.T, dir string) {
	t.Helper()
	os.WriteFile(filepath.Join(dir, FeaturesFile), []byte("features:\n  - {name: n, kind: count, key: card_id, window: 1h}\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "checkout.yaml"), []byte("name: checkout\nevent_types: [checkout]\nthresholds: {step_up: 1, block: 2}\nrules:\n  - {id: r, when: features.n > 1, score: 1}\n"), 0o644)
}

// TestReloadIsTimeBoxed: a read that never returns (a hung mount) holds
// neither the reload lock nor the reload status: Reload gives up after
// the timeout, a reload meanwhile fails at once instead of leaving
// another read behind, LastError answers during a reload, and once the
// read returns reloads work again.
func TestReloadIsTimeBoxed(t *testing.T) {
	dir := t.TempDir()
	writeTestPolicy(t, dir)
	p, err := LoadDir(dir, DirOptions{})
	if err != nil {
		t.Fatal(err)
	}
	entered, release := hangReads(t)
	defer func() { readDirFunc = readDir }()
	rl := NewReloader(ReloaderOptions{Dir: dir, Read: DirOptions{Timeout: 50 * time.Millisecond}, Apply: func(*Policy) {}})
	rl.Loaded(p)

	start := time.Now()
	err = rl.Reload()
	if !errors.Is(err, errReadTimeout) || !strings.Contains(err.Error(), "reading the policy directory timed out after 50ms") {
		t.Fatalf("reload of a hung directory: %v", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("Reload took %v with a 50ms timeout", took)
	}
	<-entered
	if _, last := rl.LastError(); last != err {
		t.Fatalf("last error %v, want %v", last, err)
	}
	err = rl.Reload()
	if !errors.Is(err, errReadTimeout) || !strings.Contains(err.Error(), "an earlier read has not returned yet") {
		t.Fatalf("reload while the first read hangs: %v", err)
	}
	select {
	case <-entered:
		t.Fatal("a second read was started while the first hangs")
	default:
	}
	release()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := rl.Reload()
		if err == ErrUnchanged {
			break
		}
		if !strings.Contains(err.Error(), "an earlier read has not returned yet") || time.Now().After(deadline) {
			t.Fatalf("reload once the read returned: %v", err)
		}
	}
	if _, last := rl.LastError(); last != nil {
		t.Fatalf("last error after an unchanged reload: %v", last)
	}
}

// TestLastErrorDoesNotWaitForAReload: GET /v1/rulesets reads the status
// while a reload is under way.
func TestLastErrorDoesNotWaitForAReload(t *testing.T) {
	dir := t.TempDir()
	writeTestPolicy(t, dir)
	p, err := LoadDir(dir, DirOptions{})
	if err != nil {
		t.Fatal(err)
	}
	entered, release := hangReads(t)
	defer func() { readDirFunc = readDir }()
	rl := NewReloader(ReloaderOptions{Dir: dir, Read: DirOptions{Timeout: time.Hour}, Apply: func(*Policy) {}})
	rl.Loaded(p)
	reloaded := make(chan error, 1)
	go func() { reloaded <- rl.Reload() }()
	<-entered // the reload holds its lock and waits on the read
	answered := make(chan struct{})
	go func() {
		rl.LastError()
		close(answered)
	}()
	select {
	case <-answered:
	case <-time.After(10 * time.Second):
		t.Fatal("LastError waited for the reload")
	}
	release()
	if err := <-reloaded; err != ErrUnchanged {
		t.Fatalf("reload: %v", err)
	}
}
