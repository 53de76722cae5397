// Package layering holds the import rules docs/architecture.md writes
// down, with go list: a package's dependencies show only what its job
// needs.
package layering

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const mod = "github.com/riskd/riskd/"

// Third-party modules the rules name.
const (
	kafkaGo = "github.com/segmentio/kafka-go"
	goRedis = "github.com/redis/go-redis/v9"
)

// packages of the layout: each must exist.
var layout = []string{
	"engine", "httpapi", "stream", "features", "memstore", "redisstore", "lists",
	"eventschema", "schema", "rules", "models", "policyfile", "replay", "ruletest",
	"client", "api", "cmd/riskd", "cmd/riskctl",
}

// never lists packages and what they must never depend on, directly or
// not; a forbidden name ending in "..." forbids every package under it.
var never = []struct {
	pkgs, deps []string
	why        string
}{
	{
		[]string{"engine", "replay", "ruletest"},
		[]string{kafkaGo, goRedis, mod + "httpapi", mod + "stream", mod + "redisstore"},
		"the scorer and the offline tools link no transport and no Redis",
	},
	{
		[]string{"rules", "models", "features", "lists", "eventschema", "policyfile", "memstore"},
		[]string{goRedis, kafkaGo, mod + "engine", mod + "redisstore", mod + "httpapi", mod + "stream"},
		"declarations and the in-memory store link no network client",
	},
	{
		[]string{"features", "lists", "eventschema", "policyfile"},
		[]string{mod + "rules", mod + "models", mod + "memstore"},
		"declarations sit below the rules and the stores that use them",
	},
	{
		[]string{"httpapi"},
		[]string{kafkaGo, mod + "stream"},
		"one transport does not link the other",
	},
	{
		[]string{"stream"},
		[]string{mod + "httpapi"},
		"one transport does not link the other",
	},
	{
		[]string{"redisstore", "memstore"},
		[]string{mod + "engine", mod + "rules", mod + "httpapi", mod + "stream"},
		"stores serve the engine; they do not know it",
	},
	{
		[]string{"client", "api", "schema", "policyfile"},
		[]string{mod + "..."},
		"the Go client and the embedded documents stand alone",
	},
	{
		[]string{"cmd/riskd", "cmd/riskctl"},
		append([]string{"testing", "testing/..."}, prefixed(testHelpers)...),
		"binaries link no test code",
	},
}

// testHelpers are the packages that exist to be imported by tests: the
// only non-test packages that may link testing.
var testHelpers = []string{"internal/apitest", "internal/enginetest", "internal/kafkatest", "internal/metrictest",
	"internal/poll", "internal/redistest", "internal/storetest", "rules/example/exampletest"}

// prefixed names pkgs by their import paths.
func prefixed(pkgs []string) []string {
	out := make([]string, len(pkgs))
	for i, p := range pkgs {
		out[i] = mod + p
	}
	return out
}

// deps lists every package of the module with its dependencies (not
// counting tests).
func deps(t *testing.T) map[string][]string {
	t.Helper()
	cmd := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Deps \" \"}}", "./...")
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("go list: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	m := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		m[strings.TrimPrefix(f[0], mod)] = f[1:]
	}
	return m
}

// matches reports whether dep is name, or under it when name ends in
// "/...".
func matches(dep, name string) bool {
	if prefix, ok := strings.CutSuffix(name, "..."); ok {
		return strings.HasPrefix(dep, prefix)
	}
	return dep == name
}

func TestLayering(t *testing.T) {
	all := deps(t)
	for _, p := range layout {
		if _, ok := all[p]; !ok {
			t.Errorf("package %s of the layout does not exist", p)
		}
	}
	for _, rule := range never {
		for _, p := range rule.pkgs {
			ds, ok := all[p]
			if !ok {
				continue // reported above
			}
			for _, d := range ds {
				for _, bad := range rule.deps {
					if matches(d, bad) {
						t.Errorf("%s depends on %s: %s", p, d, rule.why)
					}
				}
			}
		}
	}
	for p, ds := range all {
		for _, d := range ds {
			switch {
			case strings.HasPrefix(d, mod+"cmd/"):
				t.Errorf("%s depends on %s: nothing imports a command", p, d)
			case strings.HasPrefix(d, mod+"bench/") && !strings.HasPrefix(p, "bench/"):
				t.Errorf("%s depends on %s: only benchmarks import benchmark code", p, d)
			case (d == "testing" || strings.HasPrefix(d, "testing/")) && !slices.Contains(testHelpers, p):
				t.Errorf("%s depends on %s: only tests and test helpers link testing", p, d)
			}
		}
	}
}
