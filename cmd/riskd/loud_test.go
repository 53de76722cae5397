package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// closedPort is a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// logLine is one of riskd's JSON log lines.
type logLine struct {
	Level      string `json:"level"`
	Msg        string `json:"msg"`
	Lib        string `json:"lib"`
	Dependency string `json:"dependency"`
	Err        string `json:"err"`
}

// logLines parses every whole line riskd has written to its log file so
// far; each must be JSON.
func logLines(t *testing.T, p *riskdProcess) []logLine {
	t.Helper()
	out, err := os.ReadFile(p.logs)
	if err != nil {
		t.Fatal(err)
	}
	// A line being written is not whole yet.
	out = out[:bytes.LastIndexByte(out, '\n')+1]
	var lines []logLine
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var ll logLine
		if err := json.Unmarshal([]byte(l), &ll); err != nil {
			t.Fatalf("a log line that is not JSON (something logs around slog): %q", l)
		}
		lines = append(lines, ll)
	}
	return lines
}

// metricValue is the value of the first sample of /metrics whose line
// starts with series; ok false when there is none.
func metricValue(body, series string) (float64, bool) {
	for _, l := range strings.Split(body, "\n") {
		if v, found := strings.CutPrefix(l, series+" "); found {
			f, err := strconv.ParseFloat(v, 64)
			return f, err == nil
		}
	}
	return 0, false
}

// TestFailuresAreLoud starts riskd with Redis and Kafka brokers on a port
// nothing listens on, the way a wrong address does, and checks that each
// of the three failures (Redis, the brokers, the consumer group) is
// logged at warning or error, counted in a metric and named by /readyz;
// and that every line riskd writes, go-redis's and kafka-go's included,
// is one JSON object.
func TestFailuresAreLoud(t *testing.T) {
	redisAddr, brokerAddr := closedPort(t), closedPort(t)
	logs := filepath.Join(t.TempDir(), "riskd.log")
	p := startRiskd(t, riskdBinary(t), logs, "-listen", "127.0.0.1:0", "-redis", redisAddr, "-kafka-brokers", brokerAddr, "-log-format", "json")
	public, _ := serving(t, p)
	client := &http.Client{Timeout: 10 * time.Second}
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := client.Get(public + path)
		if err != nil {
			t.Fatalf("GET %s: %v\n%s", path, err, p.output())
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	// /readyz names all three.
	code, body := get("/readyz")
	var ready struct {
		Ready        bool
		Error        string
		Dependencies []struct {
			Name  string
			OK    bool
			Error string
		}
	}
	if err := json.Unmarshal([]byte(body), &ready); err != nil || code != 503 || ready.Ready {
		t.Fatalf("/readyz: %d %s (%v)", code, body, err)
	}
	failing := map[string]string{}
	for _, d := range ready.Dependencies {
		if !d.OK {
			failing[d.Name] = d.Error
		}
	}
	for _, name := range []string{"redis", "kafka", "kafka_group"} {
		if !strings.Contains(failing[name], "connection refused") || !strings.Contains(ready.Error, name+": ") {
			t.Errorf("/readyz on %s: %q (error %q)", name, failing[name], ready.Error)
		}
	}

	// Scoring goes on, degraded, and counts the store's failure.
	resp, err := client.Post(public+"/v1/score", "application/json", strings.NewReader(`{"id":"l1","type":"checkout","card_id":"c","account_id":"a","amount":10}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"degraded":true`) {
		t.Fatalf("score with Redis away: %d %s", resp.StatusCode, b)
	}

	// The metrics: every dependency down, the store's and the reader's
	// errors counted.
	pollUntil(t, 50*time.Millisecond, 60*time.Second, "the failures in /metrics", func() bool {
		_, m := get("/metrics")
		for _, series := range []string{
			`riskd_dependency_up{dependency="redis"}`,
			`riskd_dependency_up{dependency="kafka"}`,
			`riskd_dependency_up{dependency="kafka_group"}`,
		} {
			if v, ok := metricValue(m, series); !ok || v != 0 {
				return false
			}
		}
		storeErrs, _ := metricValue(m, "riskd_feature_store_errors_total")
		readerErrs, _ := metricValue(m, `riskd_kafka_errors_total{op="reader"}`)
		return storeErrs >= 1 && readerErrs >= 1
	}, p.output)

	// The logs: each failure at warning or error, from riskd and from the
	// libraries, every line JSON.
	refused := func(s string) bool { return strings.Contains(s, "connection refused") }
	want := map[string]func(logLine) bool{
		"redis failing": func(l logLine) bool {
			return l.Level == "ERROR" && l.Msg == "redis failing: riskd is not ready" && l.Dependency == "redis" && refused(l.Err)
		},
		"kafka failing": func(l logLine) bool {
			return l.Level == "ERROR" && l.Msg == "kafka failing: riskd is not ready" && l.Dependency == "kafka" && refused(l.Err)
		},
		"kafka_group failing": func(l logLine) bool {
			return l.Level == "ERROR" && l.Msg == "kafka_group failing: riskd is not ready" && l.Dependency == "kafka_group" && refused(l.Err)
		},
		"a degraded decision": func(l logLine) bool {
			return l.Level == "WARN" && l.Msg == "feature store failed; the decision is degraded" && l.Err != ""
		},
		"go-redis's dial failure": func(l logLine) bool {
			return l.Level == "WARN" && l.Lib == "go-redis" && strings.HasPrefix(l.Msg, "redis: ") && refused(l.Msg)
		},
		"kafka-go's reader error": func(l logLine) bool {
			return l.Level == "WARN" && l.Lib == "kafka-go" && refused(l.Msg)
		},
	}
	pollUntil(t, 50*time.Millisecond, 60*time.Second, "every failure in the logs", func() bool {
		for _, l := range logLines(t, p) {
			for what, match := range want {
				if match(l) {
					delete(want, what)
				}
			}
		}
		return len(want) == 0
	}, func() string {
		var missing []string
		for what := range want {
			missing = append(missing, what)
		}
		return "missing: " + strings.Join(missing, ", ") + "\n" + p.output()
	})

	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		if p.err != nil {
			t.Fatalf("riskd exited with %v after SIGTERM\n%s", p.err, p.output())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("riskd still running 60s after SIGTERM\n%s", p.output())
	}
	logLines(t, p) // the shutdown's lines are JSON too
	if out, _ := os.ReadFile(logs); !strings.Contains(string(out), `"msg":"shutting down"`) {
		t.Errorf("no shutdown line:\n%s", out)
	}
}
