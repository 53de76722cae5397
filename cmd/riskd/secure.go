package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/riskd/riskd/internal/kafkaconn"
	"github.com/riskd/riskd/internal/redisconn"
	"github.com/riskd/riskd/internal/secret"
	"github.com/riskd/riskd/internal/tlsfiles"
)

// security holds the flags of riskd's secure connections: TLS and
// credentials for Redis and Kafka, HTTPS on the listeners, and the file
// forms of every secret.
type security struct {
	redisSentinelMaster       string
	redisUsername             string
	redisPassword             string
	redisPasswordFile         string
	redisSentinelPassword     string
	redisSentinelPasswordFile string
	redisTLS                  tlsfiles.Client

	kafkaSASLMechanism    string
	kafkaSASLUsername     string
	kafkaSASLPassword     string
	kafkaSASLPasswordFile string
	kafkaTLS              bool
	kafkaTLSFiles         tlsfiles.Client

	tlsCertFile, tlsKeyFile, tlsClientCAFile                string
	adminTLSCertFile, adminTLSKeyFile, adminTLSClientCAFile string

	adminTokenFile string
}

// secretFlags are the flags whose value is a secret: on the command line
// any user of the machine reads it (ps, /proc), so riskd warns; their
// RISKD_ variable or -file form is how to give them.
var secretFlags = map[string]string{
	"admin-token":             "-admin-token-file",
	"redis-password":          "-redis-password-file",
	"redis-sentinel-password": "-redis-sentinel-password-file",
	"kafka-sasl-password":     "-kafka-sasl-password-file",
}

func (s *security) define(fl *flag.FlagSet) {
	fl.StringVar(&s.redisSentinelMaster, "redis-sentinel-master", "", "name of the Redis master at the Sentinels; -redis then lists the Sentinels")
	fl.StringVar(&s.redisUsername, "redis-username", "", "Redis ACL user riskd logs in as (or the user in the -redis URL)")
	fl.StringVar(&s.redisPassword, "redis-password", "", "Redis password (on the command line others can read it: prefer RISKD_REDIS_PASSWORD or -redis-password-file)")
	fl.StringVar(&s.redisPasswordFile, "redis-password-file", "", "file holding the Redis password")
	fl.StringVar(&s.redisSentinelPassword, "redis-sentinel-password", "", "password of the Sentinels (prefer RISKD_REDIS_SENTINEL_PASSWORD or -redis-sentinel-password-file)")
	fl.StringVar(&s.redisSentinelPasswordFile, "redis-sentinel-password-file", "", "file holding the Sentinels' password")
	fl.StringVar(&s.redisTLS.CAFile, "redis-tls-ca-file", "", "PEM CA certificates that sign Redis's certificate (turns TLS on; default with rediss://: the system's roots)")
	fl.StringVar(&s.redisTLS.CertFile, "redis-tls-cert-file", "", "client certificate riskd shows Redis (mutual TLS), read again when the file changes")
	fl.StringVar(&s.redisTLS.KeyFile, "redis-tls-key-file", "", "key of -redis-tls-cert-file")
	fl.StringVar(&s.redisTLS.ServerName, "redis-tls-server-name", "", "name Redis's certificate must carry; default: the host dialled (rediss://: the URL's first host)")

	fl.StringVar(&s.kafkaSASLMechanism, "kafka-sasl-mechanism", "", "SASL mechanism: PLAIN (needs TLS), SCRAM-SHA-256 or SCRAM-SHA-512; empty: no SASL")
	fl.StringVar(&s.kafkaSASLUsername, "kafka-sasl-username", "", "SASL user")
	fl.StringVar(&s.kafkaSASLPassword, "kafka-sasl-password", "", "SASL password (prefer RISKD_KAFKA_SASL_PASSWORD or -kafka-sasl-password-file)")
	fl.StringVar(&s.kafkaSASLPasswordFile, "kafka-sasl-password-file", "", "file holding the SASL password")
	fl.BoolVar(&s.kafkaTLS, "kafka-tls", false, "connect to the brokers over TLS, trusting the system's roots (any -kafka-tls-* flag turns TLS on too)")
	fl.StringVar(&s.kafkaTLSFiles.CAFile, "kafka-tls-ca-file", "", "PEM CA certificates that sign the brokers' certificates")
	fl.StringVar(&s.kafkaTLSFiles.CertFile, "kafka-tls-cert-file", "", "client certificate riskd shows the brokers (mutual TLS), read again when the file changes")
	fl.StringVar(&s.kafkaTLSFiles.KeyFile, "kafka-tls-key-file", "", "key of -kafka-tls-cert-file")
	fl.StringVar(&s.kafkaTLSFiles.ServerName, "kafka-tls-server-name", "", "name the brokers' certificates must carry; default: the host dialled")

	fl.StringVar(&s.tlsCertFile, "tls-cert-file", "", "certificate (and chain) of the scoring listener: it then serves HTTPS (HTTP/2 and HTTP/1.1), reading the files again when they change")
	fl.StringVar(&s.tlsKeyFile, "tls-key-file", "", "key of -tls-cert-file")
	fl.StringVar(&s.tlsClientCAFile, "tls-client-ca-file", "", "PEM CA certificates: the scoring listener then wants a client certificate they sign (mutual TLS)")
	fl.StringVar(&s.adminTLSCertFile, "admin-tls-cert-file", "", "certificate of the admin listener (-admin-listen); default: -tls-cert-file's")
	fl.StringVar(&s.adminTLSKeyFile, "admin-tls-key-file", "", "key of -admin-tls-cert-file")
	fl.StringVar(&s.adminTLSClientCAFile, "admin-tls-client-ca-file", "", "PEM CA certificates the admin listener wants client certificates signed by; default: none (the admin listener does not take -tls-client-ca-file: probes and Prometheus reach it without a client certificate)")

	fl.StringVar(&s.adminTokenFile, "admin-token-file", "", "file holding the admin endpoints' bearer token (16 bytes or more), instead of -admin-token")
}

// check refuses flags that cannot work together.
func (s *security) check(adminListen string) error {
	var errs []error
	pair := func(cert, key, certName, keyName string) {
		if (cert == "") != (key == "") {
			errs = append(errs, fmt.Errorf("-%s and -%s go together", certName, keyName))
		}
	}
	pair(s.tlsCertFile, s.tlsKeyFile, "tls-cert-file", "tls-key-file")
	pair(s.adminTLSCertFile, s.adminTLSKeyFile, "admin-tls-cert-file", "admin-tls-key-file")
	pair(s.redisTLS.CertFile, s.redisTLS.KeyFile, "redis-tls-cert-file", "redis-tls-key-file")
	pair(s.kafkaTLSFiles.CertFile, s.kafkaTLSFiles.KeyFile, "kafka-tls-cert-file", "kafka-tls-key-file")
	if s.tlsClientCAFile != "" && s.tlsCertFile == "" {
		errs = append(errs, errors.New("-tls-client-ca-file needs -tls-cert-file: client certificates are a TLS matter"))
	}
	if adminListen == "" && (s.adminTLSCertFile != "" || s.adminTLSClientCAFile != "") {
		errs = append(errs, errors.New("-admin-tls-* flags need -admin-listen: without it the admin endpoints are on -listen, with -tls-cert-file's settings"))
	}
	if s.adminTLSClientCAFile != "" && s.adminTLSCertFile == "" && s.tlsCertFile == "" {
		errs = append(errs, errors.New("-admin-tls-client-ca-file needs a certificate for the admin listener (-admin-tls-cert-file or -tls-cert-file)"))
	}
	return errors.Join(errs...)
}

// argvSecrets names the secrets given on the command line (set: the
// flags given there), for a warning: a URL with a password in -redis
// counts.
func argvSecrets(set map[string]bool, redis string) []string {
	var out []string
	for name := range secretFlags {
		if set[name] {
			out = append(out, "-"+name)
		}
	}
	if set["redis"] {
		for _, item := range splitList(redis) {
			if u, err := url.Parse(item); err == nil && u.User != nil {
				if _, ok := u.User.Password(); ok || u.Query().Has("password") {
					out = append(out, "-redis (a URL with a password)")
					break
				}
			}
		}
	}
	return out
}

// warnArgvSecrets logs one warning for the secrets on the command line.
func warnArgvSecrets(log *slog.Logger, names []string) {
	if len(names) == 0 {
		return
	}
	log.Warn("secrets on the command line can be read by any user of the machine (ps, /proc): give them as RISKD_ variables or -file flags",
		"flags", strings.Join(names, ","))
}

// adminToken is the admin endpoints' token, from -admin-token (or
// RISKD_ADMIN_TOKEN) or -admin-token-file; "" if neither. A token too
// short to resist guessing is refused, whatever its source.
func (s *security) adminToken(value string, log *slog.Logger) (string, error) {
	tok, err := secret.Resolve("-admin-token", value, "-admin-token-file", s.adminTokenFile, log)
	if err != nil || tok == "" {
		return "", err
	}
	where := "-admin-token"
	if s.adminTokenFile != "" {
		where = "-admin-token-file " + s.adminTokenFile
	}
	return tok, secret.CheckToken(tok, where)
}

// redisConn parses -redis and the flags around it.
func (s *security) redisConn(addrs string, log *slog.Logger) (*redisconn.Conn, error) {
	pass, err := secret.Resolve("-redis-password", s.redisPassword, "-redis-password-file", s.redisPasswordFile, log)
	if err != nil {
		return nil, err
	}
	sentinelPass, err := secret.Resolve("-redis-sentinel-password", s.redisSentinelPassword, "-redis-sentinel-password-file", s.redisSentinelPasswordFile, log)
	if err != nil {
		return nil, err
	}
	c, err := redisconn.Parse(redisconn.Options{Addrs: splitList(addrs), SentinelMaster: s.redisSentinelMaster,
		Username: s.redisUsername, Password: pass, SentinelPassword: sentinelPass, TLS: s.redisTLS})
	if err != nil {
		return nil, fmt.Errorf("-redis: %w", err)
	}
	return c, nil
}

// kafkaConn reads the Kafka security flags.
func (s *security) kafkaConn(log *slog.Logger) (*kafkaconn.Conn, error) {
	pass, err := secret.Resolve("-kafka-sasl-password", s.kafkaSASLPassword, "-kafka-sasl-password-file", s.kafkaSASLPasswordFile, log)
	if err != nil {
		return nil, err
	}
	c, err := kafkaconn.New(kafkaconn.Options{Mechanism: s.kafkaSASLMechanism, Username: s.kafkaSASLUsername, Password: pass,
		TLS: s.kafkaTLS, TLSFiles: s.kafkaTLSFiles})
	if err != nil {
		return nil, fmt.Errorf("kafka: %w", err)
	}
	return c, nil
}

// tlsMetrics count the listeners' certificate reloads and show when the
// certificates served expire.
type tlsMetrics struct {
	reloads *prometheus.CounterVec
	expiry  *prometheus.GaugeVec
}

func newTLSMetrics(reg prometheus.Registerer) *tlsMetrics {
	m := &tlsMetrics{
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "riskd_tls_certificate_reloads_total",
			Help: "Times a listener's certificate files changed, by listener and result: loaded, or failed (the files do not make a pair; the previous certificate keeps serving).",
		}, []string{"listener", "result"}),
		expiry: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "riskd_tls_certificate_expiry_timestamp_seconds",
			Help: "When the certificate a listener serves expires (Unix time): alert well before it.",
		}, []string{"listener"}),
	}
	reg.MustRegister(m.reloads, m.expiry)
	return m
}

// serverTLS is the TLS configuration of a listener ("scoring" or
// "admin"), nil when it serves plain HTTP.
func (s *security) serverTLS(listener string, m *tlsMetrics, log *slog.Logger) (*tls.Config, error) {
	cert, key, ca, flagName := s.tlsCertFile, s.tlsKeyFile, s.tlsClientCAFile, "-tls-cert-file"
	if listener == "admin" {
		ca = s.adminTLSClientCAFile
		if s.adminTLSCertFile != "" {
			cert, key, flagName = s.adminTLSCertFile, s.adminTLSKeyFile, "-admin-tls-cert-file"
		}
	}
	if cert == "" {
		return nil, nil
	}
	secret.WarnIfReadable(key, log)
	for _, r := range []string{"loaded", "failed"} {
		m.reloads.WithLabelValues(listener, r)
	}
	expiry := m.expiry.WithLabelValues(listener)
	cfg, kp, err := tlsfiles.Server{CertFile: cert, KeyFile: key, ClientCAFile: ca, Hooks: tlsfiles.Hooks{
		Reloaded: func(leaf *x509.Certificate) {
			m.reloads.WithLabelValues(listener, "loaded").Inc()
			expiry.Set(float64(leaf.NotAfter.Unix()))
			log.Info("TLS certificate reloaded", "listener", listener, "subject", leaf.Subject.String(), "not_after", leaf.NotAfter.Format(time.RFC3339))
		},
		Failed: func(err error) {
			m.reloads.WithLabelValues(listener, "failed").Inc()
			log.Warn("TLS certificate files changed but do not load; the previous certificate keeps serving", "listener", listener, "err", err)
		},
	}}.Config()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flagName, err)
	}
	expiry.Set(float64(kp.Leaf().NotAfter.Unix()))
	return cfg, nil
}
