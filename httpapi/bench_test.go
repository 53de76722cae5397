package httpapi_test

import (
	"bytes"
	"io"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/riskd/riskd/engine"
	"github.com/riskd/riskd/httpapi"
	"github.com/riskd/riskd/internal/enginetest"
	"github.com/riskd/riskd/rules"
)

// BenchmarkHTTPScore is POST /v1/score through net/http on loopback,
// client included, one request at a time on a kept-alive connection.
func BenchmarkHTTPScore(b *testing.B) {
	b.Run("challengers=0", func(b *testing.B) { benchHTTP(b, enginetest.Example(b)) })
	// The answer goes out before the challenger runs.
	b.Run("challengers=1", func(b *testing.B) { benchHTTP(b, enginetest.ExampleWithChallengers(b, 1)) })
}

func benchHTTP(b *testing.B, p *rules.Policy) {
	e := engine.New(p, engine.Options{})
	srv := httptest.NewServer(httpapi.NewHandler(e, httpapi.HandlerOptions{}))
	defer srv.Close()
	client := srv.Client()
	url := srv.URL + "/v1/score"
	g := enginetest.NewEvents(0)
	rd := bytes.NewReader(nil)
	b.ReportAllocs()
	for b.Loop() {
		rd.Reset(g.Next())
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
