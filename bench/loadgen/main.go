// Command loadgen drives POST /v1/score at fixed rates (open loop) and
// reports latency percentiles measured from each request's intended send
// time, so a stall in the server shows as latency instead of silently
// lowering the rate. It only targets loopback addresses and stops by
// itself.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/riskd/riskd/bench/load"
	"github.com/riskd/riskd/internal/tlsfiles"
)

func main() {
	target := flag.String("url", "http://127.0.0.1:8080/v1/score", "scoring endpoint (loopback only)")
	rates := flag.String("rates", "1000,5000,10000", "comma-separated request rates per second, run one after the other")
	duration := flag.Duration("duration", 10*time.Second, "how long each rate runs")
	conns := flag.Int("conns", 256, "most requests in flight at once")
	caFile := flag.String("ca-file", "", "PEM CA that signs riskd's certificate, for an https:// -url")
	flag.Parse()
	if err := run(*target, *rates, *duration, *conns, *caFile); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

func run(target, rateList string, duration time.Duration, conns int, caFile string) error {
	if err := checkLoopback(target); err != nil {
		return err
	}
	if duration <= 0 || duration > 10*time.Minute {
		return fmt.Errorf("-duration %v: want between 0 and 10m", duration)
	}
	// HTTP/1.1 keep-alive connections over TLS as over plain TCP, so
	// the two compare like for like: each connection's handshake is paid
	// once and shared by its requests.
	tr := &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns}
	if caFile != "" {
		cfg, err := tlsfiles.Client{CAFile: caFile}.Config()
		if err != nil {
			return fmt.Errorf("-ca-file: %w", err)
		}
		tr.TLSClientConfig = cfg
	}
	client := &http.Client{Timeout: 5 * time.Second, Transport: tr}
	fmt.Printf("%-8s %8s %8s %9s %9s %9s %9s %9s %7s %9s\n", "rate", "sent", "achieved", "p50", "p90", "p99", "p999", "max", "errors", "degraded")
	var seq atomic.Int64
	for _, f := range strings.Split(rateList, ",") {
		rate, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || rate <= 0 || rate > 200000 {
			return fmt.Errorf("-rates: %q is not a rate between 1 and 200000", f)
		}
		r := step(client, target, rate, duration, conns, &seq)
		fmt.Printf("%-8d %8d %8.0f %9s %9s %9s %9s %9s %7d %9d\n", rate, r.sent, r.achieved,
			r.pct(0.50), r.pct(0.90), r.pct(0.99), r.pct(0.999), r.pct(1), r.errors, r.degraded)
	}
	return nil
}

type result struct {
	sent, errors int
	degraded     int // answered, but without some features (store down or slow)
	achieved     float64
	lat          *load.Recorder
}

func (r result) pct(q float64) string {
	if r.lat.Count() == 0 {
		return "-"
	}
	return r.lat.Quantile(q).Round(time.Microsecond).String()
}

// step runs one rate: the schedule hands intended send times to workers;
// when every worker is busy they queue up and their wait counts as
// latency.
func step(client *http.Client, target string, rate int, duration time.Duration, conns int, seq *atomic.Int64) result {
	total := int(float64(rate) * duration.Seconds())
	ctx, cancel := context.WithTimeout(context.Background(), duration+10*time.Second)
	defer cancel()
	due := make(chan time.Time, total)
	rec := &load.Recorder{}
	var errs, degraded atomic.Int64
	var wg sync.WaitGroup
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for t := range due {
				deg, err := send(ctx, client, target, seq.Add(1))
				if err != nil {
					errs.Add(1)
					continue
				}
				if deg {
					degraded.Add(1)
				}
				rec.Add(time.Since(t))
			}
		}()
	}
	start := time.Now()
	load.Schedule(ctx, rate, total, func(_ int, t time.Time) { due <- t })
	close(due)
	wg.Wait()
	elapsed := time.Since(start)
	return result{sent: total, errors: int(errs.Load()), degraded: int(degraded.Load()), achieved: float64(rec.Count()) / elapsed.Seconds(), lat: rec}
}

// send posts one checkout and reports whether the decision was degraded;
// entities rotate so features have history.
func send(ctx context.Context, client *http.Client, target string, n int64) (bool, error) {
	body := fmt.Appendf(nil, `{"id":"load-%d-%d","type":"checkout","account_id":"acc-%d","card_id":"card-%d","device_id":"dev-%d","ip":"10.0.%d.%d","amount":%d.%02d,"currency":"EUR","ip_country":"FR","card_country":"FR"}`,
		os.Getpid(), n, n%20000, n%25000, n%15000, n%200, n%250, 5+n%500, n%100)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return false, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return false, err
	}
	if resp.StatusCode != http.StatusOK {
		return false, errors.New(resp.Status)
	}
	return bytes.Contains(out, []byte(`"degraded":true`)), nil
}

// checkLoopback refuses any target that is not this machine.
func checkLoopback(target string) error {
	u, err := url.Parse(target)
	if err != nil {
		return fmt.Errorf("-url: %w", err)
	}
	ips, err := net.LookupIP(u.Hostname())
	if err != nil {
		return fmt.Errorf("-url: %w", err)
	}
	for _, ip := range ips {
		if !ip.IsLoopback() {
			return fmt.Errorf("-url %s resolves to %s: loadgen only targets loopback addresses", target, ip)
		}
	}
	return nil
}
