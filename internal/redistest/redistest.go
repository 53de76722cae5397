// Package redistest starts real redis-server processes for tests: a
// standalone server on a free port, or a three-node Cluster. A test that
// needs Redis fails when redis-server cannot start; it never skips.
package redistest

import (
	"context"
	"fmt"
	"net"
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
}

// Addr is the server's loopback address.
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.Port) }

// Start runs a standalone redis-server on a free loopback port, stopped
// when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	return start(t, freePort(t, false), t.TempDir())
}

func start(t testing.TB, port int, dir string, extra ...string) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server is needed for this test (Debian: apt-get install redis-server): %v", err)
	}
	s := &Server{t: t, Port: port, dir: dir}
	s.args = append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", dir, "--logfile", filepath.Join(dir, fmt.Sprintf("redis-%d.log", port))}, extra...)
	s.cmd = exec.Command(bin, s.args...)
	s.run()
	t.Cleanup(s.Stop)
	return s
}

func (s *Server) run() {
	s.t.Helper()
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("starting redis-server: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), MaxRetries: -1})
	defer c.Close()
	for {
		if err := c.Ping(ctx).Err(); err == nil {
			return
		}
		select {
		case <-ctx.Done():
			s.t.Fatalf("redis-server on %s did not answer within 10s (log in %s)", s.Addr(), s.dir)
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
		c.Nodes = append(c.Nodes, start(t, port, dir, "--cluster-enabled", "yes",
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
