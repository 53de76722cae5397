package rules

import (
	"errors"
	"fmt"
	"unicode/utf8"
)

// Bounds on one expression, checked on its text before expr parses it:
// expr's parser recurses once per nesting level, so a `when:` of a million
// `!` overflows the stack (a fatal error, not a panic) and 300,000 nested
// parentheses take gigabytes to refuse. No rule an analyst writes comes
// near either bound; lists belong under lists:, which are not text.
const (
	// MaxExpressionBytes is the longest expression accepted.
	MaxExpressionBytes = 64 << 10
	// MaxExpressionDepth is the deepest nesting accepted: brackets ( [ {
	// and unary operators (!, not, -, +) each count one level.
	MaxExpressionDepth = 100
)

// checkShape refuses an expression past MaxExpressionBytes or
// MaxExpressionDepth. It returns a message and the byte offset it is
// about, or "" when the expression is within bounds.
func checkShape(src string) (string, int) {
	if len(src) > MaxExpressionBytes {
		return fmt.Sprintf("expression of %d bytes, over the limit of %d", len(src), MaxExpressionBytes), 0
	}
	if at := tooDeep(src, MaxExpressionDepth); at >= 0 {
		return fmt.Sprintf("expression nested more than %d deep (brackets and unary operators such as ! and not count a level each)", MaxExpressionDepth), at
	}
	return "", 0
}

// tooDeep scans src the way expr's lexer cuts it, without building
// anything, and returns the byte offset where nesting first passes max,
// or -1. Unary operators count until their operand ends: in !(!(x)) the
// x is 4 deep. An expression that does not lex is left for expr to
// report.
func tooDeep(src string, max int) int {
	depth := 0
	run := 0       // unary operators since the last operand, all still open
	var open []int // for each open bracket, the depth its closing restores
	operand := false
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
			continue
		case c == '"' || c == '\'':
			i = skipQuoted(src, i)
			depth, run, operand = depth-run, 0, true
			continue
		case c == '`':
			i = skipTo(src, i+1, "`")
			depth, run, operand = depth-run, 0, true
			continue
		case c == '/' && i+1 < len(src) && src[i+1] == '/':
			i = skipTo(src, i+2, "\n")
			continue
		case c == '/' && i+1 < len(src) && src[i+1] == '*':
			i = skipTo(src, i+2, "*/")
			continue
		case c == '(' || c == '[' || c == '{':
			open = append(open, depth-run)
			depth, run, operand = depth+1, 0, false
			if depth > max {
				return i
			}
			i++
			continue
		case c == ')' || c == ']' || c == '}':
			if n := len(open); n > 0 {
				depth, open = open[n-1], open[:n-1]
			}
			run, operand = 0, true
			i++
			continue
		case isWordByte(c):
			j := i
			for j < len(src) && (isWordByte(src[j]) || src[j] == '.' && j+1 < len(src) && isDigit(src[j+1]) && isDigit(src[i])) {
				j++
			}
			switch word := src[i:j]; {
			case word == "not" && !operand:
				depth, run = depth+1, run+1
				if depth > max {
					return i
				}
			case binaryWords[word]:
				operand = false
			default:
				depth, run, operand = depth-run, 0, true
			}
			i = j
			continue
		case (c == '!' || c == '-' || c == '+') && !operand && !(c == '!' && i+1 < len(src) && src[i+1] == '='):
			depth, run = depth+1, run+1
			if depth > max {
				return i
			}
			i++
			continue
		}
		// Any other operator or punctuation: what follows starts an operand.
		operand = false
		i++
	}
	return -1
}

// binaryWords are expr's operators spelt as words (and let, whose name
// follows); after one, an operand starts.
var binaryWords = map[string]bool{
	"and": true, "or": true, "in": true, "not": true, "matches": true, "contains": true,
	"startsWith": true, "endsWith": true, "let": true,
}

func isWordByte(c byte) bool {
	return c == '_' || c == '$' || c == '#' || isDigit(c) || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c >= utf8.RuneSelf
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// skipQuoted returns the offset past the string literal starting at i.
func skipQuoted(src string, i int) int {
	q := src[i]
	for i++; i < len(src); i++ {
		switch src[i] {
		case '\\':
			i++
		case q:
			return i + 1
		}
	}
	return len(src)
}

// skipTo returns the offset past the next end at or after i, or len(src).
func skipTo(src string, i int, end string) int {
	for ; i+len(end) <= len(src); i++ {
		if src[i:i+len(end)] == end {
			return i + len(end)
		}
	}
	return len(src)
}

// Bounds on evaluation. expr counts no operations, and a loop over an
// event's list inside another (`all(event.items, {any(event.items, …)})`)
// costs the square of the list: seconds for a 60 KB event. So every
// iteration of a builtin that takes a predicate (all, any, filter, map,
// count, sum, reduce…) is a step, and steps are bounded per expression
// and per event; past either bound the expression fails with ErrBudget,
// counted and logged as any expression error. A rule an analyst writes
// over a list of a hundred items nested twice takes 10,000 steps.
const (
	// MaxExpressionSteps bounds the steps of one evaluation of one
	// expression.
	MaxExpressionSteps = 100_000
	// MaxEventSteps bounds the steps of every expression evaluated for
	// one event, where conditions and shadow rulesets included, when its
	// environments share a Budget.
	MaxEventSteps = 1_000_000
)

// ErrBudget is the error of an expression stopped by the evaluation
// budget.
var ErrBudget = errors.New("evaluation budget exhausted")

// budgetError is what a step past the budget panics with, which expr's VM
// turns into the expression's error.
type budgetError struct{ what string }

func (e budgetError) Error() string { return fmt.Sprintf("%v: %s", ErrBudget, e.what) }
func (e budgetError) Unwrap() error { return ErrBudget }

// Budget is the steps left to the expressions of one event. Environments
// evaluating one event share one (Env.SetBudget); Reset it for each event.
type Budget struct{ left int }

// Reset gives the budget MaxEventSteps.
func (b *Budget) Reset() { b.left = MaxEventSteps }
