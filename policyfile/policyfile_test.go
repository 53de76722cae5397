package policyfile

import (
	"strings"
	"testing"
)

func TestQuoteShowsAnExcerpt(t *testing.T) {
	for _, tt := range []struct {
		in, want string
	}{
		{"card_id", `"card_id"`},
		{strings.Repeat("x", 80), `"` + strings.Repeat("x", 80) + `"`},
		{strings.Repeat("x", 81), `"` + strings.Repeat("x", 80) + `…"`},
		// A character is never split: é is two bytes, the 80th byte is
		// the first of one.
		{strings.Repeat("x", 79) + "éé", `"` + strings.Repeat("x", 79) + `…"`},
		{"root:x:0:0\n" + strings.Repeat("daemon:x:1:1\n", 40), `"root:x:0:0\ndaemon:x:1:1\ndaemon:x:1:1\ndaemon:x:1:1\ndaemon:x:1:1\ndaemon:x:1:1\ndaem…"`},
	} {
		if got := Quote(tt.in); got != tt.want {
			t.Errorf("Quote(%.20q…) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

// TestMessagesStayShort: whatever a message was built with, what it says
// is bounded, and a file with thousands of problems lists MaxErrorsPerFile
// of them and counts the rest.
func TestMessagesStayShort(t *testing.T) {
	es := &Errors{File: "p/x.yaml"}
	es.AtPos(1, 1, "unknown kind %q", strings.Repeat("s3cret", 1000))
	if got := es.Err().Error(); len(got) > len("p/x.yaml:1:1: ")+MaxMessageBytes+len("…") || !strings.HasSuffix(got, "…") {
		t.Errorf("message of %d bytes: %.100s…", len(got), got)
	}
	es = &Errors{File: "p/x.yaml"}
	for i := range 5000 {
		es.AtPos(i+1, 1, "problem %d", i)
	}
	lines := strings.Split(es.Err().Error(), "\n")
	if len(lines) != MaxErrorsPerFile+1 || lines[0] != "p/x.yaml:1:1: problem 0" || lines[MaxErrorsPerFile] != "p/x.yaml: … and 4950 more problems in this file" {
		t.Errorf("%d lines, first %q, last %q", len(lines), lines[0], lines[len(lines)-1])
	}
}
