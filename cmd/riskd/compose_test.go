package main

import (
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestComposeRunsRiskdWithRealFlags parses riskd's command line and
// environment in deploy/compose.yaml with riskd's own flag parsing, so
// the two cannot drift: an unknown or renamed flag, a RISKD_ variable
// naming no flag, or a value riskd refuses fails here. Prometheus must
// scrape the listener that serves /metrics.
func TestComposeRunsRiskdWithRealFlags(t *testing.T) {
	data, err := os.ReadFile("../../deploy/compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			Command     []string
			Environment map[string]string
			Ports       []string
		}
	}
	if err := yaml.Unmarshal(data, &compose); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	riskd, ok := compose.Services["riskd"]
	if !ok || len(riskd.Command) == 0 {
		t.Fatal("compose.yaml: no riskd service with a command")
	}
	known := flagSet(&config{}, io.Discard)
	for name := range riskd.Environment {
		flagName, ok := strings.CutPrefix(name, "RISKD_")
		flagName = strings.ToLower(strings.ReplaceAll(flagName, "_", "-"))
		if !ok || known.Lookup(flagName) == nil {
			t.Errorf("compose.yaml sets %s, which no riskd flag reads", name)
		}
	}
	c, err := parseFlags(riskd.Command, func(k string) string { return riskd.Environment[k] }, io.Discard)
	if err != nil {
		t.Fatalf("riskd %s: %v", strings.Join(riskd.Command, " "), err)
	}
	// Secrets come from files, not from compose.yaml; published ports
	// stay on the machine's loopback.
	if c.adminToken != "" || c.sec.adminTokenFile == "" {
		t.Errorf("compose gives riskd its admin token as a value (%q), not a secret file", c.adminToken)
	}
	for name, svc := range compose.Services {
		for _, p := range svc.Ports {
			if !strings.HasPrefix(p, "127.0.0.1:") {
				t.Errorf("compose.yaml: %s publishes %s on every interface: bind it to 127.0.0.1", name, p)
			}
		}
	}
	if c.redis == "" || c.kafkaBrokers == "" || c.logFormat != "json" {
		t.Errorf("compose runs riskd without Redis (%q), Kafka (%q) or JSON logs (%q)", c.redis, c.kafkaBrokers, c.logFormat)
	}

	prom, err := os.ReadFile("../../deploy/prometheus/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	var scrape struct {
		ScrapeConfigs []struct {
			StaticConfigs []struct{ Targets []string } `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(prom, &scrape); err != nil {
		t.Fatalf("prometheus.yml: %v", err)
	}
	metricsAddr := c.listen
	if c.adminListen != "" {
		metricsAddr = c.adminListen
	}
	_, port, _ := net.SplitHostPort(metricsAddr)
	var targets []string
	for _, sc := range scrape.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			targets = append(targets, st.Targets...)
		}
	}
	if !slices.Contains(targets, "riskd:"+port) {
		t.Errorf("Prometheus scrapes %v; riskd serves /metrics on %s", targets, metricsAddr)
	}
}
