// Package tlsfiles turns TLS material kept in files (a CA bundle, a
// certificate and its key) into *tls.Config for riskd's clients (Redis,
// Kafka) and servers (the HTTP listeners), reading a certificate again
// when its files are replaced, so rotation needs no restart.
package tlsfiles

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"
)

// Client names the files of the client side of a connection.
type Client struct {
	// CAFile holds the PEM certificates that may sign the server's
	// certificate. Empty: the system's roots.
	CAFile string
	// CertFile and KeyFile are the client certificate presented to a
	// server that asks for one (mutual TLS): both or neither. They are
	// read again when the files change.
	CertFile, KeyFile string
	// ServerName is the name the server's certificate must carry.
	// Empty: the host name dialled.
	ServerName string
	// Hooks report the client certificate's reloads.
	Hooks Hooks
}

// Set says whether any file or name is given: a Client that is not set
// asks for no TLS by itself.
func (c Client) Set() bool {
	return c.CAFile != "" || c.CertFile != "" || c.KeyFile != "" || c.ServerName != ""
}

// Config returns the client configuration. The CA file is read now;
// the client certificate now and again whenever its files change.
func (c Client) Config() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.ServerName}
	if c.CAFile != "" {
		pool, err := readPool(c.CAFile)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	if c.CertFile != "" || c.KeyFile != "" {
		kp, err := LoadKeypair(c.CertFile, c.KeyFile, c.Hooks)
		if err != nil {
			return nil, err
		}
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return kp.Certificate(), nil
		}
	}
	return cfg, nil
}

// Server names the files of a listener's side.
type Server struct {
	// CertFile and KeyFile are the server's certificate (with its
	// chain) and key, read again when the files change.
	CertFile, KeyFile string
	// ClientCAFile, when set, makes a client certificate signed by one
	// of its CAs a condition of the connection (mutual TLS).
	ClientCAFile string
	// Hooks report the certificate's reloads.
	Hooks Hooks
}

// Config returns the server configuration, offering HTTP/2 and
// HTTP/1.1, and the keypair it serves (its Leaf tells when it expires).
func (s Server) Config() (*tls.Config, *Keypair, error) {
	kp, err := LoadKeypair(s.CertFile, s.KeyFile, s.Hooks)
	if err != nil {
		return nil, nil, err
	}
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2", "http/1.1"},
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return kp.Certificate(), nil
		},
	}
	if s.ClientCAFile != "" {
		pool, err := readPool(s.ClientCAFile)
		if err != nil {
			return nil, nil, err
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, kp, nil
}

// Hooks are told what happens to a keypair after it was first loaded.
// They run inside a TLS handshake: they must be quick.
type Hooks struct {
	// Reloaded: the files changed and the new pair now serves.
	Reloaded func(leaf *x509.Certificate)
	// Failed: the files changed but do not make a pair (a rotation half
	// done, a key that does not match): the previous pair keeps serving.
	// Called once for each change of the files.
	Failed func(err error)
}

// Keypair is a certificate and key read from files, read again when
// either file's directory entry or contents change. Rotation tools write
// new files and rename them over the old (cert-manager swaps a symlink),
// so the check is a stat of both paths, done at each handshake: cheap
// next to the handshake, needing no goroutine, and exact — the first
// handshake after a rotation gets the new certificate.
type Keypair struct {
	certFile, keyFile string
	hooks             Hooks

	mu     sync.Mutex
	cert   *tls.Certificate
	stamp  [2]os.FileInfo // of the files cert was read from
	failed [2]os.FileInfo // of the files that last failed to load
	// missing: a file could not be stat'ed (reported once).
	missing bool
}

// LoadKeypair reads the pair: a failure now is an error, a failure on a
// later change goes to hooks.Failed.
func LoadKeypair(certFile, keyFile string, hooks Hooks) (*Keypair, error) {
	switch {
	case certFile == "" && keyFile == "":
		return nil, errors.New("no certificate file and no key file")
	case certFile == "":
		return nil, fmt.Errorf("key file %s has no certificate file", keyFile)
	case keyFile == "":
		return nil, fmt.Errorf("certificate file %s has no key file", certFile)
	}
	k := &Keypair{certFile: certFile, keyFile: keyFile, hooks: hooks}
	stamp, err := k.stat()
	if err != nil {
		return nil, err
	}
	cert, err := k.load()
	if err != nil {
		return nil, err
	}
	k.cert, k.stamp = cert, stamp
	return k, nil
}

// Certificate is the pair to present now: the files' current one, or if
// they changed into something that does not load, the last good one.
func (k *Keypair) Certificate() *tls.Certificate {
	k.mu.Lock()
	defer k.mu.Unlock()
	stamp, err := k.stat()
	if err != nil {
		// Mid-rotation a file may be missing for a moment: keep serving,
		// and say so once until the files are back.
		if !k.missing {
			k.missing = true
			k.report(err)
		}
		return k.cert
	}
	k.missing = false
	if same(stamp, k.stamp) || same(stamp, k.failed) {
		return k.cert
	}
	cert, err := k.load()
	if err != nil {
		k.failed = stamp
		k.report(err)
		return k.cert
	}
	k.cert, k.stamp, k.failed = cert, stamp, [2]os.FileInfo{}
	if k.hooks.Reloaded != nil {
		k.hooks.Reloaded(cert.Leaf)
	}
	return k.cert
}

// Leaf is the certificate presented now, parsed.
func (k *Keypair) Leaf() *x509.Certificate {
	return k.Certificate().Leaf
}

func (k *Keypair) report(err error) {
	if k.hooks.Failed != nil {
		k.hooks.Failed(err)
	}
}

func (k *Keypair) stat() ([2]os.FileInfo, error) {
	var out [2]os.FileInfo
	for i, p := range []string{k.certFile, k.keyFile} {
		fi, err := os.Stat(p)
		if err != nil {
			return out, err
		}
		out[i] = fi
	}
	return out, nil
}

func (k *Keypair) load() (*tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(k.certFile, k.keyFile)
	if err != nil {
		return nil, fmt.Errorf("certificate %s and key %s: %w", k.certFile, k.keyFile, err)
	}
	// Go 1.23+ fills Leaf; it is what Hooks.Reloaded and Leaf report.
	if cert.Leaf == nil {
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("certificate %s: %w", k.certFile, err)
		}
	}
	return &cert, nil
}

// same says whether two stats are of the same files, unchanged.
func same(a, b [2]os.FileInfo) bool {
	for i := range a {
		if a[i] == nil || b[i] == nil {
			return a[i] == nil && b[i] == nil
		}
		if !os.SameFile(a[i], b[i]) || !a[i].ModTime().Equal(b[i].ModTime()) || a[i].Size() != b[i].Size() {
			return false
		}
	}
	return true
}

func readPool(path string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("CA file %s holds no PEM certificate", path)
	}
	return pool, nil
}
