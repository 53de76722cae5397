package policyfile

import (
	"strings"
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want time.Duration
		err  string
	}{
		{"90s", 90 * time.Second, ""},
		{"15m", 15 * time.Minute, ""},
		{"7d", 7 * 24 * time.Hour, ""},
		{"260w", 260 * 7 * 24 * time.Hour, ""},
		{"1826d", 0, "longer than five years"},
		{"30501w", 0, "longer than five years"}, // wraps past int64 if multiplied first
		{"4294967295w", 0, "longer than five years"},
		{"0m", 0, "must be greater than zero"},
		{"1y", 0, "unknown unit"},
		{"1.5h", 0, "want a whole number"},
	} {
		got, err := ParseDuration(tt.in)
		switch {
		case tt.err == "" && (err != nil || got != tt.want):
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("ParseDuration(%q) = %v, %v; want an error with %q", tt.in, got, err, tt.err)
		}
	}
}
