package engine_test

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/riskd/riskd/engine"
	"github.com/riskd/riskd/features"
	"github.com/riskd/riskd/httpapi"
	"github.com/riskd/riskd/internal/apitest"
	"github.com/riskd/riskd/internal/poll"
	"github.com/riskd/riskd/internal/redistest"
	"github.com/riskd/riskd/redisstore"
	"github.com/riskd/riskd/rules"
	"github.com/riskd/riskd/rules/example"
)

func redisEngine(t *testing.T, p *rules.Policy, addr, prefix string, timeout time.Duration) (*engine.Engine, *redisstore.Store) {
	t.Helper()
	r, err := redisstore.New(t.Context(), redisstore.Options{Addrs: []string{addr}, Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	return engine.New(p, engine.Options{Store: r, StoreTimeout: timeout}), r
}

func score(t *testing.T, e *engine.Engine, body string) engine.Decision {
	t.Helper()
	var d engine.Decision
	if err := e.Score(context.Background(), []byte(body), engine.ScoreOptions{Explain: true}, &d); err != nil {
		t.Fatal(err)
	}
	return d
}

func feature(d engine.Decision, name string) features.Value {
	for _, f := range d.Features {
		if f.Name == name {
			return f.Value
		}
	}
	return features.Value{}
}

func checkout(id string, sec int) string {
	return fmt.Sprintf(`{"id":%q,"type":"checkout","ts":%d,"account_id":"acc-1","card_id":"card-1","device_id":"dev-1","amount":20}`, id, 1780000000000+sec*1000)
}

// TestRedisEnginesShareHistory: two riskd instances on one Redis see each
// other's events.
func TestRedisEnginesShareHistory(t *testing.T) {
	srv := redistest.Start(t)
	p := examplePolicy(t)
	a, ra := redisEngine(t, p, srv.Addr(), "share:", time.Second)
	b, rb := redisEngine(t, p, srv.Addr(), "share:", time.Second)
	defer ra.Close()
	defer rb.Close()
	for i := range 6 {
		e := a
		if i%2 == 1 {
			e = b
		}
		score(t, e, checkout(fmt.Sprint("e", i), i))
	}
	d := score(t, b, checkout("e6", 6))
	if got := feature(d, "card_txn_count_1h"); got.Num != 6 {
		t.Fatalf("card_txn_count_1h on instance b after 6 events split over a and b: %+v", got)
	}
	if d.Degraded {
		t.Fatal("degraded with Redis up")
	}
}

// TestRedisFaultDegradesAndRecovers stops Redis in the middle of traffic:
// decisions keep coming, degraded, within the budget (fail_closed ones
// step up); when Redis is back, normal decisions return by themselves and
// no goroutine is left behind.
func TestRedisFaultDegradesAndRecovers(t *testing.T) {
	baseline := runtime.NumGoroutine()
	srv := redistest.Start(t)
	fsys := fstest.MapFS{}
	for _, name := range []string{"features.yaml", "checkout.yaml", "login.yaml", "signup.yaml", "lists/blocked_cards.txt"} {
		data, err := example.FS.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if name == "login.yaml" {
			data = []byte(strings.Replace(string(data), "event_types: [login]", "event_types: [login]\non_store_error: fail_closed", 1))
		}
		fsys[name] = &fstest.MapFile{Data: data}
	}
	p, err := rules.Load(fsys, "p")
	if err != nil {
		t.Fatal(err)
	}
	const budget = 100 * time.Millisecond
	e, r := redisEngine(t, p, srv.Addr(), "fault:", budget)

	d := score(t, e, checkout("before", 0))
	if d.Degraded || d.StorePolicy != "" {
		t.Fatalf("degraded with Redis up: %+v", d)
	}
	srv.Stop()
	for i := range 20 {
		start := time.Now()
		d := score(t, e, checkout(fmt.Sprint("down", i), i+1))
		// Generous: this only catches a call that hangs instead of
		// degrading, not a slow machine.
		if el := time.Since(start); el > 20*budget {
			t.Fatalf("scoring with Redis down took %v, budget %v", el, budget)
		}
		if !d.Degraded || d.StorePolicy != "fail_open" || feature(d, "card_txn_count_1h").Valid {
			t.Fatalf("with Redis down: degraded=%v policy=%q features=%+v", d.Degraded, d.StorePolicy, d.Features)
		}
	}
	login := score(t, e, `{"id":"l1","type":"login","account_id":"acc-1","device_id":"dev-1"}`)
	if !login.Degraded || login.StorePolicy != "fail_closed" || login.Outcome != rules.StepUp ||
		len(login.Reasons) != 1 || login.Reasons[0].Rule != engine.StoreUnavailableRule {
		t.Fatalf("fail_closed login with Redis down: %+v", login)
	}

	srv.Restart()
	var back engine.Decision
	i := 0
	poll.Wait{Every: 20 * time.Millisecond}.Until(t, "decisions not degraded after Redis came back", func() bool {
		back = score(t, e, checkout(fmt.Sprint("after", i), 100+i))
		i++
		return !back.Degraded
	})
	if !feature(back, "card_txn_count_1h").Valid {
		t.Fatalf("recovered but features are nil: %+v", back.Features)
	}
	r.Close()
	srv.Stop()
	poll.Wait{Every: 20 * time.Millisecond, Explain: func() string {
		buf := make([]byte, 1<<16)
		return fmt.Sprintf("%d goroutines after closing, %d before:\n%s", runtime.NumGoroutine(), baseline, buf[:runtime.Stack(buf, true)])
	}}.Until(t, "the goroutines to end", func() bool { return runtime.NumGoroutine() <= baseline })
}

// TestReadyzFollowsRedis: /readyz answers 503 while Redis is away.
func TestReadyzFollowsRedis(t *testing.T) {
	srv := redistest.Start(t)
	e, r := redisEngine(t, examplePolicy(t), srv.Addr(), "ready:", time.Second)
	defer r.Close()
	h := apitest.NewServer(t, httpapi.NewHandler(e, httpapi.HandlerOptions{}))
	status := func() int {
		resp, err := http.Get(h.URL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := status(); got != 200 {
		t.Fatalf("/readyz with Redis up: %d", got)
	}
	srv.Stop()
	if got := status(); got != 503 {
		t.Fatalf("/readyz with Redis down: %d", got)
	}
	srv.Restart()
	if got := status(); got != 200 {
		t.Fatalf("/readyz with Redis back: %d", got)
	}
}
