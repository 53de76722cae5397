package lists

import (
	"bytes"
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
		{"byte order mark", "\ufeffa\nb\n", []string{"a", "b"}, []string{"\ufeffa"}, nil},
		{"CRLF", "a\r\nb\r\n", []string{"a", "b"}, []string{"a\r"}, nil},
		{"line of MaxLineBytes", strings.Repeat("x", MaxLineBytes) + "\n", []string{strings.Repeat("x", MaxLineBytes)}, nil, nil},
		{"UTF-8 and tabs", "été\tcafé\n", []string{"été\tcafé"}, nil, nil},
		{"pasted from CSV or JSON", "a\n\"b\"\nc,d\n'e'\nMozilla/5.0 (KHTML, like Gecko)\n", []string{"a", `"b"`, "c,d", "'e'", "Mozilla/5.0 (KHTML, like Gecko)"}, []string{"b", "c"},
			[]string{`line 2: 3 values in quotes or holding commas (the first here: "\"b\""): a list file holds one value a line, compared as written (quotes and commas included)`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f, err := ParseFile([]byte(tt.file))
			if err != nil {
				t.Fatal(err)
			}
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

// TestParseFileRefuses: what is not UTF-8 text of LF or CRLF lines is
// refused naming the line, rather than read into values that match
// nothing.
func TestParseFileRefuses(t *testing.T) {
	utf16 := func(bom bool, s string) string {
		var b []byte
		if bom {
			b = append(b, 0xff, 0xfe)
		}
		for _, c := range []byte(s) {
			b = append(b, c, 0)
		}
		return string(b)
	}
	for _, tt := range []struct{ name, file, want string }{
		{"UTF-16 with a byte order mark", utf16(true, "a\nb\n"), "line 1: the file is UTF-16 (it starts with a UTF-16 byte order mark): save it as UTF-8"},
		{"UTF-16 without", utf16(false, "a\nb\n"), "line 1: NUL byte: a list file is UTF-8 text (is it UTF-16, or binary?)"},
		{"CR only", "a\rb\rc\r", "line 1: carriage return not followed by a line feed: lines end with LF or CRLF (a file saved with old Mac line endings?)"},
		{"CR only after CRLF lines", "a\r\nb\r\nc\rd", "line 3: carriage return not followed by a line feed: lines end with LF or CRLF (a file saved with old Mac line endings?)"},
		{"NUL on line 3", "a\nb\nc\x00\n", "line 3: NUL byte: a list file is UTF-8 text (is it UTF-16, or binary?)"},
		{"binary", "\x7fELF\x02\x01\x01", "line 1: control character 0x02: a list file is UTF-8 text (is it binary?)"},
		{"Latin-1", "a\ncaf\xe9\n", "line 2: invalid UTF-8: a list file is UTF-8 text (is it binary, or in another encoding?)"},
		{"long line", "a\n" + strings.Repeat("x", MaxLineBytes+1), "line 2: longer than 4096 bytes: a list holds one value per line"},
		{"100 MB line", strings.Repeat("4111111111111111", 100<<20/16), "line 1: longer than 4096 bytes: a list holds one value per line"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f, err := ParseFile([]byte(tt.file))
			if err == nil || err.Error() != tt.want {
				t.Errorf("got %v (%v)\nwant %s", err, f, tt.want)
			}
		})
	}
}

// FuzzParseFile: any file parses or is refused; every value a line holds is in the
// list, and the list holds as many values as there are distinct ones.
// Seeds are in testdata/fuzz/FuzzParseFile.
func FuzzParseFile(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		lf, err := ParseFile(data)
		if err != nil {
			return
		}
		data = bytes.TrimPrefix(data, utf8BOM)
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
