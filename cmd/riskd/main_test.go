package main

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/riskd/riskd/httpapi"
	"github.com/riskd/riskd/internal/poll"
	"github.com/riskd/riskd/rules"
)

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		listen  string
		wantErr string
		check   func(*config) string // "" when c is as expected
	}{
		{name: "defaults", listen: ":8080", check: func(c *config) string {
			if c.kafkaStoreTimeout != time.Second || c.kafkaDegraded {
				return fmt.Sprintf("kafka store timeout %v, degraded %v; want 1s, false", c.kafkaStoreTimeout, c.kafkaDegraded)
			}
			if o := c.storeOptions(); o.IdempotencyWindow != 24*time.Hour || o.Lateness != 10*time.Minute {
				return fmt.Sprintf("store options %+v, want a 24h window and 10m lateness", o)
			}
			if r := c.rulesRead; r.MaxFileBytes != 4<<20 || r.MaxDirBytes != 32<<20 || r.FollowSymlinks {
				return fmt.Sprintf("policy directory bounds %+v, want 4 MiB a file, 32 MiB in all, no symlinks out", r)
			}
			return ""
		}},
		{name: "policy directory bounds", listen: ":8080", args: []string{"-rules-max-file-bytes", "1000", "-rules-max-dir-bytes", "5000"}, env: map[string]string{"RISKD_RULES_FOLLOW_SYMLINKS": "true"}, check: func(c *config) string {
			if r := c.rulesRead; r.MaxFileBytes != 1000 || r.MaxDirBytes != 5000 || !r.FollowSymlinks {
				return fmt.Sprintf("policy directory bounds %+v", r)
			}
			return ""
		}},
		{name: "admin listener", listen: ":8080", args: []string{"-admin-listen", "127.0.0.1:9090"}, check: func(c *config) string {
			if c.adminListen != "127.0.0.1:9090" {
				return fmt.Sprintf("admin listen %q", c.adminListen)
			}
			return ""
		}},
		{name: "admin listener from the environment", listen: ":8080", env: map[string]string{"RISKD_ADMIN_LISTEN": "127.0.0.1:9091"}, check: func(c *config) string {
			if c.adminListen != "127.0.0.1:9091" {
				return fmt.Sprintf("admin listen %q", c.adminListen)
			}
			return ""
		}},
		{name: "bad admin address", args: []string{"-admin-listen", "9090"}, wantErr: `-admin-listen: "9090" is not host:port`},
		{name: "admin on the public address", args: []string{"-listen", ":9000", "-admin-listen", ":9000"}, wantErr: "-admin-listen :9000 is -listen too"},
		{name: "no policy file fits", args: []string{"-rules-max-file-bytes", "0"}, wantErr: "-rules-max-file-bytes 0 must be positive"},
		{name: "directory bound under the file bound", args: []string{"-rules-max-file-bytes", "1000", "-rules-max-dir-bytes", "999"}, wantErr: "-rules-max-dir-bytes 999 must be at least -rules-max-file-bytes 1000"},
		{name: "flag", args: []string{"-listen", "127.0.0.1:9000"}, listen: "127.0.0.1:9000"},
		{name: "environment", env: map[string]string{"RISKD_LISTEN": ":9001"}, listen: ":9001"},
		{name: "flag wins over environment", args: []string{"-listen", ":9002"}, env: map[string]string{"RISKD_LISTEN": ":9001"}, listen: ":9002"},
		{name: "bad environment value", env: map[string]string{"RISKD_MAX_EVENT_BYTES": "lots"}, wantErr: `environment RISKD_MAX_EVENT_BYTES="lots": parse error`},
		{name: "unknown flag", args: []string{"-lisen", ":1"}, wantErr: "flag provided but not defined: -lisen"},
		{name: "stray argument", args: []string{"serve"}, wantErr: `unexpected argument "serve"`},
		{name: "tiny limit", args: []string{"-max-event-bytes", "10"}, wantErr: "-max-event-bytes 10 is too small"},
		{name: "bad broker address", args: []string{"-kafka-brokers", "localhost"}, wantErr: `-kafka-brokers: "localhost" is not host:port`},
		{name: "store timeout", args: []string{"-store-timeout", "0s"}, wantErr: "-store-timeout 0s must be positive"},
		{name: "kafka store timeout", args: []string{"-kafka-store-timeout", "-1s"}, wantErr: "-kafka-store-timeout -1s must be positive"},
		{name: "kafka store timeout from the environment", listen: ":8080", env: map[string]string{"RISKD_KAFKA_STORE_TIMEOUT": "250ms", "RISKD_KAFKA_DEGRADED": "true"}, check: func(c *config) string {
			if c.kafkaStoreTimeout != 250*time.Millisecond || !c.kafkaDegraded {
				return fmt.Sprintf("kafka store timeout %v, degraded %v; want 250ms, true", c.kafkaStoreTimeout, c.kafkaDegraded)
			}
			return ""
		}},
		{name: "kafka degraded flag", listen: ":8080", args: []string{"-kafka-degraded"}, check: func(c *config) string {
			if !c.kafkaDegraded {
				return "-kafka-degraded did not set it"
			}
			return ""
		}},
		{name: "bad kafka degraded environment value", env: map[string]string{"RISKD_KAFKA_DEGRADED": "sometimes"}, wantErr: `environment RISKD_KAFKA_DEGRADED="sometimes": parse error`},
		{name: "idempotency window and lateness", listen: ":8080", args: []string{"-idempotency-window", "48h"}, env: map[string]string{"RISKD_MAX_LATENESS": "1h"}, check: func(c *config) string {
			if o := c.storeOptions(); o.IdempotencyWindow != 48*time.Hour || o.Lateness != time.Hour {
				return fmt.Sprintf("store options %+v, want a 48h window and 1h lateness", o)
			}
			return ""
		}},
		{name: "short idempotency window", args: []string{"-idempotency-window", "10s"}, wantErr: "-idempotency-window 10s is too short (at least 1m)"},
		{name: "no kafka concurrency", args: []string{"-kafka-concurrency", "0"}, wantErr: "-kafka-concurrency 0 must be at least 1"},
		{name: "no connections", args: []string{"-max-connections", "0"}, wantErr: "-max-connections 0 must be at least 1"},
		{name: "negative key cap", args: []string{"-memory-max-keys", "-1"}, wantErr: "-memory-max-keys -1 must not be negative"},
		{name: "no future skew", args: []string{"-max-future-skew", "0s"}, wantErr: "-max-future-skew 0s must be positive"},
		{name: "no lateness", args: []string{"-max-lateness", "0s"}, wantErr: "-max-lateness 0s must be positive"},
		{name: "log format and level", listen: ":8080", args: []string{"-log-format", "json", "-log-level", "debug"}, check: func(c *config) string {
			if c.logFormat != "json" || c.logLevel != slog.LevelDebug {
				return fmt.Sprintf("log format %q, level %v", c.logFormat, c.logLevel)
			}
			return ""
		}},
		{name: "log defaults", listen: ":8080", check: func(c *config) string {
			if c.logFormat != "auto" || c.logLevel != slog.LevelInfo {
				return fmt.Sprintf("log format %q, level %v; want auto, INFO", c.logFormat, c.logLevel)
			}
			return ""
		}},
		{name: "log level from the environment", listen: ":8080", env: map[string]string{"RISKD_LOG_LEVEL": "WARN", "RISKD_LOG_FORMAT": "text"}, check: func(c *config) string {
			if c.logFormat != "text" || c.logLevel != slog.LevelWarn {
				return fmt.Sprintf("log format %q, level %v", c.logFormat, c.logLevel)
			}
			return ""
		}},
		{name: "the environment does not ask for the version", listen: ":8080", env: map[string]string{"RISKD_VERSION": "1.4.0"}, check: func(c *config) string {
			if c.version {
				return "RISKD_VERSION set -version"
			}
			return ""
		}},
		{name: "bad log format", args: []string{"-log-format", "logfmt"}, wantErr: `-log-format "logfmt": want auto, json or text`},
		{name: "bad log level", args: []string{"-log-level", "loud"}, wantErr: `invalid value "loud" for flag -log-level`},
		{name: "bad kafka store timeout environment value", env: map[string]string{"RISKD_KAFKA_STORE_TIMEOUT": "1"}, wantErr: `environment RISKD_KAFKA_STORE_TIMEOUT="1": parse error`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseFlags(tt.args, func(k string) string { return tt.env[k] }, io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.listen != tt.listen {
				t.Errorf("listen %q, want %q", c.listen, tt.listen)
			}
			if tt.check != nil {
				if msg := tt.check(c); msg != "" {
					t.Error(msg)
				}
			}
		})
	}
}

func TestVersion(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := run([]string{"-version"}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	// A test binary has no module version or VCS stamp of its own.
	if want := "riskd (devel) (revision unknown, " + runtime.Version() + ")\n"; out.String() != want || errOut.Len() != 0 {
		t.Errorf("riskd -version: %q %q, want %q", out.String(), errOut.String(), want)
	}
}

func TestLoadPolicyErrors(t *testing.T) {
	if _, err := loadPolicy("/nonexistent/policy", rules.DirOptions{}); err == nil || !strings.Contains(err.Error(), "-rules: stat /nonexistent/policy: no such file or directory") {
		t.Fatalf("got %v", err)
	}
	if p, err := loadPolicy("../../rules/example", rules.DirOptions{}); err != nil || len(p.Rulesets) != 3 {
		t.Fatalf("loading the example directory: %v", err)
	}
}

// TestListenCapsConnections: the scoring port holds -max-connections;
// past it a client parking connections that send nothing gives way to a
// new one (its longest idle connection is closed) rather than lock it
// out, and the count stays at the cap.
func TestListenCapsConnections(t *testing.T) {
	limit := httpapi.NewConnLimit(2, nil)
	ln, err := listen("127.0.0.1:0", limit)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }), ConnState: limit.Track}
	go srv.Serve(ln)
	defer srv.Close()
	addr := ln.Addr().String()
	for range 2 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	poll.Until(t, "2 open connections", func() bool { return limit.Open() == 2 })
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://" + addr + "/")
	if err != nil {
		t.Fatalf("a new client while 2 silent connections held the cap: %v", err)
	}
	resp.Body.Close()
	if n := limit.Open(); n > 2 {
		t.Errorf("%d connections open, over the cap of 2", n)
	}
}
