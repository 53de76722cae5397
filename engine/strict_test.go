package engine

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/valyala/fastjson"
)

// manyKeys is an object of n distinct keys of one length and first
// byte: what the pairwise duplicate check spent the most on.
func manyKeys(n int) []byte {
	b := []byte(`{"id":"e-1","type":"checkout"`)
	for i := range n {
		b = append(b, `,"k`...)
		b = append(b, strconv.Itoa(100000+i)...)
		b = append(b, `":1`...)
	}
	return append(b, '}')
}

// TestDuplicateCheckIsLinear: the keys of a 64 KiB object are compared a
// number of times linear in their count (pair by pair they were 20
// million comparisons), and a duplicate among them is still found.
func TestDuplicateCheckIsLinear(t *testing.T) {
	body := manyKeys(6400)
	var p fastjson.Parser
	v, err := p.ParseBytes(body)
	if err != nil {
		t.Fatal(err)
	}
	var sc strictScratch
	if err := checkStrict(body, v, &sc); err != nil {
		t.Fatal(err)
	}
	if n := 6402; sc.compares > 4*n {
		t.Errorf("%d key comparisons for %d keys, want at most %d", sc.compares, n, 4*n)
	}
	dup := append(body[:len(body)-1:len(body)-1], `,"k100017":2}`...)
	if v, err = p.ParseBytes(dup); err != nil {
		t.Fatal(err)
	}
	err = checkStrict(dup, v, &sc)
	if err == nil || err.Error() != `duplicate key "k100017" (parsers disagree on which one counts: refused)` {
		t.Errorf("duplicate among many keys: %v", err)
	}
}

// BenchmarkStrict is the strict check of a normal event against the
// worst body of 64 KiB for the duplicate check: ~6,400 keys of one length.
func BenchmarkStrict(b *testing.B) {
	for _, bb := range []struct {
		name string
		body []byte
	}{
		{"normal", []byte(`{"id":"e-0000000001","type":"checkout","ts":"2026-11-20T10:00:00Z","account_id":"acc-000001","card_id":"card-000001","device_id":"dev-000001","ip":"10.1.2.3","amount":125.40,"currency":"EUR","ip_country":"FR","card_country":"FR"}`)},
		{"6400_keys", manyKeys(6400)},
	} {
		b.Run(bb.name, func(b *testing.B) {
			var p fastjson.Parser
			var sc strictScratch
			b.SetBytes(int64(len(bb.body)))
			b.ReportAllocs()
			for b.Loop() {
				v, err := p.ParseBytes(bb.body)
				if err != nil {
					b.Fatal(err)
				}
				if err := checkStrict(bb.body, v, &sc); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestNumberKey(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"42", "42"}, {"42.0", "42"}, {"4.2e1", "42"}, {"420E-1", "42"}, {"4.20e+1", "42"},
		{"0", "0"}, {"-0", "0"}, {"-0.000e7", "0"}, {"0.0", "0"},
		{"-2.50", "-2.5"}, {"0.001", "0.001"}, {"1e-3", "0.001"}, {"-1E-3", "-0.001"}, {"100", "100"}, {"1e2", "100"},
		{"12345678901234567891", "12345678901234567891"},
		{"1e20", "100000000000000000000"},
		{"1e100", "1e100"}, {"15e99", "1.5e100"}, {"-1.5e100", "-1.5e100"}, {"1e-50", "1e-50"}, {"123.456e-60", "1.23456e-58"},
		{"1e10000000000", "1e10000000000"}, // past a billion: as written
	} {
		prefix := []byte("x\x1f")
		dst := append(prefix, tt.in...)
		got := appendNumberKey(dst[:len(prefix)], dst[len(prefix):])
		if string(got) != "x\x1f"+tt.want {
			t.Errorf("%s: %q, want %q", tt.in, got[len(prefix):], tt.want)
		}
	}
}

// FuzzStrictJSON holds riskd's strict JSON (fastjson and checkStrict) to
// a second parser's view: encoding/json, with what JSON leaves to
// implementations that riskd refuses made explicit (duplicate keys,
// invalid UTF-8, lone surrogates, numbers past float64, nesting past
// fastjson's 300 values). Seeds are in testdata/fuzz/FuzzStrictJSON.
func FuzzStrictJSON(f *testing.F) {
	var p fastjson.Parser
	var sc strictScratch
	f.Fuzz(func(t *testing.T, body []byte) {
		v, err := p.ParseBytes(body)
		if err == nil {
			err = checkStrict(body, v, &sc)
			var ie *InputError
			if err != nil && !errors.As(err, &ie) {
				t.Fatalf("%q: error is not an InputError: %v", body, err)
			}
		}
		want := referenceStrict(body)
		if (err == nil) != (want == "") {
			t.Fatalf("%q: riskd says %v, encoding/json says %q", body, err, want)
		}
	})
}

// referenceStrict returns why strict JSON refuses b, or "", reading it
// with encoding/json's tokenizer.
func referenceStrict(b []byte) string {
	if !json.Valid(b) {
		return "not JSON"
	}
	if !utf8.Valid(b) {
		return "invalid UTF-8"
	}
	type frame struct {
		keys    map[string]bool // nil in an array
		wantKey bool
	}
	var stack []*frame
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	for {
		before := dec.InputOffset()
		tok, err := dec.Token()
		if err == io.EOF {
			return ""
		}
		if err != nil {
			return err.Error()
		}
		raw := bytes.TrimLeft(b[before:dec.InputOffset()], " \t\r\n,:")
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if d, ok := tok.(json.Delim); ok && (d == '}' || d == ']') {
			stack = stack[:len(stack)-1]
			continue
		}
		if top != nil && top.keys != nil && top.wantKey {
			k := tok.(string)
			if lone(raw, k) {
				return "lone surrogate in a key"
			}
			if top.keys[k] {
				return "duplicate key"
			}
			top.keys[k] = true
			top.wantKey = false
			continue
		}
		if top != nil && top.keys != nil {
			top.wantKey = true
		}
		if len(stack)+1 > fastjson.MaxDepth {
			return "too deep"
		}
		switch tok := tok.(type) {
		case json.Delim:
			fr := &frame{}
			if tok == '{' {
				fr.keys, fr.wantKey = map[string]bool{}, true
			}
			stack = append(stack, fr)
		case string:
			if lone(raw, tok) {
				return "lone surrogate"
			}
		case json.Number:
			if _, err := strconv.ParseFloat(string(tok), 64); err != nil {
				return "number out of range"
			}
		}
	}
}

// lone reports whether decoding the string literal raw into s replaced a
// lone surrogate by U+FFFD: s holds more of them than raw wrote.
func lone(raw []byte, s string) bool {
	written := bytes.Count(raw, []byte("\uFFFD")) + strings.Count(strings.ToLower(string(raw)), `\ufffd`)
	return strings.Count(s, "\uFFFD") > written
}
