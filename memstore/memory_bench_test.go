package memstore

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"
	"unsafe"

	"github.com/riskd/riskd/features"
	"github.com/riskd/riskd/internal/storetest"
)

// BenchmarkMemoryKind reads and records one feature of each kind for an
// event of a key with a realistic history (a few dozen events in the
// window), on a store holding 10,000 keys.
func BenchmarkMemoryKind(b *testing.B) {
	for _, k := range []features.Kind{features.Count, features.Sum, features.Avg, features.Max, features.Distinct, features.Age, features.SinceLast, features.Seen} {
		b.Run(k.String(), func(b *testing.B) {
			f := storetest.NewFeature(k, time.Hour)
			m := New(Options{EventTime: true})
			keys := make([]string, 10000)
			for i := range keys {
				keys[i] = fmt.Sprint("key-", i)
			}
			obs := &features.Observation{}
			// Ids are written into a reused buffer: the store copies what
			// it keeps, so the benchmark allocates nothing of its own.
			var id []byte
			n := 0
			step := func() {
				n++
				id = strconv.AppendInt(append(id[:0], 'e'), int64(n), 10)
				obs.Reset(unsafe.String(unsafe.SliceData(id), len(id)), storetest.T0+int64(n)*10) // 10 ms apart: 36 events per key per hour
				e := obs.AddEntry(f.EventLog, keys[n%len(keys)], true)
				if len(f.EventLog.Nums) > 0 {
					obs.SetNum(e, 0, 12_500_000)
				}
				if len(f.EventLog.Ofs) > 0 {
					obs.SetOf(e, 0, keys[(n/7)%len(keys)])
				}
				obs.AddItem(f, e)
				if err := m.Observe(context.Background(), obs); err != nil {
					b.Fatal(err)
				}
			}
			for range 200000 {
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
