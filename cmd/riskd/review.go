package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/riskd/riskd/cases"
	"github.com/riskd/riskd/console"
	"github.com/riskd/riskd/engine"
	"github.com/riskd/riskd/httpapi"
	"github.com/riskd/riskd/internal/redisconn"
	"github.com/riskd/riskd/outcomes"
	"github.com/riskd/riskd/stream"
)

// reviewConfig is manual review's flags.
type reviewConfig struct {
	dataDir           string
	retention         time.Duration
	claimTTL          time.Duration
	webhookURL        string
	webhookSecretFile string
	webhookCA         string
}

func (c *reviewConfig) flags(fl *flag.FlagSet) {
	fl.StringVar(&c.dataDir, "data-dir", "", "directory of riskd's local files: without -redis, review cases are kept in DIR/cases.db (bbolt) and survive a restart; empty and no -redis: in memory")
	fl.DurationVar(&c.retention, "case-retention", cases.DefaultRetention, "how long a review case is kept after it opened or, once resolved, after its resolution")
	fl.DurationVar(&c.claimTTL, "case-claim-ttl", 15*time.Minute, "how long an analyst's claim on a review case lasts")
	fl.StringVar(&c.webhookURL, "webhook-url", "", "https URL that receives every case resolution and label, signed (see -webhook-secret-file); empty: none")
	fl.StringVar(&c.webhookSecretFile, "webhook-secret-file", "", "file holding the webhook's signing secret (16 bytes or more); required with -webhook-url")
	fl.StringVar(&c.webhookCA, "webhook-ca", "", "PEM file of the CA certificates the webhook's server is checked against; empty: the system's")
}

// review is manual review wired up: the case store, the opener that
// fills it off the scoring path, the console, outcomes sent on.
type review struct {
	cfg       *config
	eng       *engine.Engine
	store     cases.Store
	storeName string
	opener    *cases.Opener
	webhook   *outcomes.Webhook
	sink      *outcomes.Sink
	tokens    []httpapi.NamedToken
	reg       prometheus.Registerer
	log       *slog.Logger
}

// openReview opens the case store that goes with the feature store:
// Redis with -redis, else a bbolt file under -data-dir, else memory.
func openReview(cfg *config, eng *engine.Engine, conn *redisconn.Conn, tokens []httpapi.NamedToken, reg prometheus.Registerer, log *slog.Logger) (*review, error) {
	rc := cfg.review
	opts := cases.Options{Retention: rc.retention}
	rv := &review{cfg: cfg, eng: eng, tokens: tokens, reg: reg, log: log}
	switch {
	case conn != nil:
		client := conn.NewClient(func(o *redis.UniversalOptions) { o.ContextTimeoutEnabled = true })
		s, err := cases.NewRedis(cases.RedisOptions{Options: opts, Client: client, Prefix: cfg.redisPrefix})
		if err != nil {
			return nil, fmt.Errorf("-redis: %w", err)
		}
		// Like the feature store, the case store may come up after riskd:
		// cases fail to open (counted) until it answers.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := s.Ready(ctx); err != nil {
			log.Warn("redis not reachable yet for review cases; cases are not opened until it answers", "err", conn.Explain(err))
		}
		rv.store, rv.storeName = s, "redis"
	case rc.dataDir != "":
		if err := os.MkdirAll(rc.dataDir, 0o700); err != nil {
			return nil, fmt.Errorf("-data-dir: %w", err)
		}
		s, err := cases.OpenBolt(filepath.Join(rc.dataDir, "cases.db"), opts)
		if err != nil {
			return nil, fmt.Errorf("-data-dir: %w", err)
		}
		rv.store, rv.storeName = s, "file"
	default:
		rv.store, rv.storeName = cases.NewMemory(opts), "memory"
		log.Warn("review cases are kept in memory: lost when riskd stops and not shared with other instances; set -data-dir (a local file) or -redis (shared)")
	}
	rv.opener = cases.NewOpener(rv.store, cases.OpenerOptions{Registerer: reg, Logger: log})
	reg.MustRegister(cases.NewCollector(rv.store, nil))
	return rv, nil
}

// open queues the case of review decision d on event: the transports
// call it once the decision is answered or written.
func (rv *review) open(d *engine.Decision, event []byte) {
	c := cases.FromDecision(d, event, time.Now())
	// The entity keys (card, account, device) find the entity's other
	// cases; worked out after the answer, for review decisions only.
	c.Keys = cases.EntityKeys(rv.eng.Policy().Features.Features, c.Event)
	rv.opener.Open(c)
}

// serve sets up where outcomes go (the feature store; the decisions topic
// when audit is set; the webhook) and the console and labels endpoint.
func (rv *review) serve(audit *stream.AuditStream, hopts *httpapi.HandlerOptions) error {
	rv.sink = &outcomes.Sink{Record: func(ctx context.Context, event []byte) error {
		var d engine.Decision
		return rv.eng.Score(ctx, event, engine.ScoreOptions{}, &d)
	}}
	if audit != nil {
		rv.sink.Publish = func(_ context.Context, key, record []byte) error {
			var o struct{ Source string }
			json.Unmarshal(record, &o)
			return audit.Outcome(key, record, o.Source)
		}
	}
	if err := rv.openWebhook(); err != nil {
		return err
	}
	rv.sink.Webhook = rv.webhook
	var accounts []console.Account
	if rv.cfg.adminToken != "" {
		accounts = append(accounts, console.Account{Name: "admin", Token: rv.cfg.adminToken, Role: console.Admin})
	}
	for _, t := range rv.tokens {
		role := console.Admin
		if t.Analyst {
			role = console.Analyst
		}
		accounts = append(accounts, console.Account{Name: t.Name, Token: t.Token, Role: role})
	}
	con, err := console.New(console.Options{Store: rv.store, Accounts: accounts, ClaimTTL: rv.cfg.review.claimTTL, Registerer: rv.reg, Logger: rv.log,
		Decision: rv.eng.Decision,
		Resolved: func(ctx context.Context, c *cases.Case) error {
			o, err := outcomes.FromCase(c)
			if err != nil {
				return err
			}
			return rv.sink.Send(ctx, o)
		}})
	if err != nil {
		return err
	}
	hopts.Console = con
	hopts.Label = rv.label
	return nil
}

func (rv *review) openWebhook() error {
	rc := rv.cfg.review
	if rc.webhookURL == "" {
		if rc.webhookSecretFile != "" || rc.webhookCA != "" {
			return errors.New("-webhook-secret-file and -webhook-ca need -webhook-url")
		}
		return nil
	}
	if rc.webhookSecretFile == "" {
		return errors.New("-webhook-url needs -webhook-secret-file: outcomes are sent signed")
	}
	secret, err := os.ReadFile(rc.webhookSecretFile)
	if err != nil {
		return fmt.Errorf("-webhook-secret-file: %w", err)
	}
	client := &http.Client{Timeout: 10 * time.Second}
	if rc.webhookCA != "" {
		pem, err := os.ReadFile(rc.webhookCA)
		if err != nil {
			return fmt.Errorf("-webhook-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("-webhook-ca: %s holds no PEM certificate", rc.webhookCA)
		}
		client.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	}
	rv.webhook, err = outcomes.NewWebhook(outcomes.WebhookOptions{URL: rc.webhookURL, Secret: []byte(strings.TrimSpace(string(secret))),
		Client: client, Registerer: rv.reg, Logger: rv.log})
	if err != nil {
		return fmt.Errorf("-webhook-url: %w", err)
	}
	return nil
}

// label serves POST /v1/labels: the label, completed from its event's
// case when there is one, sent where resolutions go.
func (rv *review) label(ctx context.Context, body []byte, by string) (int, []byte) {
	answer := func(code int, v any) (int, []byte) {
		b, _ := json.Marshal(v)
		return code, append(b, '\n')
	}
	o, err := outcomes.ParseLabel(body, time.Now())
	if err != nil {
		return answer(http.StatusBadRequest, map[string]string{"error": err.Error()})
	}
	o.Analyst = by
	if c, err := rv.store.Get(ctx, string(engine.AppendCaseID(nil, o.EventID))); err == nil {
		if err := o.WithCase(c); err != nil {
			return answer(http.StatusInternalServerError, map[string]string{"error": err.Error()})
		}
	}
	if err := rv.sink.Send(ctx, o); err != nil {
		rv.log.Error("label not sent on everywhere", "event_id", o.EventID, "err", err)
		return answer(http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
	}
	out := map[string]any{"event_id": o.EventID, "label": o.Label, "source": o.Source}
	if o.CaseID != "" {
		out["case_id"] = o.CaseID
	}
	return answer(http.StatusAccepted, out)
}

// add adds the opener and the webhook to g: they stop after the servers
// that feed them, writing what is queued within timeout.
func (rv *review) add(g *group, timeout time.Duration) {
	g.addContext(func(ctx context.Context) error {
		rv.opener.Run(ctx)
		drain, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		rv.opener.Drain(drain)
		return nil
	})
	if rv.webhook != nil {
		g.addContext(func(ctx context.Context) error { rv.webhook.Run(ctx); return nil })
	}
}

func (rv *review) close() {
	if err := rv.store.Close(); err != nil {
		rv.log.Error("closing the case store", "err", err)
	}
}
