package replay

import (
	"bytes"
	"testing"
)

// FuzzRead: any input is read without panicking, and what is read comes
// out in event-time order with every line accounted for once.
func FuzzRead(f *testing.F) {
	f.Fuzz(func(t *testing.T, in []byte) {
		events, bad, err := Read(bytes.NewReader(in), "fraud")
		if err != nil {
			return
		}
		lines := map[int]bool{}
		for i, e := range events {
			if i > 0 && e.TS < events[i-1].TS {
				t.Fatalf("event %d at %d after one at %d", i, e.TS, events[i-1].TS)
			}
			if e.Label < -1 || e.Label > 1 || lines[e.Line] {
				t.Fatalf("event %+v", e)
			}
			lines[e.Line] = true
		}
		for _, b := range bad {
			if lines[b.Line] {
				t.Fatalf("line %d both read and refused", b.Line)
			}
			lines[b.Line] = true
		}
	})
}
