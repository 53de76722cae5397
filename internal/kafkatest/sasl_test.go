package kafkatest_test

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/riskd/riskd/internal/certtest"
	"github.com/riskd/riskd/internal/kafkatest"
	"github.com/riskd/riskd/internal/tlsfiles"
)

// TestKcatSASL: kcat (librdkafka) logs in with SCRAM over TLS to a kfake
// broker that advertises SaslHandshake v0, produces and consumes.
func TestKcatSASL(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Fatalf("kcat is needed for this test (Debian: apt-get install kcat; ./test.sh installs it): %v", err)
	}
	dir := t.TempDir()
	ca := certtest.NewCA(t, dir, "kafka")
	srv := ca.Server(dir, "broker")
	cfg, _, err := tlsfiles.Server{CertFile: srv.CertFile, KeyFile: srv.KeyFile}.Config()
	if err != nil {
		t.Fatal(err)
	}
	cfg.NextProtos = nil
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "events"), kfake.EnableSASL(), kfake.TLS(cfg),
		kfake.Superuser("SCRAM-SHA-512", "riskd", "s3cret-Pw"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	client, err := tlsfiles.Client{CAFile: ca.CertFile}.Config()
	if err != nil {
		t.Fatal(err)
	}
	kafkatest.AdvertiseHandshakeV0(t, c, client)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args := []string{"-b", c.ListenAddrs()[0], "-t", "events", "-X", "security.protocol=SASL_SSL", "-X", "sasl.mechanisms=SCRAM-SHA-512",
		"-X", "sasl.username=riskd", "-X", "sasl.password=s3cret-Pw", "-X", "ssl.ca.location=" + ca.CertFile}
	produce := exec.CommandContext(ctx, kcat, append([]string{"-P"}, args...)...)
	produce.Stdin = strings.NewReader("hello\n")
	if out, err := produce.CombinedOutput(); err != nil {
		t.Fatalf("kcat -P: %v\n%s", err, out)
	}
	out, err := exec.CommandContext(ctx, kcat, append([]string{"-C", "-o", "beginning", "-c", "1", "-e"}, args...)...).Output()
	if err != nil || strings.TrimSpace(string(out)) != "hello" {
		t.Fatalf("kcat -C: %q, %v", out, err)
	}
}
