// Command riskctl is the analysts' tool: it validates a policy directory,
// runs its rule tests and scores events with the same engine as riskd.
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/riskd/riskd/engine"
	"github.com/riskd/riskd/internal/buildinfo"
	"github.com/riskd/riskd/memstore"
	"github.com/riskd/riskd/policyfile"
	"github.com/riskd/riskd/replay"
	"github.com/riskd/riskd/rules"
	"github.com/riskd/riskd/ruletest"
)

const usage = `riskctl: the analyst's tool for riskd policies

  riskctl validate [-strict] [-cost] [-cost-warn D] DIR
                                   check DIR: every error as file:line:col: message;
                                   warn of rules costing over D (100µs) per event
  riskctl test [-run RE] [-v] DIR  run DIR/tests/*.yaml
  riskctl score -rules DIR [-explain] < events.jsonl > decisions.jsonl
  riskctl replay -rules DIR -in events.jsonl[.gz] [-challenger DIR] [-label FIELD]
                 [-from DATE] [-to DATE] [-out decisions.jsonl] [-features-out FILE.csv] [-json]
                 [-known-fraud FIELD [-known-delay 7d] [-known-every 1d] [-known-from DATE]]
  riskctl lists add|remove|show [-url URL] NAME [VALUE...]
                                   change a running riskd's mutable lists
  riskctl -version                 print the version, VCS revision and Go version

validate, test, score and replay read DIR as riskd does and take its
-rules-max-file-bytes, -rules-max-dir-bytes, -rules-max-list-bytes and
-rules-follow-symlinks. Each takes DIR as its argument or as -rules DIR.
Flags may come before or after the arguments; "--" ends the flags, for
a value that starts with "-". riskctl COMMAND -h (or riskctl help
COMMAND) explains a command's arguments and flags.

Exit status: 0 ok; 1 invalid policy, failing tests or refused events;
2 usage errors or unreadable test files.
`

// commands are riskctl's commands, for a did-you-mean.
var commands = []string{"validate", "test", "score", "replay", "lists", "help", "version"}

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "validate":
		return validate(args[1:], stdout, stderr)
	case "test":
		return test(args[1:], stdout, stderr)
	case "score":
		return score(args[1:], stdin, stdout, stderr)
	case "replay":
		return replayCmd(args[1:], stdout, stderr)
	case "lists":
		return listsCmd(args[1:], stdin, stdout, stderr)
	case "help", "-h", "-help", "--help":
		if len(args) >= 2 && args[0] == "help" && args[1] != "help" {
			// riskctl help lists add is riskctl lists add -h.
			return run(append(slices.Clone(args[1:]), "-h"), stdin, stdout, stderr)
		}
		fmt.Fprint(stdout, usage)
		return 0
	case "-version", "--version", "version":
		fmt.Fprintln(stdout, buildinfo.Read().String("riskctl"))
		return 0
	}
	msg := fmt.Sprintf("riskctl: unknown command %s", policyfile.Quote(args[0]))
	if s := policyfile.Suggest(args[0], commands); s != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", s)
	}
	fmt.Fprintf(stderr, "%s\n\n%s", msg, usage)
	return 2
}

// load reads a policy directory the way riskd does (rules.LoadDir), with
// the bounds the -rules-* flags set, so that what validates here loads
// there.
func load(dir string, opts *rules.DirOptions) (*rules.Policy, error) {
	info, err := os.Stat(dir)
	if err != nil {
		return nil, err
	}
	if !info.IsDir() {
		return nil, fmt.Errorf("%s is not a directory", dir)
	}
	return rules.LoadDir(dir, *opts)
}

// dirFlags adds riskd's flags bounding how a policy directory is read:
// give riskctl the values riskd runs with.
func dirFlags(fl *flag.FlagSet) *rules.DirOptions {
	o := &rules.DirOptions{}
	fl.Int64Var(&o.MaxFileBytes, "rules-max-file-bytes", rules.DefaultMaxFileBytes, "largest policy file read, in `BYTES` (as riskd's flag)")
	fl.Int64Var(&o.MaxDirBytes, "rules-max-dir-bytes", rules.DefaultMaxDirBytes, "most `BYTES` of policy files read from one directory (as riskd's flag)")
	fl.BoolVar(&o.FollowSymlinks, "rules-follow-symlinks", false, "read policy files that are symlinks to files outside the directory (as riskd's flag)")
	fl.Int64Var(&o.MaxListBytes, "rules-max-list-bytes", rules.DefaultMaxListBytes, "most bytes of list files (lists/*.txt) read from one directory (as riskd's flag)")
	return o
}

// command returns the flags of a riskctl command, whose -h shows its
// synopsis and what it does before the flags.
func command(name, synopsis, about string) *flag.FlagSet {
	fl := flag.NewFlagSet(name, flag.ContinueOnError)
	fl.Usage = func() {
		fmt.Fprintf(fl.Output(), "usage: riskctl %s %s\n\n%s\nflags:\n", name, synopsis, about)
		fl.PrintDefaults()
	}
	return fl
}

// parse parses a command's arguments and returns its positional ones.
// Flags may come before, between or after them (riskctl lists add NAME
// -ttl 30d VALUE), so a flag typed last is never taken for a value; after
// "--" every argument is positional, for a value that starts with "-".
// Asked for with -h, the usage goes to standard output and the exit status
// is 0; a usage error goes to standard error with the usage, status 2. ok
// is false in both cases.
func parse(fl *flag.FlagSet, args []string, stdout, stderr io.Writer) (pos []string, code int, ok bool) {
	var msg bytes.Buffer
	fl.SetOutput(&msg)
	defer fl.SetOutput(stderr)
	for {
		err := fl.Parse(args)
		switch {
		case errors.Is(err, flag.ErrHelp):
			stdout.Write(msg.Bytes())
			return nil, 0, false
		case err != nil:
			out := msg.Bytes()
			if name, ok := strings.CutPrefix(err.Error(), "flag provided but not defined: -"); ok {
				var flags []string
				fl.VisitAll(func(f *flag.Flag) { flags = append(flags, f.Name) })
				if s := policyfile.Suggest(strings.TrimPrefix(name, "-"), flags); s != "" {
					first, rest, _ := bytes.Cut(out, []byte("\n"))
					out = append(fmt.Appendf(nil, "%s (did you mean -%s?)\n", first, s), rest...)
				}
			}
			stderr.Write(out)
			return nil, 2, false
		}
		rest := fl.Args()
		if endsFlags(fl, args[:len(args)-len(rest)]) {
			return append(pos, rest...), 0, true
		}
		if len(rest) == 0 {
			return pos, 0, true
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// endsFlags reports whether the flag package stopped reading consumed at
// a "--" that ends the flags, rather than at one given as a flag's value.
func endsFlags(fl *flag.FlagSet, consumed []string) bool {
	for i := 0; i < len(consumed); i++ {
		a := consumed[i]
		if a == "--" {
			return true
		}
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if hasValue {
			continue
		}
		if f := fl.Lookup(name); f != nil {
			if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
				continue
			}
		}
		i++ // the flag's value
	}
	return false
}

// usageError reports wrong arguments with the command's usage; the exit
// status is 2.
func usageError(fl *flag.FlagSet, msg string) int {
	fmt.Fprintf(fl.Output(), "riskctl %s: %s\n\n", fl.Name(), msg)
	fl.Usage()
	return 2
}

// rulesFlag adds -rules: every command that reads a policy directory
// takes it as -rules DIR or as its one positional DIR.
func rulesFlag(fl *flag.FlagSet) *string {
	return fl.String("rules", "", "the policy directory `DIR` (or give DIR as the argument)")
}

// policyDir is the policy directory of a command, from -rules or the one
// positional argument pos; code is a usage error's status when ok is
// false.
func policyDir(fl *flag.FlagSet, rules string, pos []string) (dir string, code int, ok bool) {
	switch {
	case rules != "" && len(pos) == 0:
		return rules, 0, true
	case rules == "" && len(pos) == 1:
		return pos[0], 0, true
	case rules != "" && len(pos) > 0:
		return "", usageError(fl, fmt.Sprintf("the policy directory is -rules %s; unexpected arguments %s", rules, strings.Join(pos, " "))), false
	case len(pos) > 1:
		return "", usageError(fl, fmt.Sprintf("want one policy directory, got %d arguments: %s", len(pos), strings.Join(pos, " "))), false
	}
	return "", usageError(fl, "want a policy directory: DIR or -rules DIR"), false
}

// oneDir parses a command that takes one policy directory and nothing
// else.
func oneDir(fl *flag.FlagSet, args []string, stdout, stderr io.Writer) (dir string, code int, ok bool) {
	rules := rulesFlag(fl)
	pos, code, ok := parse(fl, args, stdout, stderr)
	if !ok {
		return "", code, false
	}
	return policyDir(fl, *rules, pos)
}

func validate(args []string, stdout, stderr io.Writer) int {
	fl := command("validate", "[flags] DIR", `Loads the policy directory DIR (features.yaml and its ruleset files) as
riskd does and reports every problem of every file, one per line as
file:line:col: message, with a did-you-mean where it can (exit 1). When
DIR loads, prints what it holds, its warnings (what it may not mean;
errors with -strict) and runs each rule on generated events, warning of
rules that cost more than -cost-warn per event (exit 0).
`)
	dirOpts := dirFlags(fl)
	strict := fl.Bool("strict", false, "treat the policy's warnings as errors (for CI); the measured costs of -cost-warn stay warnings")
	cost := fl.Bool("cost", false, "print what each rule costs per event, measured on generated events")
	costWarn := fl.Duration("cost-warn", 100*time.Microsecond, "warn of rules costing more than `DURATION` per event on generated events; 0: no warnings")
	dir, code, ok := oneDir(fl, args, stdout, stderr)
	if !ok {
		return code
	}
	p, err := load(dir, dirOpts)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if *strict && len(p.Warnings) > 0 {
		for _, w := range p.Warnings {
			fmt.Fprintln(stderr, w)
		}
		return 1
	}
	n := 0
	for _, rs := range p.Rulesets {
		n += len(rs.Rules)
	}
	fmt.Fprintf(stdout, "%s: ok: %d features, %d rulesets, %d rules\n", dir, len(p.Features.Features), len(p.Rulesets), n)
	reportLists(p, dir, dirOpts.MaxListBytes, stdout, stderr)
	for _, w := range p.Warnings {
		fmt.Fprintln(stderr, "warning:", w)
	}
	if *cost || *costWarn > 0 {
		reportCosts(measureCosts(p), *cost, *costWarn, stdout, stderr)
	}
	return 0
}

func test(args []string, stdout, stderr io.Writer) int {
	fl := command("test", "[flags] DIR", `Runs the rule tests DIR/tests/*.yaml on the policy in DIR: each test
scores its events in order on a fresh in-memory store and checks the
decisions, fired rules, scores and features it expects (docs/policy.md,
Rule tests). The output reads like go test's and ends with the rules no
test makes fire. Exit 1 when a test fails or DIR does not load, 2 when a
test file cannot be read or names a rule or ruleset DIR does not have.
`)
	pattern := fl.String("run", "", "run only the tests whose file/name matches `REGEXP`")
	verbose := fl.Bool("v", false, "print every test, not only failures")
	dirOpts := dirFlags(fl)
	dir, code, ok := oneDir(fl, args, stdout, stderr)
	if !ok {
		return code
	}
	p, err := load(dir, dirOpts)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	cases, err := ruletest.Load(os.DirFS(dir), dir)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	if err := ruletest.Check(p, cases); err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	if cases, err = ruletest.Filter(cases, *pattern); err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	start := time.Now()
	var results []ruletest.Result
	failed := 0
	for _, c := range cases {
		t0 := time.Now()
		if *verbose {
			fmt.Fprintf(stdout, "=== RUN   %s\n", c.ID())
		}
		r := ruletest.Run(p, c)
		results = append(results, r)
		took := time.Since(t0).Seconds()
		if len(r.Failures) > 0 {
			failed++
			fmt.Fprintf(stdout, "--- FAIL: %s (%.2fs)\n", c.ID(), took)
			for _, f := range r.Failures {
				fmt.Fprintf(stdout, "    %s\n", f)
			}
		} else if *verbose {
			fmt.Fprintf(stdout, "--- PASS: %s (%.2fs)\n", c.ID(), took)
		}
	}
	replay.WriteRuleErrors(stdout, "", sumRuleErrors(results))
	if *pattern == "" {
		if un := ruletest.Uncovered(p, results); len(un) > 0 {
			fmt.Fprintf(stdout, "rules no test makes fire: %s\n", strings.Join(un, ", "))
		}
	}
	if failed > 0 {
		fmt.Fprintf(stdout, "FAIL\t%s\t%d of %d tests failed\t%.3fs\n", dir, failed, len(cases), time.Since(start).Seconds())
		return 1
	}
	if len(cases) == 0 {
		fmt.Fprintf(stdout, "ok  \t%s\t[no tests to run]\n", dir)
		return 0
	}
	fmt.Fprintf(stdout, "ok  \t%s\t%d tests\t%.3fs\n", dir, len(cases), time.Since(start).Seconds())
	return 0
}

// sumRuleErrors adds up the run-time errors of every case, keeping the
// first example of each rule.
func sumRuleErrors(results []ruletest.Result) []engine.RuleErrors {
	var out []engine.RuleErrors
	at := map[string]int{}
	for _, r := range results {
		for _, e := range r.RuleErrors {
			k := e.Ruleset + "." + e.Rule
			i, ok := at[k]
			if !ok {
				at[k] = len(out)
				out = append(out, e)
				continue
			}
			out[i].Errors += e.Errors
			out[i].Evaluations += e.Evaluations
		}
	}
	return out
}

func score(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fl := command("score", "-rules DIR [flags] < events.jsonl > decisions.jsonl", `Scores events, one JSON object a line on standard input, with the policy
in DIR on a fresh in-memory store whose clock is the newest event time
seen, and writes each decision as a JSON line on standard output, as
riskd answers it. A line riskd would refuse is reported on standard
error with its number and makes the exit status 1.
`)
	explain := fl.Bool("explain", false, "add feature values and the rules that did not fire, as riskd's ?explain=1")
	dirOpts := dirFlags(fl)
	dir, code, ok := oneDir(fl, args, stdout, stderr)
	if !ok {
		return code
	}
	p, err := load(dir, dirOpts)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	e := engine.New(p, engine.Options{Store: memstore.New(memstore.Options{EventTime: true})})
	in := bufio.NewScanner(stdin)
	in.Buffer(make([]byte, 0, 64<<10), engine.DefaultMaxEventBytes+1)
	out := bufio.NewWriter(stdout)
	defer out.Flush()
	var d engine.Decision
	var buf []byte
	refused := 0
	for line := 1; in.Scan(); line++ {
		if len(strings.TrimSpace(in.Text())) == 0 {
			continue
		}
		if err := e.Score(context.Background(), in.Bytes(), engine.ScoreOptions{Explain: *explain}, &d); err != nil {
			refused++
			fmt.Fprintf(stderr, "line %d: %v\n", line, err)
			continue
		}
		buf = append(d.AppendJSON(buf[:0]), '\n')
		out.Write(buf)
	}
	if err := in.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			err = fmt.Errorf("a line is over the %d-byte event limit", engine.DefaultMaxEventBytes)
		}
		fmt.Fprintln(stderr, "reading events:", err)
		return 1
	}
	if refused > 0 {
		return 1
	}
	return 0
}
