package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadTokens(t *testing.T) {
	for _, tt := range []struct {
		name, file string
		want       string // names, or the error
	}{
		{"named", "# who may change lists\ncase-tool 0123456789abcdef0123\n\nanalyst.jo  fedcba9876543210fedc\n", "case-tool,analyst.jo"},
		{"roles", "ann 0123456789abcdef0123 analyst\nroot 0123456789abcdef0124 admin\n", "ann(analyst),root"},
		{"bad role", "# x\ncase-tool 0123456789abcdef0123 boss\n", `tokens:2: role "boss": want admin or analyst`},
		{"four fields", "# x\ncase-tool abc def analyst extra\n", "tokens:2: want NAME TOKEN [ROLE]"},
		{"short", "case-tool 0123\n", "tokens:1: the token of case-tool is shorter than 16 characters"},
		{"bad name", "case/tool 0123456789abcdef0123\n", `tokens:1: name "case/tool": letters, digits, _, - and . only`},
		{"twice", "a 0123456789abcdef0123\na 0123456789abcdef0124\n", "tokens:2: name a is used twice"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "tokens")
			os.WriteFile(path, []byte(tt.file), 0o600)
			toks, err := readTokens(path)
			var got string
			if err != nil {
				got = err.Error()
			} else {
				var names []string
				for _, tok := range toks {
					if tok.Analyst {
						tok.Name += "(analyst)"
					}
					names = append(names, tok.Name)
				}
				got = strings.Join(names, ",")
			}
			if !strings.HasSuffix(got, tt.want) {
				t.Errorf("got %s, want …%s", got, tt.want)
			}
		})
	}
}
