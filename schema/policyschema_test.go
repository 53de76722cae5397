// Package schema_test holds the policy files' JSON Schemas to riskd's
// loader: every shipped policy passes, every policy the loader accepts
// passes, and the broken gallery fails where a schema can tell.
package schema_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"

	"github.com/riskd/riskd/models"
	"github.com/riskd/riskd/rules"
)

// The schema of each kind of policy file, as the modelines name them.
const (
	featuresSchema = "features.schema.json"
	rulesetSchema  = "ruleset.schema.json"
)

// schemaFor names the schema of a file in a policy directory, or "" for
// a file the loader does not read (the same test as rules.LoadDir's). A
// new kind of policy file (the event schema of issue 15, should it get a
// file of its own) gets its schema here, and the tests hold it to that.
func schemaFor(name string) string {
	switch {
	case name == rules.FeaturesFile:
		return featuresSchema
	case name == models.File:
		return "" // models.yaml is checked by the models package's loader
	case !strings.HasPrefix(name, ".") && (strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml")):
		return rulesetSchema
	}
	return ""
}

func compile(t *testing.T) map[string]*jsonschema.Schema {
	t.Helper()
	c := jsonschema.NewCompiler()
	out := map[string]*jsonschema.Schema{}
	for _, name := range []string{featuresSchema, rulesetSchema} {
		s, err := c.Compile(name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out[name] = s
	}
	return out
}

// instance reads a policy file as an editor's YAML 1.2 parser gives it
// to the schema: a timestamp-looking scalar stays a string, an alias is
// its anchor's value, and of duplicate keys the last counts (the loader
// refuses duplicates; so do editors, as a YAML error).
func instance(data []byte) (any, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	if len(doc.Content) == 0 {
		return nil, nil
	}
	return value(doc.Content[0]), nil
}

func value(n *yaml.Node) any {
	switch n.Kind {
	case yaml.AliasNode:
		return value(n.Alias)
	case yaml.MappingNode:
		m := map[string]any{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			m[n.Content[i].Value] = value(n.Content[i+1])
		}
		return m
	case yaml.SequenceNode:
		l := []any{}
		for _, c := range n.Content {
			l = append(l, value(c))
		}
		return l
	}
	switch n.Tag {
	case "!!null":
		return nil
	case "!!bool":
		b, _ := strconv.ParseBool(strings.ToLower(n.Value))
		return b
	case "!!int":
		if i, err := strconv.ParseInt(n.Value, 0, 64); err == nil {
			return i
		}
	case "!!float":
		if f, err := strconv.ParseFloat(n.Value, 64); err == nil {
			return f
		}
	}
	return n.Value
}

// failures lists where in the file its schema fails it, as JSON pointers
// of the instance ("" is the whole file), or nil when it passes.
func failures(t *testing.T, s *jsonschema.Schema, file string) []string {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	v, err := instance(data)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return where(s.Validate(v))
}

func where(err error) []string {
	if err == nil {
		return nil
	}
	var out []string
	var walk func(*jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) == 0 {
			loc := ""
			for _, p := range e.InstanceLocation {
				loc += "/" + p
			}
			if !slices.Contains(out, loc) {
				out = append(out, loc)
			}
		}
		for _, c := range e.Causes {
			walk(c)
		}
	}
	walk(err.(*jsonschema.ValidationError))
	slices.Sort(out)
	return out
}

// TestShippedPoliciesPass: every policy directory in the repository
// (outside testdata) passes its schemas and names them in a modeline
// that editors follow.
func TestShippedPoliciesPass(t *testing.T) {
	schemas := compile(t)
	var dirs []string
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != ".." && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) {
			return filepath.SkipDir
		}
		if d.Name() == rules.FeaturesFile {
			dirs = append(dirs, filepath.Dir(path))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"../rules/example", "../bench/handbook"} {
		if !slices.Contains(dirs, want) {
			t.Fatalf("found the policies %v, not %s", dirs, want)
		}
	}
	for _, dir := range dirs {
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			name := schemaFor(e.Name())
			if e.IsDir() || name == "" {
				continue
			}
			file := filepath.Join(dir, e.Name())
			if got := failures(t, schemas[name], file); got != nil {
				t.Errorf("%s fails %s at %v", file, name, got)
			}
			data, _ := os.ReadFile(file)
			first, _, _ := strings.Cut(string(data), "\n")
			ref, ok := strings.CutPrefix(first, "# yaml-language-server: $schema=")
			got, _ := filepath.Abs(filepath.Join(dir, ref))
			want, _ := filepath.Abs(name)
			abs, _ := filepath.Abs(dir)
			if rel, _ := filepath.Rel(abs, want); !ok || got != want {
				t.Errorf("%s: first line %q, want # yaml-language-server: $schema=%s", file, first, filepath.ToSlash(rel))
			}
		}
	}
}

// TestLoadablePoliciesPass: what the loader accepts in its less usual
// forms the schemas accept too, so an editor never underlines a policy
// that riskd loads.
func TestLoadablePoliciesPass(t *testing.T) {
	fsys := fstest.MapFS{
		"features.yaml": {Data: []byte(`features:
  - {name: card_count_1h, kind: count, key: card_id, window: 1h, event_types: checkout}
  - {name: pair_seen, kind: seen, key: [account_id, billing.device_id], retention: 090d}
  - {name: amount_max_2w, kind: max, key: account_id, field: amount, window: 2w, event_types: [checkout, 3ds_failed]}
  - {name: ips_24h, kind: distinct, key: account_id, of: ip, window: 86400s}
  - {name: age_s, kind: age, key: account_id}
  - {name: last_s, kind: since_last, key: [card_id]}
`)},
		"checkout.yaml": {Data: []byte(`name: checkout.v2-a
version: 7
event_types: [checkout]
thresholds: {step_up: 50.0, block: 0x5a}
on_store_error: fail_closed
lists:
  countries: [NG, 12, true]
  none: []
rules:
  - {id: always, when: true, score: -1, reason: 42}
  - id: graded
    when: features.card_count_1h > 1
    score: "min(60, 15 * features.card_count_1h)"
    description: graded by the count
  - {id: seen, when: features.pair_seen == true, action: step_up}
`)},
		"next.yaml": {Data: []byte(`name: next
version:
shadow_of: checkout.v2-a
traffic: " .5 %"
split_key: account_id
thresholds: {step_up: 1, block: 2}
rules:
  - {id: a, when: "true", action: block, score: 3}
`)},
	}
	if _, err := rules.Load(fsys, "p"); err != nil {
		t.Fatalf("the loader refuses the good gallery: %v", err)
	}
	schemas := compile(t)
	for name, f := range fsys {
		v, err := instance(f.Data)
		if err != nil {
			t.Fatal(err)
		}
		if got := where(schemas[schemaFor(name)].Validate(v)); got != nil {
			t.Errorf("%s fails %s at %v", name, schemaFor(name), got)
		}
	}
}

// TestBrokenGalleryFails: each file of riskctl's broken gallery fails
// its schema exactly where a schema can tell (the file's want.txt has
// every error riskctl reports); the rest is the loader's to find.
func TestBrokenGalleryFails(t *testing.T) {
	const gallery = "../cmd/riskctl/testdata/broken"
	wants := map[string][]string{
		// Duplicate names are not the schema's to find; the rest is.
		"bad_features/features.yaml": {"/features/0/kind", "/features/1", "/features/1/window", "/features/2",
			"/features/3/window", "/features/4/key", "/features/4/window", "/features/5/name", "/features/5/retention"},
		"bad_features/checkout.yaml": nil,
		// Whether a champion exists, is itself a challenger, scores the
		// same types, and what shares add up to span files.
		"challenger/checkout.yaml":   nil,
		"challenger/features.yaml":   nil,
		"challenger/v1_typo.yaml":    nil,
		"challenger/v2_traffic.yaml": {"", "/traffic"},
		"challenger/v3_key.yaml":     {"", "/split_key"},
		"challenger/v4_chain.yaml":   nil,
		"challenger/v5_share.yaml":   nil,
		"challenger/v6_share.yaml":   nil,
		"challenger/v7_share.yaml":   nil,
		// A share finer than the split's resolution is the loader's.
		"challenger/v8_live.yaml": {""},
		// Duplicate keys are a YAML error in editors; duplicate ids the
		// loader's.
		"duplicates/checkout.yaml": nil,
		"duplicates/features.yaml": nil,
		// Expressions are compiled by the loader.
		"expressions/checkout.yaml":       nil,
		"expressions/features.yaml":       nil,
		"no_rulesets/features.yaml":       nil,
		"rule_fields/checkout.yaml":       {"/on_store_error", "/rules/0", "/rules/1/action", "/rules/1/id", "/rules/1/score", "/rules/2"},
		"rule_fields/features.yaml":       nil,
		"two_live_rulesets/a.yaml":        nil,
		"two_live_rulesets/b.yaml":        nil,
		"two_live_rulesets/features.yaml": nil,
		"typos/checkout.yaml":             {"", "/rules/0"},
		"typos/features.yaml":             nil,
		"yaml_syntax/features.yaml":       nil,
		// Which event types, fields and keys exist spans files: the
		// loader's.
		"event_type_typo/checkout.yaml":   nil,
		"event_type_typo/features.yaml":   nil,
		"event_type_typo/login.yaml":      nil,
		"feature_paths/checkout.yaml":     nil,
		"feature_paths/features.yaml":     nil,
		"undeclared_fields/checkout.yaml": nil,
		"undeclared_fields/features.yaml": nil,
		"yaml_positions/comment.yaml":     nil,
		"yaml_positions/features.yaml":    nil,
		"event_type_typo/signup.yaml":     nil,
		// What an enum allows, and which fields are strings, is the
		// schema's event_fields: the loader's.
		"enum_values/authorization.yaml": nil,
		"enum_values/checkout.yaml":      nil,
		"enum_values/features.yaml":      nil,
		"list_values/checkout.yaml":      nil,
		"list_values/features.yaml":      nil,
		"thresholds/features.yaml":       nil,
		"thresholds/checkout.yaml":       {"/thresholds/step_up"},
		"thresholds/login.yaml":          {"/thresholds/block", "/thresholds/step_up"},
	}
	notYAML := []string{"yaml_syntax/checkout.yaml", "yaml_positions/dedent.yaml", "yaml_positions/tab.yaml",
		"yaml_positions/alias.yaml", "yaml_positions/anchor.yaml"}
	schemas := compile(t)
	files, err := filepath.Glob(filepath.Join(gallery, "*", "*.y*ml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range files {
		rel, _ := filepath.Rel(gallery, file)
		rel = filepath.ToSlash(rel)
		want, listed := wants[rel]
		switch {
		case slices.Contains(notYAML, rel):
			data, _ := os.ReadFile(file)
			if _, err := instance(data); err == nil {
				t.Errorf("%s parses as YAML", rel)
			}
		case !listed:
			t.Errorf("%s: say where its schema must fail it", rel)
		default:
			if got := failures(t, schemas[schemaFor(filepath.Base(file))], file); !slices.Equal(got, want) {
				t.Errorf("%s fails its schema at %q, want %q", rel, got, want)
			}
		}
	}
	if len(files) != len(wants)+len(notYAML) {
		t.Errorf("%d files in the gallery, %d listed here", len(files), len(wants)+len(notYAML))
	}
}
