// Package secret reads riskd's secrets (passwords, tokens) from the
// places they may come from, and holds the rules they must meet.
package secret

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
)

// MinTokenBytes is the shortest admin token accepted, wherever it comes
// from: 16 random bytes are beyond guessing; "x" or "admin" are not.
const MinTokenBytes = 16

// CheckToken refuses an admin token shorter than MinTokenBytes; where
// names its source for the error (a flag, a file and line).
func CheckToken(token, where string) error {
	if len(token) < MinTokenBytes {
		return fmt.Errorf("%s: the admin token is %d bytes, shorter than %d (make one with: openssl rand -hex 32)", where, len(token), MinTokenBytes)
	}
	return nil
}

// ReadFile returns the secret that path holds, without the whitespace
// around it (the newline an editor or echo leaves). An empty file is an
// error: a secret that is silently empty would mean no authentication.
// A file that group or others may read still works, but log is told:
// the secret is only as private as the file.
func ReadFile(path string, log *slog.Logger) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	if log != nil {
		WarnIfReadable(path, log)
	}
	v := strings.TrimSpace(string(data))
	if v == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return v, nil
}

// WarnIfReadable tells log when path may be read by its group or by
// others (mode bits 0o044 and the like).
func WarnIfReadable(path string, log *slog.Logger) {
	info, err := os.Stat(path)
	if err != nil {
		return
	}
	if mode := info.Mode().Perm(); mode&0o077 != 0 {
		log.Warn("secret file readable by group or others: keep it owner-only (chmod 600)", "file", path, "mode", fmt.Sprintf("%04o", mode))
	}
}

// Resolve returns a secret given either as a value (a flag, or its
// RISKD_ environment variable) or as a file (the -file flag), not both;
// valueFlag and fileFlag name the two in errors. Neither: "".
func Resolve(valueFlag, value, fileFlag, file string, log *slog.Logger) (string, error) {
	switch {
	case value != "" && file != "":
		return "", fmt.Errorf("%s and %s are both set: give one", valueFlag, fileFlag)
	case file != "":
		v, err := ReadFile(file, log)
		if err != nil {
			return "", fmt.Errorf("%s: %w", fileFlag, err)
		}
		return v, nil
	}
	return value, nil
}
