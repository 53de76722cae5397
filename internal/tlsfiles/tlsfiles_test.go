package tlsfiles_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/riskd/riskd/internal/certtest"
	"github.com/riskd/riskd/internal/tlsfiles"
)

// serve runs an HTTPS server with cfg, as riskd's listeners do
// (ServeTLS, which also sets up HTTP/2), stopped when the test ends.
func serve(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{TLSConfig: cfg, ErrorLog: log.New(io.Discard, "", 0), Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := "-"
		if len(r.TLS.PeerCertificates) > 0 {
			name = r.TLS.PeerCertificates[0].Subject.CommonName
		}
		io.WriteString(w, r.Proto+" "+name)
	})}
	done := make(chan error, 1)
	go func() { done <- srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serving: %v", err)
		}
	})
	return "https://" + ln.Addr().String() + "/"
}

// client is an HTTP client trusting ca, with certificate cert if set.
func client(t *testing.T, c tlsfiles.Client) *http.Client {
	t.Helper()
	cfg, err := c.Config()
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

type answer struct {
	body   string
	serial *big.Int
	reused bool
}

func get(t *testing.T, c *http.Client, url string) answer {
	t.Helper()
	var a answer
	trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { a.reused = i.Reused }}
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", url, nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a.body = string(b)
	a.serial = resp.TLS.PeerCertificates[0].SerialNumber
	return a
}

func TestServerRotation(t *testing.T) {
	dir := t.TempDir()
	ca := certtest.NewCA(t, dir, "test")
	first := ca.Server(dir, "server")
	var mu sync.Mutex
	var reloaded []*big.Int
	var failed []error
	cfg, kp, err := tlsfiles.Server{CertFile: first.CertFile, KeyFile: first.KeyFile, Hooks: tlsfiles.Hooks{
		Reloaded: func(leaf *x509.Certificate) { mu.Lock(); reloaded = append(reloaded, leaf.SerialNumber); mu.Unlock() },
		Failed:   func(err error) { mu.Lock(); failed = append(failed, err); mu.Unlock() },
	}}.Config()
	if err != nil {
		t.Fatal(err)
	}
	url := serve(t, cfg)
	old := client(t, tlsfiles.Client{CAFile: ca.CertFile})
	a := get(t, old, url)
	if a.body != "HTTP/2.0 -" || a.serial.Cmp(first.Serial) != 0 {
		t.Fatalf("first answer %q from certificate %v, want HTTP/2.0 from %v", a.body, a.serial, first.Serial)
	}

	// Half a rotation: the new certificate is in place, its key not yet.
	// Handshakes meanwhile get the old pair, and the mismatch is told once.
	next := ca.Server(t.TempDir(), "server")
	if err := os.Rename(next.CertFile, first.CertFile); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if a := get(t, client(t, tlsfiles.Client{CAFile: ca.CertFile}), url); a.serial.Cmp(first.Serial) != 0 {
			t.Fatalf("mid-rotation handshake got certificate %v, want the old %v", a.serial, first.Serial)
		}
	}
	mu.Lock()
	if len(failed) != 1 || !strings.Contains(failed[0].Error(), first.CertFile) {
		t.Errorf("mid-rotation failures reported: %v, want one naming %s", failed, first.CertFile)
	}
	mu.Unlock()

	certtest.Rotate(t, next, first.CertFile, first.KeyFile)
	if a := get(t, client(t, tlsfiles.Client{CAFile: ca.CertFile}), url); a.serial.Cmp(next.Serial) != 0 {
		t.Fatalf("new handshake after rotation got certificate %v, want the new %v", a.serial, next.Serial)
	}
	if got := kp.Leaf().SerialNumber; got.Cmp(next.Serial) != 0 {
		t.Errorf("Leaf is %v, want %v", got, next.Serial)
	}
	// The connection opened before the rotation is still open, on its
	// old certificate.
	a = get(t, old, url)
	if !a.reused || a.serial.Cmp(first.Serial) != 0 {
		t.Errorf("kept-alive connection: reused %v, certificate %v; want reused, %v", a.reused, a.serial, first.Serial)
	}
	mu.Lock()
	if len(reloaded) != 1 || reloaded[0].Cmp(next.Serial) != 0 {
		t.Errorf("reloads reported %v, want [%v]", reloaded, next.Serial)
	}
	mu.Unlock()
}

// TestSymlinkSwap rotates as a Kubernetes secret volume does: the files
// are symlinks into a ..data link that is swapped to a new directory.
func TestSymlinkSwap(t *testing.T) {
	dir := t.TempDir()
	ca := certtest.NewCA(t, dir, "test")
	mount := filepath.Join(dir, "mount")
	os.Mkdir(mount, 0o755)
	gen := func(name string) certtest.Pair {
		d := filepath.Join(mount, name)
		os.Mkdir(d, 0o755)
		p := ca.Server(d, "tls")
		return p
	}
	v1 := gen("..v1")
	if err := os.Symlink("..v1", filepath.Join(mount, "..data")); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"tls.crt", "tls.key"} {
		if err := os.Symlink(filepath.Join("..data", f), filepath.Join(mount, f)); err != nil {
			t.Fatal(err)
		}
	}
	cfg, _, err := tlsfiles.Server{CertFile: filepath.Join(mount, "tls.crt"), KeyFile: filepath.Join(mount, "tls.key")}.Config()
	if err != nil {
		t.Fatal(err)
	}
	url := serve(t, cfg)
	if a := get(t, client(t, tlsfiles.Client{CAFile: ca.CertFile}), url); a.serial.Cmp(v1.Serial) != 0 {
		t.Fatalf("got certificate %v, want %v", a.serial, v1.Serial)
	}
	v2 := gen("..v2")
	if err := os.Symlink("..v2", filepath.Join(mount, "..data.tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(mount, "..data.tmp"), filepath.Join(mount, "..data")); err != nil {
		t.Fatal(err)
	}
	if a := get(t, client(t, tlsfiles.Client{CAFile: ca.CertFile}), url); a.serial.Cmp(v2.Serial) != 0 {
		t.Fatalf("after the swap got certificate %v, want %v", a.serial, v2.Serial)
	}
}

func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca := certtest.NewCA(t, dir, "test")
	other := certtest.NewCA(t, dir, "other")
	srv := ca.Server(dir, "server")
	good := ca.Client(dir, "checkout")
	stranger := other.Client(dir, "stranger")
	cfg, _, err := tlsfiles.Server{CertFile: srv.CertFile, KeyFile: srv.KeyFile, ClientCAFile: ca.CertFile}.Config()
	if err != nil {
		t.Fatal(err)
	}
	url := serve(t, cfg)
	if a := get(t, client(t, tlsfiles.Client{CAFile: ca.CertFile, CertFile: good.CertFile, KeyFile: good.KeyFile}), url); a.body != "HTTP/2.0 checkout" {
		t.Errorf("with a client certificate: %q, want HTTP/2.0 checkout", a.body)
	}
	for name, c := range map[string]tlsfiles.Client{
		"no certificate":          {CAFile: ca.CertFile},
		"certificate of other CA": {CAFile: ca.CertFile, CertFile: stranger.CertFile, KeyFile: stranger.KeyFile},
	} {
		t.Run(name, func(t *testing.T) {
			resp, err := client(t, c).Get(url)
			// Under TLS 1.3 the client learns of the refusal only when it
			// reads, so its error varies; that it fails is the point.
			if err == nil {
				resp.Body.Close()
				t.Fatal("the server accepted the connection")
			}
		})
	}
}

func TestServerNameAndCA(t *testing.T) {
	dir := t.TempDir()
	ca := certtest.NewCA(t, dir, "test")
	other := certtest.NewCA(t, dir, "other")
	srv := ca.Server(dir, "server", "redis.internal")
	cfg, _, err := tlsfiles.Server{CertFile: srv.CertFile, KeyFile: srv.KeyFile}.Config()
	if err != nil {
		t.Fatal(err)
	}
	url := serve(t, cfg)
	get(t, client(t, tlsfiles.Client{CAFile: ca.CertFile, ServerName: "redis.internal"}), url)
	for name, c := range map[string]tlsfiles.Client{
		"wrong CA":          {CAFile: other.CertFile},
		"wrong server name": {CAFile: ca.CertFile, ServerName: "elsewhere.internal"},
	} {
		t.Run(name, func(t *testing.T) {
			resp, err := client(t, c).Get(url)
			if err == nil {
				resp.Body.Close()
				t.Fatal("the client accepted the server")
			}
			var verr *tls.CertificateVerificationError
			if !errors.As(err, &verr) {
				t.Errorf("error %v is not a certificate verification error", err)
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	ca := certtest.NewCA(t, dir, "test")
	p := ca.Client(dir, "c")
	other := ca.Client(dir, "d")
	notPEM := filepath.Join(dir, "not.pem")
	os.WriteFile(notPEM, []byte("hello"), 0o600)
	missing := filepath.Join(dir, "missing.crt")
	for _, tt := range []struct {
		name string
		c    tlsfiles.Client
		want string
	}{
		{"CA file missing", tlsfiles.Client{CAFile: missing}, "missing.crt"},
		{"CA file not PEM", tlsfiles.Client{CAFile: notPEM}, "not.pem holds no PEM certificate"},
		{"cert without key", tlsfiles.Client{CertFile: p.CertFile}, "has no key file"},
		{"key without cert", tlsfiles.Client{KeyFile: p.KeyFile}, "has no certificate file"},
		{"key of another cert", tlsfiles.Client{CertFile: p.CertFile, KeyFile: other.KeyFile}, "private key does not match"},
		{"cert file missing", tlsfiles.Client{CertFile: missing, KeyFile: p.KeyFile}, "missing.crt"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.c.Config()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}
