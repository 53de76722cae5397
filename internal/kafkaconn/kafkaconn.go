// Package kafkaconn turns riskd's Kafka security flags (SASL PLAIN or
// SCRAM, TLS files) into the kafka-go Dialer and Transport that the
// consumer, the writers and the readiness checks connect with.
package kafkaconn

import (
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"

	"github.com/riskd/riskd/internal/tlsfiles"
)

// Mechanisms are the SASL mechanisms riskd logs in with.
var Mechanisms = []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"}

// Options are what riskd's flags say about reaching the brokers.
type Options struct {
	// Mechanism is the SASL mechanism (one of Mechanisms, any case);
	// empty: no SASL.
	Mechanism string
	// Username and Password are SASL's credentials.
	Username, Password string
	// TLS turns TLS on with the system's roots; any of TLSFiles turns
	// it on too.
	TLS      bool
	TLSFiles tlsfiles.Client
}

// Conn is how to connect to the brokers.
type Conn struct {
	mechanism sasl.Mechanism
	tls       *tls.Config
	redacted  string
}

// New checks opts and prepares the connection.
func New(opts Options) (*Conn, error) {
	c := &Conn{}
	var parts []string
	if opts.TLS || opts.TLSFiles.Set() {
		cfg, err := opts.TLSFiles.Config()
		if err != nil {
			return nil, fmt.Errorf("TLS: %w", err)
		}
		c.tls = cfg
	}
	mech := strings.ToUpper(opts.Mechanism)
	switch {
	case mech == "" && (opts.Username != "" || opts.Password != ""):
		return nil, errors.New("a SASL user or password is given, but no SASL mechanism (" + strings.Join(Mechanisms, ", ") + ")")
	case mech == "":
	case opts.Username == "":
		return nil, fmt.Errorf("SASL %s: no user name", mech)
	case opts.Password == "":
		return nil, fmt.Errorf("SASL %s: no password for %s", mech, opts.Username)
	case mech == "PLAIN":
		if c.tls == nil {
			// PLAIN sends the password as is: over plain TCP anyone on
			// the path reads it.
			return nil, errors.New("SASL PLAIN without TLS would send the password in the clear: turn TLS on")
		}
		c.mechanism = plain.Mechanism{Username: opts.Username, Password: opts.Password}
	case mech == "SCRAM-SHA-256" || mech == "SCRAM-SHA-512":
		algo := scram.SHA256
		if mech == "SCRAM-SHA-512" {
			algo = scram.SHA512
		}
		m, err := scram.Mechanism(algo, opts.Username, opts.Password)
		if err != nil {
			// scram only fails on a user name or password that SASLprep
			// refuses; its error quotes neither.
			return nil, fmt.Errorf("SASL %s: %w", mech, err)
		}
		c.mechanism = m
	default:
		return nil, fmt.Errorf("SASL mechanism %q: want one of %s", opts.Mechanism, strings.Join(Mechanisms, ", "))
	}
	switch {
	case c.tls != nil && c.mechanism != nil:
		parts = append(parts, "SASL_SSL")
	case c.tls != nil:
		parts = append(parts, "SSL")
	case c.mechanism != nil:
		parts = append(parts, "SASL_PLAINTEXT")
	default:
		parts = append(parts, "PLAINTEXT")
	}
	if c.mechanism != nil {
		parts = append(parts, mech, "user "+opts.Username)
	}
	c.redacted = strings.Join(parts, " ")
	return c, nil
}

// String says how riskd connects (security protocol, mechanism, user),
// never with the password.
func (c *Conn) String() string { return c.redacted }

// Dialer is for kafka-go's Reader (the consumer group).
func (c *Conn) Dialer(clientID string) *kafka.Dialer {
	return &kafka.Dialer{ClientID: clientID, Timeout: 10 * time.Second, DualStack: true, TLS: c.tls, SASLMechanism: c.mechanism}
}

// Transport is for kafka-go's Writers and Client. Each call returns a
// transport of its own, with its own connections.
func (c *Conn) Transport(clientID string) *kafka.Transport {
	return &kafka.Transport{ClientID: clientID, DialTimeout: 10 * time.Second, TLS: c.tls, SASL: c.mechanism}
}

// Plain is the connection of brokers without TLS or SASL.
func Plain() *Conn { return &Conn{redacted: "PLAINTEXT"} }
