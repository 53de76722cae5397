package main

import (
	"flag"
	"io"
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestOperationsDocumentsEveryFlag: docs/operations.md's flags table has
// one row per riskd flag, each with the RISKD_ variable that sets it (none
// for -version), and no row for a flag riskd does not have.
func TestOperationsDocumentsEveryFlag(t *testing.T) {
	data, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(data), "\n## Flags\n")
	if !ok {
		t.Fatal("docs/operations.md has no ## Flags section")
	}
	table, _, _ = strings.Cut(table, "\n## ")
	row := regexp.MustCompile("(?m)^\\| `-([a-z0-9-]+)`(?: \\(`(RISKD_[A-Z0-9_]+)`\\))? \\|")
	documented := map[string]string{}
	for _, m := range row.FindAllStringSubmatch(table, -1) {
		documented[m[1]] = m[2]
	}
	if bad := regexp.MustCompile("(?m)^\\| `-[^|]*\\|").FindAllString(table, -1); len(bad) != len(documented) {
		t.Errorf("%d flag rows, %d of them of the form | `-flag` (`RISKD_FLAG`) |: one flag a row", len(bad), len(documented))
	}
	flagSet(&config{}, io.Discard).VisitAll(func(f *flag.Flag) {
		env, ok := documented[f.Name]
		want := envName(f.Name)
		if actions[f.Name] {
			want = ""
		}
		switch {
		case !ok:
			t.Errorf("-%s is not in the flags table", f.Name)
		case env != want:
			t.Errorf("-%s is documented with %q; riskd reads %q", f.Name, env, want)
		}
		delete(documented, f.Name)
	})
	for name := range documented {
		t.Errorf("the flags table documents -%s, which riskd does not have", name)
	}
}
