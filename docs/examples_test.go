// Package docs_test runs the shell examples of the README and of
// docs/operations.md against riskd and riskctl built from this tree, so a
// command that no longer works as written fails the tests.
package docs_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/riskd/riskd/internal/poll"
)

// skipMark, on the line before a fence, keeps a block from running; it
// says why (it needs Redis, it is the test suite itself).
const skipMark = "<!-- not run by docs/examples_test.go: "

// block is a fenced block of a Markdown file.
type block struct {
	line int    // of the opening fence
	lang string // the fence's info string
	text string
	skip bool
	// output is the ```json block right after an ```sh block: what its
	// commands print.
	output string
}

func blocks(t *testing.T, file string) []block {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var out []block
	var cur *block
	prev := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case cur == nil && strings.HasPrefix(line, "```"):
			cur = &block{line: n, lang: strings.TrimPrefix(line, "```"), skip: strings.HasPrefix(prev, skipMark)}
		case cur != nil && line == "```":
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			cur.text += line + "\n"
		}
		if strings.TrimSpace(line) != "" || cur != nil {
			prev = line
		}
	}
	// A json block right after an sh block (blank lines between) is its
	// output.
	var merged []block
	for i, b := range out {
		if b.lang == "json" && i > 0 && out[i-1].lang == "sh" && followsDirectly(data, out[i-1], b) {
			merged[len(merged)-1].output = b.text
			continue
		}
		merged = append(merged, b)
	}
	return merged
}

// followsDirectly reports whether only blank lines separate a's closing
// fence from b's opening one.
func followsDirectly(data []byte, a, b block) bool {
	lines := strings.Split(string(data), "\n")
	end := a.line + strings.Count(a.text, "\n") // a's closing fence, 0-based next line
	for _, l := range lines[end+1 : b.line-1] {
		if strings.TrimSpace(l) != "" {
			return false
		}
	}
	return true
}

// tree is a scratch copy of the repository's top level (symlinks), so
// the examples' relative paths resolve and what they write stays out of
// the work tree.
func tree(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	entries, err := os.ReadDir("..")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() == ".git" {
			continue
		}
		abs, _ := filepath.Abs(filepath.Join("..", e.Name()))
		if err := os.Symlink(abs, filepath.Join(dir, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func build(t *testing.T) (riskd, riskctl string) {
	t.Helper()
	bin := t.TempDir()
	for _, cmd := range []string{"riskd", "riskctl"} {
		if out, err := exec.Command("go", "build", "-o", filepath.Join(bin, cmd), "../cmd/"+cmd).CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", cmd, err, out)
		}
	}
	return filepath.Join(bin, "riskd"), filepath.Join(bin, "riskctl")
}

// prelude runs before every block: a command that fails fails the block,
// and so does an HTTP error answered to curl.
const prelude = `set -euo pipefail
curl() { command curl --silent --show-error --fail-with-body "$@"; }
`

// server is a riskd started by a block, owned by the test.
type server struct {
	cmd    *exec.Cmd
	log    string // its standard output and error: a file, so reading it races with nothing
	exited chan error
}

func (s *server) output() string {
	b, _ := os.ReadFile(s.log)
	return string(b)
}

var (
	riskdRE = regexp.MustCompile(`go run \./cmd/riskd(\s|$)`)
	// riskd logs JSON when its output is not a terminal (-log-format auto).
	servingRE = regexp.MustCompile(`"msg":"riskd serving","addr":"([^"]+)","admin_addr":"([^"]*)"`)
)

// start runs the line of a block that starts riskd: the built binary, on
// free ports (the docs' 127.0.0.1:9090 too), as a process the test owns.
// It returns once riskd serves, with its addresses.
func start(t *testing.T, dir, riskd, line string) (s *server, addr, admin string) {
	t.Helper()
	line = strings.Replace(line, "go run ./cmd/riskd", `exec "$RISKD"`, 1)
	line = strings.ReplaceAll(line, "127.0.0.1:9090", "127.0.0.1:0") + " -listen 127.0.0.1:0"
	log, err := os.Create(filepath.Join(t.TempDir(), "riskd.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	s = &server{log: log.Name(), exited: make(chan error, 1)}
	s.cmd = exec.Command("bash", "-c", prelude+line)
	s.cmd.Dir = dir
	s.cmd.Env = append(os.Environ(), "RISKD="+riskd)
	s.cmd.Stdout, s.cmd.Stderr = log, log
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.exited <- s.cmd.Wait() }()
	var m []string
	poll.Wait{Every: 20 * time.Millisecond, Explain: s.output}.Until(t, line+": riskd to serve", func() bool {
		select {
		case err := <-s.exited:
			t.Fatalf("%s: riskd exited: %v\n%s", line, err, s.output())
		default:
		}
		m = servingRE.FindStringSubmatch(s.output())
		return m != nil
	})
	return s, m[1], m[2]
}

// stop ends riskd as an operator would, and expects a clean exit.
func (s *server) stop(t *testing.T) {
	t.Helper()
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.exited:
		if err != nil {
			t.Errorf("riskd exited with %v after SIGTERM\n%s", err, s.output())
		}
	case <-time.After(30 * time.Second):
		s.cmd.Process.Kill()
		t.Errorf("riskd still running 30s after SIGTERM\n%s", s.output())
	}
}

// TestDocsExamplesRun runs every ```sh block of the README and of
// docs/operations.md that is not marked, in order, in a scratch copy of
// the tree: riskctl and riskd are the binaries built from it (riskd on
// free ports the commands are pointed at), a command that fails or an
// HTTP error fails the block, and a ```json block right after one is
// what it must print (elapsed_us aside).
func TestDocsExamplesRun(t *testing.T) {
	riskd, riskctl := build(t)
	for _, doc := range []string{"../README.md", "operations.md"} {
		t.Run(filepath.Base(doc), func(t *testing.T) { runDoc(t, doc, riskd, riskctl) })
	}
}

func runDoc(t *testing.T, doc, riskd, riskctl string) {
	dir := tree(t)
	var srv *server
	defer func() {
		if srv != nil {
			srv.stop(t)
		}
	}()
	var addr, admin string
	ran := 0
	for _, b := range blocks(t, doc) {
		if b.lang != "sh" || b.skip {
			continue
		}
		ran++
		where := fmt.Sprintf("%s:%d", doc, b.line)
		if strings.Contains(b.text, "test.sh") {
			t.Fatalf("%s runs the tests themselves: put %s…--> before it", where, skipMark)
		}
		lines := strings.Split(strings.TrimRight(b.text, "\n"), "\n")
		script := b.text
		if last := lines[len(lines)-1]; riskdRE.MatchString(last) {
			script = strings.Join(lines[:len(lines)-1], "\n")
			if srv != nil {
				srv.stop(t)
			}
			srv = nil
			if script != "" {
				runScript(t, where, dir, riskctl, script, addr, admin)
			}
			srv, addr, admin = start(t, dir, riskd, last)
			continue
		}
		if riskdRE.MatchString(script) {
			t.Fatalf("%s: a block that starts riskd ends with that line (it serves until stopped)", where)
		}
		got := runScript(t, where, dir, riskctl, script, addr, admin)
		if b.output != "" {
			compareJSON(t, where, got, b.output)
		}
	}
	if ran == 0 {
		t.Fatalf("%s: no block ran", doc)
	}
}

// runScript runs a block's commands, riskctl and curl pointed at what
// this test built and started, and returns what they print.
func runScript(t *testing.T, where, dir, riskctl, script, addr, admin string) string {
	t.Helper()
	script = strings.ReplaceAll(script, "go run ./cmd/riskctl", `"$RISKCTL"`)
	if addr != "" {
		script = strings.ReplaceAll(script, "localhost:8080", addr)
	}
	if admin != "" {
		script = strings.ReplaceAll(script, "localhost:9090", admin)
	}
	if strings.Contains(script, "go run") {
		t.Fatalf("%s: only riskd and riskctl are run here: put %s…--> before the block", where, skipMark)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", prelude+script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "RISKCTL="+riskctl)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Errorf("%s: %v\n%s\n%s%s", where, err, script, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// compareJSON compares JSON lines, as values and without elapsed_us,
// which no two runs share.
func compareJSON(t *testing.T, where, got, want string) {
	t.Helper()
	norm := func(text string) []any {
		var out []any
		for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
			var v any
			if err := json.Unmarshal([]byte(line), &v); err != nil {
				t.Errorf("%s: %q is not JSON: %v", where, line, err)
				continue
			}
			if m, ok := v.(map[string]any); ok {
				delete(m, "elapsed_us")
			}
			out = append(out, v)
		}
		return out
	}
	g, w := norm(got), norm(want)
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(w)
	if !bytes.Equal(gb, wb) {
		t.Errorf("%s prints\n%s\nthe doc shows\n%s", where, got, want)
	}
}

// TestREADMEGoIsTheCheckoutExample: the README's Go blocks are excerpts
// of examples/checkout, which is compiled, vetted and tested.
func TestREADMEGoIsTheCheckoutExample(t *testing.T) {
	src, err := os.ReadFile("../examples/checkout/main.go")
	if err != nil {
		t.Fatal(err)
	}
	trim := func(text string) string {
		var out []string
		for _, l := range strings.Split(strings.TrimSpace(text), "\n") {
			out = append(out, strings.TrimSpace(l))
		}
		return strings.Join(out, "\n")
	}
	example := trim(string(src))
	n := 0
	for _, b := range blocks(t, "../README.md") {
		if b.lang != "go" {
			continue
		}
		n++
		if !strings.Contains(example, trim(b.text)) {
			t.Errorf("README.md:%d: this Go is not in examples/checkout/main.go as written:\n%s", b.line, b.text)
		}
	}
	if n == 0 {
		t.Error("README.md has no Go block")
	}
}
