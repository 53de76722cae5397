// Package redisconn turns riskd's -redis flags (URLs as go-redis parses
// them, TLS files, passwords from files) into go-redis client options,
// and says where riskd connects without ever showing a password.
package redisconn

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"slices"
	"strings"
	"syscall"

	"github.com/redis/go-redis/v9"

	"github.com/riskd/riskd/internal/tlsfiles"
)

// Options are what riskd's flags say about reaching Redis.
type Options struct {
	// Addrs are -redis's comma-separated items, each a URL
	// (redis://[user:password@]host:port[/db][?options], rediss:// for
	// TLS) or a bare host:port. One item: a standalone server; several
	// (or a URL with addr= options): the seed nodes of a Cluster; with a
	// Sentinel master name: the Sentinels.
	Addrs []string
	// SentinelMaster is the master's name at the Sentinels. A URL may
	// give it as ?master_name= instead.
	SentinelMaster string
	// Username and Password log in to the data nodes (ACL, or the
	// default user's requirepass), instead of the URL's user and
	// password: from a file or an environment variable, they keep the
	// password out of the URL. Giving a password both ways is an error.
	Username, Password string
	// SentinelUsername and SentinelPassword log in to the Sentinels.
	// In a Sentinel URL, as go-redis reads it, the user and password are
	// the Sentinels' and the master's go in ?username= and ?password=.
	SentinelUsername, SentinelPassword string
	// TLS names the CA, client certificate and server name. Any of them
	// turns TLS on for bare host:port items; rediss:// turns it on with
	// the system's roots.
	TLS tlsfiles.Client
}

// Mode is the kind of deployment a Conn reaches.
type Mode string

const (
	Standalone Mode = "standalone"
	Cluster    Mode = "cluster"
	Sentinel   Mode = "sentinel"
)

// Conn is a parsed connection: the client options to start from and a
// redacted description.
type Conn struct {
	base     redis.UniversalOptions
	mode     Mode
	redacted string
	tls      bool
}

// Options that riskd takes in a URL's query, beyond the addresses and
// credentials; the others (retries, context timeouts) riskd sets itself.
var tuning = []string{"dial_timeout", "read_timeout", "write_timeout", "pool_size", "min_idle_conns", "max_idle_conns",
	"conn_max_idle_time", "conn_max_lifetime", "pool_timeout", "client_name", "protocol"}

// Parse checks opts and turns them into a Conn. Errors name the item and
// show URLs redacted.
func Parse(opts Options) (*Conn, error) {
	if len(opts.Addrs) == 0 {
		return nil, errors.New("no address")
	}
	items := make([]*url.URL, len(opts.Addrs))
	bare := true
	for i, a := range opts.Addrs {
		u, isBare, err := parseItem(a)
		if err != nil {
			return nil, fmt.Errorf("item %d: %w", i+1, err)
		}
		if i > 0 && (u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "") {
			return nil, fmt.Errorf("item %d (%s): only the first item may carry a user, password, database or options", i+1, redactURL(u))
		}
		if i > 0 && u.Scheme != items[0].Scheme && !isBare {
			return nil, fmt.Errorf("item %d (%s): every item has the first one's scheme, %s://", i+1, redactURL(u), items[0].Scheme)
		}
		bare = bare && isBare
		items[i] = u
	}
	first := items[0]
	q := first.Query()
	master := opts.SentinelMaster
	if m := q.Get("master_name"); m != "" {
		if master != "" && master != m {
			return nil, fmt.Errorf("%s: master_name %q is not the Sentinel master name given, %q", redactURL(first), m, master)
		}
		master = m
	}
	c := &Conn{mode: Standalone}
	switch {
	case master != "":
		c.mode = Sentinel
	case len(items) > 1 || q.Has("addr"):
		c.mode = Cluster
	}
	allowed := slices.Clone(tuning)
	switch c.mode {
	case Standalone:
		allowed = append(allowed, "db")
	case Cluster:
		allowed = append(allowed, "addr")
		if first.Path != "" && first.Path != "/" && first.Path != "/0" {
			return nil, fmt.Errorf("%s: a Cluster has database 0 only", redactURL(first))
		}
	case Sentinel:
		allowed = append(allowed, "db", "addr", "master_name", "username", "password")
	}
	for k := range q {
		if k == "skip_verify" {
			return nil, fmt.Errorf("%s: skip_verify: riskd always verifies the server's certificate; give the CA that signs it instead", redactURL(first))
		}
		if !slices.Contains(allowed, k) {
			return nil, fmt.Errorf("%s: option %q is not one riskd takes for a %s deployment (it sets retries and timeouts itself; it takes %s)",
				redactURL(first), k, c.mode, strings.Join(allowed, ", "))
		}
	}

	// go-redis parses the first URL, with the other items as its addr=
	// options, so what it accepts is what riskd accepts.
	full := *first
	if c.mode == Sentinel && !q.Has("master_name") {
		q.Set("master_name", master)
	}
	for _, u := range items[1:] {
		q.Add("addr", u.Host)
	}
	full.RawQuery = q.Encode()
	var err error
	switch c.mode {
	case Standalone:
		var o *redis.Options
		if o, err = redis.ParseURL(full.String()); err == nil {
			c.base = redis.UniversalOptions{Addrs: []string{o.Addr}, DB: o.DB, Username: o.Username, Password: o.Password, TLSConfig: o.TLSConfig}
			c.base.DialTimeout, c.base.ReadTimeout, c.base.WriteTimeout, c.base.PoolTimeout = o.DialTimeout, o.ReadTimeout, o.WriteTimeout, o.PoolTimeout
			c.base.PoolSize, c.base.MinIdleConns, c.base.MaxIdleConns = o.PoolSize, o.MinIdleConns, o.MaxIdleConns
			c.base.ConnMaxIdleTime, c.base.ConnMaxLifetime, c.base.ClientName, c.base.Protocol = o.ConnMaxIdleTime, o.ConnMaxLifetime, o.ClientName, o.Protocol
		}
	case Cluster:
		var o *redis.ClusterOptions
		if o, err = redis.ParseClusterURL(full.String()); err == nil {
			c.base = redis.UniversalOptions{Addrs: o.Addrs, Username: o.Username, Password: o.Password, TLSConfig: o.TLSConfig, IsClusterMode: true}
			c.base.DialTimeout, c.base.ReadTimeout, c.base.WriteTimeout, c.base.PoolTimeout = o.DialTimeout, o.ReadTimeout, o.WriteTimeout, o.PoolTimeout
			c.base.PoolSize, c.base.MinIdleConns, c.base.MaxIdleConns = o.PoolSize, o.MinIdleConns, o.MaxIdleConns
			c.base.ConnMaxIdleTime, c.base.ConnMaxLifetime, c.base.ClientName, c.base.Protocol = o.ConnMaxIdleTime, o.ConnMaxLifetime, o.ClientName, o.Protocol
		}
	case Sentinel:
		var o *redis.FailoverOptions
		if o, err = redis.ParseFailoverURL(full.String()); err == nil {
			c.base = redis.UniversalOptions{Addrs: o.SentinelAddrs, MasterName: o.MasterName, DB: o.DB, Username: o.Username, Password: o.Password,
				SentinelUsername: o.SentinelUsername, SentinelPassword: o.SentinelPassword, TLSConfig: o.TLSConfig}
			c.base.DialTimeout, c.base.ReadTimeout, c.base.WriteTimeout, c.base.PoolTimeout = o.DialTimeout, o.ReadTimeout, o.WriteTimeout, o.PoolTimeout
			c.base.PoolSize, c.base.MinIdleConns, c.base.MaxIdleConns = o.PoolSize, o.MinIdleConns, o.MaxIdleConns
			c.base.ConnMaxIdleTime, c.base.ConnMaxLifetime, c.base.ClientName, c.base.Protocol = o.ConnMaxIdleTime, o.ConnMaxLifetime, o.ClientName, o.Protocol
		}
	}
	if err != nil {
		// go-redis's errors quote options and numbers, never userinfo.
		return nil, fmt.Errorf("%s: %w", redactURL(first), err)
	}

	if err := c.credentials(opts, first); err != nil {
		return nil, err
	}
	if err := c.tlsConfig(opts, first, bare); err != nil {
		return nil, err
	}
	c.redacted = c.describe(first, items)
	return c, nil
}

// parseItem reads one -redis item: a URL, or a bare host:port taken as
// redis://host:port.
func parseItem(s string) (u *url.URL, bare bool, err error) {
	if !strings.Contains(s, "://") {
		if _, _, err := net.SplitHostPort(s); err != nil {
			// A host:port has no password to hide.
			return nil, false, fmt.Errorf("%q is neither a redis:// or rediss:// URL nor host:port: %v", s, err)
		}
		return &url.URL{Scheme: "redis", Host: s}, true, nil
	}
	u, err = url.Parse(s)
	if err != nil {
		// url.Error quotes the whole URL, password and all: keep only
		// what went wrong.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return nil, false, fmt.Errorf("not a URL: %v", err)
	}
	switch u.Scheme {
	case "redis", "rediss":
	default:
		return nil, false, fmt.Errorf("%s: scheme %q: want redis:// or rediss://", redactURL(u), u.Scheme)
	}
	if u.Host == "" {
		return nil, false, fmt.Errorf("%s: no host", redactURL(u))
	}
	return u, false, nil
}

func (c *Conn) credentials(opts Options, first *url.URL) error {
	if opts.Password != "" && c.base.Password != "" {
		return fmt.Errorf("%s: the password is given both in the URL and on its own: give one (a password file keeps it out of the URL)", redactURL(first))
	}
	if opts.SentinelPassword != "" && c.base.SentinelPassword != "" {
		return fmt.Errorf("%s: the Sentinel password is given both in the URL and on its own: give one", redactURL(first))
	}
	if opts.Username != "" {
		if c.base.Username != "" && c.base.Username != opts.Username {
			return fmt.Errorf("%s: the URL's user %q is not the user given, %q", redactURL(first), c.base.Username, opts.Username)
		}
		c.base.Username = opts.Username
	}
	if opts.Password != "" {
		c.base.Password = opts.Password
	}
	if opts.SentinelUsername != "" {
		c.base.SentinelUsername = opts.SentinelUsername
	}
	if opts.SentinelPassword != "" {
		c.base.SentinelPassword = opts.SentinelPassword
	}
	if c.mode != Sentinel && (opts.SentinelUsername != "" || opts.SentinelPassword != "") {
		return errors.New("a Sentinel user or password is given, but no Sentinel master name")
	}
	return nil
}

func (c *Conn) tlsConfig(opts Options, first *url.URL, bare bool) error {
	rediss := first.Scheme == "rediss"
	switch {
	case !opts.TLS.Set() && !rediss:
		c.base.TLSConfig = nil
		return nil
	case opts.TLS.Set() && !rediss && !bare:
		return fmt.Errorf("%s: TLS files are given but the URL is redis:// (plain): use rediss://", redactURL(first))
	}
	cfg, err := opts.TLS.Config()
	if err != nil {
		return fmt.Errorf("TLS: %w", err)
	}
	if cfg.ServerName == "" && c.base.TLSConfig != nil {
		// rediss://: go-redis verifies the first host's name on every
		// node (cluster nodes are often announced by address while their
		// certificate names the endpoint).
		cfg.ServerName = c.base.TLSConfig.ServerName
	}
	c.base.TLSConfig = cfg
	c.tls = true
	return nil
}

func (c *Conn) describe(first *url.URL, items []*url.URL) string {
	u := *first
	hosts := make([]string, len(items))
	for i, it := range items {
		hosts[i] = it.Host
	}
	u.Host = strings.Join(hosts, ",")
	if c.tls {
		u.Scheme = "rediss"
	}
	user := c.base.Username
	pass := c.base.Password != ""
	if c.mode == Sentinel {
		user, pass = c.base.SentinelUsername, c.base.SentinelPassword != ""
	}
	switch {
	case pass:
		u.User = url.UserPassword(user, "xxxxx")
	case user != "":
		u.User = url.User(user)
	default:
		u.User = nil
	}
	q := u.Query()
	if c.mode == Sentinel && c.base.Password != "" {
		q.Set("password", "xxxxx")
	}
	q.Del("master_name")
	u.RawQuery = q.Encode()
	s, _ := url.PathUnescape(u.String())
	switch c.mode {
	case Cluster:
		return "cluster " + s
	case Sentinel:
		return "sentinel master " + c.base.MasterName + " at " + s
	}
	return s
}

// redactURL shows u with its password, in the userinfo or the query,
// replaced by xxxxx.
func redactURL(u *url.URL) string {
	r := *u
	q := r.Query()
	for _, k := range []string{"password", "sentinel_password"} {
		if q.Has(k) {
			q.Set(k, "xxxxx")
		}
	}
	r.RawQuery = q.Encode()
	return r.Redacted()
}

// Mode says which kind of deployment the Conn reaches.
func (c *Conn) Mode() Mode { return c.mode }

// TLS says whether the Conn speaks TLS.
func (c *Conn) TLS() bool { return c.tls }

// String describes the Conn with every password replaced by xxxxx: what
// logs, /readyz, metrics and errors may show.
func (c *Conn) String() string { return c.redacted }

// NewClient returns a client of the Conn's deployment; tune, if set,
// adjusts its options first (pool size, retries).
func (c *Conn) NewClient(tune func(*redis.UniversalOptions)) redis.UniversalClient {
	opts := c.base
	if tune != nil {
		tune(&opts)
	}
	return redis.NewUniversalClient(&opts)
}

// Explain wraps err, an error from a client of c, with where riskd
// connects (redacted) and, for the usual mistakes of setting up a managed
// Redis, what to check.
func (c *Conn) Explain(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("redis %s: %w%s", c.redacted, err, c.hint(err))
}

func (c *Conn) hint(err error) string {
	msg := err.Error()
	var unknownCA x509.UnknownAuthorityError
	var badName x509.HostnameError
	switch {
	case strings.Contains(msg, "WRONGPASS"), strings.Contains(msg, "NOAUTH"):
		return " (check the user name and password riskd logs in with)"
	case errors.As(err, &unknownCA):
		return " (the server's certificate is not signed by the CA riskd trusts: check the CA file)"
	case errors.As(err, &badName):
		return " (the server's certificate does not name the host riskd dials: set the TLS server name)"
	case !c.tls && (errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)):
		return " (if the server wants TLS, use rediss:// or give its CA file)"
	}
	return ""
}
