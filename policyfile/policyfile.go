// Package policyfile reads the YAML files analysts edit (features.yaml and
// ruleset files) and reports every problem as file:line:col: message.
package policyfile

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// Error is one problem found in a policy file, positioned at the offending
// YAML value so an analyst can jump straight to it.
type Error struct {
	File string
	Line int
	Col  int
	Msg  string
}

func (e *Error) Error() string {
	msg := cut(e.Msg, MaxMessageBytes)
	switch {
	case e.Line > 0 && e.Col > 0:
		return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, msg)
	case e.Line > 0:
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, msg)
	default:
		return fmt.Sprintf("%s: %s", e.File, msg)
	}
}

// Messages end up in logs and in riskd's GET /v1/rulesets, so they quote
// what a file holds only in short excerpts: a file that is not a policy
// at all (a symlink to /etc/passwd, a private key) must not be echoed back
// whole.
const (
	// MaxExcerptBytes is the most of a value that Quote shows.
	MaxExcerptBytes = 80
	// MaxMessageBytes bounds a whole message, whatever it quotes.
	MaxMessageBytes = 320
	// MaxErrorsPerFile is how many problems of one file Err lists; the rest
	// are counted.
	MaxErrorsPerFile = 50
)

// Quote returns s quoted like %q, cut to its first MaxExcerptBytes bytes
// with "…" when longer. Every value of a file that a message repeats goes
// through it.
func Quote(s string) string {
	if len(s) <= MaxExcerptBytes {
		return strconv.Quote(s)
	}
	return strconv.Quote(cut(s, MaxExcerptBytes))
}

// Cut returns s, or its first MaxExcerptBytes bytes and "…": an excerpt
// of a value that a message shows unquoted.
func Cut(s string) string { return cut(s, MaxExcerptBytes) }

// cut returns s, or its first max bytes (not splitting a character) and
// "…".
func cut(s string, max int) string {
	if len(s) <= max {
		return s
	}
	i := max
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "…"
}

// Errors collects every problem of a load; validation never stops at the
// first one.
type Errors struct {
	File string
	list []error
}

// At records a problem at node's position.
func (es *Errors) At(n *yaml.Node, format string, args ...any) {
	e := &Error{File: es.File, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		e.Line, e.Col = n.Line, n.Column
	}
	es.list = append(es.list, e)
}

// AtPos records a problem at an explicit position.
func (es *Errors) AtPos(line, col int, format string, args ...any) {
	es.list = append(es.list, &Error{File: es.File, Line: line, Col: col, Msg: fmt.Sprintf(format, args...)})
}

// Add records an error that already carries its position.
func (es *Errors) Add(err error) {
	if err != nil {
		es.list = append(es.list, err)
	}
}

// Len reports how many problems were recorded.
func (es *Errors) Len() int { return len(es.list) }

// Err returns all problems joined, one per line in file order, or nil.
// Past MaxErrorsPerFile the rest are counted, not listed: a file that is
// not a policy at all would otherwise make an error as large as itself.
func (es *Errors) Err() error {
	sort.SliceStable(es.list, func(i, j int) bool {
		a, okA := es.list[i].(*Error)
		b, okB := es.list[j].(*Error)
		return okA && okB && (a.Line < b.Line || a.Line == b.Line && a.Col < b.Col)
	})
	if len(es.list) > MaxErrorsPerFile {
		list := append(es.list[:MaxErrorsPerFile:MaxErrorsPerFile],
			&Error{File: es.File, Msg: fmt.Sprintf("… and %d more problems in this file", len(es.list)-MaxErrorsPerFile)})
		return errors.Join(list...)
	}
	return errors.Join(es.list...)
}

// Messages returns the problems recorded, as Err lists them.
func (es *Errors) Messages() []string {
	err := es.Err()
	if err == nil {
		return nil
	}
	var out []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		out = append(out, e.Error())
	}
	return out
}

// Parse decodes data into a document node. A YAML syntax error is returned
// positioned like every other problem.
func Parse(file string, data []byte) (*yaml.Node, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, syntaxError(file, data, err)
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil, &Error{File: file, Line: 1, Col: 1, Msg: "file is empty"}
	}
	return doc.Content[0], nil
}

// syntaxError turns yaml.v3's "yaml: line N: msg" into file:N:C: msg.
// yaml.v3 names the line where the construct it was reading began (a
// dedented key on line 43 is reported at the rules: of line 16), so the
// line is the first one that makes the file fail with this message: the
// shortest prefix of data that does.
func syntaxError(file string, data []byte, err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	rest, ok := strings.CutPrefix(msg, "line ")
	i := strings.Index(rest, ":")
	if !ok || i <= 0 {
		// yaml.v3 gives no line for some errors (an unknown alias): the
		// first lines that fail with it hold the mistake.
		line, col := firstFailingLine(data, msg)
		if name, ok := strings.CutPrefix(msg, "unknown anchor '"); ok {
			name = strings.TrimSuffix(name, "' referenced")
			if line > 0 {
				lines := strings.Split(string(data), "\n")
				if j := strings.Index(lines[line-1], "*"+name); j >= 0 {
					col = utf8.RuneCountInString(lines[line-1][:j]) + 1
				}
			}
			msg += fmt.Sprintf(" (YAML reads *%s as an alias of an &%s anchor: put a value starting with * in quotes)", name, name)
		}
		return &Error{File: file, Line: line, Col: col, Msg: "YAML syntax: " + msg}
	}
	line, convErr := strconv.Atoi(rest[:i])
	if convErr != nil {
		return &Error{File: file, Msg: "YAML syntax: " + msg}
	}
	msg = strings.TrimSpace(rest[i+1:])
	col := 0
	if l, c := firstFailingLine(data, msg); l > line {
		line, col = l, c
	}
	if msg == "did not find expected alphabetic or numeric character" {
		// yaml.v3 says so of an alias or anchor name: a value such as
		// *urgent* card, which was meant as text.
		lines := strings.Split(string(data), "\n")
		if line > 0 && line <= len(lines) {
			if j := strings.IndexAny(lines[line-1], "*&"); j >= 0 {
				col = utf8.RuneCountInString(lines[line-1][:j]) + 1
				msg += " (YAML reads a value starting with * or & as an alias or anchor: put it in quotes)"
			}
		}
	}
	return &Error{File: file, Line: line, Col: col, Msg: "YAML syntax: " + msg}
}

// firstFailingLine returns the smallest n such that the first n lines of
// data fail to parse with msg, and the column of that line's first
// character that is not a space; 0 when there is none. It bisects: a
// prefix that fails this way almost always keeps failing as it grows.
func firstFailingLine(data []byte, msg string) (line, col int) {
	var ends []int // ends[i]: the end of line i+1
	for i, b := range data {
		if b == '\n' {
			ends = append(ends, i+1)
		}
	}
	if len(data) > 0 && data[len(data)-1] != '\n' {
		ends = append(ends, len(data))
	}
	fails := func(n int) bool {
		var doc yaml.Node
		err := yaml.Unmarshal(data[:ends[n-1]], &doc)
		return err != nil && strings.HasSuffix(err.Error(), ": "+msg)
	}
	lo, hi := 1, len(ends) // the answer is in [lo, hi] if anywhere
	if hi == 0 || !fails(hi) {
		return 0, 0
	}
	for lo < hi {
		mid := (lo + hi) / 2
		if fails(mid) {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	start := 0
	if lo > 1 {
		start = ends[lo-2]
	}
	text := data[start:ends[lo-1]]
	col = 1 + len(text) - len(strings.TrimLeft(string(text), " "))
	return lo, col
}

// Field is one key of a mapping with its value node.
type Field struct {
	Key   *yaml.Node
	Value *yaml.Node
}

// Mapping returns the fields of a mapping node, reporting unknown keys,
// duplicate keys and missing required keys. known lists every accepted key;
// a key prefixed with "!" is required.
func Mapping(es *Errors, n *yaml.Node, what string, known ...string) map[string]Field {
	if n.Kind != yaml.MappingNode {
		es.At(n, "%s must be a mapping, got %s", what, kindName(n))
		return nil
	}
	accepted := make(map[string]bool, len(known))
	var names []string
	for _, k := range known {
		name := strings.TrimPrefix(k, "!")
		accepted[name] = true
		names = append(names, name)
	}
	out := make(map[string]Field, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if !accepted[k.Value] {
			msg := fmt.Sprintf("unknown key %s in %s", Quote(k.Value), what)
			if s := Suggest(k.Value, names); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			} else {
				sort.Strings(names)
				msg += " (known keys: " + strings.Join(names, ", ") + ")"
			}
			es.At(k, "%s", msg)
			continue
		}
		if prev, dup := out[k.Value]; dup {
			es.At(k, "duplicate key %s in %s (first at line %d)", Quote(k.Value), what, prev.Key.Line)
			continue
		}
		out[k.Value] = Field{Key: k, Value: v}
	}
	for _, k := range known {
		if name, required := strings.CutPrefix(k, "!"); required {
			if _, ok := out[name]; !ok {
				es.At(n, "%s is missing required key %q", what, name)
			}
		}
	}
	return out
}

// String returns a scalar's text, reporting a non-scalar or empty value.
func String(es *Errors, n *yaml.Node, what string) (string, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		es.At(n, "%s must be a string, got %s", what, kindName(n))
		return "", false
	}
	if n.Value == "" {
		es.At(n, "%s must not be empty", what)
		return "", false
	}
	return n.Value, true
}

// Strings returns a list of scalars; a single scalar is accepted as a list
// of one, which is how analysts write `key: card_id`.
func Strings(es *Errors, n *yaml.Node, what string) ([]string, bool) {
	if n.Kind == yaml.ScalarNode {
		s, ok := String(es, n, what)
		return []string{s}, ok
	}
	if n.Kind != yaml.SequenceNode {
		es.At(n, "%s must be a string or a list of strings, got %s", what, kindName(n))
		return nil, false
	}
	if len(n.Content) == 0 {
		es.At(n, "%s must not be an empty list", what)
		return nil, false
	}
	out := make([]string, 0, len(n.Content))
	ok := true
	for _, c := range n.Content {
		s, good := String(es, c, what+" item")
		ok = ok && good
		out = append(out, s)
	}
	return out, ok
}

// Int returns an integer scalar.
func Int(es *Errors, n *yaml.Node, what string) (int64, bool) {
	if n.Kind == yaml.ScalarNode && (n.Tag == "!!int" || n.Tag == "!!float") {
		f, err := strconv.ParseFloat(n.Value, 64)
		if err == nil && f == float64(int64(f)) {
			return int64(f), true
		}
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!int" {
		if v, err := strconv.ParseInt(n.Value, 0, 64); err == nil {
			return v, true
		}
	}
	es.At(n, "%s must be a whole number, got %s", what, kindName(n))
	return 0, false
}

// Duration parses a window or retention such as 90s, 15m, 1h, 24h, 7d, 30d
// or 2w. Units below a second are refused: history is kept in milliseconds
// but windows that short are a typo, not a velocity rule.
func Duration(es *Errors, n *yaml.Node, what string) (time.Duration, bool) {
	if n.Kind != yaml.ScalarNode {
		es.At(n, "%s must be a duration like 90s, 15m, 1h, 7d, got %s", what, kindName(n))
		return 0, false
	}
	d, err := ParseDuration(n.Value)
	if err != nil {
		es.At(n, "%s: %v", what, err)
		return 0, false
	}
	return d, true
}

// ParseDuration parses <number><unit> with unit s, m, h, d or w.
func ParseDuration(s string) (time.Duration, error) {
	if len(s) < 2 {
		return 0, fmt.Errorf("invalid duration %s (want a number and a unit: s, m, h, d, w, e.g. 15m or 7d)", Quote(s))
	}
	num, unit := s[:len(s)-1], s[len(s)-1]
	var u time.Duration
	switch unit {
	case 's':
		u = time.Second
	case 'm':
		u = time.Minute
	case 'h':
		u = time.Hour
	case 'd':
		u = 24 * time.Hour
	case 'w':
		u = 7 * 24 * time.Hour
	default:
		return 0, fmt.Errorf("invalid duration %s: unknown unit %q (use s, m, h, d or w, e.g. 15m or 7d)", Quote(s), string(unit))
	}
	v, err := strconv.ParseUint(num, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %s (want a whole number and a unit, e.g. 15m or 7d)", Quote(s))
	}
	if v == 0 {
		return 0, fmt.Errorf("invalid duration %q: must be greater than zero", s)
	}
	// Compare before multiplying: a product past int64 would wrap into
	// an accepted, wrong duration.
	const most = 5 * 365 * 24 * time.Hour
	if v > uint64(most/u) {
		return 0, fmt.Errorf("invalid duration %q: longer than five years", s)
	}
	return time.Duration(v) * u, nil
}

// FormatDuration writes d in the largest unit that divides it exactly, the
// way analysts write windows.
func FormatDuration(d time.Duration) string {
	for _, u := range []struct {
		d time.Duration
		s string
	}{{7 * 24 * time.Hour, "w"}, {24 * time.Hour, "d"}, {time.Hour, "h"}, {time.Minute, "m"}} {
		if d%u.d == 0 {
			return strconv.FormatInt(int64(d/u.d), 10) + u.s
		}
	}
	return strconv.FormatInt(int64(d/time.Second), 10) + "s"
}

// Suggest returns the candidate closest to s when it is close enough to be
// a likely typo, or "".
func Suggest(s string, candidates []string) string {
	best, bestD := "", len(s)/3+2
	for _, c := range candidates {
		// Case is a typo like any other: FRAUD means fraud.
		if d := levenshtein(strings.ToLower(s), strings.ToLower(c)); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// Typo reports whether a is b mistyped: at most two letters added,
// dropped or changed. It is stricter than Suggest, for warnings about
// names that are legitimately alike (card_country, ip_country).
func Typo(a, b string) bool { return levenshtein(a, b) <= 2 }

func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	if n.Tag == "!!null" {
		return "nothing"
	}
	return Quote(n.Value)
}

// Pos is where a scalar is written in a policy file: what a compiled
// value keeps of its YAML node to point messages at it later.
type Pos struct {
	Line, Column int
	Style        yaml.Style // quoted and block scalars shift columns
}

// PosOf is n's position.
func PosOf(n *yaml.Node) Pos { return Pos{Line: n.Line, Column: n.Column, Style: n.Style} }

// Node is a node at p, for the functions that point messages at a node.
func (p Pos) Node() *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Line: p.Line, Column: p.Column, Style: p.Style}
}
