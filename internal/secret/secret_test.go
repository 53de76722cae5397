package secret_test

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/riskd/riskd/internal/secret"
)

func TestCheckToken(t *testing.T) {
	for _, tt := range []struct {
		token string
		ok    bool
	}{
		{"", false},
		{"Q", false},
		{"QQQ-fifteen-QQQ", false},
		{"QQQ-sixteen-QQQQ", true},
		{strings.Repeat("a", 64), true},
	} {
		err := secret.CheckToken(tt.token, "-admin-token")
		if (err == nil) != tt.ok {
			t.Errorf("CheckToken(%q) = %v, want ok %v", tt.token, err, tt.ok)
		}
		if err != nil && (strings.Contains(err.Error(), tt.token) && tt.token != "" || !strings.HasPrefix(err.Error(), "-admin-token: ")) {
			t.Errorf("error %q shows the token or does not name its source", err)
		}
	}
}

func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(p, mode) // past the umask
		return p
	}
	for _, tt := range []struct {
		name, data string
		mode       os.FileMode
		want       string
		err        string
		warn       bool
	}{
		{name: "owner-only", data: "s3cret\n", mode: 0o600, want: "s3cret"},
		{name: "read-only", data: "  s3cret \r\n", mode: 0o400, want: "s3cret"},
		{name: "group-readable", data: "s3cret", mode: 0o640, want: "s3cret", warn: true},
		{name: "world-readable", data: "s3cret", mode: 0o644, want: "s3cret", warn: true},
		{name: "empty", data: "\n", mode: 0o600, err: "empty"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			p := write(tt.name, tt.data, tt.mode)
			got, err := secret.ReadFile(p, slog.New(slog.NewTextHandler(&logs, nil)))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) || !strings.Contains(err.Error(), p) {
					t.Fatalf("error %v, want one naming %s and containing %q", err, p, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ReadFile = %q, %v; want %q", got, err, tt.want)
			}
			warned := strings.Contains(logs.String(), "readable by group or others")
			if warned != tt.warn {
				t.Errorf("warned %v, want %v: %s", warned, tt.warn, logs.String())
			}
			if strings.Contains(logs.String(), tt.want) {
				t.Errorf("the log shows the secret: %s", logs.String())
			}
		})
	}
}

func TestResolve(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "password")
	os.WriteFile(file, []byte("from-file\n"), 0o600)
	for _, tt := range []struct {
		name, value, file, want, err string
	}{
		{name: "neither"},
		{name: "value", value: "v", want: "v"},
		{name: "file", file: file, want: "from-file"},
		{name: "both", value: "v", file: file, err: "-p and -p-file are both set"},
		{name: "missing file", file: filepath.Join(dir, "nope"), err: "-p-file: open " + filepath.Join(dir, "nope")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := secret.Resolve("-p", tt.value, "-p-file", tt.file, nil)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Resolve = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}
