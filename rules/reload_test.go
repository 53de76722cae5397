package rules_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/riskd/riskd/rules"
)

func writePolicy(t *testing.T, dir, ruleset string) {
	t.Helper()
	for name, body := range map[string]string{"features.yaml": goodFeatures, "checkout.yaml": ruleset} {
		// Write then rename, the way editors and config tools save.
		tmp := filepath.Join(dir, "."+name+".tmp")
		if err := os.WriteFile(tmp, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
}

// watched writes the good policy into dir and returns the pointer a
// Reloader swaps new versions into.
func watched(t *testing.T, dir string, debounce time.Duration) (*atomic.Pointer[rules.Policy], *rules.Reloader) {
	t.Helper()
	writePolicy(t, dir, goodRuleset)
	p, err := rules.Load(os.DirFS(dir), dir)
	if err != nil {
		t.Fatal(err)
	}
	current := &atomic.Pointer[rules.Policy]{}
	current.Store(p)
	rl := rules.NewReloader(rules.ReloaderOptions{Dir: dir, Debounce: debounce, Apply: func(p *rules.Policy) { current.Store(p) }})
	rl.Loaded(p)
	return current, rl
}

func TestReloaderAppliesGoodAndKeepsPreviousOnError(t *testing.T) {
	dir := t.TempDir()
	current, rl := watched(t, dir, 0)

	if err := rl.Reload(); err != rules.ErrUnchanged {
		t.Fatalf("reload of an unchanged directory: %v", err)
	}
	writePolicy(t, dir, strings.Replace(goodRuleset, `version: "1"`, `version: "2"`, 1))
	if err := rl.Reload(); err != nil {
		t.Fatal(err)
	}
	if v := current.Load().ForType("checkout").Version; v != "2" {
		t.Fatalf("version after reload: %q", v)
	}
	writePolicy(t, dir, strings.Replace(goodRuleset, "features.card_txn_count_1h >= 5", "features.card_txn_cnt_1h >= 5", 1))
	err := rl.Reload()
	if err == nil || !strings.Contains(err.Error(), "checkout.yaml:9:20: rule velocity: when: unknown feature") {
		t.Fatalf("broken reload: %v", err)
	}
	if v := current.Load().ForType("checkout").Version; v != "2" {
		t.Fatalf("a broken reload replaced the policy: version %q", v)
	}
	if at, last := rl.LastError(); last == nil || at.IsZero() {
		t.Fatal("last reload error not recorded")
	}
}

func TestReloaderWatchesTheDirectory(t *testing.T) {
	dir := t.TempDir()
	current, rl := watched(t, dir, 20*time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- rl.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil { // Run returns once cancelled
			t.Error(err)
		}
	}()
	// Give the watcher a moment to be registered, by retrying the change
	// until it is seen.
	deadline := time.Now().Add(10 * time.Second)
	for i := 2; current.Load().ForType("checkout").Version == "1"; i++ {
		if time.Now().After(deadline) {
			t.Fatal("the change was not picked up within 10s")
		}
		writePolicy(t, dir, strings.Replace(goodRuleset, `version: "1"`, `version: "`+string(rune('0'+i%10))+`"`, 1))
		time.Sleep(50 * time.Millisecond)
	}
}

// TestReloaderWatchesListFiles: a change to a list file alone reloads,
// including in a lists/ directory created after riskd started.
func TestReloaderWatchesListFiles(t *testing.T) {
	dir := t.TempDir()
	current, rl := watched(t, dir, 20*time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- rl.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	values := func() int {
		if fs := current.Load().ListFiles; len(fs) == 1 {
			return fs[0].Values
		}
		return 0
	}
	deadline := time.Now().Add(10 * time.Second)
	writeList := func(n int) {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, "card-%d\n", i)
		}
		os.MkdirAll(filepath.Join(dir, "lists"), 0o755)
		os.WriteFile(filepath.Join(dir, "lists", ".blocked.tmp"), []byte(b.String()), 0o644)
		os.Rename(filepath.Join(dir, "lists", ".blocked.tmp"), filepath.Join(dir, "lists", "blocked.txt"))
	}
	// Retry each change until it is seen: the watches are set up by the
	// goroutine above, in its own time.
	for values() != 2 {
		if time.Now().After(deadline) {
			t.Fatal("the new list was not picked up within 10s")
		}
		writeList(2)
		writePolicy(t, dir, strings.Replace(goodRuleset, "  bad: [NG, RU]\n", "  blocked: {file: lists/blocked.txt}\n", 1))
		time.Sleep(50 * time.Millisecond)
	}
	for n := 3; values() == 2; n++ {
		if time.Now().After(deadline) {
			t.Fatal("the list file's change was not picked up within 10s")
		}
		writeList(n)
		time.Sleep(50 * time.Millisecond)
	}
}
