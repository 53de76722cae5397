package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/riskd/riskd/policyfile"
	"github.com/riskd/riskd/replay"
	"github.com/riskd/riskd/rules"
)

func replayCmd(args []string, stdout, stderr io.Writer) int {
	fl := flag.NewFlagSet("replay", flag.ContinueOnError)
	fl.SetOutput(stderr)
	dir := fl.String("rules", "", "policy directory")
	in := fl.String("in", "", "events as JSON lines, gzip-compressed or not (- for standard input)")
	challenger := fl.String("challenger", "", "a second policy directory to replay beside -rules and compare")
	label := fl.String("label", "", "event field with the fraud label (true/false or 1/0)")
	from := fl.String("from", "", "count events from this time (2018-08-08 or RFC 3339); earlier ones still feed the features")
	to := fl.String("to", "", "count events before this time (exclusive)")
	out := fl.String("out", "", "write the live decisions as JSON lines to this file (- for standard output; the summary then goes to standard error)")
	featuresOut := fl.String("features-out", "", "write training data to this CSV file: for every counted event scored, every feature as the engine answered it, the event fields the rules read, label, score, decision and rules fired")
	asJSON := fl.Bool("json", false, "print the summary as JSON")
	changed := fl.Int("changed", 20, "how many changed events to list with -challenger")
	knownField := fl.String("known-fraud", "", "leave out of the counts the events whose entity, this event field (customer_id), had a fraud known before them; needs -label")
	knownDelay := fl.String("known-delay", "7d", "with -known-fraud: how long after a fraud its label is known (a chargeback)")
	knownEvery := fl.String("known-every", "1d", "with -known-fraud: labels that arrived are taken in at every multiple of this (1d: each UTC midnight); 0: as they arrive")
	knownFrom := fl.String("known-from", "", "with -known-fraud: only frauds from this time on are known (the handbook's protocol: its training week's start)")
	dirOpts := dirFlags(fl)
	if err := fl.Parse(args); err != nil {
		return 2
	}
	if *dir == "" || *in == "" || fl.NArg() > 0 {
		fmt.Fprintln(stderr, "riskctl replay: want -rules DIR -in events.jsonl (see riskctl help)")
		return 2
	}
	var opts replay.Options
	var err error
	if opts.From, err = parseTime(*from); err != nil {
		fmt.Fprintf(stderr, "riskctl replay: -from: %v\n", err)
		return 2
	}
	if opts.To, err = parseTime(*to); err != nil {
		fmt.Fprintf(stderr, "riskctl replay: -to: %v\n", err)
		return 2
	}
	if opts.From != 0 && opts.To != 0 && opts.To <= opts.From {
		fmt.Fprintf(stderr, "riskctl replay: -to %s is not after -from %s\n", *to, *from)
		return 2
	}
	if opts.KnownFraud, err = knownFraud(*knownField, *knownDelay, *knownEvery, *knownFrom, *label); err != nil {
		fmt.Fprintf(stderr, "riskctl replay: %v\n", err)
		return 2
	}
	opts.MaxChanged = *changed
	opts.Progress = stderr
	p, err := load(*dir, dirOpts)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	var c *rules.Policy
	if *challenger != "" {
		if c, err = load(*challenger, dirOpts); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
	}
	var r io.Reader = os.Stdin
	if *in != "-" {
		f, err := os.Open(*in)
		if err != nil {
			fmt.Fprintln(stderr, "riskctl replay:", err)
			return 1
		}
		defer f.Close()
		r = f
	}
	start := time.Now()
	events, bad, err := replay.Read(r, *label)
	if err != nil {
		fmt.Fprintf(stderr, "riskctl replay: reading %s: %v\n", *in, err)
		return 1
	}
	for i, e := range bad {
		if i == 20 {
			fmt.Fprintf(stderr, "%s: ... %d more lines skipped\n", *in, len(bad)-20)
			break
		}
		fmt.Fprintf(stderr, "%s:%v\n", *in, e)
	}
	fmt.Fprintf(stderr, "replay: read %d events in %.1fs\n", len(events), time.Since(start).Seconds())
	switch *out {
	case "":
	case "-":
		opts.Out = stdout
	default:
		f, err := os.Create(*out)
		if err != nil {
			fmt.Fprintln(stderr, "riskctl replay:", err)
			return 1
		}
		defer f.Close()
		opts.Out = f
	}
	if *featuresOut != "" {
		f, err := os.Create(*featuresOut)
		if err != nil {
			fmt.Fprintln(stderr, "riskctl replay:", err)
			return 1
		}
		defer f.Close()
		opts.FeaturesOut = f
	}
	res, err := replay.Run(context.Background(), p, c, events, opts)
	if err != nil {
		fmt.Fprintln(stderr, "riskctl replay:", err)
		return 1
	}
	w := stdout
	if *out == "-" { // the decisions have standard output
		w = stderr
	}
	if *asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(res)
	} else {
		res.WriteText(w)
	}
	if len(bad) > 0 || res.Live.Refused > 0 {
		return 1
	}
	return 0
}

// knownFraud reads the -known-* flags.
func knownFraud(field, delay, every, from, label string) (replay.KnownFraud, error) {
	k := replay.KnownFraud{Field: field}
	if field == "" {
		return k, nil
	}
	if label == "" {
		return k, fmt.Errorf("-known-fraud needs -label: frauds are known from their labels")
	}
	// 0 is a duration here: a label known at once, taken in as it comes.
	dur := func(s string) (time.Duration, error) {
		if s == "0" {
			return 0, nil
		}
		return policyfile.ParseDuration(s)
	}
	var err error
	if k.Delay, err = dur(delay); err != nil {
		return k, fmt.Errorf("-known-delay: %v", err)
	}
	if k.Batch, err = dur(every); err != nil {
		return k, fmt.Errorf("-known-every: %v", err)
	}
	if k.From, err = parseTime(from); err != nil {
		return k, fmt.Errorf("-known-from: %v", err)
	}
	return k, nil
}

// parseTime reads a date or an RFC 3339 time as Unix ms; "" is 0 (open).
func parseTime(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	for _, layout := range []string{"2006-01-02", time.RFC3339Nano} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UnixMilli(), nil
		}
	}
	return 0, fmt.Errorf("%q is not a date (2018-08-08) or an RFC 3339 time", s)
}
