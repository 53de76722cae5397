// Package redistest starts real redis-server processes for tests: a
// standalone server on a free port (plain, or TLS with an ACL user), a
// three-node Cluster, or a master and replica watched by Sentinels. A
// test that needs Redis fails when redis-server cannot start; it never
// skips.
package redistest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Server is one redis-server process owned by a test.
type Server struct {
	t    testing.TB
	Port int
	dir  string
	args []string
	cmd  *exec.Cmd
	// client reaches the server to see that it answers (TLS, user).
	client redis.Options
}

// Addr is the server's loopback address.
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.Port) }

// Start runs a standalone redis-server on a free loopback port, stopped
// when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	port := freePort(t, false)
	return start(t, port, t.TempDir(), redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(port)})
}

// start runs redis-server on port, with client how to see that it answers.
func start(t testing.TB, port int, dir string, client redis.Options, extra ...string) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server is needed for this test (Debian: apt-get install redis-server): %v", err)
	}
	s := &Server{t: t, Port: port, dir: dir, client: client}
	s.args = append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", dir, "--logfile", filepath.Join(dir, fmt.Sprintf("redis-%d.log", port))}, extra...)
	s.cmd = exec.Command(bin, s.args...)
	s.run()
	t.Cleanup(s.Stop)
	return s
}

// Options start a server with more than the defaults.
type Options struct {
	// TLS, if set, makes the server speak TLS only, on Port.
	TLS *TLS
	// User, if set, is an ACL user with Password and every permission,
	// and the default user is turned off: a client must log in as User.
	User, Password string
	// ReplicaOf makes the server a replica of that (plain) server.
	ReplicaOf *Server
}

// TLS names the server's certificate files.
type TLS struct {
	CertFile, KeyFile string
	// CAFile signs the certificate; with ClientAuth, clients must
	// present a certificate it signed too.
	CAFile     string
	ClientAuth bool
}

// StartWith runs a standalone redis-server as opts say.
func StartWith(t testing.TB, opts Options) *Server {
	t.Helper()
	port := freePort(t, false)
	var extra []string
	if opts.TLS != nil {
		auth := "no"
		if opts.TLS.ClientAuth {
			auth = "yes"
		}
		extra = append(extra, "--tls-port", strconv.Itoa(port), "--tls-cert-file", opts.TLS.CertFile, "--tls-key-file", opts.TLS.KeyFile,
			"--tls-ca-cert-file", opts.TLS.CAFile, "--tls-auth-clients", auth)
	}
	if opts.User != "" {
		extra = append(extra, "--user", opts.User, "on", ">"+opts.Password, "~*", "&*", "+@all", "--user", "default", "off")
	}
	if opts.ReplicaOf != nil {
		extra = append(extra, "--replicaof", "127.0.0.1", strconv.Itoa(opts.ReplicaOf.Port))
	}
	client := redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(port), Username: opts.User, Password: opts.Password}
	if opts.TLS != nil {
		// The last --port wins: no plain port at all.
		extra = append(extra, "--port", "0")
		client.TLSConfig = testClientTLS(t, opts.TLS)
	}
	return start(t, port, t.TempDir(), client, extra...)
}

// testClientTLS is how redistest itself reaches a TLS server: trusting
// its CA, and with its own certificate when clients must show one.
func testClientTLS(t testing.TB, files *TLS) *tls.Config {
	t.Helper()
	ca, err := os.ReadFile(files.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	cfg := &tls.Config{RootCAs: pool, ServerName: "localhost"}
	if files.ClientAuth {
		// The server's own pair is signed by the CA too: good enough to
		// be let in.
		cert, err := tls.LoadX509KeyPair(files.CertFile, files.KeyFile)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg
}

func (s *Server) run() {
	s.t.Helper()
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("starting redis-server: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	opts := s.client
	opts.MaxRetries = -1
	c := redis.NewClient(&opts)
	defer c.Close()
	for {
		if err := c.Ping(ctx).Err(); err == nil {
			return
		}
		select {
		case <-ctx.Done():
			s.t.Fatalf("%s on %s did not answer within 10s (log in %s)", filepath.Base(s.cmd.Path), s.Addr(), s.dir)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Stop kills the server and waits for it to exit. Stopping a stopped
// server does nothing.
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil || s.cmd.ProcessState != nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGCONT) // a paused server dies as well, but never exits while stopped
	s.cmd.Process.Kill()
	s.cmd.Wait()
}

// Pause stops the server's process (SIGSTOP) without closing anything:
// connections stay open and unanswered, as in a long GC pause or a
// network partition. Resume undoes it; Stop resumes first.
func (s *Server) Pause() {
	s.t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		s.t.Fatalf("pausing redis-server: %v", err)
	}
}

// Resume continues a paused server.
func (s *Server) Resume() {
	s.t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		s.t.Fatalf("resuming redis-server: %v", err)
	}
}

// Restart starts a stopped server again on the same port. It comes back
// empty: nothing is persisted, like a node replaced in production.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	s.cmd = exec.Command(s.cmd.Path, s.args...)
	s.run()
}

// Cluster is a three-master Redis Cluster on loopback.
type Cluster struct {
	Nodes []*Server
}

// Addrs lists the nodes' addresses.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		out[i] = n.Addr()
	}
	return out
}

// FlushAll empties every node, as a Cluster that lost its data (restarted
// without persistence) would be.
func (c *Cluster) FlushAll(t testing.TB) {
	t.Helper()
	for _, n := range c.Nodes {
		cl := redis.NewClient(&redis.Options{Addr: n.Addr()})
		err := cl.FlushAll(context.Background()).Err()
		cl.Close()
		if err != nil {
			t.Fatalf("flushing %s: %v", n.Addr(), err)
		}
	}
}

// StartCluster runs three redis-server nodes in cluster mode and joins
// them with redis-cli --cluster create.
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	dir := t.TempDir()
	c := &Cluster{}
	for range 3 {
		port := freePort(t, true)
		c.Nodes = append(c.Nodes, start(t, port, dir, redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(port)}, "--cluster-enabled", "yes",
			"--cluster-config-file", filepath.Join(dir, fmt.Sprintf("nodes-%d.conf", port)),
			"--cluster-node-timeout", "2000"))
	}
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Fatalf("redis-cli is needed to create the cluster: %v", err)
	}
	args := append([]string{"--cluster", "create"}, c.Addrs()...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command(cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, n := range c.Nodes {
		rc := redis.NewClient(&redis.Options{Addr: n.Addr()})
		for {
			info, _ := rc.ClusterInfo(ctx).Result()
			if strings.Contains(info, "cluster_state:ok") {
				break
			}
			select {
			case <-ctx.Done():
				rc.Close()
				t.Fatalf("cluster node %s not ok within 20s: %s", n.Addr(), info)
			case <-time.After(50 * time.Millisecond):
			}
		}
		rc.Close()
	}
	return c
}

// freePort finds a loopback port that is free, and for a cluster node
// also its bus port (port + 10000).
func freePort(t testing.TB, bus bool) int {
	t.Helper()
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !bus {
			return port
		}
		if port+10000 > 65535 {
			continue
		}
		if lb, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port+10000)); err == nil {
			lb.Close()
			return port
		}
	}
	t.Fatal("no free port pair for a cluster node")
	return 0
}

// Sentinel is a master and its replica watched by Sentinels, on loopback.
type Sentinel struct {
	// MasterName is the name the Sentinels know the master by.
	MasterName string
	Master     *Server
	Replica    *Server
	Sentinels  []*Server
}

// SentinelAddrs lists the Sentinels' addresses.
func (s *Sentinel) SentinelAddrs() []string {
	out := make([]string, len(s.Sentinels))
	for i, n := range s.Sentinels {
		out[i] = n.Addr()
	}
	return out
}

// StartSentinel runs a master, a replica in sync with it, and n
// redis-sentinel processes (a majority of them must agree the master is
// down) that fail over within a few seconds of losing the master.
func StartSentinel(t testing.TB, n int) *Sentinel {
	t.Helper()
	bin, err := exec.LookPath("redis-sentinel")
	if err != nil {
		t.Fatalf("redis-sentinel is needed for this test (Debian: apt-get install redis-sentinel; ./test.sh installs it): %v", err)
	}
	s := &Sentinel{MasterName: "riskd-test"}
	s.Master = StartWith(t, Options{})
	s.Replica = StartWith(t, Options{ReplicaOf: s.Master})
	rc := newClient(s.Replica.client)
	waitFor(t, 20*time.Second, "the replica to sync", func(ctx context.Context) bool {
		info, _ := rc.Info(ctx, "replication").Result()
		return strings.Contains(info, "master_link_status:up")
	})
	rc.Close()
	dir := t.TempDir()
	for range n {
		port := freePort(t, false)
		conf := filepath.Join(dir, fmt.Sprintf("sentinel-%d.conf", port))
		// Sentinel rewrites its configuration file as it learns: it must
		// be its own and writable.
		text := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nlogfile %s\n"+
			"sentinel monitor %s 127.0.0.1 %d %d\n"+
			"sentinel down-after-milliseconds %[4]s 1000\nsentinel failover-timeout %[4]s 10000\nsentinel parallel-syncs %[4]s 1\n",
			port, dir, filepath.Join(dir, fmt.Sprintf("sentinel-%d.log", port)), s.MasterName, s.Master.Port, n/2+1)
		if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		sen := &Server{t: t, Port: port, dir: dir, args: []string{conf}, client: redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(port)}}
		sen.cmd = exec.Command(bin, sen.args...)
		sen.run()
		t.Cleanup(sen.Stop)
		s.Sentinels = append(s.Sentinels, sen)
	}
	// A failover needs every Sentinel to know the replica, and each
	// other (for the quorum).
	for _, sen := range s.Sentinels {
		sc := redis.NewSentinelClient(&redis.Options{Addr: sen.Addr()})
		waitFor(t, 20*time.Second, "the sentinels to know the replica and each other", func(ctx context.Context) bool {
			replicas, _ := sc.Replicas(ctx, s.MasterName).Result()
			sentinels, _ := sc.Sentinels(ctx, s.MasterName).Result()
			return len(replicas) == 1 && len(sentinels) == n-1
		})
		sc.Close()
	}
	return s
}

// Failover kills the master and waits until the Sentinels have promoted
// the replica; it returns the new master's address.
func (s *Sentinel) Failover(t testing.TB) string {
	t.Helper()
	s.Master.Stop()
	sc := redis.NewSentinelClient(&redis.Options{Addr: s.Sentinels[0].Addr()})
	defer sc.Close()
	var addr string
	waitFor(t, 30*time.Second, "the sentinels to promote the replica", func(ctx context.Context) bool {
		a, err := sc.GetMasterAddrByName(ctx, s.MasterName).Result()
		if err != nil || len(a) != 2 {
			return false
		}
		addr = net.JoinHostPort(a[0], a[1])
		return addr == s.Replica.Addr()
	})
	return addr
}

func newClient(opts redis.Options) *redis.Client {
	opts.MaxRetries = -1
	return redis.NewClient(&opts)
}

// waitFor polls ok until it holds, failing the test after timeout.
func waitFor(t testing.TB, timeout time.Duration, what string, ok func(context.Context) bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for !ok(ctx) {
		select {
		case <-ctx.Done():
			t.Fatalf("waited %v for %s", timeout, what)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
