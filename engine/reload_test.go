package engine_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/riskd/riskd/engine"
	"github.com/riskd/riskd/internal/enginetest"
)

// TestReloadUnderLoad rewrites the policy many times while several
// goroutines score: no request fails and every decision carries one of
// the versions that were on disk.
func TestReloadUnderLoad(t *testing.T) {
	dir := t.TempDir()
	enginetest.CopyExample(t, dir, "v0")
	e, rl := enginetest.Reloadable(t, dir)

	const reloads = 30
	var stop atomic.Bool
	var scored atomic.Int64
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var d engine.Decision
			for i := 0; !stop.Load(); i++ {
				body := fmt.Sprintf(`{"id":"w%d-%d","type":"checkout","card_id":"c%d","account_id":"a","amount":10}`, w, i, i%7)
				if err := e.Score(context.Background(), []byte(body), engine.ScoreOptions{}, &d); err != nil {
					t.Error(err)
					return
				}
				v := d.Version
				if len(v) < 2 || v[0] != 'v' {
					t.Errorf("decision version %q is none of the versions written", v)
					return
				}
				scored.Add(1)
			}
		}()
	}
	for i := 1; i <= reloads; i++ {
		enginetest.CopyExample(t, dir, fmt.Sprint("v", i))
		if err := rl.Reload(); err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
		if i%5 == 0 { // and a broken write now and then: rejected, old one serves
			os.WriteFile(filepath.Join(dir, "checkout.yaml"), []byte("name: [broken"), 0o644)
			if err := rl.Reload(); err == nil {
				t.Fatal("a broken policy was accepted")
			}
			enginetest.CopyExample(t, dir, fmt.Sprint("v", i))
		}
	}
	stop.Store(true)
	wg.Wait()
	if got := e.Policy().ForType("checkout").Version; got != fmt.Sprint("v", reloads) {
		t.Fatalf("serving %q after the last reload", got)
	}
	if scored.Load() == 0 {
		t.Fatal("nothing was scored")
	}
}

// TestReloadKeepsFeatureHistory: a reload that adds a feature starts it
// empty and keeps the history of the others; a removed feature stops being
// recorded.
func TestReloadKeepsFeatureHistory(t *testing.T) {
	dir := t.TempDir()
	enginetest.CopyExample(t, dir, "v1")
	e, rl := enginetest.Reloadable(t, dir)
	body := func(i int) string {
		return fmt.Sprintf(`{"id":"e%d","type":"checkout","ts":%d,"card_id":"c","account_id":"a","amount":10}`, i, 1780000000000+i*1000)
	}
	for i := range 3 {
		score(t, e, body(i))
	}
	feats, _ := os.ReadFile(filepath.Join(dir, "features.yaml"))
	feats = append(feats, []byte("  - name: card_txn_count_10m\n    kind: count\n    key: card_id\n    window: 10m\n    event_types: [checkout]\n")...)
	os.WriteFile(filepath.Join(dir, "features.yaml"), feats, 0o644)
	ck, _ := os.ReadFile(filepath.Join(dir, "checkout.yaml"))
	ck = append(ck, []byte("  - id: card_velocity_10m\n    when: features.card_txn_count_10m >= 100\n    score: 1\n")...)
	os.WriteFile(filepath.Join(dir, "checkout.yaml"), ck, 0o644)
	if err := rl.Reload(); err != nil {
		t.Fatal(err)
	}
	d := score(t, e, body(3))
	if got := feature(d, "card_txn_count_1h"); got.Num != 3 {
		t.Errorf("card_txn_count_1h after the reload: %+v, want the 3 events before it", got)
	}
	if got := feature(d, "card_txn_count_10m"); !got.Valid || got.Num != 0 {
		t.Errorf("new feature card_txn_count_10m: %+v, want 0: it starts empty", got)
	}
	d = score(t, e, body(4))
	if got := feature(d, "card_txn_count_10m"); got.Num != 1 {
		t.Errorf("new feature after one more event: %+v, want 1", got)
	}
}
