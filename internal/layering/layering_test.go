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
	"engine", "httpapi", "stream", "readiness", "features", "memstore", "redisstore", "lists",
	"eventschema", "schema", "rules", "models", "policyfile", "replay", "ruletest",
	"client", "api", "cmd/riskd", "cmd/riskctl", "internal/buildinfo", "internal/logs", "cases", "console", "outcomes",
}

// never lists packages and what they must never depend on, directly or
// not; a forbidden name ending in "..." forbids every package under it.
var never = []struct {
	pkgs, deps []string
	why        string
}{
	{
		[]string{"engine", "replay", "ruletest", "cmd/riskctl"},
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
		[]string{"cases", "console", "outcomes"},
		[]string{kafkaGo, mod + "httpapi", mod + "stream"},
		"review sits beside the transports, which take it as options",
	},
	{
		[]string{"cases", "outcomes"},
		[]string{mod + "console"},
		"the console uses the case store, not the other way",
	},
	{
		[]string{"redisstore", "memstore"},
		[]string{mod + "engine", mod + "rules", mod + "httpapi", mod + "stream"},
		"stores serve the engine; they do not know it",
	},
	{
		[]string{"readiness"},
		[]string{mod + "...", kafkaGo, goRedis},
		"both transports use the readiness checks; they know neither, nor any store",
	},
	{
		[]string{"client", "api", "schema", "policyfile", "internal/buildinfo", "internal/logs"},
		[]string{mod + "..."},
		"the Go client, the embedded documents and the leaf helpers stand alone",
	},
	{
		[]string{"internal/enginetest", "internal/storetest", "internal/metrictest", "internal/poll"},
		[]string{kafkaGo, goRedis, mod + "httpapi", mod + "stream", mod + "redisstore"},
		"the scorer's and the in-memory store's tests use these helpers: they bring no transport and no Redis client",
	},
	{
		[]string{"cmd/riskd", "cmd/riskctl"},
		append([]string{"testing", "testing/..."}, prefixed(testHelpers)...),
		"binaries link no test code",
	},
}

// only lists packages that import nothing but the standard library and
// the modules named, directly (what those modules link is theirs).
var only = []struct {
	pkgs, mods []string
	why        string
}{
	{[]string{"readiness"}, []string{"github.com/prometheus/client_golang/..."}, "it checks dependencies through functions it is handed"},
	{[]string{"client"}, nil, "callers take the Go client without our dependencies"},
	{[]string{"internal/poll"}, nil, "waiting on a condition needs nothing else"},
	{[]string{"examples/checkout"}, []string{mod + "client"}, "the example shows what a caller of riskd needs"},
}

// testsNever lists packages whose own tests must not import some
// packages: what those tests would check belongs to the tests there.
var testsNever = []struct {
	pkgs, deps []string
	why        string
}{
	{
		[]string{"engine"},
		[]string{mod + "httpapi", mod + "stream"},
		"the transports' behaviour is tested in the transports' packages",
	},
}

// testHelpers are the packages that exist to be imported by tests: the
// only non-test packages that may link testing.
var testHelpers = []string{"internal/apitest", "internal/certtest", "internal/enginetest", "internal/kafkatest", "internal/lagproxy",
	"internal/metrictest", "internal/poll", "internal/redistest", "internal/storetest", "rules/example/exampletest"}

// prefixed names pkgs by their import paths.
func prefixed(pkgs []string) []string {
	out := make([]string, len(pkgs))
	for i, p := range pkgs {
		out[i] = mod + p
	}
	return out
}

// pkg is what go list says of a package: its imports, its dependencies
// (not counting tests), and what its tests import.
type pkg struct {
	imports, deps, testImports []string
}

// list lists every package of the module.
func list(t *testing.T) map[string]pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-f",
		`{{.ImportPath}}|{{join .Imports " "}}|{{join .Deps " "}}|{{join .TestImports " "}} {{join .XTestImports " "}}`, "./...")
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("go list: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	m := map[string]pkg{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(line, "|")
		if len(f) != 4 {
			t.Fatalf("go list: unexpected line %q", line)
		}
		m[strings.TrimPrefix(f[0], mod)] = pkg{strings.Fields(f[1]), strings.Fields(f[2]), strings.Fields(f[3])}
	}
	return m
}

// standard reports whether path is in the standard library: its first
// element has no dot.
func standard(path string) bool {
	first, _, _ := strings.Cut(path, "/")
	return !strings.Contains(first, ".")
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
	all := list(t)
	for _, p := range append(slices.Clone(layout), testHelpers...) {
		if _, ok := all[p]; !ok {
			t.Errorf("package %s of the layout does not exist", p)
		}
	}
	forbidden := func(what string, ds, bad []string, why string) {
		for _, d := range ds {
			if slices.ContainsFunc(bad, func(b string) bool { return matches(d, b) }) {
				t.Errorf("%s %s: %s", what, d, why)
			}
		}
	}
	for _, rule := range never {
		for _, p := range rule.pkgs {
			forbidden(p+" depends on", all[p].deps, rule.deps, rule.why)
		}
	}
	for _, rule := range testsNever {
		for _, p := range rule.pkgs {
			forbidden("the tests of "+p+" import", all[p].testImports, rule.deps, rule.why)
		}
	}
	for _, rule := range only {
		for _, p := range rule.pkgs {
			for _, d := range all[p].imports {
				if !standard(d) && !slices.ContainsFunc(rule.mods, func(m string) bool { return matches(d, m) }) {
					t.Errorf("%s imports %s: it may import only the standard library and %v: %s", p, d, rule.mods, rule.why)
				}
			}
		}
	}
	for p, pk := range all {
		helper := slices.Contains(testHelpers, p)
		for _, d := range pk.deps {
			switch {
			case strings.HasPrefix(d, mod+"cmd/"):
				t.Errorf("%s depends on %s: nothing imports a command", p, d)
			case strings.HasPrefix(d, mod+"bench/") && !strings.HasPrefix(p, "bench/"):
				t.Errorf("%s depends on %s: only benchmarks import benchmark code", p, d)
			case (d == "testing" || strings.HasPrefix(d, "testing/")) && !helper:
				t.Errorf("%s depends on %s: only tests and test helpers link testing", p, d)
			case slices.Contains(prefixed(testHelpers), d) && !helper:
				t.Errorf("%s depends on %s: test helpers are imported only by tests", p, d)
			}
		}
	}
}
