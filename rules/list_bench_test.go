package rules_test

import (
	"fmt"
	"io/fs"
	"math/rand/v2"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"testing/fstest"

	"github.com/valyala/fastjson"

	"github.com/riskd/riskd/features"
	"github.com/riskd/riskd/lists"
	"github.com/riskd/riskd/rules"
	"github.com/riskd/riskd/rules/example"
)

// listPolicy is the example policy with a file list of n card ids and a
// checkout rule blocking them.
func listPolicy(b *testing.B, n int) *rules.Policy {
	fsys := fstest.MapFS{}
	fs.WalkDir(example.FS, ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			data, _ := example.FS.ReadFile(p)
			fsys[p] = &fstest.MapFile{Data: data}
		}
		return nil
	})
	var list strings.Builder
	for i := range n {
		fmt.Fprintf(&list, "card-%07d\n", i)
	}
	fsys["lists/bench_blocked.txt"] = &fstest.MapFile{Data: []byte(list.String())}
	checkout := string(fsys["checkout.yaml"].Data)
	checkout = strings.Replace(checkout, "lists:\n", "lists:\n  bench_blocked: {file: lists/bench_blocked.txt}\n", 1)
	checkout = strings.Replace(checkout, "rules:\n", "rules:\n  - id: bench_blocked_card\n    when: event.card_id in lists.bench_blocked\n    action: block\n", 1)
	fsys["checkout.yaml"] = &fstest.MapFile{Data: []byte(checkout)}
	p, err := rules.Load(fsys, "bench")
	if err != nil {
		b.Fatal(err)
	}
	return p
}

// BenchmarkListIn evaluates the example checkout ruleset plus a rule
// `event.card_id in lists.bench_blocked`, a file list of 10 or 1,000,000
// values, on events whose card is in the list half of the time: the
// lookup costs the same whatever the size.
func BenchmarkListIn(b *testing.B) {
	for _, n := range []int{10, 1_000_000} {
		b.Run(fmt.Sprintf("values=%d", n), func(b *testing.B) {
			p := listPolicy(b, n)
			rs := p.ForType("checkout")
			rng := rand.New(rand.NewPCG(1, 2))
			var events []*fastjson.Value
			for range 1024 {
				card := fmt.Sprintf("card-%07d", rng.IntN(n)) // in the list
				if rng.IntN(2) == 0 {
					card = fmt.Sprintf("card-%07d", n+rng.IntN(n)) // not
				}
				events = append(events, fastjson.MustParse(`{"card_id":"`+card+`","account_id":"a1","amount":120.5,"currency":"EUR","ip_country":"FR","card_country":"FR"}`))
			}
			feats := make([]features.Value, len(p.Features.Features))
			for i := range feats {
				feats[i] = features.Value{Valid: true, Num: 1}
			}
			env := rs.NewEnv()
			var out []rules.RuleResult
			blocked := 0
			// The thread's CPU time is reported too: on a shared machine
			// wall-clock time mostly measures the other tenants.
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			cpu0 := threadCPU()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				ev := events[i%len(events)]
				env.Reset()
				for j, s := range rs.Slots {
					switch {
					case s.List != "":
						env.SetList(j, lists.Empty())
					case s.Feature >= 0:
						env.SetFeature(j, feats[s.Feature])
					default:
						env.SetField(j, ev.Get(s.Path.Parts...))
					}
				}
				out = rs.Eval(env, out)
				if out[0].Fired {
					blocked++
				}
			}
			b.ReportMetric(float64(threadCPU()-cpu0)/float64(b.N), "cpu-ns/op")
			if b.N > 100 && (blocked == 0 || blocked == b.N) {
				b.Fatalf("%d of %d events blocked: the list is not looked up", blocked, b.N)
			}
		})
	}
}

// threadCPU is the CPU time the calling OS thread has used, in ns.
func threadCPU() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(1 /* RUSAGE_THREAD */, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}
