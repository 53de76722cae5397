// Package redistest starts real redis-server processes for tests: a
// standalone server on a free port (plain, or TLS with an ACL user), a
// three-master Cluster (with a replica of each, failed over and resharded
// at will), or a master and replica watched by Sentinels. A
// test that needs Redis fails when redis-server cannot start; it never
// skips.
package redistest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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

// Cluster is a Redis Cluster on loopback: three masters, and with
// StartClusterReplicas a replica of each.
type Cluster struct {
	// Nodes are every node, masters and replicas, in the order they were
	// started; their roles change with failovers (see Masters, ReplicaOf).
	Nodes []*Server
	ids   map[*Server]string // node IDs: what roles and slots are named by
}

// Addrs lists the nodes' addresses.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		out[i] = n.Addr()
	}
	return out
}

// FlushAll empties every master (their replicas follow), as a Cluster
// that lost its data (restarted without persistence) would be.
func (c *Cluster) FlushAll(t testing.TB) {
	t.Helper()
	for _, n := range c.Nodes {
		cl := redis.NewClient(&redis.Options{Addr: n.Addr()})
		info, err := cl.Info(context.Background(), "replication").Result()
		if err == nil && !strings.Contains(info, "role:slave") {
			err = cl.FlushAll(context.Background()).Err()
		}
		cl.Close()
		if err != nil {
			t.Fatalf("flushing %s: %v", n.Addr(), err)
		}
	}
}

// StartCluster runs three redis-server nodes in cluster mode, all
// masters, and joins them with redis-cli --cluster create.
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	return startCluster(t, 0)
}

// StartClusterReplicas runs three masters and a replica of each, and
// returns once every replica is in sync: a failover (Failover) then
// loses no acknowledged write.
func StartClusterReplicas(t testing.TB) *Cluster {
	t.Helper()
	return startCluster(t, 1)
}

func startCluster(t testing.TB, replicas int) *Cluster {
	t.Helper()
	dir := t.TempDir()
	c := &Cluster{ids: map[*Server]string{}}
	for range 3 * (1 + replicas) {
		port := freePort(t, true)
		c.Nodes = append(c.Nodes, start(t, port, dir, redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(port)}, "--cluster-enabled", "yes",
			"--cluster-config-file", filepath.Join(dir, fmt.Sprintf("nodes-%d.conf", port)),
			"--cluster-node-timeout", "2000",
			// A replica's first sync starts at once, not after the 5 s a
			// master waits by default for more replicas to share it.
			"--repl-diskless-sync-delay", "0"))
	}
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Fatalf("redis-cli is needed to create the cluster: %v", err)
	}
	args := append([]string{"--cluster", "create"}, c.Addrs()...)
	args = append(args, "--cluster-replicas", strconv.Itoa(replicas), "--cluster-yes")
	if out, err := exec.Command(cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	for _, n := range c.Nodes {
		c.ids[n] = do(t, n, func(ctx context.Context, rc *redis.Client) (string, error) { return rc.ClusterMyID(ctx).Result() })
	}
	c.settle(t, "the cluster to form", nil)
	return c
}

// do runs f with a client of node n, failing the test on its error.
func do[T any](t testing.TB, n *Server, f func(context.Context, *redis.Client) (T, error)) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rc := newClient(n.client)
	defer rc.Close()
	out, err := f(ctx, rc)
	if err != nil {
		t.Fatalf("cluster node %s: %v", n.Addr(), err)
	}
	return out
}

// node is the server of a node ID, nil if none.
func (c *Cluster) node(id string) *Server {
	for n, nid := range c.ids {
		if nid == id {
			return n
		}
	}
	return nil
}

// roles reads CLUSTER NODES on rc: each node's master ("" for a master).
// It fails unless the node knows every node of c, each connected and
// not suspected of failing: a view still settling.
func (c *Cluster) roles(ctx context.Context, rc *redis.Client) (map[string]string, error) {
	text, err := rc.ClusterNodes(ctx).Result()
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for line := range strings.Lines(text) {
		f := strings.Fields(line)
		if len(f) < 8 {
			continue
		}
		flags := strings.Split(f[2], ",")
		for _, bad := range []string{"fail", "fail?", "handshake", "noaddr"} {
			if slices.Contains(flags, bad) {
				return nil, fmt.Errorf("node %s is %s", f[1], f[2])
			}
		}
		if f[7] != "connected" {
			return nil, fmt.Errorf("node %s is %s", f[1], f[7])
		}
		master := ""
		if f[3] != "-" {
			master = f[3]
		}
		out[f[0]] = master
	}
	if len(out) != len(c.Nodes) {
		return nil, fmt.Errorf("knows %d nodes of %d", len(out), len(c.Nodes))
	}
	return out, nil
}

// settle waits until the cluster is quiet: every node says
// cluster_state:ok, every node sees the same masters and replicas, every
// replica's link to its master is up, and ok (if not nil) holds on every
// node. Clients see the same cluster whichever node they ask.
func (c *Cluster) settle(t testing.TB, what string, ok func(ctx context.Context, n *Server, rc *redis.Client) bool) {
	t.Helper()
	clients := make([]*redis.Client, len(c.Nodes))
	for i, n := range c.Nodes {
		clients[i] = newClient(n.client)
		defer clients[i].Close()
	}
	var last string
	waitForExplained(t, 30*time.Second, what, &last, func(ctx context.Context) bool {
		var first map[string]string
		for i, rc := range clients {
			n := c.Nodes[i]
			info, err := rc.ClusterInfo(ctx).Result()
			if err != nil || !strings.Contains(info, "cluster_state:ok") {
				last = fmt.Sprintf("%s: cluster state not ok (%v)", n.Addr(), err)
				return false
			}
			roles, err := c.roles(ctx, rc)
			if err != nil {
				last = fmt.Sprintf("%s: %v", n.Addr(), err)
				return false
			}
			if first == nil {
				first = roles
			} else if !maps.Equal(first, roles) {
				last = fmt.Sprintf("%s sees roles %v, %s sees %v", c.Nodes[0].Addr(), first, n.Addr(), roles)
				return false
			}
			if ok != nil && !ok(ctx, n, rc) {
				last = fmt.Sprintf("%s: not yet", n.Addr())
				return false
			}
		}
		for i, rc := range clients {
			if first[c.ids[c.Nodes[i]]] == "" {
				continue
			}
			info, _ := rc.Info(ctx, "replication").Result()
			if !strings.Contains(info, "master_link_status:up") {
				last = fmt.Sprintf("replica %s not in sync", c.Nodes[i].Addr())
				return false
			}
		}
		return true
	})
}

// view is CLUSTER NODES as the first node that answers sees it: each
// node's master ("" for a master).
func (c *Cluster) view(t testing.TB) map[string]string {
	t.Helper()
	var err error
	for _, n := range c.Nodes {
		rc := newClient(n.client)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		var roles map[string]string
		roles, err = c.roles(ctx, rc)
		cancel()
		rc.Close()
		if err == nil {
			return roles
		}
	}
	t.Fatalf("no cluster node shows a settled view: %v", err)
	return nil
}

// Masters are the nodes serving slots now.
func (c *Cluster) Masters(t testing.TB) []*Server {
	t.Helper()
	roles := c.view(t)
	var out []*Server
	for _, n := range c.Nodes {
		if roles[c.ids[n]] == "" {
			out = append(out, n)
		}
	}
	return out
}

// ReplicaOf is a replica of master now, nil if it has none.
func (c *Cluster) ReplicaOf(t testing.TB, master *Server) *Server {
	t.Helper()
	roles := c.view(t)
	for _, n := range c.Nodes {
		if roles[c.ids[n]] == c.ids[master] {
			return n
		}
	}
	return nil
}

// MasterOf is the master of replica now, nil if it is a master.
func (c *Cluster) MasterOf(t testing.TB, replica *Server) *Server {
	t.Helper()
	return c.node(c.view(t)[c.ids[replica]])
}

// KeySlot is the hash slot of key (CLUSTER KEYSLOT: Redis's own
// reading of a hash tag).
func (c *Cluster) KeySlot(t testing.TB, key string) int {
	t.Helper()
	return int(do(t, c.Nodes[0], func(ctx context.Context, rc *redis.Client) (int64, error) {
		return rc.ClusterKeySlot(ctx, key).Result()
	}))
}

// SlotOwner is the master serving slot now.
func (c *Cluster) SlotOwner(t testing.TB, slot int) *Server {
	t.Helper()
	id := do(t, c.Nodes[0], func(ctx context.Context, rc *redis.Client) (string, error) { return slotOwner(ctx, rc, slot) })
	return c.node(id)
}

// slotOwner is the ID of the master rc says serves slot.
func slotOwner(ctx context.Context, rc *redis.Client, slot int) (string, error) {
	shards, err := rc.ClusterShards(ctx).Result()
	if err != nil {
		return "", err
	}
	for _, sh := range shards {
		for _, r := range sh.Slots {
			if r.Start <= int64(slot) && int64(slot) <= r.End {
				return shardMaster(sh), nil
			}
		}
	}
	return "", fmt.Errorf("slot %d is served by no node", slot)
}

// shardMaster is the ID of a shard's master, "" if it has none.
func shardMaster(sh redis.ClusterShard) string {
	for _, n := range sh.Nodes {
		if n.Role == "master" {
			return n.ID
		}
	}
	return ""
}

// Failover has replica take over from its master with CLUSTER FAILOVER:
// the manual failover, in which the master stops taking writes until the
// replica has every one of them, so none it acknowledged is lost. It
// returns once the replica is a master and every node says so (in
// CLUSTER NODES and CLUSTER SHARDS), the old master follows it in sync,
// and the cluster is ok on every node.
func (c *Cluster) Failover(t testing.TB, replica *Server) {
	t.Helper()
	old := c.MasterOf(t, replica)
	if old == nil {
		t.Fatalf("failover: %s is not a replica", replica.Addr())
	}
	do(t, replica, func(ctx context.Context, rc *redis.Client) (string, error) { return rc.ClusterFailover(ctx).Result() })
	newID, oldID := c.ids[replica], c.ids[old]
	c.settle(t, fmt.Sprintf("%s to take over from %s", replica.Addr(), old.Addr()), func(ctx context.Context, n *Server, rc *redis.Client) bool {
		if n == replica {
			if info, _ := rc.Info(ctx, "replication").Result(); !strings.Contains(info, "role:master") {
				return false
			}
		}
		roles, err := c.roles(ctx, rc)
		if err != nil || roles[newID] != "" || roles[oldID] != newID {
			return false
		}
		shards, err := rc.ClusterShards(ctx).Result()
		if err != nil {
			return false
		}
		serves := false
		for _, sh := range shards {
			if len(sh.Slots) == 0 {
				continue
			}
			m := shardMaster(sh)
			if m == "" || m == oldID {
				return false
			}
			serves = serves || m == newID
		}
		return serves
	})
}

// Migration moves a slot from one master to another as redis-cli
// --cluster reshard does, in steps a test runs between: Start (the
// source answers ASK for keys it no longer holds), MoveKeys (a batch at
// a time: an entity whose keys are split between the two nodes is
// answered TRYAGAIN for commands on several of its keys), Finish (the
// target owns the slot: MOVED).
type Migration struct {
	c        *Cluster
	Slot     int
	From, To *Server
}

// StartMigration marks slot importing on to, then migrating on from.
// The target is marked first: a client the source sends there with ASK
// must be served.
func (c *Cluster) StartMigration(t testing.TB, slot int, from, to *Server) *Migration {
	t.Helper()
	do(t, to, func(ctx context.Context, rc *redis.Client) (string, error) {
		return rc.Do(ctx, "cluster", "setslot", slot, "importing", c.ids[from]).Text()
	})
	do(t, from, func(ctx context.Context, rc *redis.Client) (string, error) {
		return rc.Do(ctx, "cluster", "setslot", slot, "migrating", c.ids[to]).Text()
	})
	return &Migration{c: c, Slot: slot, From: from, To: to}
}

// MoveKeys moves up to n of the keys the source still holds in the slot
// (CLUSTER GETKEYSINSLOT, then one MIGRATE ... KEYS), and returns them:
// none when none is left.
func (m *Migration) MoveKeys(t testing.TB, n int) []string {
	t.Helper()
	return do(t, m.From, func(ctx context.Context, rc *redis.Client) ([]string, error) {
		keys, err := rc.ClusterGetKeysInSlot(ctx, m.Slot, n).Result()
		if err != nil || len(keys) == 0 {
			return nil, err
		}
		args := []any{"migrate", "127.0.0.1", m.To.Port, "", 0, 10_000, "keys"}
		for _, k := range keys {
			args = append(args, k)
		}
		// NOKEY: the keys expired meanwhile, which moves them as well.
		if err := rc.Do(ctx, args...).Err(); err != nil && !strings.Contains(err.Error(), "NOKEY") {
			return nil, fmt.Errorf("migrating %d keys of slot %d to %s: %w", len(keys), m.Slot, m.To.Addr(), err)
		}
		return keys, nil
	})
}

// Finish moves the keys left and gives the slot to the target on every
// master (the target first, then the source, which must know it holds
// nothing more of it, then the others), and returns once every node says
// the target serves it and the cluster is ok everywhere.
func (m *Migration) Finish(t testing.TB) {
	t.Helper()
	for len(m.MoveKeys(t, 100)) > 0 {
	}
	masters := []*Server{m.To, m.From}
	for _, n := range m.c.Masters(t) {
		if n != m.To && n != m.From {
			masters = append(masters, n)
		}
	}
	for _, n := range masters {
		do(t, n, func(ctx context.Context, rc *redis.Client) (string, error) {
			return rc.Do(ctx, "cluster", "setslot", m.Slot, "node", m.c.ids[m.To]).Text()
		})
	}
	m.c.settle(t, fmt.Sprintf("slot %d to be served by %s", m.Slot, m.To.Addr()), func(ctx context.Context, _ *Server, rc *redis.Client) bool {
		id, err := slotOwner(ctx, rc, m.Slot)
		return err == nil && id == m.c.ids[m.To]
	})
}

// MigrateSlot moves slot from one master to another, batch keys at a
// time, calling between (if not nil) after each batch, while the slot is
// half moved.
func (c *Cluster) MigrateSlot(t testing.TB, slot int, from, to *Server, batch int, between func()) {
	t.Helper()
	m := c.StartMigration(t, slot, from, to)
	for len(m.MoveKeys(t, batch)) > 0 {
		if between != nil {
			between()
		}
	}
	m.Finish(t)
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
	waitForExplained(t, timeout, what, nil, ok)
}

// waitForExplained is waitFor saying, when it fails, what *last (if not
// nil) said last: what ok saw that was not yet as wanted.
func waitForExplained(t testing.TB, timeout time.Duration, what string, last *string, ok func(context.Context) bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for !ok(ctx) {
		select {
		case <-ctx.Done():
			if last != nil {
				t.Fatalf("waited %v for %s: %s", timeout, what, *last)
			}
			t.Fatalf("waited %v for %s", timeout, what)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
