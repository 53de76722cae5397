package features

import (
	"errors"
	"math"
	"math/bits"
)

// Numbers recorded into sum, avg and max are kept as integer micro-units
// (millionths): exact, so a window's sum does not depend on the order its
// events arrived in, and a sliding window can add and subtract.
const microPerUnit = 1_000_000

// MaxAbsValue is the largest magnitude a recorded number may have, in
// units: 9,000,000,000,000 (nine trillion), whose micro-units still fit an
// int64. Sums are kept in 128 bits and cannot overflow.
const MaxAbsValue = 9_000_000_000_000

const maxMicro = MaxAbsValue * microPerUnit

// ErrNotNumber and ErrTooLarge are ParseMicro's refusals.
var (
	ErrNotNumber = errors.New("not a decimal number")
	ErrTooLarge  = errors.New("magnitude over 9e12, the largest a feature records")
)

// ParseMicro reads a JSON number's text (sign, digits, fraction, exponent)
// as exact micro-units, rounding half to even past the sixth decimal. It
// works on the text, not a float64, so 0.1 is exactly 100000 and
// 2.0000005 rounds to 2000000 (even) however the float would have rounded.
func ParseMicro(s string) (int64, error) {
	i, neg := 0, false
	if i < len(s) && (s[i] == '-' || s[i] == '+') {
		neg = s[i] == '-'
		i++
	}
	// digits holds the significant digits with the decimal point removed;
	// scale is the power of ten they are to be multiplied by.
	var digits []byte
	var buf [32]byte
	digits = buf[:0]
	scale, sawDigit, sawDot := 0, false, false
	for ; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			sawDigit = true
			if c == '0' && len(digits) == 0 {
				if sawDot {
					scale--
				}
				continue // leading zeros carry no value
			}
			digits = append(digits, c)
			if sawDot {
				scale--
			}
		case c == '.' && !sawDot:
			sawDot = true
		default:
			goto exponent
		}
	}
exponent:
	if !sawDigit {
		return 0, ErrNotNumber
	}
	if i < len(s) {
		if s[i] != 'e' && s[i] != 'E' {
			return 0, ErrNotNumber
		}
		i++
		eneg := false
		if i < len(s) && (s[i] == '-' || s[i] == '+') {
			eneg = s[i] == '-'
			i++
		}
		if i == len(s) {
			return 0, ErrNotNumber
		}
		exp := 0
		for ; i < len(s); i++ {
			c := s[i]
			if c < '0' || c > '9' {
				return 0, ErrNotNumber
			}
			if exp < 1_000_000 { // far past any representable value
				exp = exp*10 + int(c-'0')
			}
		}
		if eneg {
			exp = -exp
		}
		scale += exp
	}
	if len(digits) == 0 {
		return 0, nil
	}
	scale += 6 // to micro-units
	// keep: the digits of the integer part of the micro-unit value.
	keep := len(digits) + scale
	if keep > 19 {
		return 0, ErrTooLarge
	}
	var v uint64
	for j := 0; j < keep; j++ {
		d := uint64(0)
		if j < len(digits) {
			d = uint64(digits[j] - '0')
		}
		v = v*10 + d
	}
	if keep < len(digits) {
		// Round half to even on the dropped digits.
		var first byte = '0'
		rest := false
		if keep >= 0 {
			first = digits[keep]
			for _, c := range digits[keep+1:] {
				rest = rest || c != '0'
			}
		} else {
			rest = true // every digit is below the first dropped place
		}
		switch {
		case first > '5', first == '5' && rest, first == '5' && v%2 == 1:
			v++
		}
	}
	if v > maxMicro {
		return 0, ErrTooLarge
	}
	if neg {
		return -int64(v), nil
	}
	return int64(v), nil
}

// sum128 is a two's-complement 128-bit integer: a window's sum of
// micro-units, which no number of events can overflow.
type sum128 struct {
	hi int64
	lo uint64
}

func (s *sum128) add(v int64) {
	lo, carry := bits.Add64(s.lo, uint64(v), 0)
	s.lo = lo
	s.hi += int64(carry) + v>>63
}

func (s *sum128) sub(v int64) { s.add(-v) }

// small reports whether the sum fits an int64, and returns it: the
// common case, converted without the 128-bit path's rounding.
func (s sum128) small() (int64, bool) {
	return int64(s.lo), (s.hi == 0 && s.lo < 1<<63) || (s.hi == -1 && s.lo >= 1<<63)
}

// float returns the sum in units.
func (s sum128) float() float64 {
	if v, ok := s.small(); ok {
		return float64(v) / microPerUnit
	}
	return (float64(s.hi)*math.Exp2(64) + float64(s.lo)) / microPerUnit
}

// avg is sum/n in units.
func (s sum128) avg(n int64) float64 {
	if v, ok := s.small(); ok {
		return float64(v) / float64(n) / microPerUnit
	}
	return s.float() / float64(n)
}
