package main

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/riskd/riskd/internal/redistest"
	"github.com/riskd/riskd/outcomes"
)

var updateScreenshot = flag.Bool("update-screenshot", false, "write the browser test's case page screenshot to docs/console-case.png")

// reviewPolicy reviews checkouts over 500 and counts, per card, the
// events an analyst or a payment provider labelled fraud.
func reviewPolicy(t *testing.T) string {
	dir := t.TempDir()
	files := map[string]string{
		"features.yaml": `features:
  - {name: card_count_1h, kind: count, key: card_id, window: 1h, event_types: [checkout]}
  - name: card_fraud_labels_30d
    kind: count
    key: card_id
    window: 30d
    event_types: [label]
    where: event.label == "fraud"
`,
		"checkout.yaml": `name: checkout
version: "r1"
event_types: [checkout]
thresholds: {step_up: 30, review: 60, block: 90}
rules:
  - id: big_amount
    when: event.amount > 500
    score: 60
    reason: "amount {{event.amount}} over 500"
  - id: known_fraud_card
    when: (features.card_fraud_labels_30d ?? 0) >= 1
    score: 40
    reason: "card labelled fraud {{features.card_fraud_labels_30d}} times"
  - id: busy_card
    when: (features.card_count_1h ?? 0) >= 5
    score: 10
`,
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const (
	annToken  = "ann-analyst-token-0123456789"
	rootToken = "root-admin-token-0123456789"
)

func tokensFile(t *testing.T) string {
	f := filepath.Join(t.TempDir(), "tokens")
	os.WriteFile(f, []byte("# name token role\nann "+annToken+" analyst\nroot "+rootToken+" admin\nbob bob-analyst-token-0123456789 analyst\n"), 0o600)
	return f
}

// webhookReceiver is the merchant: a TLS endpoint checking signatures.
type webhookReceiver struct {
	srv        *httptest.Server
	caFile     string
	secret     string
	secretFile string
	got        chan map[string]any
}

func newWebhookReceiver(t *testing.T) *webhookReceiver {
	r := &webhookReceiver{secret: "whsec-0123456789abcdef", got: make(chan map[string]any, 8)}
	r.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		if err := outcomes.Verify([]byte(r.secret), req.Header.Get(outcomes.TimestampHeader), req.Header.Get(outcomes.SignatureHeader), body, time.Now(), 5*time.Minute); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			t.Errorf("webhook: %v", err)
			return
		}
		var m map[string]any
		json.Unmarshal(body, &m)
		r.got <- m
	}))
	t.Cleanup(r.srv.Close)
	dir := t.TempDir()
	r.caFile = filepath.Join(dir, "ca.pem")
	os.WriteFile(r.caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: r.srv.Certificate().Raw}), 0o644)
	secretFile := filepath.Join(dir, "secret")
	os.WriteFile(secretFile, []byte(r.secret+"\n"), 0o600)
	r.secretFile = secretFile
	return r
}

// score posts an event to riskd and returns the decision.
func score(t *testing.T, base, event string, explain bool) map[string]any {
	t.Helper()
	u := base + "/v1/score"
	if explain {
		u += "?explain=1"
	}
	resp, err := http.Post(u, "application/json", strings.NewReader(event))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var d map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&d); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("score: %d %v %v", resp.StatusCode, d, err)
	}
	return d
}

// startBrowser starts headless Chromium. Without one the test skips,
// except under CI=true, where it fails.
func startBrowser(t *testing.T) context.Context {
	t.Helper()
	bin := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			bin = p
			break
		}
	}
	fail := t.Skipf
	if os.Getenv("CI") == "true" {
		fail = t.Fatalf
	}
	if bin == "" {
		fail("chromium is needed for the browser test (Debian: apt-get install chromium; ./test.sh installs it)")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(bin), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.NoFirstRun, chromedp.WindowSize(1280, 900),
		chromedp.UserDataDir(t.TempDir()),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	ctx, cancelTimeout := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(cancelTimeout)
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		fail("chromium %s did not start: %v", bin, err)
	}
	return ctx
}

func screenshot(t *testing.T, ctx context.Context, name string) []byte {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // quality 100: PNG; below it JPEG
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(t.ArtifactDir(), name), png, 0o644); err != nil {
		t.Fatal(err)
	}
	return png
}

// TestReviewInTheBrowser: an analyst signs in to the console in headless
// Chromium, sees the case a review decision opened, claims it and
// resolves it as fraud; the label then counts in the card's features, is
// on the decisions topic with source review, and reached the merchant's
// webhook, signed.
func TestReviewInTheBrowser(t *testing.T) {
	ctx := startBrowser(t)
	broker, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "risk.events", "risk.decisions", "risk.decisions.shadow", "risk.events.dlq"))
	if err != nil {
		t.Fatal(err)
	}
	defer broker.Close()
	hook := newWebhookReceiver(t)
	p := startRiskd(t, riskdBinary(t), filepath.Join(t.TempDir(), "riskd.log"),
		"-listen", "127.0.0.1:0", "-admin-listen", "127.0.0.1:0", "-rules", reviewPolicy(t),
		"-admin-tokens-file", tokensFile(t), "-data-dir", t.TempDir(), "-kafka-brokers", broker.ListenAddrs()[0],
		"-webhook-url", hook.srv.URL+"/riskd", "-webhook-secret-file", hook.secretFile, "-webhook-ca", hook.caFile)
	public, admin := serving(t, p)

	d := score(t, public, `{"id":"order-1","type":"checkout","card_id":"card-7","account_id":"acc-1","amount":900}`, false)
	caseID, _ := d["case_id"].(string)
	if d["decision"] != "review" || caseID == "" {
		t.Fatalf("decision %v", d)
	}

	err = chromedp.Do(ctx,
		chromedp.Navigate(admin+"/console/"),
		chromedp.WaitVisible(chromedp.ID("token")),
	)
	location, _ := chromedp.Run(ctx, chromedp.Location())
	if err != nil || !strings.Contains(location, "/console/login") {
		t.Fatalf("signed out, the console sends to %q: %v\n%s", location, err, p.output())
	}
	err = chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.ID("token"), annToken),
		chromedp.Submit(chromedp.ID("token")),
		chromedp.WaitVisible(chromedp.CSS("p.stats")),
	)
	if err != nil {
		t.Fatalf("sign in: %v\n%s", err, p.output())
	}
	// The case is opened after the answer: reload the queue until it
	// shows.
	link := `a[href="/console/cases/` + caseID + `"]`
	for deadline := time.Now().Add(20 * time.Second); ; {
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('`+link+`').length`))
		if err != nil {
			t.Fatal(err)
		}
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("case %s never showed in the queue\n%s", caseID, p.output())
		}
		if err := chromedp.Do(ctx, chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("p.stats"))); err != nil {
			t.Fatal(err)
		}
	}
	screenshot(t, ctx, "console-queue.png")
	err = chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(link)),
		chromedp.WaitVisible(chromedp.ID("claim")),
		chromedp.Click(chromedp.ID("claim")),
		chromedp.WaitVisible(chromedp.ID("resolve")),
		chromedp.Click(chromedp.ID("outcome-fraud")),
		chromedp.SendKeys(chromedp.ID("note"), "card testing pattern; cardholder confirmed"),
		chromedp.Click(chromedp.ID("resolve")),
		// Only the resolved case's page has it (the claim's page had a
		// notice too).
		chromedp.WaitVisible(chromedp.ID("outcome")),
	)
	if err != nil {
		t.Fatalf("claim and resolve: %v\n%s", err, p.output())
	}
	state, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("state")))
	if err != nil || !strings.Contains(state, "resolved as fraud by ann") {
		t.Errorf("case state %q, %v", state, err)
	}
	png := screenshot(t, ctx, "console-case.png")
	if *updateScreenshot {
		os.WriteFile("../../docs/console-case.png", png, 0o644)
	}

	// The webhook: signed (the receiver checks), the analyst's outcome.
	select {
	case m := <-hook.got:
		if m["source"] != "review" || m["label"] != "fraud" || m["case_id"] != caseID || m["analyst"] != "ann" || m["event_id"] != "order-1" {
			t.Errorf("webhook got %v", m)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("no webhook\n%s", p.output())
	}
	// The topic: the outcome, keyed by the event id, source review.
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker.ListenAddrs()...), kgo.ConsumeTopics("risk.decisions"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	found := false
	fctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for !found {
		fs := cl.PollFetches(fctx)
		if fctx.Err() != nil {
			t.Fatalf("no review outcome on risk.decisions\n%s", p.output())
		}
		fs.EachRecord(func(r *kgo.Record) {
			var m map[string]any
			json.Unmarshal(r.Value, &m)
			if m["source"] == "review" && string(r.Key) == "order-1" && m["label"] == "fraud" {
				found = true
			}
		})
	}
	// The store: a later checkout on the card (at the time of receipt,
	// after the resolution) counts the label.
	later := score(t, public, `{"id":"order-2","type":"checkout","card_id":"card-7","amount":20}`, true)
	if f, _ := later["features"].(map[string]any); f["card_fraud_labels_30d"] != 1.0 {
		t.Errorf("a later event's features %v, want card_fraud_labels_30d 1", later["features"])
	}

	// An analyst works cases but changes no lists and reloads nothing.
	req, _ := http.NewRequest("POST", admin+"/v1/reload", nil)
	req.Header.Set("Authorization", "Bearer "+annToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("an analyst's reload answered %d, want 403", resp.StatusCode)
	}
}

// formClient is an analyst's browser without the browser: cookies, no
// redirects followed.
type formClient struct {
	t      *testing.T
	base   string
	client *http.Client
}

func newFormClient(t *testing.T, base, token string) *formClient {
	jar, _ := cookiejar.New(nil)
	c := &formClient{t: t, base: base, client: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	_, page := c.do("GET", "/console/login", nil)
	if code, _ := c.do("POST", "/console/login", url.Values{"csrf": {csrfOf(t, page)}, "token": {token}}); code != http.StatusSeeOther {
		t.Fatalf("sign in at %s: %d", base, code)
	}
	return c
}

var csrfValueRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func csrfOf(t *testing.T, page string) string {
	m := csrfValueRE.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF token in:\n%s", page)
	}
	return m[1]
}

func (c *formClient) do(method, path string, form url.Values) (int, string) {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, c.base+path, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := c.client.Do(req)
	if err != nil {
		c.t.Error(err)
		return 0, ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestTwoInstancesOneClaim: two riskd on one Redis share the queue; two
// analysts, one on each, claim the same case at once and one wins.
func TestTwoInstancesOneClaim(t *testing.T) {
	redisSrv := redistest.Start(t)
	rules, tokens := reviewPolicy(t), tokensFile(t)
	var admins []string
	var public string
	for i := range 2 {
		p := startRiskd(t, riskdBinary(t), filepath.Join(t.TempDir(), fmt.Sprintf("riskd%d.log", i)),
			"-listen", "127.0.0.1:0", "-admin-listen", "127.0.0.1:0", "-rules", rules, "-admin-tokens-file", tokens, "-redis", redisSrv.Addr())
		pub, admin := serving(t, p)
		public = pub
		admins = append(admins, admin)
	}
	d := score(t, public, `{"id":"order-9","type":"checkout","card_id":"card-9","amount":900}`, false)
	caseID, _ := d["case_id"].(string)
	ann, bob := newFormClient(t, admins[0], annToken), newFormClient(t, admins[1], "bob-analyst-token-0123456789")
	var pages [2]string
	waitUntil(t, 20*time.Second, "the case on both instances", func() bool {
		c0, p0 := ann.do("GET", "/console/cases/"+caseID, nil)
		c1, p1 := bob.do("GET", "/console/cases/"+caseID, nil)
		pages = [2]string{p0, p1}
		return c0 == http.StatusOK && c1 == http.StatusOK
	}, func() string { return "" })
	var wg sync.WaitGroup
	codes := make([]int, 2)
	for i, c := range []*formClient{ann, bob} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i], _ = c.do("POST", "/console/cases/"+caseID+"/claim", url.Values{"csrf": {csrfOf(t, pages[i])}})
		}()
	}
	wg.Wait()
	won := 0
	for _, code := range codes {
		switch code {
		case http.StatusSeeOther:
			won++
		case http.StatusConflict:
		default:
			t.Errorf("claim answered %d", code)
		}
	}
	if won != 1 {
		t.Errorf("claims answered %v: want one win (303) and one conflict (409)", codes)
	}
}
