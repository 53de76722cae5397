package httpapi_test

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/riskd/riskd/httpapi"
	"github.com/riskd/riskd/internal/apitest"
	"github.com/riskd/riskd/internal/enginetest"
)

func TestReloadEndpoint(t *testing.T) {
	dir := t.TempDir()
	enginetest.CopyExample(t, dir, "v1")
	e, rl := enginetest.Reloadable(t, dir)
	open := apitest.NewServer(t, httpapi.NewHandler(e, httpapi.HandlerOptions{Reloader: rl}))
	guarded := apitest.NewServer(t, httpapi.NewHandler(e, httpapi.HandlerOptions{Reloader: rl, AdminToken: "s3cret"}))

	do := func(url, method, token string) (int, string) {
		req, _ := http.NewRequest(method, url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := do(open.URL+"/v1/reload", "POST", "s3cret"); code != 403 || !strings.Contains(body, "admin endpoints are disabled") {
		t.Errorf("no token configured: %d %s", code, body)
	}
	if code, _ := do(guarded.URL+"/v1/reload", "POST", "wrong"); code != 401 {
		t.Errorf("wrong token: %d", code)
	}
	if code, _ := do(guarded.URL+"/v1/reload", "POST", ""); code != 401 {
		t.Errorf("no token: %d", code)
	}
	if code, body := do(guarded.URL+"/v1/reload", "POST", "s3cret"); code != 200 || !strings.Contains(body, `"unchanged"`) {
		t.Errorf("unchanged: %d %s", code, body)
	}
	enginetest.CopyExample(t, dir, "v2")
	if code, body := do(guarded.URL+"/v1/reload", "POST", "s3cret"); code != 200 || !strings.Contains(body, `"reloaded":true`) {
		t.Errorf("reload: %d %s", code, body)
	}
	os.WriteFile(filepath.Join(dir, "login.yaml"), []byte("name: login\nbogus: 1\n"), 0o644)
	code, body := do(guarded.URL+"/v1/reload", "POST", "s3cret")
	if code != 422 || !strings.Contains(body, `login.yaml:2:1: unknown key \"bogus\" in ruleset`) {
		t.Errorf("broken reload: %d %s", code, body)
	}
	code, body = do(guarded.URL+"/v1/rulesets", "GET", "")
	if code != 200 || !strings.Contains(body, `"version": "v2"`) || !strings.Contains(body, `unknown key \"bogus\"`) || !strings.Contains(body, `"last_reload_error_at"`) {
		t.Errorf("rulesets after a rejected reload: %d %s", code, body)
	}
}

// TestReloadEndpointsSurviveHostileFiles: a *.yaml FIFO in the directory
// used to hang the reload, POST /v1/reload and GET /v1/rulesets for good,
// and a symlink to /etc/passwd put the whole file in last_reload_error,
// which GET /v1/rulesets serves without a token. Both are now refused
// promptly, the errors quoting nothing of the file outside, and the
// previous policy keeps serving.
func TestReloadEndpointsSurviveHostileFiles(t *testing.T) {
	dir := t.TempDir()
	enginetest.CopyExample(t, dir, "v1")
	e, rl := enginetest.Reloadable(t, dir)
	srv := apitest.NewServer(t, httpapi.NewHandler(e, httpapi.HandlerOptions{Reloader: rl, AdminToken: "s3cret"}))
	client := &http.Client{Timeout: 10 * time.Second} // a hang fails the test instead of stalling it
	do := func(method, path string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		req.Header.Set("Authorization", "Bearer s3cret")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	if err := syscall.Mkfifo(filepath.Join(dir, "pipe.yaml"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, body := do("POST", "/v1/reload"); code != 422 || !strings.Contains(body, `pipe.yaml: not a regular file (a named pipe): only regular files are read`) {
		t.Fatalf("reload with a FIFO: %d %s", code, body)
	}
	if code, body := do("GET", "/v1/rulesets"); code != 200 || !strings.Contains(body, `"version": "v1"`) || !strings.Contains(body, "not a regular file") {
		t.Fatalf("rulesets with a FIFO: %d %s", code, body)
	}
	os.Remove(filepath.Join(dir, "pipe.yaml"))

	secret := filepath.Join(t.TempDir(), "passwd")
	lines := "root:x:0:0:root:/root:/bin/bash\n" + strings.Repeat("svc:x:999:999::/var/lib/svc:/usr/sbin/nologin\n", 20) + "deploy:x:1000:1000:s3cret-gecos:/home/deploy:/bin/bash\n"
	os.WriteFile(secret, []byte(lines), 0o644)
	os.Symlink(secret, filepath.Join(dir, "passwd.yaml"))
	if code, body := do("POST", "/v1/reload"); code != 422 || !strings.Contains(body, "outside the policy directory") || strings.Contains(body, "root:x") {
		t.Fatalf("reload with a symlink to passwd: %d %s", code, body)
	}
	code, body := do("GET", "/v1/rulesets")
	if code != 200 || strings.Contains(body, "root:x") || strings.Contains(body, "s3cret-gecos") {
		t.Fatalf("rulesets with a symlink to passwd: %d %s", code, body)
	}
	if got := e.Policy().ForType("checkout").Version; got != "v1" {
		t.Fatalf("serving %q", got)
	}
}
