package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/valyala/fastjson"

	"github.com/riskd/riskd/policyfile"
	"github.com/riskd/riskd/replay"
	"github.com/riskd/riskd/rules"
)

func replayCmd(args []string, stdout, stderr io.Writer) int {
	fl := command("replay", "-rules DIR -in FILE [flags]", `Replays recorded events (JSON lines, gzip-compressed or not) through
riskd's engine in event-time order on a fresh in-memory store and
prints a summary: decisions per outcome, hits per rule, the score
distribution and, with -label, precision, recall, ROC AUC and average
precision; with -challenger, the same for a second policy and where the
two disagree. Lines that cannot be replayed are named on standard error
and make the exit status 1. -features-out writes training data and
-known-fraud follows the handbook's test protocol. See docs/replay.md.
`)
	in := fl.String("in", "", "the events, JSON lines in `FILE`, gzip-compressed or not; - for standard input (required)")
	challenger := fl.String("challenger", "", "a second policy directory `DIR` to replay beside -rules and compare")
	label := fl.String("label", "", "the event `FIELD` holding the fraud label (true/false or 1/0)")
	labelsFile := fl.String("labels", "", "fraud labels from `FILE`: an export of the decisions topic's label records (source review, chargeback, ...: JSON lines with event_id and label fraud or not_fraud), joined by event id; over -label where both label an event")
	from := fl.String("from", "", "count events from `TIME` on (2018-08-08 or RFC 3339); earlier ones still feed the features")
	to := fl.String("to", "", "count events before `TIME` (exclusive)")
	out := fl.String("out", "", "write the live decisions as JSON lines to `FILE` (- for standard output; the summary then goes to standard error)")
	asJSON := fl.Bool("json", false, "print the summary as JSON")
	changed := fl.Int("changed", 20, "list the first `N` events whose outcome the challenger changes")
	featuresOut := fl.String("features-out", "", "write training data to `FILE` (CSV): for every counted event scored, every feature as the engine answered it, the event fields the rules read, label, score, decision and rules fired")
	knownField := fl.String("known-fraud", "", "leave out of the counts the events whose entity, this event `FIELD` (customer_id), had a fraud known before them; needs -label")
	knownDelay := fl.String("known-delay", "7d", "with -known-fraud: how long after a fraud its label is known (a chargeback)")
	knownEvery := fl.String("known-every", "1d", "with -known-fraud: labels that arrived are taken in at every multiple of this (1d: each UTC midnight); 0: as they arrive")
	knownFrom := fl.String("known-from", "", "with -known-fraud: only frauds from `TIME` on are known (the handbook's protocol: its training week's start)")
	dirOpts := dirFlags(fl)
	dir, code, ok := oneDir(fl, args, stdout, stderr)
	if !ok {
		return code
	}
	if *in == "" {
		return usageError(fl, "want -in FILE: the events to replay")
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
	if opts.KnownFraud, err = knownFraud(*knownField, *knownDelay, *knownEvery, *knownFrom, *label+*labelsFile); err != nil {
		fmt.Fprintf(stderr, "riskctl replay: %v\n", err)
		return 2
	}
	opts.MaxChanged = *changed
	opts.Progress = stderr
	p, err := load(dir, dirOpts)
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
	if *labelsFile != "" {
		f, err := os.Open(*labelsFile)
		if err != nil {
			fmt.Fprintln(stderr, "riskctl replay:", err)
			return 1
		}
		labels, bad, err := replay.ReadLabels(f)
		f.Close()
		if err != nil {
			fmt.Fprintf(stderr, "riskctl replay: reading %s: %v\n", *labelsFile, err)
			return 1
		}
		for i, e := range bad {
			if i == 20 {
				fmt.Fprintf(stderr, "%s: ... %d more lines skipped\n", *labelsFile, len(bad)-20)
				break
			}
			fmt.Fprintf(stderr, "%s:%v\n", *labelsFile, e)
		}
		n := labels.Apply(events)
		fmt.Fprintf(stderr, "replay: -labels %s: %d labels, %d events labelled\n", *labelsFile, len(labels), n)
		switch {
		case len(labels) == 0:
			fmt.Fprintf(stderr, "riskctl replay: -labels %s: no label record (a JSON line with event_id and label fraud or not_fraud)\n", *labelsFile)
			return 2
		case n == 0:
			fmt.Fprintf(stderr, "riskctl replay: -labels %s: no event of %s has the id of a label\n", *labelsFile, *in)
			return 2
		}
	}
	if *label != "" && *labelsFile == "" {
		if msg, fatal := labelCoverage(events, *label); fatal {
			fmt.Fprintf(stderr, "riskctl replay: %s\n", msg)
			return 2
		} else if msg != "" {
			fmt.Fprintf(stderr, "replay: %s\n", msg)
		}
	}
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
		return k, fmt.Errorf("-known-fraud needs -label or -labels: frauds are known from their labels")
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

// labelCoverage says how many events lack the label field: none carrying
// it is a mistake (a typo of the field would drop every label metric), so
// fatal; some lacking it are counted as unlabelled, which the user should
// know.
func labelCoverage(events []replay.Event, field string) (msg string, fatal bool) {
	unlabelled := 0
	for i := range events {
		if events[i].Label < 0 {
			unlabelled++
		}
	}
	switch {
	case len(events) == 0 || unlabelled == 0:
		return "", false
	case unlabelled < len(events):
		return fmt.Sprintf("-label %s: %d of %d events lack it (or hold null); they count as unlabelled", field, unlabelled, len(events)), false
	}
	msg = fmt.Sprintf("-label %s: no event carries the field %s", field, policyfile.Quote(field))
	var keys []string
	if v, err := fastjson.ParseBytes(events[0].Body); err == nil {
		if o, err := v.Object(); err == nil {
			o.Visit(func(k []byte, _ *fastjson.Value) { keys = append(keys, string(k)) })
		}
	}
	if sug := policyfile.Suggest(field, keys); sug != "" {
		msg += fmt.Sprintf(" (did you mean %s?)", sug)
	} else if len(keys) > 0 {
		msg += "; the first event's fields: " + strings.Join(keys, ", ")
	}
	return msg, true
}
