package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"
)

// binDir holds the riskd binary the tests that run it share.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "riskd-test-bin")
	if err != nil {
		panic(err)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

var (
	buildOnce sync.Once
	buildErr  error
	buildOut  []byte
)

// riskdBinary builds riskd once for the tests that run it as a process.
func riskdBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(binDir, "riskd")
	buildOnce.Do(func() {
		buildOut, buildErr = exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	})
	if buildErr != nil {
		t.Fatalf("go build: %v\n%s", buildErr, buildOut)
	}
	return bin
}

var servingRE = regexp.MustCompile(`"msg":"riskd serving","addr":"([^"]+)","admin_addr":"([^"]*)"`)

// serving waits for p's "riskd serving" line (riskd logs JSON to a file)
// and returns its public and admin base URLs (admin "" without
// -admin-listen).
func serving(t *testing.T, p *riskdProcess) (public, admin string) {
	t.Helper()
	waitUntil(t, 30*time.Second, "riskd to serve", func() bool {
		select {
		case <-p.exited:
			t.Fatalf("riskd exited: %v\n%s", p.err, p.output())
		default:
		}
		m := servingRE.FindStringSubmatch(p.output())
		if m != nil {
			public = "http://" + m[1]
			if m[2] != "" {
				admin = "http://" + m[2]
			}
		}
		return m != nil
	}, p.output)
	return public, admin
}
