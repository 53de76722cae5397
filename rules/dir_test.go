package rules_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/riskd/riskd/rules"
)

// loadDirWithin runs LoadDir, failing the test if it has not returned in
// 10 seconds (a FIFO used to hang it for good).
func loadDirWithin(t *testing.T, dir string, opts rules.DirOptions) (*rules.Policy, error) {
	t.Helper()
	type result struct {
		p   *rules.Policy
		err error
	}
	done := make(chan result, 1)
	go func() {
		p, err := rules.LoadDir(dir, opts)
		done <- result{p, err}
	}()
	select {
	case r := <-done:
		return r.p, r.err
	case <-time.After(10 * time.Second):
		t.Fatal("LoadDir has not returned after 10s")
		return nil, nil
	}
}

// TestLoadDirReadsOnlyRegularFilesWithinBounds: what a policy directory
// may hold besides policy files cannot hang, exhaust or leak through the
// load.
func TestLoadDirReadsOnlyRegularFilesWithinBounds(t *testing.T) {
	outside := t.TempDir()
	secret := filepath.Join(outside, "passwd")
	os.WriteFile(secret, []byte("root:x:0:0:root:/root:/bin/bash\nsvc:x:999:999:svc:/var/lib/svc:/usr/sbin/nologin\nx:x:1:1:s3cret-line:/:/bin/sh\n"), 0o644)
	for _, tt := range []struct {
		name  string
		setup func(t *testing.T, dir string)
		opts  rules.DirOptions
		want  string // "" loads
	}{
		{name: "a FIFO named *.yaml", setup: func(t *testing.T, dir string) {
			mkfifo(t, filepath.Join(dir, "pipe.yaml"))
		}, want: "/pipe.yaml: not a regular file (a named pipe): only regular files are read"},
		{name: "a symlink to a FIFO in the directory", setup: func(t *testing.T, dir string) {
			mkfifo(t, filepath.Join(dir, ".pipe"))
			symlink(t, ".pipe", filepath.Join(dir, "pipe.yaml"))
		}, want: "/pipe.yaml: not a regular file (a named pipe): only regular files are read"},
		{name: "features.yaml a FIFO", setup: func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, "features.yaml"))
			mkfifo(t, filepath.Join(dir, "features.yaml"))
		}, want: "/features.yaml: not a regular file (a named pipe): only regular files are read"},
		{name: "notes.txt to /dev/zero is not read", setup: func(t *testing.T, dir string) {
			symlink(t, "/dev/zero", filepath.Join(dir, "notes.txt"))
		}},
		{name: "a ruleset to /dev/zero", setup: func(t *testing.T, dir string) {
			symlink(t, "/dev/zero", filepath.Join(dir, "zero.yaml"))
		}, want: "/zero.yaml: a symlink to /dev/zero, outside the policy directory: refused (-rules-follow-symlinks allows it)"},
		{name: "a ruleset to /dev/zero, symlinks followed", opts: rules.DirOptions{FollowSymlinks: true}, setup: func(t *testing.T, dir string) {
			symlink(t, "/dev/zero", filepath.Join(dir, "zero.yaml"))
		}, want: "/zero.yaml: not a regular file (a character device): only regular files are read"},
		{name: "a symlink outside", setup: func(t *testing.T, dir string) {
			symlink(t, secret, filepath.Join(dir, "passwd.yaml"))
		}, want: "/passwd.yaml: a symlink to " + secret + ", outside the policy directory: refused (-rules-follow-symlinks allows it)"},
		{name: "a relative symlink outside", setup: func(t *testing.T, dir string) {
			rel, _ := filepath.Rel(dir, secret)
			symlink(t, rel, filepath.Join(dir, "passwd.yaml"))
		}, want: "/passwd.yaml: a symlink to " + secret + ", outside the policy directory: refused (-rules-follow-symlinks allows it)"},
		{name: "a symlink outside, followed: an excerpt at most", opts: rules.DirOptions{FollowSymlinks: true}, setup: func(t *testing.T, dir string) {
			symlink(t, secret, filepath.Join(dir, "passwd.yaml"))
		}, want: `/passwd.yaml:1:1: ruleset must be a mapping, got "root:x:0:0:root:/root:/bin/bash svc:x:999:999:svc:/var/lib/svc:/usr/sbin/nologin…"`},
		{name: "a dangling symlink", setup: func(t *testing.T, dir string) {
			symlink(t, "gone.yaml", filepath.Join(dir, "old.yaml"))
		}, want: "/old.yaml: a symlink that leads nowhere: no such file or directory"},
		{name: "a symlink within the directory", setup: func(t *testing.T, dir string) {
			os.Mkdir(filepath.Join(dir, "sub"), 0o755)
			os.Rename(filepath.Join(dir, "checkout.yaml"), filepath.Join(dir, "sub", "checkout.yaml"))
			symlink(t, "sub/checkout.yaml", filepath.Join(dir, "checkout.yaml"))
		}},
		{name: "a directory named *.yaml is passed over", setup: func(t *testing.T, dir string) {
			os.Mkdir(filepath.Join(dir, "old.yaml"), 0o755)
		}},
		{name: "a file over the limit", opts: rules.DirOptions{MaxFileBytes: 1000}, setup: func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, "big.yaml"), []byte("# "+strings.Repeat("x", 2000)), 0o644)
		}, want: "/big.yaml: 2002 bytes, larger than the limit of 1000 bytes for a policy file (-rules-max-file-bytes raises it)"},
		{name: "files together over the limit", opts: rules.DirOptions{MaxDirBytes: 1200}, setup: func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, "a.yaml"), []byte("# "+strings.Repeat("x", 800)), 0o644)
		}, want: "/checkout.yaml: the policy files up to this one are larger than the limit of 1200 bytes for a directory (-rules-max-dir-bytes raises it)"},
		{name: "a FIFO named lists/*.txt", setup: func(t *testing.T, dir string) {
			os.Mkdir(filepath.Join(dir, "lists"), 0o755)
			mkfifo(t, filepath.Join(dir, "lists", "pipe.txt"))
		}, want: "/lists/pipe.txt: not a regular file (a named pipe): only regular files are read"},
		{name: "a list file to /dev/zero", setup: func(t *testing.T, dir string) {
			os.Mkdir(filepath.Join(dir, "lists"), 0o755)
			symlink(t, "/dev/zero", filepath.Join(dir, "lists", "zero.txt"))
		}, want: "/lists/zero.txt: a symlink to /dev/zero, outside the policy directory: refused (-rules-follow-symlinks allows it)"},
		{name: "the lists directory a symlink outside", setup: func(t *testing.T, dir string) {
			symlink(t, outside, filepath.Join(dir, "lists"))
		}, want: "/lists: a symlink to " + outside + ", outside the policy directory: refused (-rules-follow-symlinks allows it)"},
		{name: "list files are bounded apart from policy files", opts: rules.DirOptions{MaxDirBytes: 1200, MaxFileBytes: 1200}, setup: func(t *testing.T, dir string) {
			os.Mkdir(filepath.Join(dir, "lists"), 0o755)
			os.WriteFile(filepath.Join(dir, "lists", "big.txt"), []byte(strings.Repeat("x\n", 3000)), 0o644)
		}},
		{name: "a list file over the list limit", opts: rules.DirOptions{MaxListBytes: 5000}, setup: func(t *testing.T, dir string) {
			os.Mkdir(filepath.Join(dir, "lists"), 0o755)
			os.WriteFile(filepath.Join(dir, "lists", "big.txt"), []byte(strings.Repeat("x\n", 3000)), 0o644)
		}, want: "/lists/big.txt: 6000 bytes, larger than the limit of 5000 bytes for list files (-rules-max-list-bytes raises it)"},
		{name: "list files together over the list limit", opts: rules.DirOptions{MaxListBytes: 5000}, setup: func(t *testing.T, dir string) {
			os.Mkdir(filepath.Join(dir, "lists"), 0o755)
			os.WriteFile(filepath.Join(dir, "lists", "a.txt"), []byte(strings.Repeat("x\n", 1500)), 0o644)
			os.WriteFile(filepath.Join(dir, "lists", "b.txt"), []byte(strings.Repeat("y\n", 1500)), 0o644)
		}, want: "/lists/b.txt: the list files up to this one are larger than the limit of 5000 bytes for list files (-rules-max-list-bytes raises it)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writePolicy(t, dir, goodRuleset)
			tt.setup(t, dir)
			_, err := loadDirWithin(t, dir, tt.opts)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("not loaded: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), dir+tt.want)):
				t.Fatalf("got %v\nwant %s%s", err, dir, tt.want)
			case err != nil && strings.Contains(err.Error(), "s3cret"):
				t.Fatalf("the error quotes the file outside: %v", err)
			}
		})
	}
}

// TestLoadDirThroughASymlinkedDirectory: -rules may itself be a symlink
// (/etc/riskd/rules -> /srv/policy); its files are inside it.
func TestLoadDirThroughASymlinkedDirectory(t *testing.T) {
	real := t.TempDir()
	writePolicy(t, real, goodRuleset)
	// A symlink that leaves the directory's path and comes back is inside.
	os.Mkdir(filepath.Join(real, "sub"), 0o755)
	os.WriteFile(filepath.Join(real, "sub", "login.yaml"), []byte(strings.NewReplacer("name: checkout", "name: login", "[checkout]", "[login]").Replace(goodRuleset)), 0o644)
	symlink(t, "../"+filepath.Base(real)+"/sub/login.yaml", filepath.Join(real, "login.yml"))
	link := filepath.Join(t.TempDir(), "rules")
	symlink(t, real, link)
	p, err := loadDirWithin(t, link, rules.DirOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Rulesets) != 2 {
		t.Fatalf("%d rulesets", len(p.Rulesets))
	}
	if p.Dir != link || p.Rulesets[0].File != link+"/checkout.yaml" {
		t.Fatalf("dir %s, file %s: want them named as given", p.Dir, p.Rulesets[0].File)
	}
}

// configMap is a policy directory laid out as the kubelet writes a
// ConfigMap volume: files in a timestamped directory, ..data a symlink to
// it, and each file a symlink through ..data.
type configMap struct {
	t   *testing.T
	dir string
	gen int
}

// write publishes a new version of files the kubelet's way: a fresh
// timestamped directory, ..data_tmp pointing at it renamed over ..data
// (the atomic swap), links for new names, and the old directory removed.
func (c *configMap) write(files map[string]string) {
	c.t.Helper()
	c.gen++
	ts := filepath.Join(c.dir, fmt.Sprintf("..2026_11_29_10_00_00.%03d", c.gen))
	if err := os.Mkdir(ts, 0o755); err != nil {
		c.t.Fatal(err)
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(ts, name), []byte(body), 0o644); err != nil {
			c.t.Fatal(err)
		}
	}
	old, _ := os.Readlink(filepath.Join(c.dir, "..data"))
	symlink(c.t, filepath.Base(ts), filepath.Join(c.dir, "..data_tmp"))
	if err := os.Rename(filepath.Join(c.dir, "..data_tmp"), filepath.Join(c.dir, "..data")); err != nil {
		c.t.Fatal(err)
	}
	for name := range files {
		if _, err := os.Lstat(filepath.Join(c.dir, name)); err != nil {
			symlink(c.t, filepath.Join("..data", name), filepath.Join(c.dir, name))
		}
	}
	if old != "" {
		if err := os.RemoveAll(filepath.Join(c.dir, old)); err != nil {
			c.t.Fatal(err)
		}
	}
}

func version(v string) string {
	return strings.Replace(goodRuleset, `version: "1"`, `version: "`+v+`"`, 1)
}

// TestConfigMapLayoutLoadsAndReloads: the first load, a reload after each
// swap of ..data, a broken version refused and a good one after it. Every
// reload of this layout used to fail with "read ..data: is a directory".
func TestConfigMapLayoutLoadsAndReloads(t *testing.T) {
	cm := &configMap{t: t, dir: t.TempDir()}
	cm.write(map[string]string{"features.yaml": goodFeatures, "checkout.yaml": version("1")})
	p, err := rules.LoadDir(cm.dir, rules.DirOptions{})
	if err != nil {
		t.Fatalf("first load: %v", err)
	}
	var current atomic.Pointer[rules.Policy]
	current.Store(p)
	rl := rules.NewReloader(rules.ReloaderOptions{Dir: cm.dir, Apply: func(p *rules.Policy) { current.Store(p) }})
	rl.Loaded(p)
	if err := rl.Reload(); err != rules.ErrUnchanged {
		t.Fatalf("reload before any change: %v, want unchanged", err)
	}
	cm.write(map[string]string{"features.yaml": goodFeatures, "checkout.yaml": version("2")})
	if err := rl.Reload(); err != nil {
		t.Fatalf("reload after the swap: %v", err)
	}
	if v := current.Load().ForType("checkout").Version; v != "2" {
		t.Fatalf("serving %q after the swap, want 2", v)
	}
	cm.write(map[string]string{"features.yaml": goodFeatures, "checkout.yaml": "name: [broken"})
	if err := rl.Reload(); err == nil || !strings.Contains(err.Error(), cm.dir+"/checkout.yaml:1: YAML syntax") {
		t.Fatalf("broken version: %v", err)
	}
	cm.write(map[string]string{"features.yaml": goodFeatures, "checkout.yaml": version("4"), "login.yaml": strings.NewReplacer("name: checkout", "name: login", "[checkout]", "[login]").Replace(goodRuleset)})
	if err := rl.Reload(); err != nil {
		t.Fatalf("reload after the broken version: %v", err)
	}
	if got := current.Load(); got.ForType("checkout").Version != "4" || got.ForType("login") == nil {
		t.Fatalf("serving %+v", got.Rulesets)
	}
	if _, err := rl.LastError(); err != nil {
		t.Fatalf("last error after a good reload: %v", err)
	}
}

// TestConfigMapLayoutIsWatched: the watcher sees the swap of ..data.
func TestConfigMapLayoutIsWatched(t *testing.T) {
	cm := &configMap{t: t, dir: t.TempDir()}
	cm.write(map[string]string{"features.yaml": goodFeatures, "checkout.yaml": version("1")})
	p, err := rules.LoadDir(cm.dir, rules.DirOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var current atomic.Pointer[rules.Policy]
	current.Store(p)
	rl := rules.NewReloader(rules.ReloaderOptions{Dir: cm.dir, Debounce: 20 * time.Millisecond, Apply: func(p *rules.Policy) { current.Store(p) }})
	rl.Loaded(p)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- rl.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	// The watcher may not be registered yet: swap again until it is seen.
	deadline := time.Now().Add(10 * time.Second)
	for i := 2; current.Load().ForType("checkout").Version == "1"; i++ {
		if time.Now().After(deadline) {
			_, err := rl.LastError()
			t.Fatalf("the swap was not picked up within 10s (last reload error: %v)", err)
		}
		cm.write(map[string]string{"features.yaml": goodFeatures, "checkout.yaml": version(strconv.Itoa(i))})
		time.Sleep(50 * time.Millisecond)
	}
}

func mkfifo(t *testing.T, path string) {
	t.Helper()
	if err := syscall.Mkfifo(path, 0o644); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}
