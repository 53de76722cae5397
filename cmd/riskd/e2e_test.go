package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/riskd/riskd/internal/apitest"
	"github.com/riskd/riskd/internal/certtest"
	"github.com/riskd/riskd/internal/kafkatest"
	"github.com/riskd/riskd/internal/tlsfiles"
)

// TestKafkaEndToEndWithKcat runs the riskd binary against a Kafka-protocol
// broker that wants TLS and SASL (SCRAM-SHA-512), as a managed Kafka
// does, produces events with kcat (librdkafka, an independent client),
// reads the decisions (and a challenger's shadow decisions) back with kcat,
// then stops riskd with SIGTERM.
func TestKafkaEndToEndWithKcat(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Fatalf("kcat is needed for this test (Debian: apt-get install kcat; ./test.sh installs it): %v", err)
	}
	const password = "kafka-Pw-0123"
	certs := t.TempDir()
	ca := certtest.NewCA(t, certs, "kafka")
	srv := ca.Server(certs, "broker")
	serverTLS, _, err := tlsfiles.Server{CertFile: srv.CertFile, KeyFile: srv.KeyFile}.Config()
	if err != nil {
		t.Fatal(err)
	}
	serverTLS.NextProtos = nil
	broker, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "risk.events", "risk.decisions", "risk.decisions.shadow", "risk.events.dlq"),
		kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-512", "riskd", password), kfake.TLS(serverTLS))
	if err != nil {
		t.Fatal(err)
	}
	defer broker.Close()
	addr := broker.ListenAddrs()[0]
	clientTLS, err := tlsfiles.Client{CAFile: ca.CertFile}.Config()
	if err != nil {
		t.Fatal(err)
	}
	kafkatest.AdvertiseHandshakeV0(t, broker, clientTLS)
	security := []string{"-X", "security.protocol=SASL_SSL", "-X", "sasl.mechanisms=SCRAM-SHA-512", "-X", "sasl.username=riskd",
		"-X", "sasl.password=" + password, "-X", "ssl.ca.location=" + ca.CertFile}

	bin := riskdBinary(t)
	// The example policy plus a challenger live for half the accounts.
	rules := t.TempDir()
	copyExample(t, rules)
	os.WriteFile(filepath.Join(rules, "next.yaml"), []byte(`name: checkout_next
shadow_of: checkout
traffic: 50%
split_key: account_id
thresholds: {step_up: 50, block: 90}
rules:
  - {id: big, when: event.amount > 40, score: 60}
`), 0o644)
	var logs bytes.Buffer
	// The password from the environment, as a deployment gives it.
	riskd := exec.Command(bin, "-listen", "127.0.0.1:0", "-kafka-brokers", addr, "-rules", rules,
		"-kafka-sasl-mechanism", "SCRAM-SHA-512", "-kafka-sasl-username", "riskd", "-kafka-tls-ca-file", ca.CertFile)
	riskd.Env = append(os.Environ(), "RISKD_KAFKA_SASL_PASSWORD="+password)
	riskd.Stdout, riskd.Stderr = &logs, &logs
	if err := riskd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- riskd.Wait() }()
	defer func() {
		if riskd.ProcessState == nil {
			riskd.Process.Kill()
		}
	}()

	const n = 50
	var events bytes.Buffer
	// Within the last hour: riskd refuses events further behind its clock
	// than -max-past-skew (24h).
	base := time.Now().Add(-time.Hour).UnixMilli()
	for i := range n {
		fmt.Fprintf(&events, `{"id":"k-%d","type":"checkout","ts":%d,"account_id":"acc-%d","card_id":"card-%d","amount":%d}`+"\n",
			i, base+int64(i)*1000, i%7, i%3, 10+i)
	}
	events.WriteString("not json\n")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	produce := exec.CommandContext(ctx, kcat, append([]string{"-P", "-b", addr, "-t", "risk.events"}, security...)...)
	produce.Stdin = &events
	if out, err := produce.CombinedOutput(); err != nil {
		t.Fatalf("kcat -P: %v\n%s", err, out)
	}

	read := func(topic string, count int) []record {
		out, err := exec.CommandContext(ctx, kcat, append([]string{"-C", "-b", addr, "-t", topic, "-o", "beginning", "-c", fmt.Sprint(count), "-f", "%k\t%h\t%s\n"}, security...)...).Output()
		if err != nil {
			t.Fatalf("kcat -C %s: %v\nriskd:\n%s", topic, err, logs.String())
		}
		var recs []record
		sc := bufio.NewScanner(bytes.NewReader(out))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			r := record{line: sc.Text()}
			var rest string
			r.key, rest, _ = strings.Cut(r.line, "\t")
			r.headers, r.value, _ = strings.Cut(rest, "\t")
			recs = append(recs, r)
		}
		return recs
	}
	seen := map[string]bool{}
	for _, r := range read("risk.decisions", n) {
		key, headers, value, line := r.key, r.headers, r.value, r.line
		var d struct {
			EventID  string `json:"event_id"`
			Decision string `json:"decision"`
		}
		if err := json.Unmarshal([]byte(value), &d); err != nil || d.EventID != key || d.Decision == "" {
			t.Fatalf("decision %q: %v", line, err)
		}
		if !strings.Contains(headers, "ruleset=checkout") || !strings.Contains(headers, "version=") {
			t.Fatalf("decision headers %q", headers)
		}
		seen[key] = true
	}
	if len(seen) != n {
		t.Fatalf("%d events decided, want %d", len(seen), n)
	}
	// One shadow verdict per event: the challenger's, or the champion's
	// where the split made the challenger decide.
	shadows := map[string]int{}
	for _, r := range read("risk.decisions.shadow", n) {
		key, value, line := r.key, r.value, r.line
		var d struct {
			EventID     string `json:"event_id"`
			Ruleset     string `json:"ruleset"`
			Shadow      bool   `json:"shadow"`
			LiveRuleset string `json:"live_ruleset"`
		}
		if err := json.Unmarshal([]byte(value), &d); err != nil || d.EventID != key || !d.Shadow || d.Ruleset == d.LiveRuleset {
			t.Fatalf("shadow decision %q: %v", line, err)
		}
		shadows[d.Ruleset]++
	}
	if shadows["checkout"] == 0 || shadows["checkout_next"] == 0 {
		t.Fatalf("shadow verdicts by ruleset %v: want both sides of the split", shadows)
	}
	dead := read("risk.events.dlq", 1)[0].line
	if !strings.Contains(dead, "error=invalid JSON") || !strings.HasSuffix(dead, "\tnot json") {
		t.Fatalf("dead letter %q", dead)
	}

	// SIGTERM: riskd drains, commits and exits cleanly.
	riskd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("riskd exited with %v after SIGTERM\n%s", err, logs.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("riskd still running 30s after SIGTERM\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "shutting down") || !strings.Contains(logs.String(), `"kafka_security":"SASL_SSL SCRAM-SHA-512 user riskd"`) {
		t.Errorf("riskd logs:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), password) {
		t.Errorf("riskd logged the SASL password:\n%s", logs.String())
	}
}

// record is one message as kcat -f '%k\t%h\t%s\n' prints it.
type record struct {
	line                string
	key, headers, value string
}

// TestAdminListenerAndConfigMapReload runs the riskd binary on a policy
// laid out as a Kubernetes ConfigMap volume, with -admin-listen: the
// public port scores and answers health checks but not status, reload or
// metrics; the admin port serves those; and a swap of ..data (the
// kubelet's atomic update) is picked up by the watcher.
func TestAdminListenerAndConfigMapReload(t *testing.T) {
	bin := riskdBinary(t)
	dir := t.TempDir()
	publish := func(gen int, version string) {
		ts := filepath.Join(dir, fmt.Sprintf("..2026_11_29_10_00_00.%03d", gen))
		if err := os.Mkdir(ts, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"features.yaml", "checkout.yaml", "login.yaml", "signup.yaml", "lists/blocked_cards.txt"} {
			data, err := os.ReadFile(filepath.Join("../../rules/example", name))
			if err != nil {
				t.Fatal(err)
			}
			if name == "checkout.yaml" {
				data = regexp.MustCompile(`(?m)^version: .*$`).ReplaceAll(data, []byte(`version: "`+version+`"`))
			}
			os.MkdirAll(filepath.Dir(filepath.Join(ts, name)), 0o755)
			os.WriteFile(filepath.Join(ts, name), data, 0o644)
			// A ConfigMap item with path lists/blocked_cards.txt: the
			// kubelet links the top-level entry, the directory, through
			// ..data.
			if top := strings.Split(name, "/")[0]; gen == 1 {
				os.Symlink(filepath.Join("..data", top), filepath.Join(dir, top))
			}
		}
		old, _ := os.Readlink(filepath.Join(dir, "..data"))
		os.Symlink(filepath.Base(ts), filepath.Join(dir, "..data_tmp"))
		if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
		if old != "" {
			os.RemoveAll(filepath.Join(dir, old))
		}
	}
	publish(1, "cm-1")

	logs := filepath.Join(t.TempDir(), "riskd.log")
	p := startRiskd(t, bin, logs, "-listen", "127.0.0.1:0", "-admin-listen", "127.0.0.1:0", "-rules", dir, "-admin-token", "s3cret-admin-token")
	public, admin := serving(t, p)

	// Every exchange with the binary is held to api/openapi.yaml too.
	client := &http.Client{Timeout: 10 * time.Second, Transport: apitest.Transport(t, nil)}
	do := func(method, url, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, url, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer s3cret-admin-token")
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v\nriskd:\n%s", method, url, err, p.output())
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, tt := range []struct {
		method, url, body string
		code              int
		want              string
	}{
		{"POST", public + "/v1/score", `{"id":"a1","type":"checkout","card_id":"c","amount":10}`, 200, `"version":"cm-1"`},
		{"GET", public + "/healthz", "", 200, "ok"},
		{"GET", public + "/readyz", "", 200, "ready"},
		{"GET", public + "/v1/rulesets", "", 404, "is served on riskd's admin (-admin-listen) listener"},
		{"POST", public + "/v1/reload", "", 404, "is served on riskd's admin (-admin-listen) listener"},
		{"GET", public + "/metrics", "", 404, "is served on riskd's admin (-admin-listen) listener"},
		{"GET", admin + "/v1/rulesets", "", 200, `"version": "cm-1"`},
		{"GET", admin + "/metrics", "", 200, `riskd_decisions_total{outcome="pass",ruleset="checkout"} 1`},
		{"POST", admin + "/v1/reload", "", 200, `"reason":"unchanged"`},
		{"GET", admin + "/healthz", "", 200, "ok"},
		{"POST", admin + "/v1/score", `{"id":"a2","type":"checkout"}`, 404, "is served on riskd's public (-listen) listener"},
	} {
		if code, body := do(tt.method, tt.url, tt.body); code != tt.code || !strings.Contains(body, tt.want) {
			t.Errorf("%s %s: %d %s\nwant %d %s", tt.method, tt.url, code, body, tt.code, tt.want)
		}
	}

	publish(2, "cm-2")
	waitUntil(t, 30*time.Second, "the watcher to load the swapped ConfigMap", func() bool {
		_, body := do("GET", admin+"/v1/rulesets", "")
		return strings.Contains(body, `"version": "cm-2"`)
	}, p.output)
	if _, body := do("GET", admin+"/v1/rulesets", ""); !strings.Contains(body, `"last_reload_error": null`) {
		t.Errorf("a reload error after the swap:\n%s", body)
	}
	if code, body := do("POST", public+"/v1/score", `{"id":"a3","type":"checkout","card_id":"c","amount":10}`); code != 200 || !strings.Contains(body, `"version":"cm-2"`) {
		t.Errorf("scored after the swap: %d %s", code, body)
	}

	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		if p.err != nil {
			t.Fatalf("riskd exited with %v after SIGTERM\n%s", p.err, p.output())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("riskd still running 30s after SIGTERM\n%s", p.output())
	}
}
