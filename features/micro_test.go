package features

import (
	"errors"
	"math/big"
	"strings"
	"testing"
)

func TestParseMicro(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int64
		err  error
	}{
		{"0", 0, nil},
		{"-0", 0, nil},
		{"12", 12_000_000, nil},
		{"0.1", 100_000, nil},
		{"12.5", 12_500_000, nil},
		{"-12.5", -12_500_000, nil},
		{"1e3", 1_000_000_000, nil},
		{"1.5E-3", 1_500, nil},
		{"0.0000005", 0, nil},         // half: to even (0)
		{"0.0000015", 2, nil},         // half: to even (2)
		{"0.00000150001", 2, nil},     // above half
		{"2.0000005", 2_000_000, nil}, // half: to even
		{"2.0000025", 2_000_002, nil},
		{"-2.0000035", -2_000_004, nil},
		{"0.00000049999999999999999999", 0, nil},
		{"000123.4500", 123_450_000, nil},
		{"1e-400", 0, nil},
		{"9000000000000", 9_000_000_000_000_000_000, nil},
		{"-9000000000000", -9_000_000_000_000_000_000, nil},
		{"9000000000000.000001", 0, ErrTooLarge},
		{"1e13", 0, ErrTooLarge},
		{"1e400", 0, ErrTooLarge},
		{"1e999999999999999999999", 0, ErrTooLarge},
		{strings.Repeat("9", 40), 0, ErrTooLarge},
		{"", 0, ErrNotNumber},
		{"-", 0, ErrNotNumber},
		{"abc", 0, ErrNotNumber},
		{"1e", 0, ErrNotNumber},
		{"1.2.3", 0, ErrNotNumber},
		{"NaN", 0, ErrNotNumber},
		{"Infinity", 0, ErrNotNumber},
		{"0x10", 0, ErrNotNumber},
		{"1_000", 0, ErrNotNumber},
		{" 1", 0, ErrNotNumber},
	} {
		got, err := ParseMicro(tt.in)
		if got != tt.want || !errors.Is(err, tt.err) {
			t.Errorf("ParseMicro(%q) = %d, %v; want %d, %v", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func TestSum128(t *testing.T) {
	var s sum128
	for range 3 {
		s.add(maxMicro) // past int64: kept exactly
	}
	s.sub(maxMicro)
	s.sub(maxMicro)
	if s.float() != float64(maxMicro)/microPerUnit {
		t.Errorf("sum %v, want %v", s.float(), float64(maxMicro)/microPerUnit)
	}
	s.sub(maxMicro)
	s.add(-5)
	if s.float() != -0.000005 || s.avg(5) != -0.000001 {
		t.Errorf("sum %v avg %v, want -0.000005 and -0.000001", s.float(), s.avg(5))
	}
}

// FuzzParseMicro holds ParseMicro to exact rational arithmetic: the
// nearest micro-unit, ties to even.
func FuzzParseMicro(f *testing.F) {
	for _, s := range []string{"0", "12.5", "-0.0000005", "1e-7", "9000000000000", "1.5E-3", "abc"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseMicro(s)
		if !jsonNumber(s) {
			if err == nil {
				t.Fatalf("ParseMicro(%q) = %d, want an error: not a number", s, got)
			}
			return
		}
		if _, exp, ok := strings.Cut(strings.ToLower(s), "e"); ok && len(strings.TrimLeft(strings.TrimLeft(exp, "+-"), "0")) > 2 {
			return // |exponent| of 100 or more: too large for the reference to be quick
		}
		r, ok := new(big.Rat).SetString(s)
		if !ok {
			t.Fatalf("reference cannot read %q", s)
		}
		r.Mul(r, big.NewRat(microPerUnit, 1))
		want := roundHalfEven(r)
		if want.CmpAbs(big.NewInt(maxMicro)) > 0 {
			if !errors.Is(err, ErrTooLarge) {
				t.Fatalf("ParseMicro(%q) = %d, %v; want ErrTooLarge", s, got, err)
			}
			return
		}
		if err != nil || got != want.Int64() {
			t.Fatalf("ParseMicro(%q) = %d, %v; want %s", s, got, err, want)
		}
	})
}

// jsonNumber reports whether s has the shape ParseMicro accepts: an
// optional sign, digits with at most one point, an optional exponent.
func jsonNumber(s string) bool {
	if len(s) > 0 && (s[0] == '+' || s[0] == '-') {
		s = s[1:]
	}
	mant, exp, hasExp := strings.Cut(strings.ToLower(s), "e")
	digits, dots := 0, 0
	for _, c := range mant {
		switch {
		case c >= '0' && c <= '9':
			digits++
		case c == '.':
			dots++
		default:
			return false
		}
	}
	if digits == 0 || dots > 1 {
		return false
	}
	if hasExp {
		exp = strings.TrimPrefix(strings.TrimPrefix(exp, "+"), "-")
		if exp == "" || strings.Trim(exp, "0123456789") != "" {
			return false
		}
	}
	return true
}

func roundHalfEven(r *big.Rat) *big.Int {
	q, m := new(big.Int).QuoRem(r.Num(), r.Denom(), new(big.Int))
	// Compare 2|m| with the denominator.
	c := new(big.Int).Abs(m)
	c.Lsh(c, 1)
	switch cmp := c.Cmp(r.Denom()); {
	case cmp > 0, cmp == 0 && q.Bit(0) == 1:
		if r.Sign() < 0 {
			q.Sub(q, big.NewInt(1))
		} else {
			q.Add(q, big.NewInt(1))
		}
	}
	return q
}
