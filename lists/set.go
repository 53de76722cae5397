package lists

import (
	"hash/maphash"
	"math/bits"
)

// Set is a list's values as `x in lists.name` reads them, built once and
// never changed: an open-addressing table of 128-bit keyed hashes of the
// values. A lookup hashes the value and, nearly always, reads one slot
// of 16 bytes: one memory access whatever the size, where a Go map of a
// million strings takes several (its group, then the key's bytes).
//
// Membership is by hash: a value not in the list is taken for one only if
// its two independent 64-bit hashes (seeded per process) both equal some
// value's, about one chance in 2^128 per value held — as the memory
// store identifies keys.
type Set struct {
	slots []slot // a power of two, at most half full
	n     int
}

type slot struct{ a, b uint64 } // b is never 0 in a used slot

var seedA, seedB = maphash.MakeSeed(), maphash.MakeSeed()

func hashes(v string) (uint64, uint64) {
	return maphash.String(seedA, v), maphash.String(seedB, v) | 1
}

// NewSet builds a set of at most n values, which each gives to add; add
// reports whether a value was new.
func NewSet(n int, each func(add func(string) bool)) *Set {
	size := 8
	if n > 3 {
		size = max(size, 1<<bits.Len(uint(2*n-1)))
	}
	s := &Set{slots: make([]slot, size)}
	mask := uint64(len(s.slots) - 1)
	each(func(v string) bool {
		if s.n >= n {
			panic("lists: NewSet given more values than it was sized for")
		}
		a, b := hashes(v)
		for i := a & mask; ; i = (i + 1) & mask {
			switch sl := &s.slots[i]; {
			case sl.b == 0:
				*sl = slot{a, b}
				s.n++
				return true
			case sl.a == a && sl.b == b:
				return false // already in
			}
		}
	})
	return s
}

// Has reports whether v is in the set.
func (s *Set) Has(v string) bool {
	a, b := hashes(v)
	mask := uint64(len(s.slots) - 1)
	for i := a & mask; ; i = (i + 1) & mask {
		sl := &s.slots[i]
		if sl.b == 0 {
			return false
		}
		if sl.a == a && sl.b == b {
			return true
		}
	}
}

// Len is how many values the set holds.
func (s *Set) Len() int { return s.n }
