package engine_test

import (
	"bytes"
	"context"
	"io"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/riskd/riskd/engine"
	"github.com/riskd/riskd/httpapi"
	"github.com/riskd/riskd/rules"
	"github.com/riskd/riskd/rules/example/exampletest"
)

// eventGen rewrites one checkout body in place so every iteration scores a
// new event (new id, later ts, rotating entities) without allocating.
type eventGen struct {
	body                   []byte
	id, ts, acc, card, dev int // offsets of fixed-width digit fields
	n                      int
}

func newEventGen() *eventGen {
	const tmpl = `{"id":"e-0000000000","type":"checkout","ts":1780000000000,"account_id":"acc-000000","card_id":"card-000000","device_id":"dev-000000","ip":"10.1.2.3","amount":125.40,"currency":"EUR","ip_country":"FR","card_country":"FR"}`
	g := &eventGen{body: []byte(tmpl)}
	g.id = bytes.Index(g.body, []byte(`e-0`)) + 2
	g.ts = bytes.Index(g.body, []byte(`1780000000000`))
	g.acc = bytes.Index(g.body, []byte(`acc-0`)) + 4
	g.card = bytes.Index(g.body, []byte(`card-0`)) + 5
	g.dev = bytes.Index(g.body, []byte(`dev-0`)) + 4
	return g
}

func putDigits(dst []byte, v int64) {
	for i := len(dst) - 1; i >= 0; i-- {
		dst[i] = byte('0' + v%10)
		v /= 10
	}
}

// next returns the body of event n: 20,000 accounts, 25,000 cards and
// 15,000 devices seen over and over, 50 ms apart, so velocity windows hold
// a realistic few events per entity.
func (g *eventGen) next() []byte {
	g.n++
	n := int64(g.n)
	putDigits(g.body[g.id:g.id+10], n)
	putDigits(g.body[g.ts:g.ts+13], 1780000000000+n*50)
	putDigits(g.body[g.acc:g.acc+6], n%20000)
	putDigits(g.body[g.card:g.card+6], n%25000)
	putDigits(g.body[g.dev:g.dev+6], n%15000)
	return g.body
}

// exampleWithChallengers is the example policy plus n shadow challengers
// of checkout, each a copy of its rules.
func exampleWithChallengers(b *testing.B, n int) *rules.Policy {
	p, err := rules.Load(exampletest.WithChallengers(n), "example")
	if err != nil {
		b.Fatal(err)
	}
	return p
}

// BenchmarkScoreShadow is Score with 0, 1 and 2 shadow challengers of
// checkout (copies of its 21 rules) evaluated before Score returns, as
// on the Kafka path: what each challenger costs.
func BenchmarkScoreShadow(b *testing.B) {
	for _, n := range []int{0, 1, 2} {
		b.Run("challengers="+strconv.Itoa(n), func(b *testing.B) { benchScore(b, exampleWithChallengers(b, n)) })
	}
}

// BenchmarkScore is the whole in-process Score of a checkout on the memory
// store: parse, 15 features (one store call), 21 rules, decision.
func BenchmarkScore(b *testing.B) { benchScore(b, examplePolicy(b)) }

// benchScore times Score on policy p after warming the store with 100,000
// events, so entities have history.
func benchScore(b *testing.B, p *rules.Policy) {
	e := engine.New(p, engine.Options{})
	g := newEventGen()
	var d engine.Decision
	for range 100000 {
		if err := e.Score(context.Background(), g.next(), engine.ScoreOptions{}, &d); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := e.Score(context.Background(), g.next(), engine.ScoreOptions{}, &d); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkScoreParallel scores from every core at once.
func BenchmarkScoreParallel(b *testing.B) {
	e := engine.New(examplePolicy(b), engine.Options{})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		g := newEventGen()
		g.n = int(time.Now().UnixNano() % 1e9) // distinct ids per goroutine
		var d engine.Decision
		for pb.Next() {
			if err := e.Score(context.Background(), g.next(), engine.ScoreOptions{}, &d); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkHTTPScore is POST /v1/score through net/http on loopback,
// client included, one request at a time on a kept-alive connection.
func BenchmarkHTTPScore(b *testing.B) {
	b.Run("challengers=0", func(b *testing.B) { benchHTTP(b, examplePolicy(b)) })
	// The answer goes out before the challenger runs.
	b.Run("challengers=1", func(b *testing.B) { benchHTTP(b, exampleWithChallengers(b, 1)) })
}

func benchHTTP(b *testing.B, p *rules.Policy) {
	e := engine.New(p, engine.Options{})
	srv := httptest.NewServer(httpapi.NewHandler(e, httpapi.HandlerOptions{}))
	defer srv.Close()
	client := srv.Client()
	url := srv.URL + "/v1/score"
	g := newEventGen()
	rd := bytes.NewReader(nil)
	b.ReportAllocs()
	for b.Loop() {
		rd.Reset(g.next())
		resp, err := client.Post(url, "application/json", rd)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatal("status " + strconv.Itoa(resp.StatusCode))
		}
	}
}
