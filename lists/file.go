// Package lists holds the value lists rules test membership in beyond
// those written inline in YAML: lists read from files of the policy
// directory, and mutable lists changed at run time through riskd's admin
// API, kept in memory or, shared by every instance, in Redis.
package lists

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Dir is where list files live in a policy directory: lists/NAME.txt.
const Dir = "lists"

// File is a parsed list file.
type File struct {
	Values *Set
	// Version names the file's content in decisions: the first 12 hex
	// digits of its SHA-256.
	Version string
	Bytes   int
	// Warnings are what riskctl validate reports and riskd logs: each
	// "line N: message" (or a count of lines).
	Warnings []string
}

// maxWarnedDuplicates bounds the duplicates named one by one: a file
// pasted twice would otherwise warn a million times.
const maxWarnedDuplicates = 5

// MaxLineBytes bounds one line of a list file: no value is that long, and
// a file of one 100 MB line is not a list.
const MaxLineBytes = 4096

// ParseFile reads a list file: UTF-8 text (a leading byte order mark is
// skipped), one value per line, lines ending in LF or CRLF, blanks around
// a value trimmed. A line whose first non-blank character is # is a comment, and
// so is the rest of a line from a blank followed by # ("4111… # test
// card"). Values are kept as written: compare lower(event.email) with a
// list of lower-case addresses for a case-blind match.
//
// The values share one copy of data: a million values cost the map and
// the file's bytes, not a million allocations.
//
// A file that is not such text is refused, naming the first line at
// fault: read otherwise, a UTF-16 or CR-only file matches nothing, and a
// binary one matches garbage, while the policy loads as if all were well.
func ParseFile(data []byte) (*File, error) {
	if err := checkText(data); err != nil {
		return nil, err
	}
	sum := sha256.Sum256(data)
	f := &File{Version: hex.EncodeToString(sum[:6]), Bytes: len(data)}
	data = bytes.TrimPrefix(data, utf8BOM)
	type dup struct {
		v    string
		line int
	}
	var named []dup
	dups, empty, firstEmpty := 0, 0, 0
	pasted, firstPasted, pastedValue := 0, 0, ""
	text := string(data)
	f.Values = NewSet(strings.Count(text, "\n")+1, func(add func(string) bool) {
		eachLine(text, func(n int, line string) {
			v := value(line)
			switch {
			case v == "" && strings.TrimSpace(line) == "":
				empty++
				if firstEmpty == 0 {
					firstEmpty = n
				}
				return
			case v == "":
				return // a comment
			}
			if pastedList(v) {
				if pasted++; firstPasted == 0 {
					firstPasted, pastedValue = n, v
				}
			}
			if !add(v) {
				if dups++; dups <= maxWarnedDuplicates {
					named = append(named, dup{v, n})
				}
			}
		})
	})
	if len(named) > 0 {
		// Where each named duplicate first appears: a second pass over
		// the file rather than a line number kept for every value.
		first := map[string]int{}
		for _, d := range named {
			first[d.v] = 0
		}
		eachLine(text, func(n int, line string) {
			if at, ok := first[value(line)]; ok && at == 0 {
				first[value(line)] = n
			}
		})
		for _, d := range named {
			f.Warnings = append(f.Warnings, fmt.Sprintf("line %d: duplicate value %q (first at line %d)", d.line, cut(d.v), first[d.v]))
		}
	}
	if dups > maxWarnedDuplicates {
		f.Warnings = append(f.Warnings, fmt.Sprintf("%d more duplicate values", dups-maxWarnedDuplicates))
	}
	if empty > 0 {
		f.Warnings = append(f.Warnings, fmt.Sprintf("line %d: %d empty lines (the first here); they are skipped", firstEmpty, empty))
	}
	if pasted > 0 {
		f.Warnings = append(f.Warnings, fmt.Sprintf("line %d: %d values in quotes or holding commas (the first here: %q): a list file holds one value a line, compared as written (quotes and commas included)", firstPasted, pasted, cut(pastedValue)))
	}
	return f, nil
}

var utf8BOM = []byte{0xef, 0xbb, 0xbf}

// checkText returns an error naming the first line of data that is not
// UTF-8 text of lines ending in LF or CRLF, at most MaxLineBytes long.
func checkText(data []byte) error {
	if bytes.HasPrefix(data, []byte{0xff, 0xfe}) || bytes.HasPrefix(data, []byte{0xfe, 0xff}) {
		return fmt.Errorf("line 1: the file is UTF-16 (it starts with a UTF-16 byte order mark): save it as UTF-8")
	}
	data = bytes.TrimPrefix(data, utf8BOM)
	line, start := 1, 0
	for i := 0; i < len(data); {
		c := data[i]
		switch {
		case c == '\n':
			line, start = line+1, i+1
		case i-start >= MaxLineBytes:
			return fmt.Errorf("line %d: longer than %d bytes: a list holds one value per line", line, MaxLineBytes)
		case c == '\r' && (i+1 == len(data) || data[i+1] != '\n'):
			return fmt.Errorf("line %d: carriage return not followed by a line feed: lines end with LF or CRLF (a file saved with old Mac line endings?)", line)
		case c == 0:
			return fmt.Errorf("line %d: NUL byte: a list file is UTF-8 text (is it UTF-16, or binary?)", line)
		case c < 0x20 && c != '\t' && c != '\r':
			return fmt.Errorf("line %d: control character 0x%02x: a list file is UTF-8 text (is it binary?)", line, c)
		case c >= utf8.RuneSelf:
			r, n := utf8.DecodeRune(data[i:])
			if r == utf8.RuneError && n == 1 {
				return fmt.Errorf("line %d: invalid UTF-8: a list file is UTF-8 text (is it binary, or in another encoding?)", line)
			}
			i += n
			continue
		}
		i++
	}
	return nil
}

// pastedList reports whether a value looks pasted from CSV or JSON: in
// quotes ("card-7"), or several values with commas and no blank between
// (card-7,card-8). A blank makes a comma likely part of the value, as in
// a user agent.
func pastedList(v string) bool {
	if len(v) >= 2 && (v[0] == '"' && v[len(v)-1] == '"' || v[0] == '\'' && v[len(v)-1] == '\'') {
		return true
	}
	return strings.Contains(v, ",") && !strings.ContainsAny(v, " \t")
}

// eachLine calls fn with each line of text and its number; a final
// newline does not start another line. The lines share text's bytes.
func eachLine(text string, fn func(n int, line string)) {
	for n := 1; len(text) > 0; n++ {
		line := text
		if i := strings.IndexByte(text, '\n'); i >= 0 {
			line, text = text[:i], text[i+1:]
		} else {
			text = ""
		}
		fn(n, line)
	}
}

// value is a line's value: the line without its comment and surrounding
// blanks.
func value(line string) string {
	line = strings.TrimRight(line, "\r")
	for i := 0; i < len(line); i++ {
		if line[i] == '#' && (i == 0 || line[i-1] == ' ' || line[i-1] == '\t') {
			line = line[:i]
			break
		}
	}
	return strings.TrimSpace(line)
}

func cut(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
