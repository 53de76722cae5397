package rules

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Template is a reason with {{expression}} holes, compiled at load.
type Template struct {
	parts []templatePart
}

type templatePart struct {
	text string
	prog *program // nil for literal text
}

// splitTemplate cuts a reason into literal text and expression sources.
func splitTemplate(s string) (lits []string, exprs []string, offsets []int, err error) {
	rest, off := s, 0
	for {
		i := strings.Index(rest, "{{")
		if i < 0 {
			if j := strings.Index(rest, "}}"); j >= 0 {
				return nil, nil, nil, fmt.Errorf("unmatched }} at character %d", off+j+1)
			}
			lits = append(lits, rest)
			return lits, exprs, offsets, nil
		}
		j := strings.Index(rest[i+2:], "}}")
		if j < 0 {
			return nil, nil, nil, fmt.Errorf("unclosed {{ at character %d", off+i+1)
		}
		src := rest[i+2 : i+2+j]
		if strings.TrimSpace(src) == "" {
			return nil, nil, nil, fmt.Errorf("empty {{ }} at character %d", off+i+1)
		}
		lits = append(lits, rest[:i])
		exprs = append(exprs, src)
		offsets = append(offsets, off+i+2)
		off += i + 2 + j + 2
		rest = rest[i+2+j+2:]
	}
}

// MaxReasonBytes bounds a rendered reason: past it the reason is cut and
// ends with "…". A hole can yield a string of a megabyte (expr's memory
// budget), and a decision carries one reason per rule that fired.
const MaxReasonBytes = 1024

// MaxReasonHoles bounds the {{…}} of one reason: each is a program run
// whenever the rule fires.
const MaxReasonHoles = 32

// Render appends the reason to dst, evaluating each hole in e. A
// hole that fails renders as "?" rather than losing the whole reason. What
// it appends is at most MaxReasonBytes, cut with "…"; holes past the cut
// are not evaluated.
func (t *Template) Render(dst []byte, e *Env) []byte {
	start := len(dst)
	for _, p := range t.parts {
		room := MaxReasonBytes + 1 - (len(dst) - start) // one more than fits: the cut then shows
		switch {
		case p.prog == nil:
			dst = append(dst, p.text[:min(len(p.text), room)]...)
		default:
			v, err := e.run(p.prog)
			if err != nil {
				dst = append(dst, '?')
			} else if s, ok := v.(string); ok {
				dst = append(dst, s[:min(len(s), room)]...)
			} else {
				dst = AppendValue(dst, v)
			}
		}
		if len(dst)-start > MaxReasonBytes {
			end := start + MaxReasonBytes - len("…")
			for end > start && !utf8.RuneStart(dst[end]) {
				end--
			}
			return append(dst[:end], "…"...)
		}
	}
	return dst
}

// AppendValue formats an expression value for a reason.
func AppendValue(dst []byte, v any) []byte {
	switch x := v.(type) {
	case nil:
		return append(dst, "unknown"...)
	case string:
		return append(dst, x...)
	case float64:
		return formatNumber(dst, x)
	case int:
		return strconv.AppendInt(dst, int64(x), 10)
	case int64:
		return strconv.AppendInt(dst, x, 10)
	case bool:
		return strconv.AppendBool(dst, x)
	}
	return fmt.Append(dst, v)
}
