package httpapi_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/riskd/riskd/engine"
	"github.com/riskd/riskd/httpapi"
	"github.com/riskd/riskd/internal/enginetest"
	"github.com/riskd/riskd/readiness"
)

func TestReadyzNamesFailingDependencies(t *testing.T) {
	ok := func(context.Context) error { return nil }
	down := func(msg string) func(context.Context) error {
		return func(context.Context) error { return errors.New(msg) }
	}
	tests := []struct {
		name string
		deps []readiness.Dependency
		code int
		want string
	}{
		{name: "no dependencies", code: 200, want: `{"ready":true,"dependencies":[]}`},
		{name: "all answer", deps: []readiness.Dependency{{Name: "redis", Check: ok}, {Name: "kafka", Check: ok}},
			code: 200, want: `{"ready":true,"dependencies":[{"name":"redis","ok":true},{"name":"kafka","ok":true}]}`},
		{name: "one fails", deps: []readiness.Dependency{{Name: "redis", Check: down("dial tcp 127.0.0.1:1: connect: connection refused")}, {Name: "kafka", Check: ok}},
			code: 503, want: `{"ready":false,"error":"not ready: redis: dial tcp 127.0.0.1:1: connect: connection refused","dependencies":[{"name":"redis","ok":false,"error":"dial tcp 127.0.0.1:1: connect: connection refused"},{"name":"kafka","ok":true}]}`},
		{name: "two fail", deps: []readiness.Dependency{{Name: "kafka", Check: down("brokers away")}, {Name: "kafka_group", Check: down("not a member")}},
			code: 503, want: `{"ready":false,"error":"not ready: kafka: brokers away; kafka_group: not a member","dependencies":[{"name":"kafka","ok":false,"error":"brokers away"},{"name":"kafka_group","ok":false,"error":"not a member"}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := engine.New(enginetest.Example(t), engine.Options{})
			srv := httptest.NewServer(httpapi.NewHandler(e, httpapi.HandlerOptions{Readiness: readiness.New(readiness.Options{Dependencies: tt.deps})}))
			defer srv.Close()
			resp, err := http.Get(srv.URL + "/readyz")
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.code || strings.TrimSpace(string(b)) != tt.want {
				t.Errorf("%d %s\nwant %d %s", resp.StatusCode, b, tt.code, tt.want)
			}
		})
	}
}
