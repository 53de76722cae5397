package lists

import (
	"strings"
	"testing"
)

func TestParseFile(t *testing.T) {
	for _, tt := range []struct {
		name     string
		file     string
		in, out  []string
		warnings []string
	}{
		{"values", "a\nb\n", []string{"a", "b"}, []string{"", "a\n"}, nil},
		{"no final newline", "a\nb", []string{"a", "b"}, nil, nil},
		{"blanks trimmed", "  a \t\r\n", []string{"a"}, []string{"  a "}, nil},
		{"comments", "# cards\na # test card\nb#c\n  # indented\n", []string{"a", "b#c"}, []string{"# cards", "a # test card", "b", "# indented"}, nil},
		{"duplicates and empty lines", "a\n\nb\na\n\n", []string{"a", "b"}, nil,
			[]string{`line 4: duplicate value "a" (first at line 1)`, "line 2: 2 empty lines (the first here); they are skipped"}},
		{"many duplicates", strings.Repeat("x\n", 8), []string{"x"}, nil,
			[]string{`line 2: duplicate value "x" (first at line 1)`, `line 3: duplicate value "x" (first at line 1)`, `line 4: duplicate value "x" (first at line 1)`,
				`line 5: duplicate value "x" (first at line 1)`, `line 6: duplicate value "x" (first at line 1)`, "2 more duplicate values"}},
		{"empty file", "", nil, []string{""}, nil},
		{"pasted from CSV or JSON", "a\n\"b\"\nc,d\n'e'\nMozilla/5.0 (KHTML, like Gecko)\n", []string{"a", `"b"`, "c,d", "'e'", "Mozilla/5.0 (KHTML, like Gecko)"}, []string{"b", "c"},
			[]string{`line 2: 3 values in quotes or holding commas (the first here: "\"b\""): a list file holds one value a line, compared as written (quotes and commas included)`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := ParseFile([]byte(tt.file))
			for _, v := range tt.in {
				if !f.Values.Has(v) {
					t.Errorf("%q not in the list", v)
				}
			}
			for _, v := range tt.out {
				if f.Values.Has(v) {
					t.Errorf("%q in the list", v)
				}
			}
			if f.Values.Len() != len(tt.in) {
				t.Errorf("%d values, want %d", f.Values.Len(), len(tt.in))
			}
			if strings.Join(f.Warnings, "\n") != strings.Join(tt.warnings, "\n") {
				t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(f.Warnings, "\n"), strings.Join(tt.warnings, "\n"))
			}
			if len(f.Version) != 12 || f.Bytes != len(tt.file) {
				t.Errorf("version %q, bytes %d", f.Version, f.Bytes)
			}
		})
	}
}

// FuzzParseFile: any file parses; every value a line holds is in the
// list, and the list holds as many values as there are distinct ones.
// Seeds are in testdata/fuzz/FuzzParseFile.
func FuzzParseFile(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		lf := ParseFile(data)
		distinct := map[string]bool{}
		eachLine(string(data), func(_ int, line string) {
			if v := value(line); v != "" {
				distinct[v] = true
				if !lf.Values.Has(v) {
					t.Fatalf("%q of line %q is not in the list", v, line)
				}
			}
		})
		if lf.Values.Len() != len(distinct) {
			t.Fatalf("%d values, %d distinct ones in the file", lf.Values.Len(), len(distinct))
		}
	})
}
