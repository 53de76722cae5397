package enginetest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/riskd/riskd/engine"
	"github.com/riskd/riskd/rules"
	"github.com/riskd/riskd/rules/example"
)

// CopyExample writes the example policy into a temporary directory with
// the checkout ruleset's version set to v.
func CopyExample(t *testing.T, dir, version string) {
	t.Helper()
	os.MkdirAll(filepath.Join(dir, "lists"), 0o755)
	for _, name := range []string{"features.yaml", "checkout.yaml", "login.yaml", "signup.yaml", "lists/blocked_cards.txt"} {
		data, err := example.FS.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if name == "checkout.yaml" {
			data = []byte(strings.Replace(string(data), `version: "2026-11-25.1"`, `version: "`+version+`"`, 1))
		}
		tmp := filepath.Join(dir, filepath.Dir(name), "."+filepath.Base(name))
		if err := os.WriteFile(tmp, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
}

// Reloadable serves the policy in dir on a memory store, with a Reloader
// that swaps new versions in.
func Reloadable(t *testing.T, dir string) (*engine.Engine, *rules.Reloader) {
	t.Helper()
	p, err := rules.Load(os.DirFS(dir), dir)
	if err != nil {
		t.Fatal(err)
	}
	e := engine.New(p, engine.Options{})
	rl := rules.NewReloader(rules.ReloaderOptions{Dir: dir, Apply: e.SetPolicy})
	rl.Loaded(p)
	return e, rl
}
