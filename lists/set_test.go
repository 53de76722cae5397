package lists

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"syscall"
	"testing"
)

func setOf(vals ...string) *Set {
	return NewSet(len(vals), func(add func(string) bool) {
		for _, v := range vals {
			add(v)
		}
	})
}

func TestSet(t *testing.T) {
	for _, tt := range []struct {
		name string
		in   []string
		out  []string
	}{
		{"empty", nil, []string{"", "a"}},
		{"one", []string{"a"}, []string{"", "b", "A", "a "}},
		{"duplicates", []string{"x", "x", "y"}, []string{"z"}},
		{"many", func() (v []string) {
			for i := range 10000 {
				v = append(v, fmt.Sprint("card-", i))
			}
			return v
		}(), []string{"card-10000", "card--1", "card-"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := setOf(tt.in...)
			for _, v := range tt.in {
				if !s.Has(v) {
					t.Errorf("%q not found", v)
				}
			}
			for _, v := range tt.out {
				if s.Has(v) {
					t.Errorf("%q found", v)
				}
			}
			distinct := map[string]bool{}
			for _, v := range tt.in {
				distinct[v] = true
			}
			if s.Len() != len(distinct) {
				t.Errorf("Len %d, want %d", s.Len(), len(distinct))
			}
		})
	}
}

// BenchmarkSetHas looks up random values, half of them held, in sets of
// 10 and 1,000,000: one 16-byte slot read either way; the large set's
// misses the cache, the small one's does not.
func BenchmarkSetHas(b *testing.B) {
	for _, n := range []int{10, 1_000_000} {
		b.Run(fmt.Sprintf("values=%d", n), func(b *testing.B) {
			vals := make([]string, n)
			for i := range vals {
				vals[i] = fmt.Sprintf("card-%07d", i)
			}
			s := setOf(vals...)
			rng := rand.New(rand.NewPCG(1, 2))
			needles := make([]string, 1024)
			for i := range needles {
				needles[i] = fmt.Sprintf("card-%07d", rng.IntN(2*n))
			}
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			cpu0 := threadCPU()
			found := 0
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				if s.Has(needles[i&1023]) {
					found++
				}
			}
			b.ReportMetric(float64(threadCPU()-cpu0)/float64(b.N), "cpu-ns/op")
			if b.N > 1024 && found == 0 {
				b.Fatal("nothing found")
			}
		})
	}
}

func threadCPU() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(1 /* RUSAGE_THREAD */, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}
