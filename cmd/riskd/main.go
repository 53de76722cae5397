// Command riskd is the risk-scoring server: it scores events posted over
// HTTP against the policy directory's rulesets and feature history.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"

	"github.com/riskd/riskd/engine"
	"github.com/riskd/riskd/features"
	"github.com/riskd/riskd/httpapi"
	"github.com/riskd/riskd/internal/buildinfo"
	"github.com/riskd/riskd/internal/kafkaconn"
	"github.com/riskd/riskd/internal/logs"
	"github.com/riskd/riskd/internal/redisconn"
	"github.com/riskd/riskd/internal/secret"
	"github.com/riskd/riskd/lists"
	"github.com/riskd/riskd/memstore"
	"github.com/riskd/riskd/readiness"
	"github.com/riskd/riskd/redisstore"
	"github.com/riskd/riskd/rules"
	"github.com/riskd/riskd/rules/example"
	"github.com/riskd/riskd/stream"
)

type config struct {
	listen            string
	adminListen       string
	rulesDir          string
	rulesRead         rules.DirOptions
	redis             string
	redisPrefix       string
	storeTimeout      time.Duration
	recordTimeout     time.Duration
	recordBacklog     int
	recordBacklogB    int64
	futureSkew        time.Duration
	pastSkew          time.Duration
	idleTimeout       time.Duration
	listMaxValues     int
	memoryMaxKeys     int
	memoryMaxAnswers  int
	maxConns          int
	idempotency       time.Duration
	lateness          time.Duration
	kafkaBrokers      string
	kafkaTopic        string
	kafkaGroup        string
	decisions         string
	dlq               string
	shadowTopic       string
	kafkaStoreTimeout time.Duration
	kafkaDegraded     bool
	kafkaConcurrency  int
	adminToken        string
	adminTokensFile   string
	maxEventBytes     int
	shutdown          time.Duration
	logFormat         string
	logLevel          slog.Level
	version           bool
	sec               security
	// argvSecrets names the secrets given on the command line, for a
	// warning once logging is set up.
	argvSecrets []string
	review      reviewConfig
}

// flagSet defines riskd's flags into c.
func flagSet(c *config, stderr io.Writer) *flag.FlagSet {
	fl := flag.NewFlagSet("riskd", flag.ContinueOnError)
	fl.SetOutput(stderr)
	fl.StringVar(&c.listen, "listen", ":8080", "HTTP address")
	fl.StringVar(&c.adminListen, "admin-listen", "", "HTTP address of the admin endpoints (/v1/rulesets, /v1/reload, /metrics), e.g. 127.0.0.1:9090; they then leave -listen, which keeps /v1/score, /healthz and /readyz; empty: everything on -listen")
	fl.StringVar(&c.rulesDir, "rules", "", "policy directory (default: the example policy built into riskd, from rules/example)")
	fl.Int64Var(&c.rulesRead.MaxFileBytes, "rules-max-file-bytes", rules.DefaultMaxFileBytes, "largest policy file read, in bytes; a larger one fails the load")
	fl.Int64Var(&c.rulesRead.MaxDirBytes, "rules-max-dir-bytes", rules.DefaultMaxDirBytes, "most bytes of policy files read from the -rules directory together")
	fl.BoolVar(&c.rulesRead.FollowSymlinks, "rules-follow-symlinks", false, "read policy files that are symlinks to files outside the -rules directory (symlinks within it, as in a Kubernetes ConfigMap volume, are always followed)")
	fl.Int64Var(&c.rulesRead.MaxListBytes, "rules-max-list-bytes", rules.DefaultMaxListBytes, "most bytes of list files (lists/*.txt) read from the -rules directory together")
	fl.StringVar(&c.redis, "redis", "", "Redis: redis://[user@]host:port[/db] or rediss:// (TLS) URLs, or host:port, comma-separated for a Cluster (or the Sentinels, with -redis-sentinel-master); empty: in-memory store")
	fl.StringVar(&c.redisPrefix, "redis-prefix", redisstore.DefaultPrefix, "prefix of every Redis key riskd writes")
	fl.DurationVar(&c.storeTimeout, "store-timeout", 5*time.Millisecond, "budget of the feature store call per event (Redis); past it the decision is degraded")
	fl.DurationVar(&c.recordTimeout, "record-timeout", redisstore.DefaultRecordTimeout, "the Redis store's own deadline for recording an event and keeping its answer, whatever the request's budget")
	fl.IntVar(&c.recordBacklog, "record-backlog", redisstore.DefaultBacklog, "most events kept while Redis does not answer within -record-timeout, recorded in timestamp order when it does (within -max-lateness); past it events are dropped, counted and logged")
	fl.Int64Var(&c.recordBacklogB, "record-backlog-bytes", redisstore.DefaultBacklogBytes, "most bytes of events kept by -record-backlog")
	fl.IntVar(&c.maxConns, "max-connections", 10000, "most connections the scoring port holds at once; past it a new one closes the longest idle (keep-alive, or not yet sending), or is refused when all are serving requests")
	fl.DurationVar(&c.idleTimeout, "http-idle-timeout", 10*time.Second, "how long an idle keep-alive connection is kept open between requests")
	fl.IntVar(&c.listMaxValues, "list-max-values", lists.DefaultMaxValues, "most values a mutable list holds; an addition past it is refused (400)")
	fl.IntVar(&c.memoryMaxAnswers, "memory-max-answers", 0, "memory store: most event ids whose first answer is kept for retries (about 1,070 bytes each with the example policy, its decision included); past it the oldest go before -idempotency-window ends; 0: no cap")
	fl.IntVar(&c.memoryMaxKeys, "memory-max-keys", 0, "memory store: most keys held (a card, an account, an account+device pair: about 1 KB each); past it the least recently seen are evicted and their history lost; 0: no cap (expired keys still go)")
	fl.DurationVar(&c.futureSkew, "max-future-skew", 5*time.Minute, "refuse events whose ts is more than this ahead of the server's clock (HTTP 400, dead letter on Kafka)")
	fl.DurationVar(&c.pastSkew, "max-past-skew", 24*time.Hour, "refuse events whose ts is more than this behind the server's clock (HTTP 400, dead letter on Kafka): a backdated event sees empty windows; 0: no limit")
	fl.DurationVar(&c.idempotency, "idempotency-window", features.DefaultIdempotencyWindow, "how long an event id's first answer is kept: a retry within it gets the same features and is not recorded again")
	fl.DurationVar(&c.lateness, "max-lateness", features.DefaultLateness, "how far behind its key's newest event an event may arrive and still see its exact window; history is kept this much longer than the widest window")
	fl.StringVar(&c.kafkaBrokers, "kafka-brokers", "", "Kafka brokers, comma-separated: riskd consumes the events topic and writes HTTP decisions to the decisions topic too; empty: no Kafka")
	fl.StringVar(&c.kafkaTopic, "kafka-topic", "risk.events", "events topic")
	fl.StringVar(&c.kafkaGroup, "kafka-group", "riskd", "consumer group")
	fl.StringVar(&c.decisions, "kafka-decisions-topic", "risk.decisions", "decisions topic: every decision, Kafka's and HTTP's (header source: kafka or http)")
	fl.StringVar(&c.shadowTopic, "kafka-shadow-topic", "", "shadow decisions topic (challengers' verdicts); default: the decisions topic + \".shadow\"")
	fl.StringVar(&c.dlq, "kafka-dlq-topic", "risk.events.dlq", "dead-letter topic")
	fl.DurationVar(&c.kafkaStoreTimeout, "kafka-store-timeout", stream.DefaultKafkaStoreTimeout, "budget of the feature store call per event on Kafka (Redis); past it, or on a store error, the event is scored again with backoff and its partition waits")
	fl.IntVar(&c.kafkaConcurrency, "kafka-concurrency", stream.DefaultKafkaConcurrency, "events scored at once from Kafka, across partitions (a key's events always in order); lower it to leave Redis room for HTTP while Kafka catches up")
	fl.BoolVar(&c.kafkaDegraded, "kafka-degraded", false, "on Kafka, write and commit degraded decisions (as HTTP answers them) instead of waiting for the feature store; events the store missed are then lost from feature history")
	fl.StringVar(&c.adminToken, "admin-token", "", "bearer token required by admin endpoints (changes made with it are logged as made by \"admin\")")
	fl.StringVar(&c.adminTokensFile, "admin-tokens-file", "", "file of named admin tokens, one \"NAME TOKEN [ROLE]\" a line (# comments; ROLE admin, the default, or analyst: review cases and labels only): list changes, claims and resolutions are logged with the token's name")
	c.review.flags(fl)
	fl.IntVar(&c.maxEventBytes, "max-event-bytes", engine.DefaultMaxEventBytes, "largest accepted event, in bytes")
	fl.DurationVar(&c.shutdown, "shutdown-timeout", 10*time.Second, "how long SIGTERM waits for requests in flight")
	fl.StringVar(&c.logFormat, "log-format", logs.FormatAuto, "log lines as json or text; auto: text on a terminal, json anywhere else")
	fl.TextVar(&c.logLevel, "log-level", slog.LevelInfo, "least severe `level` of the log lines written: debug, info, warn or error")
	fl.BoolVar(&c.version, "version", false, "print riskd's version, VCS revision and Go version, and exit")
	c.sec.define(fl)
	return fl
}

// actions are the flags that do something instead of setting something:
// no environment variable sets them (RISKD_VERSION, set for a deployment's
// own bookkeeping, must not turn riskd into a version printer).
var actions = map[string]bool{"version": true}

// envName is the environment variable that sets flag name.
func envName(name string) string {
	return "RISKD_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// parseFlags reads flags, each also settable as RISKD_<FLAG> in the
// environment; a flag on the command line wins over the environment.
func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (*config, error) {
	c := &config{}
	fl := flagSet(c, stderr)
	if err := fl.Parse(args); err != nil {
		return nil, err
	}
	if fl.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (riskd takes flags only; see -h)", fl.Arg(0))
	}
	set := map[string]bool{}
	fl.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var errs []error
	fl.VisitAll(func(f *flag.Flag) {
		env := envName(f.Name)
		if v := getenv(env); v != "" && !set[f.Name] && !actions[f.Name] {
			if err := f.Value.Set(v); err != nil {
				errs = append(errs, fmt.Errorf("environment %s=%q: %v", env, v, err))
			}
		}
	})
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	c.argvSecrets = argvSecrets(set, c.redis)
	if err := c.sec.check(c.adminListen); err != nil {
		return nil, err
	}
	if c.redis == "" && c.sec.redisSentinelMaster != "" {
		return nil, errors.New("-redis-sentinel-master needs -redis: the Sentinels' addresses")
	}
	switch c.logFormat {
	case logs.FormatAuto, logs.FormatJSON, logs.FormatText:
	default:
		return nil, fmt.Errorf("-log-format %q: want auto, json or text", c.logFormat)
	}
	if c.maxEventBytes < 256 {
		return nil, fmt.Errorf("-max-event-bytes %d is too small (at least 256)", c.maxEventBytes)
	}
	if c.adminListen != "" {
		if _, _, err := net.SplitHostPort(c.adminListen); err != nil {
			return nil, fmt.Errorf("-admin-listen: %q is not host:port: %v", c.adminListen, err)
		}
		if _, port, _ := net.SplitHostPort(c.adminListen); c.adminListen == c.listen && port != "0" {
			return nil, fmt.Errorf("-admin-listen %s is -listen too: give the admin endpoints an address of their own", c.adminListen)
		}
	}
	if c.rulesRead.MaxFileBytes <= 0 {
		return nil, fmt.Errorf("-rules-max-file-bytes %d must be positive", c.rulesRead.MaxFileBytes)
	}
	if c.rulesRead.MaxListBytes <= 0 {
		return nil, fmt.Errorf("-rules-max-list-bytes %d must be positive", c.rulesRead.MaxListBytes)
	}
	if c.rulesRead.MaxDirBytes < c.rulesRead.MaxFileBytes {
		return nil, fmt.Errorf("-rules-max-dir-bytes %d must be at least -rules-max-file-bytes %d", c.rulesRead.MaxDirBytes, c.rulesRead.MaxFileBytes)
	}
	if c.recordTimeout <= 0 {
		return nil, fmt.Errorf("-record-timeout %v must be positive", c.recordTimeout)
	}
	if c.recordBacklog <= 0 || c.recordBacklogB <= 0 {
		return nil, fmt.Errorf("-record-backlog %d and -record-backlog-bytes %d must be positive", c.recordBacklog, c.recordBacklogB)
	}
	if c.storeTimeout <= 0 {
		return nil, fmt.Errorf("-store-timeout %v must be positive", c.storeTimeout)
	}
	if c.maxConns < 1 {
		return nil, fmt.Errorf("-max-connections %d must be at least 1", c.maxConns)
	}
	if c.memoryMaxAnswers < 0 {
		return nil, fmt.Errorf("-memory-max-answers %d must not be negative", c.memoryMaxAnswers)
	}
	if c.memoryMaxKeys < 0 {
		return nil, fmt.Errorf("-memory-max-keys %d must not be negative", c.memoryMaxKeys)
	}
	if c.pastSkew < 0 {
		return nil, fmt.Errorf("-max-past-skew %v must not be negative", c.pastSkew)
	}
	if c.listMaxValues < 1 {
		return nil, fmt.Errorf("-list-max-values %d must be at least 1", c.listMaxValues)
	}
	if c.idleTimeout <= 0 {
		return nil, fmt.Errorf("-http-idle-timeout %v must be positive", c.idleTimeout)
	}
	if c.futureSkew <= 0 {
		return nil, fmt.Errorf("-max-future-skew %v must be positive", c.futureSkew)
	}
	if c.idempotency < time.Minute {
		return nil, fmt.Errorf("-idempotency-window %v is too short (at least 1m): retries would be counted again", c.idempotency)
	}
	if c.lateness <= 0 {
		return nil, fmt.Errorf("-max-lateness %v must be positive", c.lateness)
	}
	if c.kafkaConcurrency < 1 {
		return nil, fmt.Errorf("-kafka-concurrency %d must be at least 1", c.kafkaConcurrency)
	}
	if c.kafkaStoreTimeout <= 0 {
		return nil, fmt.Errorf("-kafka-store-timeout %v must be positive", c.kafkaStoreTimeout)
	}
	for _, b := range splitList(c.kafkaBrokers) {
		if _, _, err := net.SplitHostPort(b); err != nil {
			return nil, fmt.Errorf("-kafka-brokers: %q is not host:port: %v", b, err)
		}
	}
	return c, nil
}

// loadPolicy loads the -rules directory the way every reload will
// (rules.LoadDir, with the same bounds), or the built-in example.
// listen opens the scoring port held to limit (-max-connections): a
// client opening thousands of sockets cannot take riskd's descriptors
// from Redis, Kafka or the policy files, and one parking idle keep-alive
// connections cannot lock the others out (see httpapi.ConnLimit).
func listen(addr string, limit *httpapi.ConnLimit) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return limit.Listen(ln), nil
}

func loadPolicy(dir string, opts rules.DirOptions) (*rules.Policy, error) {
	if dir == "" {
		return rules.Load(example.FS, "rules/example")
	}
	info, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("-rules: %w", err)
	}
	if !info.IsDir() {
		return nil, fmt.Errorf("-rules: %s is not a directory", dir)
	}
	return rules.LoadDir(dir, opts)
}

func (c *config) storeOptions() features.Options {
	return features.Options{IdempotencyWindow: c.idempotency, Lateness: c.lateness}
}

// openMemory returns the memory store, registering its metrics, with a log line
// (at most one a minute) whenever its key cap evicts.
func openMemory(cfg *config, log *slog.Logger, reg prometheus.Registerer) *memstore.Store {
	var pending atomic.Int64
	var last atomic.Int64
	return memstore.New(memstore.Options{Options: cfg.storeOptions(), MaxEntities: cfg.memoryMaxKeys, MaxAnswers: cfg.memoryMaxAnswers, Registerer: reg,
		OnEvict: func(n int) {
			pending.Add(int64(n))
			now := time.Now().UnixNano()
			if l := last.Load(); now-l >= int64(time.Minute) && last.CompareAndSwap(l, now) {
				log.Warn("memory store at its key cap: least recently seen keys evicted, their history lost", "evicted", pending.Swap(0), "max_keys", cfg.memoryMaxKeys)
			}
		}})
}

// openStore returns the Redis store when -redis is set, else the memory
// store.
func openStore(cfg *config, conn *redisconn.Conn, log *slog.Logger, reg prometheus.Registerer) (features.Store, string, error) {
	if conn == nil {
		return openMemory(cfg, log, reg), "memory", nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	r, err := redisstore.New(ctx, redisstore.Options{Conn: conn, Prefix: cfg.redisPrefix, Options: cfg.storeOptions(), Registerer: reg,
		RecordTimeout: cfg.recordTimeout, Backlog: cfg.recordBacklog, BacklogBytes: cfg.recordBacklogB,
		OnError: func(err error) { log.Error("an event's history or answer could not be written", "err", err) },
		OnHistoryLost: func(node string) {
			log.Error("redis lost its data (restarted empty or flushed): feature history starts over", "node", node)
		}})
	if err != nil {
		return nil, "", fmt.Errorf("-redis: %w", err)
	}
	if err := r.Ready(ctx); err != nil {
		log.Warn("redis not reachable yet; decisions are degraded until it answers", "redis", conn.String(), "err", err)
	}
	name := "redis"
	if conn.Mode() != redisconn.Standalone {
		name += "-" + string(conn.Mode())
	}
	return r, name, nil
}

// readinessEvery is how often the dependencies are checked for the logs
// and riskd_dependency_up (GET /readyz checks them when asked).
const readinessEvery = 5 * time.Second

// buildInfoGauge is riskd_build_info: always 1, its labels say which
// build is running, so a dashboard can show a rollout.
func buildInfoGauge(b buildinfo.Info) prometheus.Collector {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "riskd_build_info",
		Help:        "Always 1; the labels name the running build: module version, VCS revision, Go version.",
		ConstLabels: prometheus.Labels{"version": b.Version, "revision": b.Revision, "goversion": b.GoVersion},
	})
	g.Set(1)
	return g
}

// openLists returns the registry of mutable lists: in Redis, shared with
// every riskd on it, when -redis is set; else in this process alone.
func openLists(cfg *config, conn *redisconn.Conn, log *slog.Logger, reg prometheus.Registerer) (*lists.Registry, error) {
	opts := lists.Options{Registerer: reg, Logger: log, MaxValues: cfg.listMaxValues}
	if conn == nil {
		return lists.NewMemory(opts), nil
	}
	r, err := redisstore.NewLists(redisstore.ListOptions{Options: opts, Conn: conn, Prefix: cfg.redisPrefix})
	if err != nil {
		return nil, fmt.Errorf("-redis: %w", err)
	}
	return r, nil
}

// fetchLists reads the mutable lists p declares that riskd does not hold
// yet, before p is compiled and served, so it never starts with an empty
// copy of one; a store slow to answer delays it at most 2 s.
func fetchLists(r *lists.Registry, p *rules.Policy, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := r.Fetch(ctx, p.MutableLists); err != nil {
		log.Warn("mutable lists could not be read yet; they fill as the store answers", "err", err)
	}
}

// readTokens reads -admin-tokens-file: "NAME TOKEN [ROLE]" a line, #
// comments.
func readTokens(path string) ([]httpapi.NamedToken, error) {
	if path == "" {
		return nil, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("-admin-tokens-file: %w", err)
	}
	var out []httpapi.NamedToken
	names := map[string]bool{}
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		analyst := false
		if len(f) == 3 {
			switch f[2] {
			case "admin":
			case "analyst":
				analyst = true
			default:
				return nil, fmt.Errorf("-admin-tokens-file: %s:%d: role %q: want admin or analyst", path, i+1, f[2])
			}
			f = f[:2]
		}
		switch {
		case len(f) != 2:
			return nil, fmt.Errorf("-admin-tokens-file: %s:%d: want NAME TOKEN [ROLE]", path, i+1)
		case !tokenNameRE.MatchString(f[0]):
			return nil, fmt.Errorf("-admin-tokens-file: %s:%d: name %q: letters, digits, _, - and . only", path, i+1, f[0])
		case len(f[1]) < secret.MinTokenBytes:
			return nil, fmt.Errorf("-admin-tokens-file: %s:%d: the token of %s is shorter than 16 characters", path, i+1, f[0])
		case names[f[0]]:
			return nil, fmt.Errorf("-admin-tokens-file: %s:%d: name %s is used twice", path, i+1, f[0])
		}
		names[f[0]] = true
		out = append(out, httpapi.NamedToken{Name: f[0], Token: f[1], Analyst: analyst})
	}
	return out, nil
}

var tokenNameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)

// splitList splits a comma-separated flag, dropping blanks.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		if !errors.As(err, new(loggedError)) {
			fmt.Fprintln(os.Stderr, "riskd:", err)
		}
		os.Exit(1)
	}
}

// loggedError is an error riskd already logged: once the logger is set
// up, even the last line is in its format.
type loggedError struct{ error }

// run reads the flags, sets up logging and serves until a signal.
func run(args []string, stdout, stderr io.Writer) error {
	cfg, err := parseFlags(args, os.Getenv, stderr)
	if err != nil {
		return err
	}
	if cfg.version {
		fmt.Fprintln(stdout, buildinfo.Read().String("riskd"))
		return nil
	}
	h, err := logs.NewHandler(stderr, cfg.logFormat, cfg.logLevel)
	if err != nil {
		return err
	}
	lim := logs.Limit(h, logs.DefaultEvery)
	// What the limiter held back when riskd stops is still counted.
	defer lim.Flush(context.Background())
	log := slog.New(lim)
	// Lines of the standard log package (net/http's among them) and
	// go-redis's, which logs through a process-wide logger of its own,
	// go through the same handler.
	slog.SetDefault(log)
	redis.SetLogger(logs.GoRedis{Log: log})
	warnArgvSecrets(log, cfg.argvSecrets)
	if err := serve(cfg, log); err != nil {
		log.Error("riskd stopped", "err", err)
		return loggedError{err}
	}
	return nil
}

// serve runs riskd as cfg says until a signal or a failure.
func serve(cfg *config, log *slog.Logger) error {
	policy, err := loadPolicy(cfg.rulesDir, cfg.rulesRead)
	if err != nil {
		return fmt.Errorf("loading the policy:\n%w", err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), buildInfoGauge(buildinfo.Read()))
	adminToken, err := cfg.sec.adminToken(cfg.adminToken, log)
	if err != nil {
		return err
	}
	if cfg.adminTokensFile != "" {
		secret.WarnIfReadable(cfg.adminTokensFile, log)
	}
	tokens, err := readTokens(cfg.adminTokensFile)
	if err != nil {
		return err
	}
	var redisConn *redisconn.Conn
	if cfg.redis != "" {
		if redisConn, err = cfg.sec.redisConn(cfg.redis, log); err != nil {
			return err
		}
	}
	var kafkaConn *kafkaconn.Conn
	if cfg.kafkaBrokers != "" {
		if kafkaConn, err = cfg.sec.kafkaConn(log); err != nil {
			return err
		}
	}
	tlsm := newTLSMetrics(reg)
	scoringTLS, err := cfg.sec.serverTLS("scoring", tlsm, log)
	if err != nil {
		return err
	}
	var adminTLS *tls.Config
	if cfg.adminListen != "" {
		if adminTLS, err = cfg.sec.serverTLS("admin", tlsm, log); err != nil {
			return err
		}
	}
	store, storeName, err := openStore(cfg, redisConn, log, reg)
	if err != nil {
		return err
	}
	defer store.Close()
	valueLists, err := openLists(cfg, redisConn, log, reg)
	if err != nil {
		return err
	}
	defer valueLists.Close()
	fetchLists(valueLists, policy, log)
	opts := engine.Options{Store: store, Registerer: reg, MaxEventBytes: cfg.maxEventBytes, MaxFutureSkew: cfg.futureSkew, MaxPastSkew: cfg.pastSkew, Lists: valueLists, Logger: log}
	if cfg.redis != "" {
		opts.StoreTimeout = cfg.storeTimeout
	}
	eng := engine.New(policy, opts)
	limit := httpapi.NewConnLimit(cfg.maxConns, reg)
	ln, adminLn, err := openListeners(cfg, limit)
	if err != nil {
		return err
	}

	// The components are stopped in the order they are added: the signal
	// and the background work (policy watcher, lists, Kafka consumer,
	// readiness watch) first, which stop at once or drain by themselves
	// within -shutdown-timeout; then the HTTP servers, which finish their
	// requests; then the audit stream, which writes those requests'
	// decisions. If the watcher cannot watch, riskd stops rather than
	// serve a policy that silently no longer follows its directory.
	var g group
	addSignal(&g)
	hopts := httpapi.HandlerOptions{Gatherer: reg, AdminToken: adminToken, Metrics: httpapi.NewHTTPMetrics(reg), AdminTokens: tokens, Logger: log}
	if cfg.rulesDir != "" {
		rl := rules.NewReloader(rules.ReloaderOptions{Dir: cfg.rulesDir, Read: cfg.rulesRead,
			Prepare: func(p *rules.Policy) { fetchLists(valueLists, p, log) }, Apply: eng.SetPolicy, Registerer: reg, Logger: log})
		rl.Loaded(policy)
		hopts.Reloader = rl
		g.addContext(rl.Run)
	}
	// Mutable lists are kept up to date (from Redis, and past their
	// values' expiries) until the signal.
	g.addContext(func(ctx context.Context) error { valueLists.Run(ctx); return nil })
	// What /readyz checks: the memory store is riskd itself, Redis and
	// Kafka are not.
	var deps []readiness.Dependency
	if cfg.redis != "" {
		deps = append(deps, readiness.Dependency{Name: "redis", Check: store.Ready})
	}
	rv, err := openReview(cfg, eng, redisConn, tokens, reg, log)
	if err != nil {
		return err
	}
	defer rv.close()
	hopts.Review = rv.open
	var audit *stream.AuditStream
	if cfg.kafkaBrokers != "" {
		deps = append(deps, addConsumer(&g, cfg, kafkaConn, eng, rv.open, reg, log)...)
		// HTTP decisions go to the decisions topic too.
		audit = stream.NewAuditStream(stream.AuditOptions{Brokers: splitList(cfg.kafkaBrokers), Conn: kafkaConn, Topic: cfg.decisions,
			ShutdownTimeout: cfg.shutdown, Registerer: reg, Logger: log})
		hopts.Audit = audit.Record
	}
	if err := rv.serve(audit, &hopts); err != nil {
		return err
	}
	checker := readiness.New(readiness.Options{Dependencies: deps, Registerer: reg, Logger: log})
	hopts.Readiness = checker
	g.addContext(func(ctx context.Context) error { checker.Watch(ctx, readinessEvery); return nil })
	addServers(&g, eng, hopts, listener{ln, scoringTLS}, listener{adminLn, adminTLS}, limit, cfg.idleTimeout, log)
	// Cases and outcomes are written after the servers stop making them,
	// and before the audit stream, which carries the outcomes.
	rv.add(&g, cfg.shutdown)
	if audit != nil {
		g.addContext(func(ctx context.Context) error { audit.Run(ctx); return nil })
	}

	names := make([]string, 0, len(policy.Rulesets))
	for _, rs := range policy.Rulesets {
		names = append(names, rs.Name+"@"+rs.Version)
	}
	adminAddr := ""
	if adminLn != nil {
		adminAddr = adminLn.Addr().String()
	}
	redisAt, kafkaSecurity := "", ""
	if redisConn != nil {
		redisAt = redisConn.String()
	}
	if kafkaConn != nil {
		kafkaSecurity = kafkaConn.String()
	}
	log.Info("riskd serving", "addr", ln.Addr().String(), "admin_addr", adminAddr, "https", scoringTLS != nil, "admin_https", adminTLS != nil,
		"policy", policy.Dir, "rulesets", strings.Join(names, ","), "store", storeName, "cases", rv.storeName, "redis", redisAt, "kafka", cfg.kafkaBrokers, "kafka_security", kafkaSecurity)
	return g.run(log, cfg.shutdown)
}

// openListeners opens -listen and, when set, -admin-listen (else nil).
func openListeners(cfg *config, limit *httpapi.ConnLimit) (ln, adminLn net.Listener, err error) {
	ln, err = listen(cfg.listen, limit)
	if err != nil {
		return nil, nil, fmt.Errorf("-listen: %w", err)
	}
	if cfg.adminListen != "" {
		if adminLn, err = net.Listen("tcp", cfg.adminListen); err != nil {
			ln.Close()
			return nil, nil, fmt.Errorf("-admin-listen: %w", err)
		}
	}
	return ln, adminLn, nil
}

// addSignal adds the component that ends at SIGINT or SIGTERM, and so
// stops the others.
func addSignal(g *group) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	g.add(func() error { <-ctx.Done(); return nil }, func(context.Context) error { stop(); return nil })
}

// addConsumer adds the Kafka consumer and returns what readiness checks
// of it. When stopped it drains: finishes its batches, writes, commits
// and closes, within -shutdown-timeout.
func addConsumer(g *group, cfg *config, conn *kafkaconn.Conn, eng *engine.Engine, review func(*engine.Decision, []byte), reg prometheus.Registerer, log *slog.Logger) []readiness.Dependency {
	kopts := stream.KafkaOptions{
		Brokers: splitList(cfg.kafkaBrokers), Conn: conn, Topic: cfg.kafkaTopic, Group: cfg.kafkaGroup,
		DecisionsTopic: cfg.decisions, ShadowTopic: cfg.shadowTopic, DLQTopic: cfg.dlq, ShutdownTimeout: cfg.shutdown,
		Degraded: cfg.kafkaDegraded, Concurrency: cfg.kafkaConcurrency, Registerer: reg, Logger: log, Review: review,
		// Like -store-timeout, the budget bounds the Redis store; the
		// memory store never waits, so it goes without a timer.
		StoreTimeout: -1,
	}
	if cfg.redis != "" {
		kopts.StoreTimeout = cfg.kafkaStoreTimeout
	}
	consumer := stream.NewConsumer(eng, kopts)
	g.addContext(func(ctx context.Context) error { consumer.Run(ctx); return nil })
	return consumer.Dependencies()
}

// listener is a socket to serve HTTP on, over TLS when tls is set.
type listener struct {
	ln  net.Listener
	tls *tls.Config
}

// addServers adds the HTTP servers: everything on the scoring listener,
// or with -admin-listen (admin.ln not nil) the admin endpoints (status,
// reload, lists, metrics, profiles) on a listener of their own. Each
// stops by finishing its requests within the shutdown timeout. The
// scoring listener's connections are tracked by limit (-max-connections).
func addServers(g *group, eng *engine.Engine, hopts httpapi.HandlerOptions, scoring, admin listener, limit *httpapi.ConnLimit, idle time.Duration, log *slog.Logger) {
	serve := func(l listener, h http.Handler, track func(net.Conn, http.ConnState)) {
		srv := &http.Server{
			// ServeTLS offers HTTP/2 as well as HTTP/1.1.
			TLSConfig:         l.tls,
			Handler:           h,
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       10 * time.Second,
			WriteTimeout:      10 * time.Second,
			IdleTimeout:       idle,
			MaxHeaderBytes:    64 << 10,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
			ConnState:         track,
		}
		g.add(func() error {
			var err error
			if l.tls != nil {
				err = srv.ServeTLS(l.ln, "", "")
			} else {
				err = srv.Serve(l.ln)
			}
			if !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		}, func(ctx context.Context) error {
			if err := srv.Shutdown(ctx); err != nil {
				return fmt.Errorf("shutdown: %w", err)
			}
			return nil
		})
	}
	if admin.ln == nil {
		serve(scoring, httpapi.NewHandler(eng, hopts), limit.Track)
		return
	}
	publicOpts, adminOpts := hopts, hopts
	publicOpts.Endpoints, adminOpts.Endpoints = httpapi.PublicEndpoints, httpapi.AdminEndpoints
	serve(scoring, httpapi.NewHandler(eng, publicOpts), limit.Track)
	serve(admin, httpapi.NewHandler(eng, adminOpts), nil)
}
