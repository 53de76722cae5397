package lists

import (
	"errors"
	"testing"
)

// TestRegistryRefuses: changes to undeclared lists and malformed values
// are refused before anything is written.
func TestRegistryRefuses(t *testing.T) {
	r := NewMemory(Options{})
	r.Declare([]string{"blocked"})
	for _, tt := range []struct {
		name, list string
		values     []string
		want       error
	}{
		{"undeclared", "blokced", []string{"x"}, ErrUnknownList},
		{"no values", "blocked", nil, ErrBadChange},
		{"empty value", "blocked", []string{"a", ""}, ErrBadChange},
		{"two lines", "blocked", []string{"a\nb"}, ErrBadChange},
		{"too long", "blocked", []string{string(make([]byte, MaxValueBytes+1))}, ErrBadChange},
		{"not UTF-8", "blocked", []string{"\xff"}, ErrBadChange},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := r.Add(t.Context(), tt.list, tt.values, 0, "t"); !errors.Is(err, tt.want) {
				t.Errorf("got %v, want %v", err, tt.want)
			}
		})
	}
	if s := r.List("blocked").Snapshot(); s.Version != 0 || s.Len() != 0 {
		t.Errorf("a refused change was applied: version %d, %d values", s.Version, s.Len())
	}
}
