package redisconn_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/riskd/riskd/internal/certtest"
	"github.com/riskd/riskd/internal/poll"
	"github.com/riskd/riskd/internal/redisconn"
	"github.com/riskd/riskd/internal/redistest"
	"github.com/riskd/riskd/internal/tlsfiles"
)

const secret = "s3cret-Pw"

func TestParse(t *testing.T) {
	dir := t.TempDir()
	ca := certtest.NewCA(t, dir, "test")
	for _, tt := range []struct {
		name string
		opts redisconn.Options
		mode redisconn.Mode
		str  string
		tls  bool
		err  string
		// check looks at the client options.
		check func(t *testing.T, o *redis.UniversalOptions)
	}{
		{name: "bare address", opts: redisconn.Options{Addrs: []string{"localhost:6379"}},
			mode: redisconn.Standalone, str: "redis://localhost:6379"},
		{name: "URL with user, password and db", opts: redisconn.Options{Addrs: []string{"redis://alice:" + secret + "@cache:6380/2?dial_timeout=3s"}},
			mode: redisconn.Standalone, str: "redis://alice:xxxxx@cache:6380/2?dial_timeout=3s",
			check: func(t *testing.T, o *redis.UniversalOptions) {
				if o.Username != "alice" || o.Password != secret || o.DB != 2 || o.DialTimeout != 3*time.Second || o.Addrs[0] != "cache:6380" {
					t.Errorf("options %+v", o)
				}
			}},
		{name: "rediss", opts: redisconn.Options{Addrs: []string{"rediss://:" + secret + "@cache.example.com:6380"}},
			mode: redisconn.Standalone, str: "rediss://:xxxxx@cache.example.com:6380", tls: true,
			check: func(t *testing.T, o *redis.UniversalOptions) {
				if o.TLSConfig.ServerName != "cache.example.com" || o.TLSConfig.RootCAs != nil {
					t.Errorf("TLS %+v: want the system roots, server name cache.example.com", o.TLSConfig)
				}
			}},
		{name: "password given apart", opts: redisconn.Options{Addrs: []string{"rediss://alice@cache:6380"}, Password: secret, TLS: tlsfiles.Client{CAFile: ca.CertFile}},
			mode: redisconn.Standalone, str: "rediss://alice:xxxxx@cache:6380", tls: true,
			check: func(t *testing.T, o *redis.UniversalOptions) {
				if o.Password != secret || o.TLSConfig.RootCAs == nil || o.TLSConfig.ServerName != "cache" {
					t.Errorf("options %+v", o)
				}
			}},
		{name: "bare addresses with TLS files", opts: redisconn.Options{Addrs: []string{"10.0.0.1:6379"}, TLS: tlsfiles.Client{CAFile: ca.CertFile, ServerName: "redis.internal"}},
			mode: redisconn.Standalone, str: "rediss://10.0.0.1:6379", tls: true},
		{name: "cluster of bare addresses", opts: redisconn.Options{Addrs: []string{"n1:7000", "n2:7001", "n3:7002"}},
			mode: redisconn.Cluster, str: "cluster redis://n1:7000,n2:7001,n3:7002",
			check: func(t *testing.T, o *redis.UniversalOptions) {
				if len(o.Addrs) != 3 || !o.IsClusterMode {
					t.Errorf("options %+v", o)
				}
			}},
		{name: "cluster URL and more hosts", opts: redisconn.Options{Addrs: []string{"rediss://alice:" + secret + "@n1:7000", "n2:7001"}},
			mode: redisconn.Cluster, str: "cluster rediss://alice:xxxxx@n1:7000,n2:7001", tls: true},
		{name: "cluster URL with addr", opts: redisconn.Options{Addrs: []string{"redis://n1:7000?addr=n2:7001"}},
			mode: redisconn.Cluster, str: "cluster redis://n1:7000?addr=n2:7001",
			check: func(t *testing.T, o *redis.UniversalOptions) {
				if len(o.Addrs) != 2 {
					t.Errorf("addrs %v", o.Addrs)
				}
			}},
		{name: "sentinel", opts: redisconn.Options{Addrs: []string{"s1:26379", "s2:26379"}, SentinelMaster: "main", Password: secret},
			mode: redisconn.Sentinel, str: "sentinel master main at redis://s1:26379,s2:26379?password=xxxxx",
			check: func(t *testing.T, o *redis.UniversalOptions) {
				if o.MasterName != "main" || len(o.Addrs) != 2 || o.Password != secret || o.SentinelPassword != "" {
					t.Errorf("options %+v", o)
				}
			}},
		{name: "sentinel URL as go-redis reads it", opts: redisconn.Options{Addrs: []string{"redis://sen:" + secret + "@s1:26379/1?master_name=main&password=" + secret + "&addr=s2:26379"}},
			mode: redisconn.Sentinel, str: "sentinel master main at redis://sen:xxxxx@s1:26379/1?addr=s2:26379&password=xxxxx",
			check: func(t *testing.T, o *redis.UniversalOptions) {
				if o.SentinelUsername != "sen" || o.SentinelPassword != secret || o.Password != secret || o.DB != 1 || len(o.Addrs) != 2 {
					t.Errorf("options %+v", o)
				}
			}},

		{name: "no address", opts: redisconn.Options{}, err: "no address"},
		{name: "not host:port", opts: redisconn.Options{Addrs: []string{"cache"}}, err: `item 1: "cache" is neither`},
		{name: "bad URL", opts: redisconn.Options{Addrs: []string{"redis://alice:" + secret + "@cache:port"}}, err: "item 1: not a URL"},
		{name: "bad scheme", opts: redisconn.Options{Addrs: []string{"http://alice:" + secret + "@cache:1"}}, err: `http://alice:xxxxx@cache:1: scheme "http"`},
		{name: "bad db", opts: redisconn.Options{Addrs: []string{"redis://:" + secret + "@cache:1/x"}}, err: `redis://:xxxxx@cache:1/x: redis: invalid database number`},
		{name: "cluster db", opts: redisconn.Options{Addrs: []string{"redis://a:1/3", "b:2"}}, err: "database 0 only"},
		{name: "option riskd sets", opts: redisconn.Options{Addrs: []string{"redis://:" + secret + "@a:1?max_retries=3"}}, err: `option "max_retries" is not one riskd takes`},
		{name: "skip_verify", opts: redisconn.Options{Addrs: []string{"rediss://a:1?skip_verify=true"}}, err: "always verifies"},
		{name: "password twice", opts: redisconn.Options{Addrs: []string{"redis://:" + secret + "@a:1"}, Password: "other-" + secret}, err: "both in the URL and on its own"},
		{name: "user differs", opts: redisconn.Options{Addrs: []string{"redis://bob@a:1"}, Username: "alice"}, err: `user "bob" is not the user given, "alice"`},
		{name: "credentials on a later item", opts: redisconn.Options{Addrs: []string{"redis://a:1", "redis://alice:" + secret + "@b:2"}}, err: "item 2 (redis://alice:xxxxx@b:2): only the first item"},
		{name: "mixed schemes", opts: redisconn.Options{Addrs: []string{"rediss://a:1", "redis://b:2"}}, err: "first one's scheme, rediss://"},
		{name: "TLS files on redis://", opts: redisconn.Options{Addrs: []string{"redis://a:1"}, TLS: tlsfiles.Client{CAFile: ca.CertFile}}, err: "use rediss://"},
		{name: "missing CA file", opts: redisconn.Options{Addrs: []string{"rediss://a:1"}, TLS: tlsfiles.Client{CAFile: dir + "/nope.crt"}}, err: "TLS: CA file: open " + dir + "/nope.crt"},
		{name: "sentinel password without sentinel", opts: redisconn.Options{Addrs: []string{"a:1"}, SentinelPassword: secret}, err: "no Sentinel master name"},
		{name: "master names differ", opts: redisconn.Options{Addrs: []string{"redis://a:1?master_name=x"}, SentinelMaster: "y"}, err: `master_name "x" is not the Sentinel master name given, "y"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := redisconn.Parse(tt.opts)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one containing %q", err, tt.err)
				}
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q shows the password", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Mode() != tt.mode || c.String() != tt.str || c.TLS() != tt.tls {
				t.Errorf("mode %s, %q, TLS %v; want %s, %q, %v", c.Mode(), c, c.TLS(), tt.mode, tt.str, tt.tls)
			}
			if tt.check != nil {
				var got *redis.UniversalOptions
				c.NewClient(func(o *redis.UniversalOptions) { got = o }).Close()
				tt.check(t, got)
			}
		})
	}
}

// TestTLSAndACL reaches a real redis-server that speaks TLS only and
// lets in one ACL user.
func TestTLSAndACL(t *testing.T) {
	dir := t.TempDir()
	ca := certtest.NewCA(t, dir, "redis")
	other := certtest.NewCA(t, dir, "other")
	srv := ca.Server(dir, "redis")
	s := redistest.StartWith(t, redistest.Options{TLS: &redistest.TLS{CertFile: srv.CertFile, KeyFile: srv.KeyFile, CAFile: ca.CertFile},
		User: "riskd", Password: secret})
	ping := func(t *testing.T, opts redisconn.Options) error {
		t.Helper()
		c, err := redisconn.Parse(opts)
		if err != nil {
			t.Fatal(err)
		}
		client := c.NewClient(func(o *redis.UniversalOptions) { o.MaxRetries = -1 })
		defer client.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return c.Explain(client.Set(ctx, "k", "v", 0).Err())
	}
	for _, tt := range []struct {
		name string
		opts redisconn.Options
		want string // in the error; "": no error
	}{
		{"URL, password apart", redisconn.Options{Addrs: []string{"rediss://riskd@" + s.Addr()}, Password: secret, TLS: tlsfiles.Client{CAFile: ca.CertFile}}, ""},
		{"URL with password", redisconn.Options{Addrs: []string{"rediss://riskd:" + secret + "@localhost:" + s.Addr()[len("127.0.0.1:"):]}, TLS: tlsfiles.Client{CAFile: ca.CertFile}}, ""},
		{"bare address", redisconn.Options{Addrs: []string{s.Addr()}, Username: "riskd", Password: secret, TLS: tlsfiles.Client{CAFile: ca.CertFile}}, ""},
		{"wrong password", redisconn.Options{Addrs: []string{"rediss://riskd@" + s.Addr()}, Password: "not-the-" + secret, TLS: tlsfiles.Client{CAFile: ca.CertFile}},
			"WRONGPASS invalid username-password pair or user is disabled. (check the user name and password"},
		{"no password", redisconn.Options{Addrs: []string{"rediss://" + s.Addr()}, TLS: tlsfiles.Client{CAFile: ca.CertFile}}, "check the user name and password"},
		{"wrong CA", redisconn.Options{Addrs: []string{"rediss://riskd@" + s.Addr()}, Password: secret, TLS: tlsfiles.Client{CAFile: other.CertFile}},
			"certificate signed by unknown authority (the server's certificate is not signed by the CA riskd trusts"},
		{"wrong server name", redisconn.Options{Addrs: []string{"rediss://riskd@" + s.Addr()}, Password: secret, TLS: tlsfiles.Client{CAFile: ca.CertFile, ServerName: "elsewhere"}},
			"set the TLS server name"},
		{"plain client", redisconn.Options{Addrs: []string{"redis://riskd@" + s.Addr()}, Password: secret}, "if the server wants TLS, use rediss://"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := ping(t, tt.opts)
			switch {
			case tt.want == "" && err != nil:
				t.Fatal(err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			case err != nil && strings.Contains(err.Error(), secret):
				t.Errorf("error %q shows the password", err)
			}
		})
	}
}

func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca := certtest.NewCA(t, dir, "redis")
	srv := ca.Server(dir, "redis")
	riskd := ca.Client(dir, "riskd")
	s := redistest.StartWith(t, redistest.Options{TLS: &redistest.TLS{CertFile: srv.CertFile, KeyFile: srv.KeyFile, CAFile: ca.CertFile, ClientAuth: true}})
	for name, files := range map[string]tlsfiles.Client{
		"with a client certificate": {CAFile: ca.CertFile, CertFile: riskd.CertFile, KeyFile: riskd.KeyFile},
		"without":                   {CAFile: ca.CertFile},
	} {
		t.Run(name, func(t *testing.T) {
			c, err := redisconn.Parse(redisconn.Options{Addrs: []string{s.Addr()}, TLS: files})
			if err != nil {
				t.Fatal(err)
			}
			client := c.NewClient(func(o *redis.UniversalOptions) { o.MaxRetries = -1 })
			defer client.Close()
			err = client.Ping(context.Background()).Err()
			if (err == nil) != (files.CertFile != "") {
				t.Errorf("ping: %v", err)
			}
		})
	}
}

// TestSentinelFailover: the client finds the master through the
// Sentinels and follows the replica they promote when it dies.
func TestSentinelFailover(t *testing.T) {
	for _, n := range []int{1, 3} {
		t.Run(map[int]string{1: "one sentinel", 3: "three sentinels"}[n], func(t *testing.T) {
			s := redistest.StartSentinel(t, n)
			c, err := redisconn.Parse(redisconn.Options{Addrs: s.SentinelAddrs(), SentinelMaster: s.MasterName})
			if err != nil {
				t.Fatal(err)
			}
			if c.Mode() != redisconn.Sentinel {
				t.Fatalf("mode %s", c.Mode())
			}
			client := c.NewClient(nil)
			defer client.Close()
			ctx := context.Background()
			if err := client.Set(ctx, "before", "1", 0).Err(); err != nil {
				t.Fatal(c.Explain(err))
			}
			// Acknowledged by the replica: it is in the promoted master.
			if n, err := client.Do(ctx, "WAIT", 1, 5000).Int(); err != nil || n != 1 {
				t.Fatalf("WAIT: %d replicas, %v", n, err)
			}
			newMaster := s.Failover(t)
			// The client meets the dead master's closed connections first:
			// it gets there within a few attempts, not at once.
			poll.Wait{Explain: func() string { return c.Explain(err).Error() }}.Until(t, "a write after the failover", func() bool {
				err = client.Set(ctx, "after", "2", 0).Err()
				return err == nil
			})
			direct := redis.NewClient(&redis.Options{Addr: newMaster})
			defer direct.Close()
			for k, want := range map[string]string{"before": "1", "after": "2"} {
				if got, err := direct.Get(ctx, k).Result(); err != nil || got != want {
					t.Errorf("new master %s: %s = %q, %v; want %q", newMaster, k, got, err, want)
				}
			}
		})
	}
}
