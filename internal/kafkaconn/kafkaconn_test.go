package kafkaconn_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/riskd/riskd/internal/certtest"
	"github.com/riskd/riskd/internal/kafkaconn"
	"github.com/riskd/riskd/internal/tlsfiles"
)

const password = "s3cret-Pw"

// broker is a kfake cluster that speaks TLS and wants SASL, knowing
// user riskd under every mechanism.
func broker(t *testing.T) (addr string, ca *certtest.CA) {
	t.Helper()
	dir := t.TempDir()
	ca = certtest.NewCA(t, dir, "kafka")
	srv := ca.Server(dir, "broker")
	cfg, _, err := tlsfiles.Server{CertFile: srv.CertFile, KeyFile: srv.KeyFile}.Config()
	if err != nil {
		t.Fatal(err)
	}
	cfg.NextProtos = nil
	opts := []kfake.Opt{kfake.NumBrokers(1), kfake.SeedTopics(1, "events"), kfake.EnableSASL(), kfake.TLS(cfg), kfake.AllowAutoTopicCreation()}
	for _, m := range kafkaconn.Mechanisms {
		opts = append(opts, kfake.Superuser(m, "riskd", password))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()[0], ca
}

// roundTrip writes a message with a Writer, reads it back with a group
// Reader and asks for the offsets with a Client, as riskd's consumer,
// writers and readiness checks do.
func roundTrip(t *testing.T, addr string, conn *kafkaconn.Conn, topic string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	w := &kafka.Writer{Addr: kafka.TCP(addr), Topic: topic, Transport: conn.Transport("test"), AllowAutoTopicCreation: true, MaxAttempts: 1, BatchTimeout: time.Millisecond}
	defer w.Close()
	if err := w.WriteMessages(ctx, kafka.Message{Key: []byte("k"), Value: []byte("v")}); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	cl := &kafka.Client{Addr: kafka.TCP(addr), Transport: conn.Transport("test")}
	resp, err := cl.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: {kafka.LastOffsetOf(0)}}})
	if err != nil {
		return fmt.Errorf("list offsets: %w", err)
	}
	if got := resp.Topics[topic][0].LastOffset; got != 1 {
		t.Errorf("last offset %d, want 1", got)
	}
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{addr}, GroupID: "g-" + topic, Topic: topic, Dialer: conn.Dialer("test"), StartOffset: kafka.FirstOffset, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	m, err := r.FetchMessage(ctx)
	if err != nil {
		return fmt.Errorf("fetch: %w", err)
	}
	if string(m.Value) != "v" {
		t.Errorf("read %q, want v", m.Value)
	}
	return r.CommitMessages(ctx, m)
}

func TestSASLAndTLS(t *testing.T) {
	addr, ca := broker(t)
	for i, m := range kafkaconn.Mechanisms {
		t.Run(m, func(t *testing.T) {
			conn, err := kafkaconn.New(kafkaconn.Options{Mechanism: strings.ToLower(m), Username: "riskd", Password: password, TLSFiles: tlsfiles.Client{CAFile: ca.CertFile}})
			if err != nil {
				t.Fatal(err)
			}
			if want := "SASL_SSL " + m + " user riskd"; conn.String() != want {
				t.Errorf("String() = %q, want %q", conn, want)
			}
			if err := roundTrip(t, addr, conn, fmt.Sprintf("t%d", i)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestRefused(t *testing.T) {
	addr, ca := broker(t)
	other := certtest.NewCA(t, t.TempDir(), "other")
	// Kafka answers a failed login with SASL_AUTHENTICATION_FAILED; kfake
	// hangs up, which kafka-go reports as an unexpected EOF.
	for _, tt := range []struct {
		name string
		opts kafkaconn.Options
		want string
	}{
		{"wrong password", kafkaconn.Options{Mechanism: "SCRAM-SHA-512", Username: "riskd", Password: "not-" + password, TLSFiles: tlsfiles.Client{CAFile: ca.CertFile}}, "EOF"},
		{"unknown user", kafkaconn.Options{Mechanism: "PLAIN", Username: "mallory", Password: password, TLSFiles: tlsfiles.Client{CAFile: ca.CertFile}}, "EOF"},
		{"no SASL", kafkaconn.Options{TLSFiles: tlsfiles.Client{CAFile: ca.CertFile}}, "EOF"},
		{"wrong CA", kafkaconn.Options{Mechanism: "SCRAM-SHA-256", Username: "riskd", Password: password, TLSFiles: tlsfiles.Client{CAFile: other.CertFile}}, "certificate signed by unknown authority"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := kafkaconn.New(tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			err = roundTrip(t, addr, conn, "refused")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), password) {
				t.Errorf("error %q shows the password", err)
			}
		})
	}
}

func TestOptions(t *testing.T) {
	dir := t.TempDir()
	ca := certtest.NewCA(t, dir, "kafka")
	for _, tt := range []struct {
		name string
		opts kafkaconn.Options
		str  string
		err  string
	}{
		{name: "nothing", str: "PLAINTEXT"},
		{name: "TLS with the system's roots", opts: kafkaconn.Options{TLS: true}, str: "SSL"},
		{name: "TLS files", opts: kafkaconn.Options{TLSFiles: tlsfiles.Client{CAFile: ca.CertFile}}, str: "SSL"},
		{name: "SCRAM without TLS", opts: kafkaconn.Options{Mechanism: "SCRAM-SHA-256", Username: "u", Password: password}, str: "SASL_PLAINTEXT SCRAM-SHA-256 user u"},
		{name: "PLAIN without TLS", opts: kafkaconn.Options{Mechanism: "PLAIN", Username: "u", Password: password}, err: "in the clear"},
		{name: "unknown mechanism", opts: kafkaconn.Options{Mechanism: "GSSAPI", Username: "u", Password: password}, err: `SASL mechanism "GSSAPI": want one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512`},
		{name: "no user", opts: kafkaconn.Options{Mechanism: "PLAIN", Password: password}, err: "no user name"},
		{name: "no password", opts: kafkaconn.Options{Mechanism: "PLAIN", Username: "u", TLS: true}, err: "no password for u"},
		{name: "password without mechanism", opts: kafkaconn.Options{Password: password}, err: "no SASL mechanism"},
		{name: "missing CA", opts: kafkaconn.Options{TLSFiles: tlsfiles.Client{CAFile: dir + "/nope"}}, err: "TLS: CA file: open " + dir + "/nope"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := kafkaconn.New(tt.opts)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.String() != tt.str {
				t.Errorf("String() = %q, want %q", c, tt.str)
			}
		})
	}
}
