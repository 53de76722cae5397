package httpapi_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/riskd/riskd/httpapi"
	"github.com/riskd/riskd/internal/metrictest"
	"github.com/riskd/riskd/internal/poll"
)

// limitedServer serves "ok" on a loopback listener held to max
// connections; /block answers once release is closed.
func limitedServer(t *testing.T, max int, release chan struct{}) (string, *httpapi.ConnLimit, *prometheus.Registry) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	limit := httpapi.NewConnLimit(max, reg)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/block" {
			<-release
		}
		io.WriteString(w, "ok")
	}), ConnState: limit.Track}
	go srv.Serve(limit.Listen(ln))
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String(), limit, reg
}

// get sends one request on c and reads the answer; c stays open
// (keep-alive).
func get(t *testing.T, c net.Conn) error {
	t.Helper()
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		return err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	return resp.Body.Close()
}

// TestConnLimitClosesIdleFirst: with every connection of the cap parked
// idle after a request (keep-alive), a new client is served at once, and
// the connection idle the longest is the one closed.
func TestConnLimitClosesIdleFirst(t *testing.T) {
	addr, limit, reg := limitedServer(t, 3, nil)
	var parked []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := get(t, c); err != nil {
			t.Fatal(err)
		}
		parked = append(parked, c)
	}
	poll.Until(t, "3 open connections", func() bool { return limit.Open() == 3 })
	resp, err := http.Get("http://" + addr + "/") // a new client, a new connection
	if err != nil {
		t.Fatalf("a new client while 3 idle connections held the cap: %v", err)
	}
	resp.Body.Close()
	if _, err := parked[0].Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("the longest idle connection: read %v, want EOF (closed)", err)
	}
	for _, c := range parked[1:] {
		if err := get(t, c); err != nil {
			t.Errorf("a connection idle for less time was closed: %v", err)
		}
	}
	if v := metrictest.Value(t, reg, "riskd_http_idle_connections_closed_total", nil); v != 1 {
		t.Errorf("idle connections closed: %v, want 1", v)
	}
}

// TestConnLimitRefusesWhenAllBusy: with every connection of the cap in
// the middle of a request, a new one is closed at once and counted; once
// they finish and go idle, new clients are served again.
func TestConnLimitRefusesWhenAllBusy(t *testing.T) {
	release := make(chan struct{})
	addr, limit, reg := limitedServer(t, 2, release)
	for range 2 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, "GET /block HTTP/1.1\r\nHost: x\r\n\r\n") // answered once released: busy till then
	}
	poll.Until(t, "2 busy connections", func() bool { return limit.Open() == 2 && limit.Busy() == 2 })
	if resp, err := http.Get("http://" + addr + "/"); err == nil {
		resp.Body.Close()
		t.Fatal("a third connection was served while two were mid-request")
	}
	if v := metrictest.Value(t, reg, "riskd_http_connections_refused_total", nil); v < 1 {
		t.Errorf("refused %v, want at least 1", v)
	}
	close(release) // the requests end; their connections idle
	poll.Until(t, "the connections idle", func() bool { return limit.Busy() == 0 })
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatalf("a new client once a connection went idle: %v", err)
	}
	resp.Body.Close()
}
