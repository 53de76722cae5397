package main

import (
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/riskd/riskd/internal/certtest"
	"github.com/riskd/riskd/internal/tlsfiles"
)

// TestHTTPSListeners runs riskd with HTTPS on both listeners, a client
// certificate required on the scoring one, and rotates the certificate
// files while it serves.
func TestHTTPSListeners(t *testing.T) {
	dir := t.TempDir()
	ca := certtest.NewCA(t, dir, "riskd")
	first := ca.Server(dir, "tls")
	checkout := ca.Client(dir, "checkout")
	p := startRiskd(t, riskdBinary(t), filepath.Join(dir, "riskd.log"), "-listen", "127.0.0.1:0", "-admin-listen", "127.0.0.1:0",
		"-tls-cert-file", first.CertFile, "-tls-key-file", first.KeyFile, "-tls-client-ca-file", ca.CertFile)
	public, admin := serving(t, p)
	public, admin = strings.Replace(public, "http://", "https://", 1), strings.Replace(admin, "http://", "https://", 1)
	client := func(c tlsfiles.Client) *http.Client {
		cfg, err := c.Config()
		if err != nil {
			t.Fatal(err)
		}
		tr := &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true}
		t.Cleanup(tr.CloseIdleConnections)
		return &http.Client{Transport: tr}
	}
	withCert := client(tlsfiles.Client{CAFile: ca.CertFile, CertFile: checkout.CertFile, KeyFile: checkout.KeyFile})
	get := func(c *http.Client, url string) (*http.Response, string) {
		t.Helper()
		resp, err := c.Get(url)
		if err != nil {
			t.Fatalf("GET %s: %v\nriskd:\n%s", url, err, p.output())
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	resp, _ := get(withCert, public+"/healthz")
	if resp.StatusCode != 200 || resp.Proto != "HTTP/2.0" || resp.TLS.PeerCertificates[0].SerialNumber.Cmp(first.Serial) != 0 {
		t.Fatalf("scoring listener: %s %s, certificate %v", resp.Proto, resp.Status, resp.TLS.PeerCertificates[0].SerialNumber)
	}
	if _, err := client(tlsfiles.Client{CAFile: ca.CertFile}).Get(public + "/healthz"); err == nil {
		t.Error("the scoring listener let in a client without a certificate")
	}
	// The admin listener has the certificate, not the client CA: probes
	// and Prometheus reach it without one.
	noCert := client(tlsfiles.Client{CAFile: ca.CertFile})
	if resp, _ := get(noCert, admin+"/readyz"); resp.StatusCode != 200 {
		t.Errorf("admin /readyz: %s", resp.Status)
	}

	next := ca.Server(t.TempDir(), "tls")
	certtest.Rotate(t, next, first.CertFile, first.KeyFile)
	fresh := client(tlsfiles.Client{CAFile: ca.CertFile, CertFile: checkout.CertFile, KeyFile: checkout.KeyFile})
	if resp, _ := get(fresh, public+"/healthz"); resp.TLS.PeerCertificates[0].SerialNumber.Cmp(next.Serial) != 0 {
		t.Errorf("after the rotation a new connection got certificate %v, want %v", resp.TLS.PeerCertificates[0].SerialNumber, next.Serial)
	}
	// The connection opened before goes on, on the old certificate.
	if resp, _ := get(withCert, public+"/healthz"); resp.StatusCode != 200 || resp.TLS.PeerCertificates[0].SerialNumber.Cmp(first.Serial) != 0 {
		t.Errorf("the kept-alive connection: %s, certificate %v", resp.Status, resp.TLS.PeerCertificates[0].SerialNumber)
	}
	_, metrics := get(client(tlsfiles.Client{CAFile: ca.CertFile}), admin+"/metrics")
	for _, want := range []string{`riskd_tls_certificate_reloads_total{listener="scoring",result="loaded"} 1`, `riskd_tls_certificate_reloads_total{listener="admin",result="loaded"} 1`,
		`riskd_tls_certificate_expiry_timestamp_seconds{listener="scoring"}`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if !strings.Contains(p.output(), `"msg":"TLS certificate reloaded","listener":"scoring"`) {
		t.Errorf("no reload logged:\n%s", p.output())
	}
}
