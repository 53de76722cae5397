package rules_test

import (
	"strings"
	"testing"

	"github.com/valyala/fastjson"

	"github.com/riskd/riskd/features"
)

const blockedFile = "# cards blocked by the fraud team\n4111-aa\n4111-bb # a test card\n\n4111-cc\n4111-aa\n"

func listRuleset(lists, when string) string {
	return strings.Replace(strings.Replace(goodRuleset, "  bad: [NG, RU]\n", lists, 1),
		"when: features.card_txn_count_1h >= 5", "when: "+when, 1)
}

// TestFileListsAreSets: a list file's values are a set that `in` looks up
// and a fired rule names with the file's version; comments and blanks are
// not values.
func TestFileListsAreSets(t *testing.T) {
	p, err := loadFS(map[string]string{
		"features.yaml":       goodFeatures,
		"checkout.yaml":       listRuleset("  blocked: {file: lists/blocked.txt}\n", `event.card in lists.blocked && len(lists.blocked) == 3`),
		"lists/blocked.txt":   blockedFile,
		"lists/forgotten.txt": "x\n",
	})
	if err != nil {
		t.Fatal(err)
	}
	rs := p.ForType("checkout")
	for _, tt := range []struct {
		card  string
		fired bool
	}{{"4111-aa", true}, {"4111-bb", true}, {"4111-cc", true}, {"4111-dd", false}, {"# cards blocked by the fraud team", false}, {"", false}} {
		env := envFor(t, rs, `{"card":"`+tt.card+`"}`, map[string]features.Value{})
		res := rs.Eval(env, nil)
		if res[0].Fired != tt.fired || res[0].Err != nil {
			t.Errorf("card %q: %+v, want fired %v", tt.card, res[0], tt.fired)
		}
		if got := env.ListVersions(nil, 0); len(got) != 1 || got[0].Name != "blocked" || got[0].Version != p.ListFiles[0].Version || len(got[0].Version) != 12 {
			t.Errorf("list versions %+v, want blocked at %s", got, p.ListFiles[0].Version)
		}
	}
	want := []string{
		`p/lists/blocked.txt: line 6: duplicate value "4111-aa" (first at line 2)`,
		`p/lists/blocked.txt: line 4: 1 empty lines (the first here); they are skipped`,
		`p/lists/forgotten.txt: no list declares this file (declare it under lists:, e.g. forgotten: {file: lists/forgotten.txt})`,
	}
	if got := strings.Join(p.Warnings, "\n"); got != strings.Join(want, "\n") {
		t.Errorf("warnings:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
	if len(p.ListFiles) != 1 || p.ListFiles[0].Path != "lists/blocked.txt" || p.ListFiles[0].Values != 3 {
		t.Errorf("list files %+v", p.ListFiles)
	}
}

// TestListDeclarations: every kind of list declaration mistake is a load
// error where it is written.
func TestListDeclarations(t *testing.T) {
	withList := func(decl string) map[string]string {
		return map[string]string{"features.yaml": goodFeatures, "checkout.yaml": listRuleset(decl, "event.card in lists.blocked"), "lists/blocked.txt": blockedFile}
	}
	for _, tt := range []struct {
		name  string
		files map[string]string
		want  string // "" loads
	}{
		{"file", withList("  blocked: {file: lists/blocked.txt}\n"), ""},
		{"mutable", withList("  blocked: {mutable: true}\n"), ""},
		{"features.yaml's", map[string]string{
			"features.yaml": goodFeatures + "lists:\n  blocked: {file: lists/blocked.txt}\n", "checkout.yaml": listRuleset("  bad: [NG, RU]\n", "event.card in lists.blocked"), "lists/blocked.txt": blockedFile}, ""},
		{"missing file", withList("  blocked: {file: lists/cards_blocked_by_ops.txt}\n"),
			`p/checkout.yaml:6:19: list "blocked": no list file "lists/cards_blocked_by_ops.txt" in the policy directory`},
		{"misspelt file", withList("  blocked: {file: lists/blocekd.txt}\n"),
			`p/checkout.yaml:6:19: list "blocked": no list file "lists/blocekd.txt" in the policy directory (did you mean lists/blocked.txt?)`},
		{"outside lists/", withList("  blocked: {file: ../etc/passwd}\n"),
			`p/checkout.yaml:6:19: list "blocked": file "../etc/passwd" must be a .txt file in the policy directory's lists/ directory, e.g. lists/blocked.txt`},
		{"both", withList("  blocked: {file: lists/blocked.txt, mutable: true}\n"),
			`p/checkout.yaml:6:38: list "blocked": file or mutable, not both: a file list changes with the policy directory, a mutable one through the admin API`},
		{"mutable false", withList("  blocked: {mutable: false}\n"),
			`p/checkout.yaml:6:22: list "blocked": mutable must be true (or leave it out and give values or a file)`},
		{"unknown key", withList("  blocked: {path: lists/blocked.txt}\n"),
			`p/checkout.yaml:6:13: unknown key "path" in list "blocked" (known keys: file, mutable)`},
		{"neither", withList("  blocked: {}\n"),
			`p/checkout.yaml:6:12: list "blocked" needs file: lists/blocked.txt (a file of the policy directory) or mutable: true`},
		{"a scalar", withList("  blocked: lists/blocked.txt\n"),
			`p/checkout.yaml:6:12: list "blocked" must be a list of values, e.g. [NG, RU], a file, {file: lists/blocked.txt}, or {mutable: true}`},
		{"UTF-16 file", map[string]string{"features.yaml": goodFeatures, "checkout.yaml": listRuleset("  blocked: {file: lists/blocked.txt}\n", "event.card in lists.blocked"), "lists/blocked.txt": "\xff\xfea\x00\n\x00"},
			`p/checkout.yaml:6:19: list "blocked": file "lists/blocked.txt": line 1: the file is UTF-16 (it starts with a UTF-16 byte order mark): save it as UTF-8`},
		{"CR-only file", map[string]string{"features.yaml": goodFeatures, "checkout.yaml": listRuleset("  blocked: {file: lists/blocked.txt}\n", "event.card in lists.blocked"), "lists/blocked.txt": "4111-aa\r4111-bb\r"},
			`p/checkout.yaml:6:19: list "blocked": file "lists/blocked.txt": line 1: carriage return not followed by a line feed: lines end with LF or CRLF (a file saved with old Mac line endings?)`},
		{"declared twice", map[string]string{
			"features.yaml": goodFeatures + "lists:\n  blocked: [x]\n", "checkout.yaml": listRuleset("  blocked: [y]\n", "event.card in lists.blocked")},
			`p/checkout.yaml:6:3: list "blocked" is declared in features.yaml:15 already: every ruleset reads it as lists.blocked`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := loadFS(tt.files)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

// TestFileListsAreTyped: with a schema, `in` a file list (a set of
// strings) refuses a number at load; a file list is read by `in` and
// len() only.
func TestFileListsAreTyped(t *testing.T) {
	_, err := loadFS(map[string]string{
		"features.yaml":     schemaFeatures,
		"checkout.yaml":     listRuleset("  blocked: {file: lists/blocked.txt}\n", "event.amount in lists.blocked"),
		"lists/blocked.txt": blockedFile,
	})
	want := "p/checkout.yaml:9:17: rule velocity: when: `in` a file or mutable list needs a string, not float64: the list's values are strings"
	if err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
	_, err = loadFS(map[string]string{
		"features.yaml":     goodFeatures,
		"checkout.yaml":     listRuleset("  blocked: {file: lists/blocked.txt}\n", `"any(lists.blocked, {# == event.card})"`),
		"lists/blocked.txt": blockedFile,
	})
	want = "p/checkout.yaml:9:22: rule velocity: when: lists.blocked is a file list, a set of strings: `x in lists.blocked`, `x not in lists.blocked` and len(lists.blocked) read it (only inline lists can be scanned)"
	if err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
}

// TestWhereReadsFeaturesYAMLLists: a where reads the lists features.yaml
// declares, file lists included.
func TestWhereReadsFeaturesYAMLLists(t *testing.T) {
	feats := whereFeatures(`event.ip_country in lists.watched`) + "lists:\n  watched: {file: lists/watched.txt}\n"
	p, err := loadFS(map[string]string{"features.yaml": feats, "checkout.yaml": goodRuleset, "lists/watched.txt": "NG\nRU\n"})
	if err != nil {
		t.Fatal(err)
	}
	i, _ := p.Features.Index("big_count_24h")
	f := p.Filters[p.Features.Features[i].EventLog.Index]
	for country, want := range map[string]bool{"NG": true, "FR": false} {
		env := f.NewEnv()
		env.Reset()
		ev := fastjson.MustParse(`{"ip_country":"` + country + `"}`)
		for i, s := range f.Slots() {
			env.SetField(i, ev.Get(s.Path.Parts...))
		}
		if got, err := f.Eval(env); got != want || err != nil {
			t.Errorf("%s: %v %v, want %v", country, got, err, want)
		}
	}
	if _, ok := p.Lists["watched"]; !ok {
		t.Errorf("policy lists %v: want watched", p.Lists)
	}
}
