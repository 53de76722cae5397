package main

import (
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/riskd/riskd/internal/certtest"
	"github.com/riskd/riskd/internal/redistest"
)

// TestRedisTLSAndPasswords runs riskd on a Redis that speaks TLS only
// and wants an ACL user: with the password from a file it is ready and
// scores from Redis; with a wrong one, given in the URL on the command
// line, /readyz says what is wrong without showing the password, and the
// command-line secret is warned about.
func TestRedisTLSAndPasswords(t *testing.T) {
	const password = "redis-Pw-0123"
	dir := t.TempDir()
	ca := certtest.NewCA(t, dir, "redis")
	srv := ca.Server(dir, "redis")
	rs := redistest.StartWith(t, redistest.Options{TLS: &redistest.TLS{CertFile: srv.CertFile, KeyFile: srv.KeyFile, CAFile: ca.CertFile},
		User: "riskd", Password: password})
	passFile := filepath.Join(dir, "redis-password")
	certtest.WriteSecret(t, passFile, password+"\n")
	get := func(t *testing.T, url string) (int, string) {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	t.Run("password file", func(t *testing.T) {
		// The first call opens a TLS connection: a budget for that on a
		// busy machine, not the default 5ms.
		p := startRiskd(t, riskdBinary(t), filepath.Join(t.TempDir(), "riskd.log"), "-listen", "127.0.0.1:0", "-store-timeout", "2s",
			"-redis", "rediss://riskd@"+rs.Addr(), "-redis-password-file", passFile, "-redis-tls-ca-file", ca.CertFile)
		public, _ := serving(t, p)
		if code, body := get(t, public+"/readyz"); code != 200 {
			t.Fatalf("/readyz: %d %s\n%s", code, body, p.output())
		}
		resp, err := http.Post(public+"/v1/score", "application/json", strings.NewReader(`{"id":"r1","type":"checkout","card_id":"c1","amount":5}`))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || strings.Contains(string(b), `"degraded":true`) {
			t.Errorf("score: %d %s", resp.StatusCode, b)
		}
		if !strings.Contains(p.output(), `"redis":"rediss://riskd:xxxxx@`+rs.Addr()+`"`) || strings.Contains(p.output(), password) {
			t.Errorf("riskd's log does not show Redis redacted, or shows the password:\n%s", p.output())
		}
		if strings.Contains(p.output(), "secrets on the command line") {
			t.Errorf("a password file was warned about as a command-line secret:\n%s", p.output())
		}
	})

	t.Run("wrong password in the URL", func(t *testing.T) {
		const wrong = "not-the-Pw-987"
		p := startRiskd(t, riskdBinary(t), filepath.Join(t.TempDir(), "riskd.log"), "-listen", "127.0.0.1:0",
			"-redis", "rediss://riskd:"+wrong+"@"+rs.Addr(), "-redis-tls-ca-file", ca.CertFile)
		public, _ := serving(t, p)
		code, body := get(t, public+"/readyz")
		if code != 503 || !strings.Contains(body, "WRONGPASS") || !strings.Contains(body, "rediss://riskd:xxxxx@") || !strings.Contains(body, "check the user name and password") {
			t.Errorf("/readyz: %d %s", code, body)
		}
		for what, text := range map[string]string{"/readyz": body, "the log": p.output()} {
			if strings.Contains(text, wrong) {
				t.Errorf("%s shows the password:\n%s", what, text)
			}
		}
		if !strings.Contains(p.output(), `secrets on the command line can be read by any user of the machine`) || !strings.Contains(p.output(), `-redis (a URL with a password)`) {
			t.Errorf("no warning of the password on the command line:\n%s", p.output())
		}
	})
}
