package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/riskd/riskd/lists"
	"github.com/riskd/riskd/policyfile"
	"github.com/riskd/riskd/rules"
)

const listsUsage = `riskctl lists: change riskd's mutable lists (declared {mutable: true})

  riskctl lists add [-ttl 30d] NAME VALUE...    add values (VALUE - reads them from stdin, one a line;
                                                a value that starts with - follows --)
  riskctl lists remove NAME VALUE...            remove values (- reads them from stdin)
  riskctl lists clear NAME                      remove every value
  riskctl lists show NAME                       print the values, one a line, with their expiry

Flags: -url (default $RISKD_URL or http://localhost:8080; riskd's admin
address with -admin-listen), -token-file (default: the token in
$RISKD_ADMIN_TOKEN). Flags may also follow NAME and the values.
Every change is logged by riskd with the token's name. riskctl lists
OPERATION -h explains an operation.
`

// listsCmd runs riskctl lists: add, remove and show, through riskd's
// admin API.
func listsCmd(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, listsUsage)
		return 2
	}
	op := args[0]
	var synopsis, about string
	switch op {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, listsUsage)
		return 0
	case "add":
		synopsis, about = "[flags] NAME VALUE...", "Adds the values to the mutable list NAME of a running riskd; a VALUE -\nreads values from standard input, one a line (blank lines and # comments\nskipped). A value that starts with - follows --.\n"
	case "remove":
		synopsis, about = "[flags] NAME VALUE...", "Removes the values from the mutable list NAME of a running riskd; a\nVALUE - reads them from standard input, one a line.\n"
	case "show":
		synopsis, about = "[flags] NAME", "Prints the values of the mutable list NAME of a running riskd, one a\nline, with their expiry.\n"
	case "clear":
		synopsis, about = "[flags] NAME", "Removes every value of the mutable list NAME of a running riskd.\n"
	default:
		msg := fmt.Sprintf("riskctl lists: unknown operation %s", policyfile.Quote(op))
		if s := policyfile.Suggest(op, []string{"add", "remove", "show", "clear"}); s != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", s)
		}
		fmt.Fprintf(stderr, "%s\n\n%s", msg, listsUsage)
		return 2
	}
	fl := command("lists "+op, synopsis, about)
	base := fl.String("url", envOr("RISKD_URL", "http://localhost:8080"), "riskd's address (its admin address with -admin-listen)")
	tokenFile := fl.String("token-file", "", "file holding the admin token (default: $RISKD_ADMIN_TOKEN)")
	var ttl *string
	if op == "add" {
		ttl = fl.String("ttl", "", "how long the values stay (30d, 12h); default: until removed")
	}
	rest, code, ok := parse(fl, args[1:], stdout, stderr)
	if !ok {
		return code
	}
	switch {
	case (op == "show" || op == "clear") && len(rest) != 1:
		return usageError(fl, "want one list NAME")
	case (op == "add" || op == "remove") && len(rest) < 2:
		return usageError(fl, "want a list NAME and at least one VALUE")
	}
	token := os.Getenv("RISKD_ADMIN_TOKEN")
	if *tokenFile != "" {
		b, err := os.ReadFile(*tokenFile)
		if err != nil {
			fmt.Fprintln(stderr, "riskctl lists:", err)
			return 2
		}
		token = strings.TrimSpace(string(b))
	}
	c := &listClient{base: strings.TrimRight(*base, "/"), token: token, http: &http.Client{Timeout: time.Minute}}
	switch op {
	case "show":
		return report(stderr, c.show(rest[0], stdout))
	case "clear":
		return report(stderr, c.clear(rest[0], stdout))
	}
	values, err := valuesOf(rest[1:], stdin)
	if err != nil {
		fmt.Fprintln(stderr, "riskctl lists:", err)
		return 2
	}
	if op == "add" {
		return report(stderr, c.add(rest[0], values, *ttl, stdout))
	}
	return report(stderr, c.remove(rest[0], values, stdout))
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func report(stderr io.Writer, err error) int {
	if err != nil {
		fmt.Fprintln(stderr, "riskctl lists:", err)
		return 1
	}
	return 0
}

// valuesOf is the values given as arguments, "-" standing for stdin's
// lines (blank ones and # comments skipped, as in a list file).
func valuesOf(args []string, stdin io.Reader) ([]string, error) {
	var out []string
	for _, a := range args {
		if a != "-" {
			out = append(out, a)
			continue
		}
		sc := bufio.NewScanner(stdin)
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		for sc.Scan() {
			if v := strings.TrimSpace(sc.Text()); v != "" && !strings.HasPrefix(v, "#") {
				out = append(out, v)
			}
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("reading values from stdin: %w", err)
		}
	}
	return out, nil
}

type listClient struct {
	base, token string
	http        *http.Client
}

// do sends a request and decodes a 200's JSON into out; any other status
// is an error carrying riskd's message.
func (c *listClient) do(method, path string, body any, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		return err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return fmt.Errorf("%s %s: %d: %s", method, path, resp.StatusCode, e.Error)
		}
		return fmt.Errorf("%s %s: %d: %s", method, path, resp.StatusCode, bytes.TrimSpace(b))
	}
	return json.Unmarshal(b, out)
}

type changed struct {
	Op        string  `json:"op"`
	Values    int     `json:"values"`
	Version   int64   `json:"version"`
	By        string  `json:"by"`
	ExpiresAt *string `json:"expires_at"`
}

func (c *listClient) add(name string, values []string, ttl string, stdout io.Writer) error {
	for len(values) > 0 {
		n := min(len(values), lists.MaxValuesPerChange)
		var out changed
		if err := c.do("POST", "/v1/lists/"+url.PathEscape(name), map[string]any{"values": values[:n], "ttl": ttl}, &out); err != nil {
			return err
		}
		exp := "never"
		if out.ExpiresAt != nil {
			exp = *out.ExpiresAt
		}
		fmt.Fprintf(stdout, "%s: added %d values (expire: %s) as %s: version %d\n", name, out.Values, exp, out.By, out.Version)
		values = values[n:]
	}
	return nil
}

// remove sends the values in changes of MaxValuesPerChange, in the body:
// a value in the path would be cleaned ("." and ".." mean directories
// there) and a request each takes days for a long list.
func (c *listClient) remove(name string, values []string, stdout io.Writer) error {
	for len(values) > 0 {
		n := min(len(values), lists.MaxValuesPerChange)
		var out changed
		if err := c.do("POST", "/v1/lists/"+url.PathEscape(name), map[string]any{"op": "remove", "values": values[:n]}, &out); err != nil {
			return err
		}
		if n == 1 {
			fmt.Fprintf(stdout, "%s: removed %q as %s: version %d\n", name, values[0], out.By, out.Version)
		} else {
			fmt.Fprintf(stdout, "%s: removed %d values (of %d given) as %s: version %d\n", name, out.Values, n, out.By, out.Version)
		}
		values = values[n:]
	}
	return nil
}

func (c *listClient) clear(name string, stdout io.Writer) error {
	var out changed
	if err := c.do("POST", "/v1/lists/"+url.PathEscape(name), map[string]any{"op": "clear"}, &out); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: cleared as %s: version %d\n", name, out.By, out.Version)
	return nil
}

func (c *listClient) show(name string, stdout io.Writer) error {
	after := ""
	for {
		var page struct {
			Values []struct {
				Value     string  `json:"value"`
				ExpiresAt *string `json:"expires_at"`
			} `json:"values"`
			Next *string `json:"next"`
		}
		q := url.Values{"limit": {"10000"}}
		if after != "" {
			q.Set("after", after)
		}
		if err := c.do("GET", "/v1/lists/"+url.PathEscape(name)+"?"+q.Encode(), nil, &page); err != nil {
			return err
		}
		for _, v := range page.Values {
			if v.ExpiresAt != nil {
				fmt.Fprintf(stdout, "%s\texpires %s\n", v.Value, *v.ExpiresAt)
			} else {
				fmt.Fprintln(stdout, v.Value)
			}
		}
		if page.Next == nil {
			return nil
		}
		after = *page.Next
	}
}

// reportLists prints what validate found of the policy's list files:
// their sizes, and a warning when together they near the bound riskd
// reads them under.
func reportLists(p *rules.Policy, dir string, maxBytes int64, stdout, stderr io.Writer) {
	for _, f := range p.ListFiles {
		fmt.Fprintf(stdout, "%s/%s: %d values, %s, version %s\n", dir, f.Path, f.Values, byteSize(f.Bytes), f.Version)
	}
	if int64(p.ListBytes) > maxBytes/2 {
		fmt.Fprintf(stderr, "warning: list files take %s, more than half of the %s riskd reads (-rules-max-list-bytes): past it the directory is refused\n", byteSize(p.ListBytes), byteSize(int(maxBytes)))
	}
}

func byteSize(n int) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}
