package main

import (
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/riskd/riskd/engine"
	"github.com/riskd/riskd/httpapi"
	"github.com/riskd/riskd/rules"
)

// TestListsCommand: riskctl lists adds, shows and removes values of a
// running riskd's mutable list, and says what went wrong.
func TestListsCommand(t *testing.T) {
	p, err := rules.Load(fstest.MapFS{
		"features.yaml": {Data: []byte("lists:\n  blocked: {mutable: true}\nfeatures:\n  - {name: n, kind: count, key: card_id, window: 1h}\n")},
		"pay.yaml":      {Data: []byte("name: pay\nevent_types: [pay]\nthresholds: {step_up: 50, block: 90}\nrules:\n  - {id: blocked, when: event.card in lists.blocked, action: block}\n")},
	}, "p")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(httpapi.NewHandler(engine.New(p, engine.Options{}), httpapi.HandlerOptions{
		AdminTokens: []httpapi.NamedToken{{Name: "analyst", Token: "analyst-0123456789"}}}))
	defer srv.Close()
	tokenFile := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tokenFile, []byte("analyst-0123456789\n"), 0o600)
	conn := []string{"-url", srv.URL, "-token-file", tokenFile}
	for _, tt := range []struct {
		name, stdin string
		args        []string
		code        int
		out         string // stdout, or stderr when code != 0
	}{
		{"add", "", append(append([]string{"lists", "add"}, conn...), "blocked", "c1", "c2"), 0, "blocked: added 2 values (expire: never) as analyst: version 1\n"},
		{"add from stdin", "# from the case tool\nc3\n\nc4\n", append(append([]string{"lists", "add", "-ttl", "30d"}, conn...), "blocked", "-"), 0, "blocked: added 2 values (expire: 20"},
		{"show", "", append(append([]string{"lists", "show"}, conn...), "blocked"), 0, "c1\nc2\nc3\texpires 20"},
		{"remove", "", append(append([]string{"lists", "remove"}, conn...), "blocked", "c1", "c3", "c9"), 0, "blocked: removed 2 values (of 3 given) as analyst: version 3\n"},
		{"after", "", append(append([]string{"lists", "show"}, conn...), "blocked"), 0, "c2\nc4\texpires"},
		{"add dots", "", append(append([]string{"lists", "add"}, conn...), "blocked", ".", ".."), 0, "blocked: added 2 values (expire: never) as analyst: version 4\n"},
		{"remove dots", "", append(append([]string{"lists", "remove"}, conn...), "blocked", "."), 0, "blocked: removed \".\" as analyst: version 5\n"},
		{"remove dot-dot", "", append(append([]string{"lists", "remove"}, conn...), "blocked", ".."), 0, "blocked: removed \"..\" as analyst: version 6\n"},
		{"remove what is not there", "", append(append([]string{"lists", "remove"}, conn...), "blocked", "c9"), 1, `404: list blocked: value "c9": no such value in the list (version 6)`},
		{"clear", "", append(append([]string{"lists", "clear"}, conn...), "blocked"), 0, "blocked: cleared as analyst: version 7\n"},
		{"add after clear", "", append(append([]string{"lists", "add"}, conn...), "blocked", "c5"), 0, "blocked: added 1 values (expire: never) as analyst: version 8\n"},
		{"unknown list", "", append(append([]string{"lists", "add"}, conn...), "blokced", "x"), 1, `riskctl lists: POST /v1/lists/blokced: 404: no such mutable list "blokced" (the policy declares blocked)`},
		{"no token", "", []string{"lists", "add", "-url", srv.URL, "blocked", "x"}, 1, "401: admin endpoint: missing or wrong bearer token"},
		{"bad ttl", "", append(append([]string{"lists", "add", "-ttl", "soon"}, conn...), "blocked", "x"), 1, `400: ttl "soon"`},
		{"usage", "", []string{"lists", "add", "blocked"}, 2, "riskctl lists add: want a list NAME and at least one VALUE\n\nusage: riskctl lists add [flags] NAME VALUE..."},
		// Flags after the list name are flags, not values to block.
		{"flags after the name", "", append([]string{"lists", "add", "blocked", "-ttl", "30d", "c5"}, conn...), 0, "blocked: added 1 values (expire: 20"},
		{"a value starting with -", "", append(append([]string{"lists", "add"}, conn...), "blocked", "--", "-c6"), 0, "blocked: added 1 values (expire: never)"},
		{"a dash value without --", "", append(append([]string{"lists", "add"}, conn...), "blocked", "-c7"), 2, "flag provided but not defined: -c7"},
		{"show after", "", append([]string{"lists", "show", "blocked"}, conn...), 0, "-c6\nc5\texpires 20"},
		{"ttl is for add", "", append(append([]string{"lists", "remove", "-ttl", "1d"}, conn...), "blocked", "c2"), 2, "flag provided but not defined: -ttl"},
		{"help", "", []string{"lists", "-h"}, 0, "riskctl lists: change riskd's mutable lists"},
		{"unknown operation", "", []string{"lists", "ad", "blocked", "x"}, 2, `riskctl lists: unknown operation "ad" (did you mean "add"?)`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("RISKD_ADMIN_TOKEN", "")
			code, out, errOut := riskctl(t, tt.stdin, tt.args...)
			got := out
			if tt.code != 0 {
				got = errOut
			}
			if code != tt.code || !strings.HasPrefix(got, tt.out) && !strings.Contains(got, tt.out) || tt.code == 0 && errOut != "" {
				t.Errorf("exit %d\nstdout: %s\nstderr: %s\nwant exit %d with %q", code, out, errOut, tt.code, tt.out)
			}
		})
	}
}

// TestValidateReportsListFiles: validate names each list file with its
// size and warns of duplicates, empty lines and files no list declares.
func TestValidateReportsListFiles(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"features.yaml":     "lists:\n  blocked: {file: lists/blocked.txt}\nfeatures:\n  - {name: n, kind: count, key: card_id, window: 1h}\n",
		"pay.yaml":          "name: pay\nevent_types: [pay]\nthresholds: {step_up: 50, block: 90}\nrules:\n  - {id: blocked, when: event.card in lists.blocked, action: block}\n",
		"lists/blocked.txt": "c1\nc2\n\nc1\n",
		"lists/old.txt":     "x\n",
	}
	for name, body := range files {
		os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755)
		os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644)
	}
	code, out, errOut := riskctl(t, "", "validate", "-cost-warn", "0", dir)
	wantOut := dir + "/lists/blocked.txt: 2 values, 10 bytes, version "
	wantErr := []string{
		"warning: " + dir + "/lists/blocked.txt: line 4: duplicate value \"c1\" (first at line 1)",
		"warning: " + dir + "/lists/blocked.txt: line 3: 1 empty lines (the first here); they are skipped",
		"warning: " + dir + "/lists/old.txt: no list declares this file",
	}
	if code != 0 || !strings.Contains(out, wantOut) {
		t.Errorf("exit %d\n%s\nwant %s", code, out, wantOut)
	}
	for _, w := range wantErr {
		if !strings.Contains(errOut, w) {
			t.Errorf("stderr:\n%s\nwant %s", errOut, w)
		}
	}
	code, _, errOut = riskctl(t, "", "validate", "-cost-warn", "0", "-rules-max-list-bytes", "9", dir)
	if code != 1 || !strings.Contains(errOut, "lists/blocked.txt: 10 bytes, larger than the limit of 9 bytes for list files (-rules-max-list-bytes raises it)") {
		t.Errorf("over the limit: exit %d\n%s", code, errOut)
	}
	code, _, errOut = riskctl(t, "", "validate", "-cost-warn", "0", "-rules-max-list-bytes", "20", dir)
	if code != 0 || !strings.Contains(errOut, "warning: list files take 12 bytes, more than half of the 20 bytes riskd reads") {
		t.Errorf("near the limit: exit %d\n%s", code, errOut)
	}
}

// TestListsShowHelp: an operation's -h goes to standard output, exit 0,
// and lists only the flags that operation takes.
func TestListsShowHelp(t *testing.T) {
	code, out, errOut := riskctl(t, "", "lists", "show", "-h")
	if code != 0 || errOut != "" || !strings.HasPrefix(out, "usage: riskctl lists show [flags] NAME") || !strings.Contains(out, "-url") || strings.Contains(out, "-ttl") {
		t.Errorf("exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
}
