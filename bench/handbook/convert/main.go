// Command convert turns the Fraud Detection Handbook's simulated card
// transactions (CSV, optionally gzip-compressed) into riskd events: one
// checkout per transaction with its fraud label, and a chargeback seven
// days after each fraudulent one, the way confirmed fraud reaches a risk
// team late. Events come out in event-time order, ready for riskctl replay.
//
//	go run ./bench/handbook/convert -in ../shared/data/handbook-transactions.csv.gz | gzip > /tmp/handbook.jsonl.gz
//
// The scenario column (which kind of fraud) is dropped: rules must find
// fraud from what a payments team sees.
package main

import (
	"bufio"
	"compress/gzip"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"
)

// ChargebackDelay is how long after a fraudulent transaction its
// chargeback arrives.
const ChargebackDelay = 7 * 24 * time.Hour

func main() {
	in := flag.String("in", "", "handbook transactions CSV, .gz or not (- for standard input)")
	flag.Parse()
	if *in == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: convert -in transactions.csv[.gz] > events.jsonl")
		os.Exit(2)
	}
	var r io.Reader = os.Stdin
	if *in != "-" {
		f, err := os.Open(*in)
		if err != nil {
			fmt.Fprintln(os.Stderr, "convert:", err)
			os.Exit(1)
		}
		defer f.Close()
		r = f
	}
	w := bufio.NewWriterSize(os.Stdout, 1<<20)
	n, err := convert(r, w)
	if err == nil {
		err = w.Flush()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "convert: %s: %v\n", *in, err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "convert: %d transactions\n", n)
}

var columns = []string{"TRANSACTION_ID", "TX_DATETIME", "CUSTOMER_ID", "TERMINAL_ID", "TX_AMOUNT", "TX_FRAUD"}

type chargeback struct {
	ts                     int64
	tx, customer, terminal string
	amount                 string
}

// convert writes the events of the transactions in r to w and returns how
// many transactions it read.
func convert(r io.Reader, w io.Writer) (int, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return 0, err
		}
		defer zr.Close()
		br = bufio.NewReaderSize(zr, 1<<20)
	}
	cr := csv.NewReader(br)
	cr.ReuseRecord = true
	head, err := cr.Read()
	if err != nil {
		return 0, fmt.Errorf("reading the header: %w", err)
	}
	col := map[string]int{}
	for i, h := range head {
		col[h] = i
	}
	for _, c := range columns {
		if _, ok := col[c]; !ok {
			return 0, fmt.Errorf("line 1: no %s column (want %v)", c, columns)
		}
	}
	var pending []chargeback // in time order, as the transactions are
	var buf []byte
	n := 0
	last := int64(0)
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		line, _ := cr.FieldPos(0)
		if err != nil {
			return n, err
		}
		field := func(name string) string { return rec[col[name]] }
		t, err := time.Parse(time.DateTime, field("TX_DATETIME"))
		if err != nil {
			return n, fmt.Errorf("line %d: TX_DATETIME %q: want 2018-04-01 00:00:31", line, field("TX_DATETIME"))
		}
		ts := t.UnixMilli()
		if ts < last {
			return n, fmt.Errorf("line %d: transactions out of time order (%s)", line, field("TX_DATETIME"))
		}
		last = ts
		if _, err := strconv.ParseFloat(field("TX_AMOUNT"), 64); err != nil {
			return n, fmt.Errorf("line %d: TX_AMOUNT %q is not a number", line, field("TX_AMOUNT"))
		}
		fraud := field("TX_FRAUD")
		if fraud != "0" && fraud != "1" {
			return n, fmt.Errorf("line %d: TX_FRAUD %q: want 0 or 1", line, fraud)
		}
		// Chargebacks due by now happened before this transaction.
		for len(pending) > 0 && pending[0].ts <= ts {
			if buf, err = writeChargeback(w, buf, pending[0]); err != nil {
				return n, err
			}
			pending = pending[1:]
		}
		buf = append(buf[:0], `{"id":"tx-`...)
		buf = append(buf, field("TRANSACTION_ID")...)
		buf = append(buf, `","type":"checkout","ts":`...)
		buf = strconv.AppendInt(buf, ts, 10)
		buf = append(buf, `,"customer_id":"c-`...)
		buf = append(buf, field("CUSTOMER_ID")...)
		buf = append(buf, `","terminal_id":"t-`...)
		buf = append(buf, field("TERMINAL_ID")...)
		buf = append(buf, `","amount":`...)
		buf = append(buf, field("TX_AMOUNT")...)
		buf = append(buf, `,"fraud":`...)
		buf = append(buf, fraud...)
		buf = append(buf, "}\n"...)
		if _, err := w.Write(buf); err != nil {
			return n, err
		}
		n++
		if fraud == "1" {
			pending = append(pending, chargeback{ts: ts + ChargebackDelay.Milliseconds(), tx: field("TRANSACTION_ID"),
				customer: field("CUSTOMER_ID"), terminal: field("TERMINAL_ID"), amount: field("TX_AMOUNT")})
		}
	}
	for _, cb := range pending {
		if buf, err = writeChargeback(w, buf, cb); err != nil {
			return n, err
		}
	}
	return n, nil
}

// writeChargeback writes a chargeback event: it carries the original
// transaction's customer, terminal and amount so features keyed on them
// learn from confirmed fraud.
func writeChargeback(w io.Writer, buf []byte, cb chargeback) ([]byte, error) {
	buf = append(buf[:0], `{"id":"cb-`...)
	buf = append(buf, cb.tx...)
	buf = append(buf, `","type":"chargeback","ts":`...)
	buf = strconv.AppendInt(buf, cb.ts, 10)
	buf = append(buf, `,"transaction_id":"tx-`...)
	buf = append(buf, cb.tx...)
	buf = append(buf, `","customer_id":"c-`...)
	buf = append(buf, cb.customer...)
	buf = append(buf, `","terminal_id":"t-`...)
	buf = append(buf, cb.terminal...)
	buf = append(buf, `","amount":`...)
	buf = append(buf, cb.amount...)
	buf = append(buf, "}\n"...)
	_, err := w.Write(buf)
	return buf, err
}
