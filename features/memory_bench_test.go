package features

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"
	"unsafe"
)

// BenchmarkMemoryKind reads and records one feature of each kind for an
// event of a key with a realistic history (a few dozen events in the
// window), on a store holding 10,000 keys.
func BenchmarkMemoryKind(b *testing.B) {
	for _, k := range []Kind{Count, Sum, Avg, Max, Distinct, Age, SinceLast, Seen} {
		b.Run(k.String(), func(b *testing.B) {
			f := feature(k, time.Hour)
			m := NewMemory(MemoryOptions{EventTime: true})
			keys := make([]string, 10000)
			for i := range keys {
				keys[i] = fmt.Sprint("key-", i)
			}
			obs := &Observation{}
			// Ids are written into a reused buffer: the store copies what
			// it keeps, so the benchmark allocates nothing of its own.
			var id []byte
			n := 0
			step := func() {
				n++
				id = strconv.AppendInt(append(id[:0], 'e'), int64(n), 10)
				obs.Reset(unsafe.String(unsafe.SliceData(id), len(id)), t0+int64(n)*10) // 10 ms apart: 36 events per key per hour
				e := obs.AddEntry(f.Log, keys[n%len(keys)], true)
				if len(f.Log.Nums) > 0 {
					obs.SetNum(e, 0, 12_500_000)
				}
				if len(f.Log.Ofs) > 0 {
					obs.SetOf(e, 0, keys[(n/7)%len(keys)])
				}
				obs.AddItem(f, e)
				if err := m.Observe(context.Background(), obs); err != nil {
					b.Fatal(err)
				}
			}
			warm := 200000
			if testing.Short() {
				warm = 2000 // CI's run of every benchmark once: does it run
			}
			for range warm {
				step()
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				step()
			}
		})
	}
}
