// Package certtest makes X.509 certificates for tests: a CA and the
// server and client certificates it signs, written as PEM files the way
// an operator (or cert-manager) would hand them to riskd.
package certtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// CA is a certificate authority made for one test.
type CA struct {
	t    testing.TB
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	// CertFile is the CA certificate's PEM file.
	CertFile string
}

// NewCA makes a CA named name and writes its certificate into dir.
func NewCA(t testing.TB, dir, name string) *CA {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: name + " CA"}, // never a leaf's name: OpenSSL would take the leaf for self-signed
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("creating the CA certificate: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	ca := &CA{t: t, cert: cert, key: key, CertFile: filepath.Join(dir, name+"-ca.crt")}
	writePEM(t, ca.CertFile, "CERTIFICATE", der)
	return ca
}

// Pair is a certificate and its key as PEM, and where they were written.
type Pair struct {
	CertPEM, KeyPEM   []byte
	CertFile, KeyFile string
	// Serial tells one certificate from another of the same name.
	Serial *big.Int
}

// Server issues a server certificate for localhost and 127.0.0.1 (and
// any further DNS names), written to dir as name.crt and name.key. It
// serves as a client certificate too, as a Redis node's does when it
// reaches its peers.
func (ca *CA) Server(dir, name string, dnsNames ...string) Pair {
	ca.t.Helper()
	return ca.issue(dir, name, x509.ExtKeyUsageServerAuth, append([]string{"localhost"}, dnsNames...))
}

// Client issues a client certificate whose common name is name.
func (ca *CA) Client(dir, name string) Pair {
	ca.t.Helper()
	return ca.issue(dir, name, x509.ExtKeyUsageClientAuth, nil)
}

func (ca *CA) issue(dir, name string, usage x509.ExtKeyUsage, dnsNames []string) Pair {
	t := ca.t
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: serial(t),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage, x509.ExtKeyUsageClientAuth},
		DNSNames:     dnsNames,
	}
	if usage == x509.ExtKeyUsageServerAuth {
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatalf("issuing %s: %v", name, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	p := Pair{
		CertPEM:  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:   pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		CertFile: filepath.Join(dir, name+".crt"),
		KeyFile:  filepath.Join(dir, name+".key"),
		Serial:   tmpl.SerialNumber,
	}
	write(t, p.CertFile, p.CertPEM)
	write(t, p.KeyFile, p.KeyPEM)
	return p
}

// Rotate replaces certFile and keyFile with p's as cert-manager and most
// tools do: each new file is written beside the old one and renamed over
// it, so the directory entries change, not the old files' contents. The
// certificate goes first, so for a moment the two do not match.
func Rotate(t testing.TB, p Pair, certFile, keyFile string) {
	t.Helper()
	for _, f := range []struct {
		path string
		data []byte
	}{{certFile, p.CertPEM}, {keyFile, p.KeyPEM}} {
		tmp := f.path + ".new"
		write(t, tmp, f.data)
		if err := os.Rename(tmp, f.path); err != nil {
			t.Fatal(err)
		}
	}
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func serial(t testing.TB) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func writePEM(t testing.TB, path, typ string, der []byte) {
	t.Helper()
	write(t, path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
}

func write(t testing.TB, path string, data []byte) {
	t.Helper()
	// Keys are secrets: owner-only, as riskd expects of secret files.
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// WriteSecret writes a secret file as an operator should: owner-only.
func WriteSecret(t testing.TB, path, text string) {
	t.Helper()
	write(t, path, []byte(text))
}
