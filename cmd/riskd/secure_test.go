package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestArgvSecrets(t *testing.T) {
	for _, tt := range []struct {
		name  string
		set   []string
		redis string
		want  []string
	}{
		{name: "none"},
		{name: "token flag", set: []string{"admin-token", "listen"}, want: []string{"-admin-token"}},
		{name: "file forms", set: []string{"admin-token-file", "redis-password-file"}},
		{name: "redis URL with password", set: []string{"redis"}, redis: "rediss://u:pw@h:1", want: []string{"-redis (a URL with a password)"}},
		{name: "redis URL without password", set: []string{"redis"}, redis: "rediss://u@h:1,h2:2"},
		{name: "redis URL from the environment", redis: "rediss://u:pw@h:1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			set := map[string]bool{}
			for _, s := range tt.set {
				set[s] = true
			}
			got := argvSecrets(set, tt.redis)
			slices.Sort(got)
			if !slices.Equal(got, tt.want) {
				t.Errorf("argvSecrets = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestSecurityCheck(t *testing.T) {
	for _, tt := range []struct {
		name  string
		s     security
		admin string
		want  string
	}{
		{name: "nothing"},
		{name: "cert and key", s: security{tlsCertFile: "c", tlsKeyFile: "k", tlsClientCAFile: "ca"}},
		{name: "cert without key", s: security{tlsCertFile: "c"}, want: "-tls-cert-file and -tls-key-file go together"},
		{name: "redis key without cert", s: redisTLSKeyOnly(), want: "-redis-tls-cert-file and -redis-tls-key-file go together"},
		{name: "client CA without cert", s: security{tlsClientCAFile: "ca"}, want: "-tls-client-ca-file needs -tls-cert-file"},
		{name: "admin TLS without admin listener", s: security{adminTLSCertFile: "c", adminTLSKeyFile: "k"}, want: "need -admin-listen"},
		{name: "admin TLS", s: security{adminTLSCertFile: "c", adminTLSKeyFile: "k", adminTLSClientCAFile: "ca"}, admin: "127.0.0.1:9090"},
		{name: "admin client CA without a certificate", s: security{adminTLSClientCAFile: "ca"}, admin: "127.0.0.1:9090", want: "-admin-tls-client-ca-file needs a certificate"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.s.check(tt.admin)
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("check: %v, want %q", err, tt.want)
			}
		})
	}
}

func redisTLSKeyOnly() security {
	var s security
	s.redisTLS.KeyFile = "k"
	return s
}

func TestAdminToken(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	os.WriteFile(good, []byte("0123456789abcdef0123\n"), 0o600)
	short := filepath.Join(dir, "short")
	os.WriteFile(short, []byte("change-me\n"), 0o600)
	for _, tt := range []struct {
		name, value, file, want, err string
	}{
		{name: "none"},
		{name: "value", value: "0123456789abcdef", want: "0123456789abcdef"},
		{name: "short value", value: "x", err: "-admin-token: the admin token is 1 bytes, shorter than 16"},
		{name: "file", file: good, want: "0123456789abcdef0123"},
		{name: "short file", file: short, err: "-admin-token-file " + short + ": the admin token is 9 bytes"},
		{name: "both", value: "0123456789abcdef", file: good, err: "-admin-token and -admin-token-file are both set"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := security{adminTokenFile: tt.file}
			got, err := s.adminToken(tt.value, nil)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("adminToken = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}
