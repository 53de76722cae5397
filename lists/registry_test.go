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

// TestRegistryBoundsListSize: an addition that would take a list past
// MaxValues is refused, naming the bound; values already in the list do
// not count again.
func TestRegistryBoundsListSize(t *testing.T) {
	r := NewMemory(Options{MaxValues: 3})
	r.Declare([]string{"blocked"})
	if _, err := r.Add(t.Context(), "blocked", []string{"a", "b"}, 0, "t"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Add(t.Context(), "blocked", []string{"a", "b", "c"}, 0, "t"); err != nil {
		t.Fatalf("re-adding held values and one more, up to the bound: %v", err)
	}
	_, err := r.Add(t.Context(), "blocked", []string{"d"}, 0, "t")
	if !errors.Is(err, ErrBadChange) || err.Error() != "bad change: list blocked holds 3 values; with these it would hold 4, more than the 3 a list may (-list-max-values)" {
		t.Errorf("past the bound: %v", err)
	}
	if s := r.List("blocked").Snapshot(); s.Len() != 3 || s.Version != 2 {
		t.Errorf("%d values at version %d, want 3 at 2", s.Len(), s.Version)
	}
}
